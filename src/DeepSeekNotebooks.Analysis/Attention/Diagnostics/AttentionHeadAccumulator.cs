#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attention.Diagnostics;

/// <summary>Dataset-level diagnostics of one attention head. Query 0 (which can only attend to itself) is skipped throughout.</summary>
/// <param name="Queries">Queries averaged over.</param>
/// <param name="MeanEntropy">Mean over queries of the attention row's entropy / log(row length) (1 = uniform over the causal prefix).</param>
/// <param name="SinkScore">Mean attention to the first token (Gu et al. 2024's α for the head; on DeepSeek-V4 this is still the first token, not the learnable sink).</param>
/// <param name="SinkQueryRate">Fraction of queries whose attention to the first token exceeds ε.</param>
/// <param name="IsSink">SinkScore &gt; ε (Gu et al. 2024's sink criterion for a head).</param>
/// <param name="MeanMaxAttention">Mean over queries of the largest attention weight (1 = one-hot; sparse) — Voita et al. 2019's head "confidence".</param>
/// <param name="DistanceProfile">Mean attention mass per query falling in each query−key distance bin (see <see cref="AttentionHeadAccumulator.DistanceBinStarts"/>).</param>
/// <param name="BoundaryMass">Mean attention mass on boundary tokens (punctuation, newlines, sentence ends); NaN without token strings.</param>
/// <param name="BoundaryBaseline">The same under uniform causal attention (fraction of visible keys that are boundaries), for comparison.</param>
public sealed record HeadDiagnostics(int Layer, int Head, long Queries, double MeanEntropy, double StdEntropy, double SinkScore, double SinkQueryRate, bool IsSink,
    double MeanMaxAttention, double[] DistanceProfile, double BoundaryMass, double BoundaryBaseline);

/// <summary>Mean attention mass from queries of one token class to keys of another (the "semantic" attention dimension).</summary>
/// <param name="Mass">Mean over queries of class <paramref name="QueryClass"/> of the attention mass on keys of class <paramref name="KeyClass"/>.</param>
/// <param name="Baseline">The same under uniform causal attention.</param>
public sealed record ClassAttention(int Layer, int Head, string QueryClass, string KeyClass, long Queries, double Mass, double Baseline);

/// <summary>
/// Dataset-scale per-head attention diagnostics, fed by <see cref="DatasetRunner"/> (or <see cref="ObservePattern"/>):
/// normalised entropy, sink score and Gu et al. 2024 ("When Attention Sink Emerges in Language Models") ε-threshold sink
/// rate, max-attention sparsity, and the three attention dimensions — temporal (mass vs query−key distance), structural
/// (mass on boundary tokens) and semantic (mass between token classes). Memory is O(layers · heads · (bins + classes²)),
/// independent of dataset size; <see cref="Merge"/> equals a single pass.
/// Across processes or machines the state is saved, reloaded and merged through <see cref="DatasetState"/> (CLI: collect / merge / summarize).
/// </summary>
public sealed class AttentionHeadAccumulator : IDatasetAccumulator, IMergeable<AttentionHeadAccumulator>
{
    private sealed class HeadState(int bins)
    {
        public readonly RunningMoments Entropy = new(), Sink = new(), MaxAttn = new();
        public long SinkQueries;
        public readonly double[] Distance = new double[bins];
        public double Boundary, BoundaryBase;
        public long BoundaryQueries;
        public readonly Dictionary<(string Q, string K), (double Mass, double Base)> Classes = new();
        public readonly Dictionary<string, long> ClassQueries = new();
    }

    private readonly Dictionary<(int Layer, int Head), HeadState> _heads = new();
    private readonly Func<long, string>? _tokenText;
    private readonly Func<string, bool> _isBoundary;
    private readonly Func<string, string> _tokenClass;
    private bool _withTokenText;

    /// <summary>Creates the accumulator.</summary>
    /// <param name="epsilon">Gu et al.'s sink threshold ε (default 0.3).</param>
    /// <param name="tokenText">Token id → token string (e.g. from the tokenizer); enables the structural and semantic dimensions.</param>
    /// <param name="isBoundary">Boundary classifier on token strings (default <see cref="TokenClasses.IsBoundary"/>).</param>
    /// <param name="tokenClass">Token class of a token string for the semantic dimension (default <see cref="TokenClasses.Classify"/>).</param>
    /// <param name="distanceBinStarts">Increasing lower edges of the distance bins starting at 0 (default 0, 1, 2, 4, 8, …, 1024).</param>
    /// <param name="model">
    /// The traced model, needed for DeepSeek-V4 (its patterns hold compressed entries, mapped back to tokens by
    /// <see cref="TokenAttention"/>: rows then sum to 1 − the learnable sink's share, and entropy is that of the
    /// renormalised row). Not needed (and not used) for V2/V3/V3.2.
    /// </param>
    public AttentionHeadAccumulator(double epsilon = 0.3, Func<long, string>? tokenText = null, Func<string, bool>? isBoundary = null,
        Func<string, string>? tokenClass = null, IReadOnlyList<int>? distanceBinStarts = null, DeepSeekModel? model = null)
    {
        if (model?.Config.CompressedAttention is not null)
        {
            _model = model;
            Requirements = new TraceOptions { Names = TokenAttention.TraceNames(model.Config).ToArray() };
        }
        if (!(epsilon > 0 && epsilon < 1)) throw new ArgumentException("epsilon must be in (0, 1)", nameof(epsilon));
        var bins = distanceBinStarts?.ToArray() ?? new[] { 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
        if (bins.Length == 0 || bins[0] != 0 || bins.Zip(bins.Skip(1)).Any(p => p.Second <= p.First))
            throw new ArgumentException("distance bins must start at 0 and increase strictly", nameof(distanceBinStarts));
        Epsilon = epsilon;
        DistanceBinStarts = bins;
        _tokenText = tokenText;
        _withTokenText = tokenText is not null;
        _isBoundary = isBoundary ?? TokenClasses.IsBoundary;
        _tokenClass = tokenClass ?? TokenClasses.Classify;
    }

    /// <summary>Sink threshold ε.</summary>
    public double Epsilon { get; }
    /// <summary>Lower edges of the distance bins; bin i covers [start_i, start_{i+1}).</summary>
    public IReadOnlyList<int> DistanceBinStarts { get; }

    /// <inheritdoc />
    public TraceOptions Requirements { get; } = new() { AttentionPatterns = true, Routing = false, HiddenStates = false, Logits = false };

    private readonly DeepSeekModel? _model;

    /// <summary>Reads every layer's attention pattern (batch 1) from the trace.</summary>
    public void Observe(SequenceObservation observation)
    {
        ArgumentNullException.ThrowIfNull(observation);
        if (observation.Trace.Config.CompressedAttention is not null)
        {
            if (_model is null)
                throw new ArgumentException("a DeepSeek-V4 trace's patterns hold compressed entries: create the accumulator with model: (the traced model) to map them to tokens", nameof(observation));
            foreach (var mapped in TokenAttention.FromTrace(_model, observation.Trace))
            {
                int h = mapped.Heads, n = mapped.SequenceLength;
                var flat = new float[h * n * n];
                Buffer.BlockCopy(mapped.Pattern, 0, flat, 0, flat.Length * sizeof(float));
                ObservePattern(mapped.Layer, h, observation.Ids, flat);
            }
            return;
        }
        for (int layer = 0; layer < observation.Trace.Config.NumHiddenLayers; layer++)
        {
            using var scope = NewDisposeScope();
            var p = observation.Trace.AttentionPattern(layer);
            if (p.shape[0] != 1) throw new ArgumentException("the accumulator expects traces of batch 1", nameof(observation));
            ObservePattern(layer, (int)p.shape[1], observation.Ids, p.contiguous().to(ScalarType.Float32).cpu().data<float>().ToArray());
        }
    }

    /// <summary>
    /// Folds in one sequence's attention probabilities at one layer: <paramref name="pattern"/> is [heads, seq, seq]
    /// row-major (query, key), causal. Token strings (for boundary/class dimensions) come from the constructor's tokenText.
    /// </summary>
    /// <exception cref="ArgumentException">Pattern size ≠ heads · seq².</exception>
    public void ObservePattern(int layer, int heads, IReadOnlyList<long> ids, float[] pattern)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(pattern);
        int s = ids.Count;
        if (heads < 1 || s == 0 || pattern.Length != heads * s * s)
            throw new ArgumentException($"pattern must hold heads·seq² = {heads}·{s}² values, got {pattern.Length}", nameof(pattern));
        string[]? text = _tokenText is null ? null : ids.Select(_tokenText).ToArray();
        bool[]? boundary = text?.Select(_isBoundary).ToArray();
        string[]? cls = text?.Select(_tokenClass).ToArray();
        int bins = DistanceBinStarts.Count;
        var binOf = new int[s];
        for (int d = 0, b = 0; d < s; d++) { while (b + 1 < bins && d >= DistanceBinStarts[b + 1]) b++; binOf[d] = b; }
        for (int h = 0; h < heads; h++)
        {
            if (!_heads.TryGetValue((layer, h), out var st)) _heads[(layer, h)] = st = new HeadState(bins);
            for (int q = 1; q < s; q++)
            {
                var row = pattern.AsSpan((h * s + q) * s, q + 1);
                double max = 0;
                foreach (var a in row) if (a > max) max = a;
                st.Entropy.Add(Information.NormalisedEntropy(row));
                st.Sink.Add(row[0]);
                if (row[0] > Epsilon) st.SinkQueries++;
                st.MaxAttn.Add(max);
                for (int k = 0; k <= q; k++) st.Distance[binOf[q - k]] += row[k];
                if (boundary is not null && cls is not null)
                {
                    double bm = 0; int nb = 0;
                    var byClass = new Dictionary<string, (double Mass, int N)>();
                    for (int k = 0; k <= q; k++)
                    {
                        if (boundary[k]) { bm += row[k]; nb++; }
                        var c = byClass.GetValueOrDefault(cls[k]);
                        byClass[cls[k]] = (c.Mass + row[k], c.N + 1);
                    }
                    st.Boundary += bm; st.BoundaryBase += (double)nb / (q + 1); st.BoundaryQueries++;
                    st.ClassQueries[cls[q]] = st.ClassQueries.GetValueOrDefault(cls[q]) + 1;
                    foreach (var (kc, (mass, n)) in byClass)
                    {
                        var cur = st.Classes.GetValueOrDefault((cls[q], kc));
                        st.Classes[(cls[q], kc)] = (cur.Mass + mass, cur.Base + (double)n / (q + 1));
                    }
                }
            }
        }
    }

    /// <summary>Folds another accumulator (same ε and bins) into this one; equal to one pass over both inputs.</summary>
    /// <exception cref="ArgumentException">Different ε or distance bins.</exception>
    public void Merge(AttentionHeadAccumulator other)
    {
        EnsureMergeable(other);
        foreach (var (key, o) in other._heads)
        {
            if (!_heads.TryGetValue(key, out var st)) _heads[key] = st = new HeadState(DistanceBinStarts.Count);
            st.Entropy.Merge(o.Entropy); st.Sink.Merge(o.Sink); st.MaxAttn.Merge(o.MaxAttn);
            st.SinkQueries += o.SinkQueries;
            for (int i = 0; i < st.Distance.Length; i++) st.Distance[i] += o.Distance[i];
            st.Boundary += o.Boundary; st.BoundaryBase += o.BoundaryBase; st.BoundaryQueries += o.BoundaryQueries;
            foreach (var (c, n) in o.ClassQueries) st.ClassQueries[c] = st.ClassQueries.GetValueOrDefault(c) + n;
            foreach (var (c, v) in o.Classes)
            {
                var cur = st.Classes.GetValueOrDefault(c);
                st.Classes[c] = (cur.Mass + v.Mass, cur.Base + v.Base);
            }
        }
    }

    /// <summary>Throws (naming the difference) unless <paramref name="other"/> has the same ε, bins and token-string availability.</summary>
    internal void EnsureMergeable(AttentionHeadAccumulator other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Epsilon != Epsilon || !other.DistanceBinStarts.SequenceEqual(DistanceBinStarts))
            throw new ArgumentException($"cannot merge accumulators with different settings: epsilon {other.Epsilon} vs {Epsilon}, distance bins [{string.Join(", ", other.DistanceBinStarts)}] vs [{string.Join(", ", DistanceBinStarts)}]", nameof(other));
        if (other._withTokenText != _withTokenText)
            throw new ArgumentException($"cannot merge an accumulator {(other._withTokenText ? "with" : "without")} token strings (boundary/class dimensions) into one {(_withTokenText ? "with" : "without")}", nameof(other));
    }

    /// <summary>
    /// Writes the accumulator's whole state into a state file under <c>heads.</c> (ε, bins, whether token strings were
    /// available, the class names in metadata; per head I64 counts and F64 sums/moments). Used by <see cref="DatasetState.Save"/>.
    /// </summary>
    internal void SaveState(DeepSeekNotebooks.Model.Checkpoints.SafetensorsWriter w)
    {
        var keys = _heads.Keys.OrderBy(k => k.Layer).ThenBy(k => k.Head).ToArray();
        int n = keys.Length, bins = DistanceBinStarts.Count;
        var classes = _heads.Values.SelectMany(h => h.ClassQueries.Keys.Concat(h.Classes.Keys.SelectMany(c => new[] { c.Q, c.K })))
            .Distinct().Order(StringComparer.Ordinal).ToArray();
        var classIndex = classes.Select((c, i) => (c, i)).ToDictionary(t => t.c, t => (long)t.i);
        w.SetMetadata("heads.epsilon", Epsilon.ToString("R", System.Globalization.CultureInfo.InvariantCulture))
         .SetMetadata("heads.distance_bins", System.Text.Json.JsonSerializer.Serialize(DistanceBinStarts))
         .SetMetadata("heads.token_text", _withTokenText ? "true" : "false")
         .SetMetadata("heads.classes", System.Text.Json.JsonSerializer.Serialize(classes));
        var sts = keys.Select(k => _heads[k]).ToArray();
        w.I64("heads.keys", keys.SelectMany(k => new long[] { k.Layer, k.Head }).ToArray(), n, 2);
        w.I64("heads.counts", sts.SelectMany(s => new[] { s.Entropy.Count, s.Sink.Count, s.MaxAttn.Count, s.SinkQueries, s.BoundaryQueries }).ToArray(), n, 5);
        w.F64("heads.moments", sts.SelectMany(s => new[] { s.Entropy, s.Sink, s.MaxAttn }.SelectMany(m => new[] { m.Mean, m.M2, m.Min, m.Max })).ToArray(), n, 3, 4);
        w.F64("heads.distance", sts.SelectMany(s => s.Distance).ToArray(), n, bins);
        w.F64("heads.boundary", sts.SelectMany(s => new[] { s.Boundary, s.BoundaryBase }).ToArray(), n, 2);
        var cq = sts.SelectMany((s, h) => s.ClassQueries.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => new[] { h, classIndex[c.Key], c.Value })).ToArray();
        w.I64("heads.class_queries", cq.SelectMany(x => x).ToArray(), cq.Length, 3);
        var ce = sts.SelectMany((s, h) => s.Classes.OrderBy(c => c.Key.Q, StringComparer.Ordinal).ThenBy(c => c.Key.K, StringComparer.Ordinal)
            .Select(c => (Key: new[] { h, classIndex[c.Key.Q], classIndex[c.Key.K] }, Val: new[] { c.Value.Mass, c.Value.Base }))).ToArray();
        w.I64("heads.class_keys", ce.SelectMany(x => x.Key).ToArray(), ce.Length, 3);
        w.F64("heads.class_mass", ce.SelectMany(x => x.Val).ToArray(), ce.Length, 2);
    }

    /// <summary>Rebuilds an accumulator from a state file written by <see cref="SaveState"/> (token strings are not needed to summarise or merge it).</summary>
    internal static AttentionHeadAccumulator LoadState(StateReader r)
    {
        var acc = new AttentionHeadAccumulator(r.MetaDouble("heads.epsilon"), distanceBinStarts: r.MetaJson<int[]>("heads.distance_bins"))
        {
            _withTokenText = r.Meta("heads.token_text") == "true",
        };
        var classes = r.MetaJson<string[]>("heads.classes");
        int n = checked((int)(r.Length("heads.keys") / 2)), bins = acc.DistanceBinStarts.Count;
        var keys = r.I64("heads.keys", 2L * n);
        var counts = r.I64("heads.counts", 5L * n);
        var mom = r.F64("heads.moments", 12L * n);
        var dist = r.F64("heads.distance", (long)bins * n);
        var bnd = r.F64("heads.boundary", 2L * n);
        var sts = new HeadState[n];
        for (int h = 0; h < n; h++)
        {
            var st = sts[h] = acc._heads[((int)keys[2 * h], (int)keys[2 * h + 1])] = new HeadState(bins);
            var ms = new[] { st.Entropy, st.Sink, st.MaxAttn };
            for (int m = 0; m < 3; m++)
                ms[m].Merge(RunningMoments.FromState(counts[5 * h + m], mom[12 * h + 4 * m], mom[12 * h + 4 * m + 1], mom[12 * h + 4 * m + 2], mom[12 * h + 4 * m + 3]));
            st.SinkQueries = counts[5 * h + 3];
            st.BoundaryQueries = counts[5 * h + 4];
            dist.AsSpan(h * bins, bins).CopyTo(st.Distance);
            (st.Boundary, st.BoundaryBase) = (bnd[2 * h], bnd[2 * h + 1]);
        }
        string Class(long i) => i >= 0 && i < classes.Length ? classes[i]
            : throw new InvalidDataException($"{r.Path}: class index {i} outside the {classes.Length} classes of metadata 'heads.classes'");
        HeadState Head(long i) => i >= 0 && i < n ? sts[i] : throw new InvalidDataException($"{r.Path}: head index {i} outside the {n} stored heads");
        long q = r.Length("heads.class_queries") / 3;
        var cq = r.I64("heads.class_queries", 3 * q);
        for (int i = 0; i < q; i++) Head(cq[3 * i]).ClassQueries[Class(cq[3 * i + 1])] = cq[3 * i + 2];
        long c = r.Length("heads.class_keys") / 3;
        var ck = r.I64("heads.class_keys", 3 * c);
        var cm = r.F64("heads.class_mass", 2 * c);
        for (int i = 0; i < c; i++) Head(ck[3 * i]).Classes[(Class(ck[3 * i + 1]), Class(ck[3 * i + 2]))] = (cm[2 * i], cm[2 * i + 1]);
        return acc;
    }

    /// <summary>
    /// Per-head diagnostics (ordered by layer, head): normalised attention entropy, sink score and Gu et al. 2024
    /// ε-threshold sink flags, max-attention sparsity, distance profile (temporal) and boundary mass (structural).
    /// </summary>
    /// <exception cref="InvalidOperationException">Nothing observed yet (e.g. empty dataset, or only one-token sequences).</exception>
    public IReadOnlyList<HeadDiagnostics> Heads()
    {
        if (_heads.Count == 0 || _heads.Values.All(h => h.Entropy.Count == 0))
            throw new InvalidOperationException("no attention observed: the dataset was empty or had only one-token sequences");
        return _heads.OrderBy(kv => kv.Key.Layer).ThenBy(kv => kv.Key.Head).Select(kv =>
        {
            var st = kv.Value;
            long n = st.Entropy.Count;
            return new HeadDiagnostics(kv.Key.Layer, kv.Key.Head, n, st.Entropy.Mean, st.Entropy.StandardDeviation, st.Sink.Mean,
                n > 0 ? (double)st.SinkQueries / n : double.NaN, st.Sink.Mean > Epsilon, st.MaxAttn.Mean,
                st.Distance.Select(m => n > 0 ? m / n : double.NaN).ToArray(),
                st.BoundaryQueries > 0 ? st.Boundary / st.BoundaryQueries : double.NaN,
                st.BoundaryQueries > 0 ? st.BoundaryBase / st.BoundaryQueries : double.NaN);
        }).ToArray();
    }

    /// <summary>
    /// Gu et al. 2024 sink rate: the fraction of all heads (over all layers) whose mean attention to the first token
    /// exceeds ε.
    /// </summary>
    public double SinkRate() { var heads = Heads(); return heads.Count(h => h.IsSink) / (double)heads.Count; }

    /// <summary>
    /// Semantic attention dimension of every head: mean mass from queries of one token class to keys of another, with the
    /// uniform-attention baseline. Empty when no tokenText was given.
    /// </summary>
    public IReadOnlyList<ClassAttention> ClassProfile() => _heads.OrderBy(kv => kv.Key.Layer).ThenBy(kv => kv.Key.Head)
        .SelectMany(kv => kv.Value.Classes.OrderBy(c => c.Key.Q, StringComparer.Ordinal).ThenBy(c => c.Key.K, StringComparer.Ordinal)
            .Select(c =>
            {
                long n = kv.Value.ClassQueries[c.Key.Q];
                return new ClassAttention(kv.Key.Layer, kv.Key.Head, c.Key.Q, c.Key.K, n, c.Value.Mass / n, c.Value.Base / n);
            })).ToArray();

    /// <summary>Per-head diagnostics as a DataFrame (distance profile as columns dist_[start]).</summary>
    public DataFrame ToDataFrame()
    {
        var rows = Heads();
        var cols = new List<DataFrameColumn>
        {
            Frames.Int("layer", rows, r => r.Layer), Frames.Int("head", rows, r => r.Head), Frames.Long("queries", rows, r => r.Queries),
            Frames.Double("entropy", rows, r => r.MeanEntropy), Frames.Double("sink_score", rows, r => r.SinkScore),
            Frames.Double("sink_query_rate", rows, r => r.SinkQueryRate), Frames.Bool("is_sink", rows, r => r.IsSink),
            Frames.Double("max_attention", rows, r => r.MeanMaxAttention), Frames.Double("boundary_mass", rows, r => r.BoundaryMass),
            Frames.Double("boundary_baseline", rows, r => r.BoundaryBaseline),
        };
        for (int b = 0; b < DistanceBinStarts.Count; b++) { int bb = b; cols.Add(Frames.Double($"dist_{DistanceBinStarts[b]}", rows, r => r.DistanceProfile[bb])); }
        return new DataFrame(cols);
    }
}
