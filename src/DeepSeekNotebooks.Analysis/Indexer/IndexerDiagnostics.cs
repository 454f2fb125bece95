using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Indexer;

/// <summary>
/// Diagnostics of DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2-Exp technical report, §2.1: the indexer
/// is trained so that softmax(I[t, :]) matches the main attention summed over heads and L1-normalised; DeepSeek-V4's CSA
/// indexer chooses among compressed entries the same way): how often each key is kept, how much of the dense attention's
/// mass the kept keys carry (recall), the indexer loss (KL) per query, and how much the kept sets agree between layers.
/// </summary>
/// <remarks>
/// The model analysed is the sparse one as loaded. The dense attention of block L is that block's attention with its
/// indexer mask removed and every earlier block unchanged, obtained through hooks on a batch of copies of the prompt:
/// for V3.2 one forward per prompt whose row i has block i's <c>attn.indexer.topk</c> mask replaced by the causal mask;
/// for V4 (a fixed-width list of entries) one forward per CSA block whose rows hook the picks with the entries in chunks of
/// top-k, and each slot's probability divided by the sink's share
/// (<c>attn.sink_share</c>, the same logit in every run) gives its unnormalised weight exp(score − sink), so the weights
/// of all chunks, the window and the sink normalise into the dense distribution. Nothing of the model is re-implemented.
/// </remarks>
public static class IndexerDiagnostics
{
    /// <summary>
    /// Null when <paramref name="config"/> has an indexer to diagnose; otherwise one line saying why not (for a notebook
    /// section or CLI that skips what does not apply).
    /// </summary>
    public static string? Unavailable(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Enumerable.Range(0, config.NumHiddenLayers).Any(l => config.AttentionKindOf(l) is AttentionKind.MlaWithIndexer or AttentionKind.CompressedSparse)
            ? null : "the model has no lightning indexer (DeepSeek-V3.2 blocks or DeepSeek-V4 CSA blocks): nothing selects keys, so there are no indexer diagnostics";
    }

    /// <summary>The diagnostics of <paramref name="checkpoint"/>'s model on <paramref name="prompts"/>.</summary>
    public static IndexerDiagnosticsResult Measure(Checkpoint checkpoint, IReadOnlyList<long[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return Measure(checkpoint.Model, prompts);
    }

    /// <summary>
    /// Runs each prompt (token ids, one sequence each) through <paramref name="model"/> and measures every block with an
    /// indexer (DeepSeek-V3.2 MLA + lightning indexer, or DeepSeek-V4 CSA).
    /// </summary>
    /// <exception cref="ArgumentException">No prompts, an empty or invalid prompt, or a model without an indexer.</exception>
    public static IndexerDiagnosticsResult Measure(DeepSeekModel model, IReadOnlyList<long[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0) throw new ArgumentException("give at least one prompt (token ids)", nameof(prompts));
        var c = model.Config;
        var layers = Enumerable.Range(0, c.NumHiddenLayers)
            .Where(l => c.AttentionKindOf(l) is AttentionKind.MlaWithIndexer or AttentionKind.CompressedSparse).ToArray();
        if (layers.Length == 0)
            throw new ArgumentException($"the model has no indexer: its blocks are {string.Join(", ", Enumerable.Range(0, c.NumHiddenLayers).Select(c.AttentionKindOf).Distinct())}; indexer diagnostics need DeepSeek-V3.2 blocks (MLA + lightning indexer, index_topk) or DeepSeek-V4 compressed sparse attention (compress ratio 4)", nameof(model));
        var axis = c.AttentionKindOf(layers[0]) == AttentionKind.CompressedSparse ? IndexerKeyAxis.CompressedEntries : IndexerKeyAxis.Tokens;
        int ratio = axis == IndexerKeyAxis.Tokens ? 1 : c.CompressRatio(layers[0]);
        int topk = c.Indexer!.Topk;
        for (int p = 0; p < prompts.Count; p++)
        {
            if (prompts[p] is null || prompts[p].Length == 0) throw new ArgumentException($"prompt {p} is empty; give at least one token id", nameof(prompts));
            using var t = tensor(prompts[p]);
            try { model.CheckInputIds(t); }
            catch (ArgumentException e) { throw new ArgumentException($"prompt {p}: {e.Message}", nameof(prompts), e); }
        }

        var queries = new List<IndexerQuery>();
        var byPos = new Dictionary<(int, int), long[]>();
        var byDist = new Dictionary<(int, int), long[]>();
        var byTok = new Dictionary<(int, long), long[]>();
        var pairs = new Dictionary<(int, int), (long N, double Sum)>();
        static void Add<TK>(Dictionary<TK, long[]> d, TK k, bool selected) where TK : notnull
        {
            if (!d.TryGetValue(k, out var v)) d[k] = v = new long[2];
            v[1]++;
            if (selected) v[0]++;
        }

        for (int p = 0; p < prompts.Count; p++)
        {
            var ids = prompts[p];
            var sets = new Dictionary<int, List<HashSet<int>?>>();   // layer → per query, the kept set where a choice was made
            var tokenData = axis == IndexerKeyAxis.Tokens ? MeasureTokens(model, ids, layers) : null;
            foreach (var layer in layers)
            {
                var d = tokenData?[layer] ?? MeasureEntries(model, ids, layer, ratio);
                var perQuery = new List<HashSet<int>?>();
                for (int q = 0; q < ids.Length; q++)
                {
                    int visible = d.Visible[q];
                    if (visible == 0) { perQuery.Add(null); continue; }
                    var kept = new HashSet<int>();
                    for (int k = 0; k < visible; k++) if (d.Selected[q, k]) kept.Add(k);
                    var pRow = new double[visible];
                    var iRow = new double[visible];
                    for (int k = 0; k < visible; k++) { pRow[k] = d.Dense[q, k]; iRow[k] = d.Scores[q, k]; }
                    var keptIdx = kept.Order().ToArray();
                    double recall = Recall(pRow, keptIdx);
                    double denseKl = KlToSoftmax(pRow, iRow);
                    var pSel = keptIdx.Select(k => d.Sparse[q, k]).ToArray();
                    var iSel = keptIdx.Select(k => d.Scores[q, k]).ToArray();
                    double selectedKl = KlToSoftmax(Normalise(pSel), iSel);
                    queries.Add(new IndexerQuery(p, layer, q, visible, kept.Count, recall, denseKl, selectedKl));
                    perQuery.Add(kept.Count < visible ? kept : null);
                    for (int k = 0; k < visible; k++)
                    {
                        bool s = kept.Contains(k);
                        Add(byPos, (layer, k), s);
                        int last = axis == IndexerKeyAxis.Tokens ? k : CompressedAttention.EntryTokens(ratio, k).Last;
                        Add(byDist, (layer, q - last), s);
                        if (axis == IndexerKeyAxis.Tokens) Add(byTok, (layer, ids[k]), s);
                        else
                        {
                            var (first, lastTok) = CompressedAttention.EntryTokens(ratio, k);
                            for (int tk = first; tk <= lastTok; tk++) Add(byTok, (layer, ids[tk]), s);
                        }
                    }
                }
                sets[layer] = perQuery;
            }
            for (int a = 0; a < layers.Length; a++)
                for (int b = a + 1; b < layers.Length; b++)
                {
                    var key = (layers[a], layers[b]);
                    var (n, sum) = pairs.GetValueOrDefault(key);
                    for (int q = 0; q < ids.Length; q++)
                    {
                        var sa = sets[layers[a]][q];
                        var sb = sets[layers[b]][q];
                        if (sa is null || sb is null) continue;   // no choice in at least one layer
                        n++;
                        sum += Jaccard(sa, sb);
                    }
                    pairs[key] = (n, sum);
                }
        }

        var summaries = layers.Select(l =>
        {
            var rows = queries.Where(q => q.Layer == l).ToList();
            var sparse = rows.Where(q => !q.AllSelected).ToList();
            return new IndexerLayerSummary(l, rows.Count, rows.Count(q => q.AllSelected), Mean(rows.Select(q => q.Recall)),
                Mean(sparse.Select(q => q.Recall)), Mean(rows.Select(q => q.DenseKl)), Mean(rows.Select(q => q.SelectedKl)));
        }).ToArray();
        return new IndexerDiagnosticsResult
        {
            Axis = axis, Topk = topk, Ratio = ratio,
            Prompts = prompts.Select(x => x.ToArray()).ToArray(),
            IndexerLayers = layers,
            Layers = summaries,
            Queries = queries.ToArray(),
            ByPosition = byPos.OrderBy(kv => kv.Key).Select(kv => new IndexerSelectionCount(kv.Key.Item1, kv.Key.Item2, kv.Value[0], kv.Value[1])).ToArray(),
            ByDistance = byDist.OrderBy(kv => kv.Key).Select(kv => new IndexerSelectionCount(kv.Key.Item1, kv.Key.Item2, kv.Value[0], kv.Value[1])).ToArray(),
            ByToken = byTok.OrderBy(kv => kv.Key).Select(kv => new IndexerTokenSelection(kv.Key.Item1, kv.Key.Item2, kv.Value[0], kv.Value[1])).ToArray(),
            Overlaps = pairs.OrderBy(kv => kv.Key).Select(kv => new IndexerLayerOverlap(kv.Key.Item1, kv.Key.Item2, kv.Value.N, kv.Value.N == 0 ? double.NaN : kv.Value.Sum / kv.Value.N)).ToArray(),
        };
    }

    /// <summary>One layer of one prompt on the indexer's key axis: [query, key] arrays, keys 0 … Visible[q]−1 visible.</summary>
    internal sealed record LayerData(int[] Visible, bool[,] Selected, double[,] Scores, double[,] Dense, double[,] Sparse);

    /// <summary>
    /// V3.2: keys are tokens. One batched forward: row i replaces block layers[i]'s indexer mask by the causal mask (its dense
    /// attention; the blocks before it are untouched), the last row is the analysed model.
    /// </summary>
    internal static Dictionary<int, LayerData> MeasureTokens(DeepSeekModel model, long[] ids, IReadOnlyList<int> layers)
    {
        using var scope = NewDisposeScope();
        int n = ids.Length, rows = layers.Count + 1, baseRow = layers.Count;
        using var input = tensor(ids).unsqueeze(0).expand(rows, -1).contiguous();
        var hooks = new Dictionary<string, HookFunction>();
        for (int i = 0; i < layers.Count; i++)
        {
            int row = i;
            hooks[HookPoints.IndexerTopk(layers[i])] = (v, _) =>
            {
                var causal = ones(n, n, dtype: float32, device: v.device).tril().gt(0).unsqueeze(0);
                var pick = zeros(rows, 1, 1, dtype: ScalarType.Bool, device: v.device);
                pick[row] = tensor(true);
                return where(pick, causal.expand(v.shape), v);
            };
        }
        var names = layers.SelectMany(l => new[] { HookPoints.IndexerScores(l), HookPoints.IndexerTopk(l), HookPoints.AttnPattern(l) }).ToArray();
        using var trace = model.RunWithCache(input, new TraceOptions { Names = NamesFilter.Exact(names), Hooks = hooks });
        var result = new Dictionary<int, LayerData>();
        for (int i = 0; i < layers.Count; i++)
        {
            int layer = layers[i];
            var scores = Doubles(trace[HookPoints.IndexerScores(layer)][baseRow]);
            var selected = trace[HookPoints.IndexerTopk(layer)][baseRow].contiguous().data<bool>().ToArray();
            var sparse = Doubles(trace[HookPoints.AttnPattern(layer)][baseRow].sum(dim: 0));      // head-summed [n, n]
            var dense = Doubles(trace[HookPoints.AttnPattern(layer)][i].sum(dim: 0));
            var d = new LayerData(Enumerable.Range(1, n).ToArray(), new bool[n, n], new double[n, n], new double[n, n], new double[n, n]);
            for (int q = 0; q < n; q++)
            {
                double zd = 0, zs = 0;
                for (int k = 0; k <= q; k++) { zd += dense[q * n + k]; zs += sparse[q * n + k]; }
                for (int k = 0; k <= q; k++)
                {
                    d.Selected[q, k] = selected[q * n + k];
                    d.Scores[q, k] = scores[q * n + k];
                    d.Dense[q, k] = dense[q * n + k] / zd;
                    d.Sparse[q, k] = sparse[q * n + k] / zs;
                }
            }
            result[layer] = d;
        }
        return result;
    }

    /// <summary>
    /// V4 CSA: keys are compressed entries. The dense weights come from runs that hook the indexer's picks with chunks of
    /// entries; each slot probability over the sink's share is exp(score − sink), comparable across runs.
    /// </summary>
    internal static LayerData MeasureEntries(DeepSeekModel model, long[] ids, int layer, int ratio)
    {
        using var scope = NewDisposeScope();
        int n = ids.Length, entries = n / ratio;
        int kk = Math.Min(model.Config.Indexer!.Topk, entries);
        var visible = Enumerable.Range(0, n).Select(t => (t + 1) / ratio).ToArray();
        var d = new LayerData(visible, new bool[n, Math.Max(entries, 1)], new double[n, Math.Max(entries, 1)], new double[n, Math.Max(entries, 1)], new double[n, Math.Max(entries, 1)]);
        if (entries == 0 || kk == 0) return d;
        // One batched forward: row c hooks the indexer's picks with entries c·kk … c·kk+kk−1, the last row is the analysed model.
        int chunks = (entries + kk - 1) / kk, baseRow = chunks;
        using var input = tensor(ids).unsqueeze(0).expand(chunks + 1, -1).contiguous();
        string patternName = HookPoints.AttnPattern(layer), sinkName = HookPoints.AttnSinkShare(layer);
        var hooks = new Dictionary<string, HookFunction>
        {
            [HookPoints.IndexerTopk(layer)] = (v, _) =>
            {
                var e = (arange(chunks, dtype: int64, device: v.device).view(chunks, 1, 1) * kk + arange(kk, dtype: int64, device: v.device).view(1, 1, kk)).expand(chunks, n, kk);
                var limit = tensor(visible.Select(x => (long)x).ToArray(), device: v.device).view(1, -1, 1);
                e = e.masked_fill(e.ge(limit).logical_or(e.ge(entries)), -1);
                return cat(new[] { e, v.narrow(0, baseRow, 1) }, 0).contiguous();
            },
        };
        double[] scores, pattern, sink, allPattern, allSink;
        long[] picks;
        int heads;
        using (var trace = model.RunWithCache(input, new TraceOptions { Names = NamesFilter.Exact(HookPoints.IndexerScores(layer), HookPoints.IndexerTopk(layer), patternName, sinkName), Hooks = hooks }))
        {
            scores = Doubles(trace[HookPoints.IndexerScores(layer)][baseRow]);                    // [n, C]
            picks = trace[HookPoints.IndexerTopk(layer)][baseRow].contiguous().data<long>().ToArray();   // [n, kk]
            pattern = Doubles(trace[patternName][baseRow]);                                       // [h, n, n + C]
            sink = Doubles(trace[sinkName][baseRow]);                                             // [h, n]
            allPattern = Doubles(trace[patternName]);                                             // [chunks + 1, h, n, n + C]
            allSink = Doubles(trace[sinkName]);                                                   // [chunks + 1, h, n]
            heads = (int)trace[sinkName].shape[1];
        }
        int width = n + entries;
        // Unnormalised weights w = p / sink = exp(score − sink): the window from the analysed row, the entries chunk by chunk.
        var weight = new double[heads, n, width];
        for (int h = 0; h < heads; h++)
            for (int t = 0; t < n; t++)
            {
                double sk = sink[h * n + t];
                if (!(sk > 0)) throw new InvalidOperationException($"block {layer}, head {h}, query {t}: the sink's share underflowed to 0, so the dense attention cannot be recovered from the slot probabilities");
                for (int col = 0; col < n; col++) weight[h, t, col] = pattern[(h * n + t) * width + col] / sk;
            }
        for (int c = 0; c < chunks; c++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < n; t++)
                {
                    double sk = allSink[(c * heads + h) * n + t];
                    for (int e = c * kk; e < Math.Min(c * kk + kk, visible[t]); e++)
                        weight[h, t, n + e] = allPattern[((c * heads + h) * n + t) * width + n + e] / sk;
                }
        for (int t = 0; t < n; t++)
        {
            if (visible[t] == 0) continue;
            var denseRow = new double[visible[t]];
            var sparseRow = new double[visible[t]];
            for (int h = 0; h < heads; h++)
            {
                double z = 1;                                  // the sink's own weight exp(sink − sink)
                for (int col = 0; col < n + visible[t]; col++) z += weight[h, t, col];
                for (int e = 0; e < visible[t]; e++)
                {
                    denseRow[e] += weight[h, t, n + e] / z;
                    sparseRow[e] += pattern[(h * n + t) * width + n + e];
                }
            }
            var dn = Normalise(denseRow);
            double zs = sparseRow.Sum();
            for (int e = 0; e < visible[t]; e++)
            {
                d.Dense[t, e] = dn[e];
                d.Sparse[t, e] = zs > 0 ? sparseRow[e] / zs : 0;
                d.Scores[t, e] = scores[t * entries + e];
            }
            for (int j = 0; j < kk; j++)
                if (picks[t * kk + j] is var e && e >= 0) d.Selected[t, (int)e] = true;
        }
        return d;
    }

    /// <summary>Σ_{k∈kept} p_k: the share of the distribution <paramref name="p"/> on the kept keys.</summary>
    internal static double Recall(IReadOnlyList<double> p, IEnumerable<int> kept) => kept.Sum(k => p[k]);

    /// <summary>
    /// KL(p ‖ softmax(scores)) in nats, the softmax computed stably in float64; terms with p = 0 contribute 0, a −∞
    /// score under positive p gives +∞. p must sum to 1 (an empty distribution gives 0).
    /// </summary>
    internal static double KlToSoftmax(IReadOnlyList<double> p, IReadOnlyList<double> scores)
    {
        if (p.Count != scores.Count) throw new ArgumentException($"p has {p.Count} entries but scores {scores.Count}");
        if (p.Count == 0) return 0;
        double max = scores.Max();
        double lse = max + Math.Log(scores.Sum(s => Math.Exp(s - max)));
        double kl = 0;
        for (int i = 0; i < p.Count; i++)
            if (p[i] > 0) kl += p[i] * (Math.Log(p[i]) - (scores[i] - lse));
        return Math.Max(kl, 0);
    }

    /// <summary>|a ∩ b| / |a ∪ b| (1 for two empty sets).</summary>
    internal static double Jaccard(IReadOnlySet<int> a, IReadOnlySet<int> b)
    {
        int inter = a.Count(b.Contains);
        int union = a.Count + b.Count - inter;
        return union == 0 ? 1 : (double)inter / union;
    }

    private static double[] Normalise(double[] v)
    {
        double z = v.Sum();
        return z > 0 ? v.Select(x => x / z).ToArray() : v;
    }

    private static double Mean(IEnumerable<double> v)
    {
        var a = v.ToArray();
        return a.Length == 0 ? double.NaN : a.Average();
    }

    private static double[] Doubles(Tensor t) => t.to(float64).contiguous().data<double>().ToArray();
}
