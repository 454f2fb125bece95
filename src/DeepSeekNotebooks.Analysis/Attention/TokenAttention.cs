using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attention;

/// <summary>
/// One layer's attention as token-to-token probabilities [heads, query, key token], whatever the attention kind
/// (<see cref="TokenAttention"/> says what each kind's matrix means).
/// </summary>
public sealed class TokenAttentionLayer
{
    internal TokenAttentionLayer(int layer, AttentionKind kind, float[,,] pattern, float[,] sinkShare, float[,] compressedShare)
    {
        Layer = layer; Kind = kind; Pattern = pattern; SinkShare = sinkShare; CompressedShare = compressedShare;
    }

    /// <summary>The block.</summary>
    public int Layer { get; }
    /// <summary>Its attention kind (MLA, MLA + lightning indexer, sliding window, CSA, HCA).</summary>
    public AttentionKind Kind { get; }
    /// <summary>
    /// [heads, query, key token]: the probability mass query q puts on token k, directly or through the compressed
    /// entries that pool k. Row sums are 1 − <see cref="SinkShare"/>.
    /// </summary>
    public float[,,] Pattern { get; }
    /// <summary>[heads, query]: the sink's share (mass that goes to no token); 0 for MLA layers (no sink).</summary>
    public float[,] SinkShare { get; }
    /// <summary>[heads, query]: the part of each row's mass that reached the tokens through compressed entries (0 for MLA and sliding layers).</summary>
    public float[,] CompressedShare { get; }
    /// <summary>Number of heads.</summary>
    public int Heads => Pattern.GetLength(0);
    /// <summary>Number of positions.</summary>
    public int SequenceLength => Pattern.GetLength(1);
}

/// <summary>
/// Token-to-token attention of every generation, the input of <see cref="AttentionRollout"/> and <see cref="AttentionFlow"/>
/// (docs/generations-analyses.md gives the reasons):
/// <list type="bullet">
/// <item>MLA (V2/V3): <c>attn.pattern</c> as is.</item>
/// <item>MLA + lightning indexer (V3.2): <c>attn.pattern</c> as is — the indexer's top-k mask is added to the scores before
/// the softmax, so the keys it did not select have probability exactly 0 and the row is a distribution over the selected keys.</item>
/// <item>DeepSeek-V4 (sliding window / CSA / HCA): the window part of <c>attn.pattern</c> (raw tokens) as is, plus each
/// compressed entry's probability distributed back over the tokens it pools, in proportion to the compressor's softmax
/// pooling weights averaged over the head_dim channels (per channel they sum to 1 over the entry's slots, so the
/// mass is conserved); the sink's share goes to no token, so rows sum to 1 − sink share (<c>attn.sink_share</c>).</item>
/// </list>
/// </summary>
public static class TokenAttention
{
    /// <summary>Runs the model on one sequence <paramref name="inputIds"/> ([seq] or [1, seq]) and maps every layer's attention to tokens.</summary>
    /// <exception cref="ArgumentException">More than one sequence, or an empty one.</exception>
    public static IReadOnlyList<TokenAttentionLayer> Compute(DeepSeekModel model, Tensor inputIds)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputIds);
        TorchRuntime.EnsureLoaded();
        AttentionRollout.CheckOneSequence(inputIds);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = inputIds.dim() == 1 ? inputIds.unsqueeze(0) : inputIds;
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = TraceNames(model.Config).ToArray() });
        return FromTrace(model, trace);
    }

    /// <summary>The hook points <see cref="FromTrace"/> needs: every layer's <c>attn.pattern</c>; for V4 layers also <c>attn.sink_share</c> and the attention sub-layer's input.</summary>
    public static IReadOnlyList<string> TraceNames(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var names = new List<string>();
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            names.Add(HookPoints.AttnPattern(l));
            var kind = config.AttentionKindOf(l);
            if (kind is AttentionKind.Mla or AttentionKind.MlaWithIndexer) continue;
            names.Add(HookPoints.AttnSinkShare(l));
            if (kind != AttentionKind.SlidingWindow)
                names.Add(AttentionInputPoint(config, l));
        }
        return names;
    }

    /// <summary>
    /// Maps the attention of sequence <paramref name="batchIndex"/> of <paramref name="trace"/> (recorded with at least
    /// <see cref="TraceNames"/>) to tokens; <paramref name="model"/> must be the traced model (V4 layers need its compressors' pooling weights).
    /// </summary>
    /// <exception cref="ArgumentException">The trace is of another configuration, lacks a needed point, or batchIndex is out of range.</exception>
    public static IReadOnlyList<TokenAttentionLayer> FromTrace(DeepSeekModel model, ModelTrace trace, int batchIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trace);
        if (!ReferenceEquals(trace.Config, model.Config) && trace.Config.NumHiddenLayers != model.Config.NumHiddenLayers)
            throw new ArgumentException($"the trace has {trace.Config.NumHiddenLayers} layers but the model {model.Config.NumHiddenLayers}: give the model that was traced", nameof(trace));
        var missing = TraceNames(model.Config).Where(n => !trace.Contains(n)).ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"the trace lacks {string.Join(", ", missing)}: record TokenAttention.TraceNames(config)", nameof(trace));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var layers = new List<TokenAttentionLayer>();
        for (int l = 0; l < model.Config.NumHiddenLayers; l++)
        {
            var p = trace[HookPoints.AttnPattern(l)];
            if (batchIndex < 0 || batchIndex >= p.shape[0]) throw new ArgumentException($"batchIndex {batchIndex} is out of range for batch {p.shape[0]}", nameof(batchIndex));
            var kind = model.Config.AttentionKindOf(l);
            var pattern = p[batchIndex].to(float64);                                                     // [h, s, keys]
            long h = pattern.shape[0], s = pattern.shape[1];
            if (kind is AttentionKind.Mla or AttentionKind.MlaWithIndexer)
            {
                layers.Add(new TokenAttentionLayer(l, kind, AttentionRollout.ToArray3(p[batchIndex]), new float[h, s], new float[h, s]));
                continue;
            }
            var tokens = pattern.narrow(2, 0, s);
            var compressedShare = zeros(h, s, dtype: float64);
            if (pattern.shape[2] > s)
            {
                var map = EntryTokenMap(model, trace, l, batchIndex);                                       // [C, s]
                var entries = pattern.narrow(2, s, pattern.shape[2] - s);                                   // [h, s, C]
                if (entries.shape[2] != map.shape[0])
                    throw new ArgumentException($"layer {l}: the pattern has {entries.shape[2]} compressed entries but the compressor makes {map.shape[0]} for {s} tokens", nameof(trace));
                tokens = tokens + entries.matmul(map);
                compressedShare = entries.sum(-1);
            }
            var sink = trace[HookPoints.AttnSinkShare(l)][batchIndex];
            layers.Add(new TokenAttentionLayer(l, kind, ToArray3(tokens), ToArray2(sink), ToArray2(compressedShare)));
        }
        return layers;
    }

    /// <summary>The per-layer token patterns [heads, q, k] of <paramref name="layers"/>, ready for <see cref="AttentionRollout"/> / <see cref="AttentionFlow"/>.</summary>
    public static IReadOnlyList<float[,,]> Patterns(IReadOnlyList<TokenAttentionLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        return layers.Select(l => l.Pattern).ToArray();
    }

    /// <summary>The hook point holding a V4 attention sub-layer's input (before <c>attn_norm</c>): <c>hc_attn.collapsed</c> with streams, else <c>resid_pre</c>.</summary>
    internal static string AttentionInputPoint(DeepSeekConfig config, int layer) =>
        config.HyperConnections is null ? HookPoints.ResidPre(layer) : HookPoints.HcAttnCollapsed(layer);

    /// <summary>
    /// Entry → token weights [C, seq] (float64, detached) of compressed layer <paramref name="layer"/> for sequence
    /// <paramref name="batchIndex"/> of <paramref name="trace"/> (recorded with <see cref="AttentionInputPoint"/>):
    /// <see cref="EntryTokenWeights"/> on the layer's <c>attn_norm</c> output. The one map from compressed entries to
    /// tokens (also used by attention×gradient).
    /// </summary>
    internal static Tensor EntryTokenMap(DeepSeekModel model, ModelTrace trace, int layer, int batchIndex)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var block = model.Layers[layer];
        var input = trace[AttentionInputPoint(model.Config, layer)].detach();
        var x = block.AttentionNorm.forward(input.narrow(0, batchIndex, 1));
        return EntryTokenWeights(block.CompressedAttention!.Compressor!, x)[0].MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Entry → token weights [batch, C, seq] of a compressor on x (its layer's <c>attn_norm</c> output): row e is the
    /// share of entry e attributed to each token, the compressor's softmax pooling weight of the token's slot averaged
    /// over the channels (rows sum to 1; nonzero only on <see cref="CompressedAttention.EntryTokens"/>).
    /// </summary>
    internal static Tensor EntryTokenWeights(Compressor compressor, Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        int m = compressor.Ratio;
        var w = compressor.PoolingWeights(x).to(float64).mean(new long[] { -1 });                          // [b, C, slots]
        long entries = w.shape[1], slots = w.shape[2];
        var map = zeros(b, entries, s + m, dtype: float64, device: x.device);                                 // m spare columns for e = 0's empty previous window
        var e = arange(entries, dtype: int64, device: x.device).unsqueeze(1);
        var j = arange(slots, dtype: int64, device: x.device).unsqueeze(0);
        // Token of (entry e, slot j), shifted by m so that the empty previous window of entry 0 lands on spare columns.
        var token = compressor.Overlapping ? (e - 1) * m + j + m : e * m + j + m;                            // [C, slots]
        map = map.scatter_add(2, token.unsqueeze(0).expand(b, -1, -1), w);
        return map.narrow(2, m, s).MoveToOuterDisposeScope();
    }

    private static float[,,] ToArray3(Tensor t)
    {
        int h = (int)t.shape[0], q = (int)t.shape[1], k = (int)t.shape[2];
        var data = t.to(float32).cpu().contiguous().data<float>().ToArray();
        var r = new float[h, q, k];
        Buffer.BlockCopy(data, 0, r, 0, data.Length * sizeof(float));
        return r;
    }

    private static float[,] ToArray2(Tensor t)
    {
        int h = (int)t.shape[0], q = (int)t.shape[1];
        var data = t.to(float32).cpu().contiguous().data<float>().ToArray();
        var r = new float[h, q];
        Buffer.BlockCopy(data, 0, r, 0, data.Length * sizeof(float));
        return r;
    }
}
