#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>Per-expert load of one MoE layer over a dataset.</summary>
/// <param name="Count">Tokens that selected the expert among their top-k.</param>
/// <param name="Frequency">Count / tokens (selection frequencies of a layer sum to k).</param>
/// <param name="WeightSum">Sum of the expert's routing weights.</param>
/// <param name="MeanWeight">WeightSum / Count (NaN when never selected).</param>
/// <param name="Top1Count">Tokens whose highest-scoring expert it is.</param>
/// <param name="RelativeLoad">Count / mean count over experts (DeepSeek-V3 Fig. 9's load relative to a perfectly balanced load).</param>
/// <param name="Dead">Never selected.</param>
public sealed record ExpertLoad(int Layer, int Expert, long Count, double Frequency, double WeightSum, double MeanWeight, long Top1Count, double RelativeLoad, bool Dead);

/// <summary>
/// Consecutive-token routing repetition (Mixtral arXiv:2401.04088 Table 5) against the baseline of independent routing
/// with the observed frequencies (<see cref="ExpertMetrics.Top1RepetitionBaseline"/>, <see cref="ExpertMetrics.AnySharedRepetitionBaseline"/>).
/// </summary>
public sealed record RoutingRepetition(long Pairs, double Top1Repeat, double Top1Baseline, double AnySharedRepeat, double AnySharedBaseline, bool AnySharedBaselineExact);

/// <summary>Summary of one MoE layer: balance, per-token routing entropy and margin, dead experts, repetition.</summary>
/// <param name="MeanRoutingEntropy">
/// Mean over tokens of the gate-score entropy / log E. On a hash-routed layer (DeepSeek-V4 tid2eid) the scores do not
/// choose the experts (only weight them), so this is the spread of the gate's scores, not the uncertainty of the
/// selection (which, given the token id, is 0); see <see cref="HashRouting"/>.
/// </param>
/// <param name="MeanTop1Margin">Mean over tokens of (highest − second-highest gate score).</param>
public sealed record LayerRoutingSummary(int Layer, long Tokens, int TopK, int Experts, LoadBalanceMetrics Balance, int DeadExperts,
    double MeanRoutingEntropy, double StdRoutingEntropy, double MeanTop1Margin, double StdTop1Margin, RoutingRepetition Repetition);

/// <summary>Load of one expert on one domain (DeepSeek-V3 arXiv:2412.19437 Fig. 9).</summary>
/// <param name="Share">Count / (domain tokens · k): the expert's share of the domain's routing slots.</param>
/// <param name="RelativeLoad">Count / (domain tokens · k / E): load relative to perfectly balanced (Fig. 9's colour scale).</param>
/// <param name="Affinity">Share on this domain / share over all domains (lift; &gt;1 = the expert prefers the domain).</param>
public sealed record DomainExpertLoad(int Layer, string Domain, int Expert, long Count, long DomainTokens, double Share, double RelativeLoad, double Affinity);

/// <summary>OLMoE-style vocabulary specialisation: of <paramref name="Occurrences"/> of a token id, the fraction routed to the expert.</summary>
public sealed record VocabularySpecialisation(int Layer, int Expert, long TokenId, long Occurrences, long RoutedToExpert, double Fraction);

/// <summary>
/// Dataset-scale routing statistics of every MoE layer, fed by <see cref="DatasetRunner"/> (or directly through
/// <see cref="ObserveRouting"/>): activation counts and weight sums, top-1 counts, co-activation, consecutive-token
/// repetition, per-token routing entropy and margin, per-domain counts and per-token-id counts. Memory is
/// O(layers · (E² + domains · E + distinct token ids · E)), independent of the number of sequences; <see cref="Merge"/>
/// is exact (integer counts; Chan-merged moments).
/// Across processes or machines the state is saved, reloaded and merged through <see cref="DatasetState"/> (CLI: collect / merge / summarize).
/// </summary>
public sealed class ExpertRoutingAccumulator : IDatasetAccumulator, IMergeable<ExpertRoutingAccumulator>
{
    private sealed class LayerState(int experts)
    {
        public long Tokens;
        public readonly long[] Counts = new long[experts];
        public readonly double[] WeightSums = new double[experts];
        public readonly long[] Top1 = new long[experts];
        public readonly long[,] Co = new long[experts, experts];
        public long Pairs, SameTop1, AnyShared;
        public readonly RunningMoments Entropy = new(), Margin = new();
        public readonly Dictionary<string, long[]> DomainCounts = new();
        public readonly Dictionary<string, long> DomainTokens = new();
        public readonly Dictionary<string, long[]> DomainTop1 = new();
        public readonly Dictionary<long, long[]> TokenCounts = new();
        public readonly Dictionary<long, long> TokenOccurrences = new();
    }

    private readonly SortedDictionary<int, LayerState> _layers = new();

    /// <summary>Creates an accumulator for a model with <paramref name="experts"/> routed experts and top-<paramref name="topK"/> routing.</summary>
    /// <param name="trackVocabulary">Keep per-token-id expert counts (needed for <see cref="VocabularySpecialisation"/>; costs distinct ids × E per layer).</param>
    public ExpertRoutingAccumulator(int experts, int topK, bool trackVocabulary = true)
    {
        if (experts < 1) throw new ArgumentException("need at least one routed expert", nameof(experts));
        if (topK < 1 || topK > experts) throw new ArgumentException($"topK must be in [1, {experts}]", nameof(topK));
        Experts = experts;
        TopK = topK;
        TrackVocabulary = trackVocabulary;
    }

    /// <summary>Creates an accumulator matching a model's configuration.</summary>
    public ExpertRoutingAccumulator(DeepSeekConfig config, bool trackVocabulary = true)
        : this(config.NRoutedExperts, config.NumExpertsPerTok, trackVocabulary) { }

    /// <summary>Number of routed experts.</summary>
    public int Experts { get; }
    /// <summary>Experts selected per token.</summary>
    public int TopK { get; }
    /// <summary>Whether per-token-id counts are kept.</summary>
    public bool TrackVocabulary { get; }
    /// <summary>MoE layers seen so far.</summary>
    public IReadOnlyCollection<int> Layers => _layers.Keys;

    /// <inheritdoc />
    public TraceOptions Requirements { get; } = new() { AttentionPatterns = false, Routing = true, HiddenStates = false, Logits = false };

    /// <summary>Reads routing of every MoE layer from a traced sequence (batch 1) and folds it in.</summary>
    public void Observe(SequenceObservation observation)
    {
        ArgumentNullException.ThrowIfNull(observation);
        var trace = observation.Trace;
        foreach (int layer in trace.MoeLayers)
        {
            using var scope = NewDisposeScope();
            var idx = trace.ExpertIndices(layer).contiguous().to(ScalarType.Int64).cpu().data<long>().ToArray();
            var w = trace.ExpertWeights(layer).contiguous().to(ScalarType.Float32).cpu().data<float>().ToArray();
            var s = trace.RouterScores(layer).contiguous().to(ScalarType.Float32).cpu().data<float>().ToArray();
            ObserveRouting(layer, observation.Ids, idx, w, s, observation.Domain);
        }
    }

    /// <summary>
    /// Folds in one sequence's routing at one layer: <paramref name="indices"/> and <paramref name="weights"/> are [tokens, k]
    /// row-major in top-k order, <paramref name="scores"/> the gate scores [tokens, E] (may be empty to skip entropy/margin).
    /// Consecutive-token repetition is counted between adjacent positions of this sequence only.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes inconsistent with the ids, or an expert index out of range.</exception>
    public void ObserveRouting(int layer, IReadOnlyList<long> ids, long[] indices, float[] weights, float[] scores, string? domain = null)
    {
        ArgumentNullException.ThrowIfNull(ids);
        int n = ids.Count, k = TopK, e = Experts;
        if (n == 0) throw new ArgumentException("empty sequence", nameof(ids));
        if (indices.Length != n * k) throw new ArgumentException($"indices must hold tokens·k = {n * k} values, got {indices.Length}", nameof(indices));
        if (weights.Length != n * k) throw new ArgumentException($"weights must hold tokens·k = {n * k} values, got {weights.Length}", nameof(weights));
        if (scores.Length != 0 && scores.Length != n * e) throw new ArgumentException($"scores must hold tokens·E = {n * e} values, got {scores.Length}", nameof(scores));
        foreach (var i in indices) if (i < 0 || i >= e) throw new ArgumentException($"expert index {i} out of range [0, {e})", nameof(indices));
        if (!_layers.TryGetValue(layer, out var st)) _layers[layer] = st = new LayerState(e);

        long[]? dom = null, domTop1 = null;
        if (domain is not null)
        {
            if (!st.DomainCounts.TryGetValue(domain, out dom)) st.DomainCounts[domain] = dom = new long[e];
            if (!st.DomainTop1.TryGetValue(domain, out domTop1)) st.DomainTop1[domain] = domTop1 = new long[e];
            st.DomainTokens[domain] = st.DomainTokens.GetValueOrDefault(domain) + n;
        }
        st.Tokens += n;
        for (int t = 0; t < n; t++)
        {
            long[]? tok = null;
            if (TrackVocabulary)
            {
                if (!st.TokenCounts.TryGetValue(ids[t], out tok)) st.TokenCounts[ids[t]] = tok = new long[e];
                st.TokenOccurrences[ids[t]] = st.TokenOccurrences.GetValueOrDefault(ids[t]) + 1;
            }
            for (int j = 0; j < k; j++)
            {
                int ex = (int)indices[t * k + j];
                st.Counts[ex]++;
                st.WeightSums[ex] += weights[t * k + j];
                st.Co[ex, ex]++;
                for (int j2 = j + 1; j2 < k; j2++)
                {
                    int ex2 = (int)indices[t * k + j2];
                    st.Co[ex, ex2]++;
                    st.Co[ex2, ex]++;
                }
                if (dom is not null) dom[ex]++;
                if (tok is not null) tok[ex]++;
            }
            st.Top1[indices[t * k]]++;
            if (domTop1 is not null) domTop1[indices[t * k]]++;
            if (scores.Length != 0)
            {
                var row = scores.AsSpan(t * e, e);
                st.Entropy.Add(ExpertMetrics.Entropy(row));
                float a = float.NegativeInfinity, b = float.NegativeInfinity;
                foreach (var v in row) { if (v > a) { b = a; a = v; } else if (v > b) b = v; }
                st.Margin.Add(e > 1 ? a - b : 0);
            }
            if (t > 0)
            {
                st.Pairs++;
                if (indices[t * k] == indices[(t - 1) * k]) st.SameTop1++;
                bool shared = false;
                for (int j = 0; j < k && !shared; j++)
                    for (int j2 = 0; j2 < k; j2++)
                        if (indices[t * k + j] == indices[(t - 1) * k + j2]) { shared = true; break; }
                if (shared) st.AnyShared++;
            }
        }
    }

    /// <summary>Folds another accumulator (same E and k) into this one; equal to a single pass over both inputs.</summary>
    /// <exception cref="ArgumentException">Different number of experts or top-k.</exception>
    public void Merge(ExpertRoutingAccumulator other)
    {
        EnsureMergeable(other);
        foreach (var (layer, o) in other._layers)
        {
            if (!_layers.TryGetValue(layer, out var st)) _layers[layer] = st = new LayerState(Experts);
            st.Tokens += o.Tokens; st.Pairs += o.Pairs; st.SameTop1 += o.SameTop1; st.AnyShared += o.AnyShared;
            for (int i = 0; i < Experts; i++)
            {
                st.Counts[i] += o.Counts[i]; st.WeightSums[i] += o.WeightSums[i]; st.Top1[i] += o.Top1[i];
                for (int j = 0; j < Experts; j++) st.Co[i, j] += o.Co[i, j];
            }
            st.Entropy.Merge(o.Entropy);
            st.Margin.Merge(o.Margin);
            AddAll(st.DomainCounts, o.DomainCounts);
            AddAll(st.DomainTop1, o.DomainTop1);
            foreach (var (d, n) in o.DomainTokens) st.DomainTokens[d] = st.DomainTokens.GetValueOrDefault(d) + n;
            AddAll(st.TokenCounts, o.TokenCounts);
            foreach (var (v, n) in o.TokenOccurrences) st.TokenOccurrences[v] = st.TokenOccurrences.GetValueOrDefault(v) + n;
        }
    }

    /// <summary>
    /// Writes the accumulator's whole state into a state file under <c>routing.</c> (settings and the observed layers in
    /// metadata; per layer I64 counts and F64 sums/moments). Used by <see cref="DatasetState.Save"/>.
    /// </summary>
    internal void SaveState(DeepSeekNotebooks.Model.Checkpoints.SafetensorsWriter w)
    {
        int e = Experts;
        w.SetMetadata("routing.experts", Experts.ToString(System.Globalization.CultureInfo.InvariantCulture))
         .SetMetadata("routing.top_k", TopK.ToString(System.Globalization.CultureInfo.InvariantCulture))
         .SetMetadata("routing.track_vocabulary", TrackVocabulary ? "true" : "false")
         .SetMetadata("routing.layers", System.Text.Json.JsonSerializer.Serialize(_layers.Keys.ToArray()));
        foreach (var (layer, st) in _layers)
        {
            string p = $"routing.layer{layer}.";
            w.I64(p + "scalars", [st.Tokens, st.Pairs, st.SameTop1, st.AnyShared], 4);
            w.I64(p + "counts", st.Counts, e);
            w.F64(p + "weight_sums", st.WeightSums, e);
            w.I64(p + "top1", st.Top1, e);
            var co = new long[e * e];
            for (int i = 0; i < e; i++) for (int j = 0; j < e; j++) co[i * e + j] = st.Co[i, j];
            w.I64(p + "coactivation", co, e, e);
            w.I64(p + "moment_counts", [st.Entropy.Count, st.Margin.Count], 2);
            w.F64(p + "moments", [st.Entropy.Mean, st.Entropy.M2, st.Entropy.Min, st.Entropy.Max, st.Margin.Mean, st.Margin.M2, st.Margin.Min, st.Margin.Max], 2, 4);
            var domains = st.DomainTokens.Keys.Order(StringComparer.Ordinal).ToArray();
            w.SetMetadata(p + "domains", System.Text.Json.JsonSerializer.Serialize(domains));
            w.I64(p + "domain_tokens", domains.Select(d => st.DomainTokens[d]).ToArray(), domains.Length);
            w.I64(p + "domain_counts", domains.SelectMany(d => st.DomainCounts[d]).ToArray(), domains.Length, e);
            w.I64(p + "domain_top1", domains.SelectMany(d => st.DomainTop1[d]).ToArray(), domains.Length, e);
            var ids = st.TokenOccurrences.Keys.Order().ToArray();
            w.I64(p + "token_ids", ids, ids.Length);
            w.I64(p + "token_occurrences", ids.Select(v => st.TokenOccurrences[v]).ToArray(), ids.Length);
            w.I64(p + "token_counts", ids.SelectMany(v => st.TokenCounts[v]).ToArray(), ids.Length, e);
        }
    }

    /// <summary>Rebuilds an accumulator from a state file written by <see cref="SaveState"/>.</summary>
    internal static ExpertRoutingAccumulator LoadState(StateReader r)
    {
        int e = r.MetaInt("routing.experts");
        var acc = new ExpertRoutingAccumulator(e, r.MetaInt("routing.top_k"), r.Meta("routing.track_vocabulary") == "true");
        foreach (int layer in r.MetaJson<int[]>("routing.layers"))
        {
            string p = $"routing.layer{layer}.";
            var st = acc._layers[layer] = new LayerState(e);
            var sc = r.I64(p + "scalars", 4);
            (st.Tokens, st.Pairs, st.SameTop1, st.AnyShared) = (sc[0], sc[1], sc[2], sc[3]);
            r.I64(p + "counts", e).CopyTo(st.Counts, 0);
            r.F64(p + "weight_sums", e).CopyTo(st.WeightSums, 0);
            r.I64(p + "top1", e).CopyTo(st.Top1, 0);
            var co = r.I64(p + "coactivation", (long)e * e);
            for (int i = 0; i < e; i++) for (int j = 0; j < e; j++) st.Co[i, j] = co[i * e + j];
            var mc = r.I64(p + "moment_counts", 2);
            var m = r.F64(p + "moments", 8);
            st.Entropy.Merge(RunningMoments.FromState(mc[0], m[0], m[1], m[2], m[3]));
            st.Margin.Merge(RunningMoments.FromState(mc[1], m[4], m[5], m[6], m[7]));
            var domains = r.MetaJson<string[]>(p + "domains");
            var dt = r.I64(p + "domain_tokens", domains.Length);
            var dc = r.I64(p + "domain_counts", (long)domains.Length * e);
            var d1 = r.I64(p + "domain_top1", (long)domains.Length * e);
            for (int d = 0; d < domains.Length; d++)
            {
                st.DomainTokens[domains[d]] = dt[d];
                st.DomainCounts[domains[d]] = dc.AsSpan(d * e, e).ToArray();
                st.DomainTop1[domains[d]] = d1.AsSpan(d * e, e).ToArray();
            }
            var ids = r.I64(p + "token_ids", r.Length(p + "token_ids"));
            var occ = r.I64(p + "token_occurrences", ids.Length);
            var tc = r.I64(p + "token_counts", (long)ids.Length * e);
            for (int v = 0; v < ids.Length; v++)
            {
                st.TokenOccurrences[ids[v]] = occ[v];
                st.TokenCounts[ids[v]] = tc.AsSpan(v * e, e).ToArray();
            }
        }
        return acc;
    }

    /// <summary>Throws (naming the difference) unless <paramref name="other"/> has the same E, k and vocabulary tracking.</summary>
    internal void EnsureMergeable(ExpertRoutingAccumulator other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Experts != Experts || other.TopK != TopK)
            throw new ArgumentException($"cannot merge E={other.Experts}, k={other.TopK} into E={Experts}, k={TopK}", nameof(other));
        if (other.TrackVocabulary != TrackVocabulary)
            throw new ArgumentException($"cannot merge an accumulator {(other.TrackVocabulary ? "with" : "without")} vocabulary tracking into one {(TrackVocabulary ? "with" : "without")}", nameof(other));
    }

    private static void AddAll<TKey>(Dictionary<TKey, long[]> into, Dictionary<TKey, long[]> from) where TKey : notnull
    {
        foreach (var (key, counts) in from)
        {
            if (!into.TryGetValue(key, out var mine)) into[key] = mine = new long[counts.Length];
            for (int i = 0; i < counts.Length; i++) mine[i] += counts[i];
        }
    }

    private LayerState State(int layer) => _layers.TryGetValue(layer, out var st) ? st
        : throw new ArgumentException($"no routing observed for layer {layer}; observed MoE layers: [{string.Join(", ", _layers.Keys)}]", nameof(layer));

    /// <summary>Tokens routed at a layer.</summary>
    public long Tokens(int layer) => State(layer).Tokens;

    /// <summary>
    /// Activation frequency of every expert at a layer (top-k counts, weight sums, top-1 counts, relative load, dead flag) —
    /// the expert-load statistic of DeepSeek-V3 arXiv:2412.19437 §2.1.2 / Fig. 9. Counts sum to k × tokens.
    /// </summary>
    /// <exception cref="ArgumentException">The layer was never observed.</exception>
    public IReadOnlyList<ExpertLoad> ExpertLoads(int layer)
    {
        var st = State(layer);
        double mean = st.Counts.Average();
        return Enumerable.Range(0, Experts).Select(i => new ExpertLoad(layer, i, st.Counts[i], (double)st.Counts[i] / st.Tokens, st.WeightSums[i],
            st.Counts[i] > 0 ? st.WeightSums[i] / st.Counts[i] : double.NaN, st.Top1[i], mean > 0 ? st.Counts[i] / mean : double.NaN, st.Counts[i] == 0)).ToArray();
    }

    /// <summary>
    /// How often each token id occurred at a layer (a copy; empty unless <see cref="TrackVocabulary"/>). On a hash-routed
    /// layer (DeepSeek-V4) these counts fix the expert load: <see cref="HashRouting.ExpertCounts"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The layer was never observed.</exception>
    public IReadOnlyDictionary<long, long> TokenOccurrences(int layer) => new Dictionary<long, long>(State(layer).TokenOccurrences);

    /// <summary>Experts never selected at a layer (dead experts).</summary>
    public IReadOnlyList<int> DeadExperts(int layer) => Enumerable.Range(0, Experts).Where(i => State(layer).Counts[i] == 0).ToArray();

    /// <summary>
    /// Co-activation matrix (E×E) of a layer: entry (e, f), e ≠ f, counts tokens that selected both e and f among their
    /// top-k; the diagonal holds each expert's count. A copy.
    /// </summary>
    public long[,] CoActivation(int layer) => (long[,])State(layer).Co.Clone();

    /// <summary>
    /// Consecutive-token routing repetition (Mixtral arXiv:2401.04088 Table 5): fraction of adjacent token pairs with the
    /// same top-1 expert and with at least one shared top-k expert, each with its independent-routing baseline computed
    /// from this layer's observed frequencies.
    /// </summary>
    public RoutingRepetition Repetition(int layer)
    {
        var st = State(layer);
        double top1Base = st.Tokens > 0 ? ExpertMetrics.Top1RepetitionBaseline(st.Top1.Select(c => (double)c).ToArray()) : double.NaN;
        return new RoutingRepetition(st.Pairs,
            st.Pairs > 0 ? (double)st.SameTop1 / st.Pairs : double.NaN, top1Base,
            st.Pairs > 0 ? (double)st.AnyShared / st.Pairs : double.NaN, ExpertMetrics.AnySharedRepetitionBaseline(st.Co, st.Tokens),
            TopK <= 2);
    }

    /// <summary>
    /// Layer summary: load-balance metrics (CV, MaxVio, normalised entropy; DeepSeek-V3 §2.1.2), dead experts, per-token
    /// routing entropy and top-1/top-2 gate-score margin (mean, std), and routing repetition (Mixtral Table 5).
    /// </summary>
    public LayerRoutingSummary Summary(int layer)
    {
        var st = State(layer);
        return new LayerRoutingSummary(layer, st.Tokens, TopK, Experts, ExpertMetrics.LoadBalance(st.Counts), st.Counts.Count(c => c == 0),
            st.Entropy.Count > 0 ? st.Entropy.Mean : double.NaN, st.Entropy.StandardDeviation,
            st.Margin.Count > 0 ? st.Margin.Mean : double.NaN, st.Margin.StandardDeviation, Repetition(layer));
    }

    /// <summary>Summaries of every observed layer.</summary>
    public IReadOnlyList<LayerRoutingSummary> Summaries() => _layers.Keys.Select(Summary).ToArray();

    /// <summary>
    /// Domain × expert load of a layer (DeepSeek-V3 arXiv:2412.19437 Fig. 9): for each domain label and expert, the share of
    /// the domain's routing slots, the load relative to a balanced load (count / mean count) and the affinity (lift over
    /// the expert's share on all labelled data). Empty when no sequence had a label.
    /// </summary>
    public IReadOnlyList<DomainExpertLoad> DomainLoads(int layer)
    {
        var st = State(layer);
        long labelledSlots = st.DomainTokens.Values.Sum() * TopK;
        var overall = new long[Experts];
        foreach (var c in st.DomainCounts.Values) for (int i = 0; i < Experts; i++) overall[i] += c[i];
        var rows = new List<DomainExpertLoad>();
        foreach (var (domain, counts) in st.DomainCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            long tokens = st.DomainTokens[domain];
            double slots = (double)tokens * TopK;
            for (int i = 0; i < Experts; i++)
            {
                double share = counts[i] / slots, overallShare = (double)overall[i] / labelledSlots;
                rows.Add(new DomainExpertLoad(layer, domain, i, counts[i], tokens, share, counts[i] / (slots / Experts),
                    overallShare > 0 ? share / overallShare : double.NaN));
            }
        }
        return rows;
    }

    /// <summary>
    /// Contingency table of domain label × top-1 expert at a layer: <c>Counts[d, e]</c> = tokens of domain
    /// <c>Domains[d]</c> (ordinal order) whose highest-scoring expert is e. Empty when no sequence had a label.
    /// </summary>
    public (IReadOnlyList<string> Domains, long[,] Counts) DomainTop1Counts(int layer)
    {
        var st = State(layer);
        var domains = st.DomainTop1.Keys.Order(StringComparer.Ordinal).ToArray();
        var counts = new long[domains.Length, Experts];
        for (int d = 0; d < domains.Length; d++)
            for (int i = 0; i < Experts; i++) counts[d, i] = st.DomainTop1[domains[d]][i];
        return (domains, counts);
    }

    /// <summary>
    /// Domain specialisation of a layer as one number: normalised mutual information between the domain label and the
    /// top-1 expert over labelled tokens (<see cref="Information.NormalisedMutualInformation"/>; 0 = routing independent of
    /// domain, 1 = the top-1 expert identifies the domain and vice versa). Compare with
    /// <see cref="Information.NmiPermutationNull"/> of <see cref="DomainTop1Counts"/>: finite samples inflate NMI.
    /// </summary>
    public double DomainTop1Nmi(int layer) => Information.NormalisedMutualInformation(DomainTop1Counts(layer).Counts);

    /// <summary>
    /// Vocabulary specialisation (OLMoE arXiv:2409.02060 §5): for each expert, the token ids with the highest fraction of
    /// their occurrences routed to it (ties: more occurrences first, then smaller id), ignoring ids seen fewer than
    /// <paramref name="minOccurrences"/> times. Needs <see cref="TrackVocabulary"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Vocabulary tracking was off.</exception>
    public IReadOnlyList<VocabularySpecialisation> VocabularySpecialisation(int layer, int topTokens = 10, long minOccurrences = 1)
    {
        if (!TrackVocabulary) throw new InvalidOperationException("vocabulary specialisation needs an accumulator created with trackVocabulary: true");
        if (topTokens < 1) throw new ArgumentException("topTokens must be positive", nameof(topTokens));
        var st = State(layer);
        var rows = new List<VocabularySpecialisation>();
        for (int e = 0; e < Experts; e++)
            rows.AddRange(st.TokenCounts
                .Where(kv => st.TokenOccurrences[kv.Key] >= minOccurrences && kv.Value[e] > 0)
                .Select(kv => new VocabularySpecialisation(layer, e, kv.Key, st.TokenOccurrences[kv.Key], kv.Value[e], (double)kv.Value[e] / st.TokenOccurrences[kv.Key]))
                .OrderByDescending(r => r.Fraction).ThenByDescending(r => r.Occurrences).ThenBy(r => r.TokenId)
                .Take(topTokens));
        return rows;
    }

    /// <summary>Per-expert loads of every observed layer as a DataFrame (layer, expert, count, frequency, weight_sum, mean_weight, top1_count, relative_load, dead).</summary>
    public DataFrame ToDataFrame() => ExpertFrames.Loads(_layers.Keys.SelectMany(ExpertLoads).ToArray());
}

/// <summary>DataFrame views of the expert records.</summary>
public static class ExpertFrames
{
    /// <summary>Expert loads as a DataFrame, one row per (layer, expert).</summary>
    public static DataFrame Loads(IReadOnlyList<ExpertLoad> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Int("expert", rows, r => r.Expert), Frames.Long("count", rows, r => r.Count),
        Frames.Double("frequency", rows, r => r.Frequency), Frames.Double("weight_sum", rows, r => r.WeightSum),
        Frames.Double("mean_weight", rows, r => r.MeanWeight), Frames.Long("top1_count", rows, r => r.Top1Count),
        Frames.Double("relative_load", rows, r => r.RelativeLoad), Frames.Bool("dead", rows, r => r.Dead));

    /// <summary>Layer summaries as a DataFrame, one row per layer.</summary>
    public static DataFrame Summaries(IReadOnlyList<LayerRoutingSummary> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Long("tokens", rows, r => r.Tokens), Frames.Double("cv", rows, r => r.Balance.CoefficientOfVariation),
        Frames.Double("max_vio", rows, r => r.Balance.MaxVio), Frames.Double("load_entropy", rows, r => r.Balance.NormalisedEntropy),
        Frames.Int("dead_experts", rows, r => r.DeadExperts), Frames.Double("routing_entropy", rows, r => r.MeanRoutingEntropy),
        Frames.Double("top1_margin", rows, r => r.MeanTop1Margin), Frames.Double("top1_repeat", rows, r => r.Repetition.Top1Repeat),
        Frames.Double("top1_baseline", rows, r => r.Repetition.Top1Baseline), Frames.Double("any_shared_repeat", rows, r => r.Repetition.AnySharedRepeat),
        Frames.Double("any_shared_baseline", rows, r => r.Repetition.AnySharedBaseline));

    /// <summary>Domain × expert loads as a DataFrame.</summary>
    public static DataFrame DomainLoads(IReadOnlyList<DomainExpertLoad> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Str("domain", rows, r => r.Domain), Frames.Int("expert", rows, r => r.Expert),
        Frames.Long("count", rows, r => r.Count), Frames.Long("domain_tokens", rows, r => r.DomainTokens), Frames.Double("share", rows, r => r.Share),
        Frames.Double("relative_load", rows, r => r.RelativeLoad), Frames.Double("affinity", rows, r => r.Affinity));

    /// <summary>Vocabulary specialisation rows as a DataFrame.</summary>
    public static DataFrame Vocabulary(IReadOnlyList<VocabularySpecialisation> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Int("expert", rows, r => r.Expert), Frames.Long("token_id", rows, r => r.TokenId),
        Frames.Long("occurrences", rows, r => r.Occurrences), Frames.Long("routed", rows, r => r.RoutedToExpert), Frames.Double("fraction", rows, r => r.Fraction));

    /// <summary>Ablation results as a DataFrame.</summary>
    public static DataFrame Ablations(IReadOnlyList<AblationResult> rows) => new(
        Frames.Str("ablation", rows, r => r.Description), Frames.Long("tokens", rows, r => r.Tokens), Frames.Double("baseline_loss", rows, r => r.BaselineLoss),
        Frames.Double("ablated_loss", rows, r => r.AblatedLoss), Frames.Double("loss_change", rows, r => r.LossChange));

    /// <summary>Expert output entropies as a DataFrame.</summary>
    public static DataFrame OutputEntropies(IReadOnlyList<ExpertOutputEntropy> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Int("expert", rows, r => r.Expert), Frames.Long("tokens", rows, r => r.Tokens),
        Frames.Double("entropy", rows, r => r.MeanEntropy), Frames.Double("normalised_entropy", rows, r => r.NormalisedEntropy),
        Frames.Str("top_tokens", rows, r => string.Join(" ", r.TopPromotedTokens)));
}
