namespace DeepSeekNotebooks.Model.Tracing;

/// <summary>
/// DeepSeek-V4's hook points (hyper-connection streams, window / compressed / sparse attention with sinks, hash routing),
/// part of the one registry. With hyper-connections the residual points <c>resid_pre</c>, <c>resid_mid</c> and
/// <c>resid_post</c> hold all streams [batch, seq, hc_mult, dim]. In V4 blocks <c>attn.pattern</c> is the slot
/// probabilities scattered onto the key axis of <see cref="AttnKv"/> [batch, heads, seq, seq + C] (raw tokens, then
/// compressed entries; the sink's share is not on it: rows sum to 1 − <see cref="AttnSinkShare"/>),
/// <c>attn.indexer.scores</c> is [batch, seq, C] over compressed entries and <c>attn.indexer.topk</c> holds entry
/// numbers [batch, seq, k] (int64, −1 = none) — unlike V3.2, whose indexer points are over raw keys (topk a bool mask).
/// Replacing <c>attn.probs</c> or <c>attn.pattern</c> recomputes the attention output from the replacement (the key rows
/// are the values); <c>attn.sink_share</c> is observation only (the sink has no value: its share is what the tokens lack).
/// </summary>
public static partial class HookPoints
{
    internal const string HcAttnPreSuffix = "hc_attn.pre", HcAttnPostSuffix = "hc_attn.post", HcAttnCombSuffix = "hc_attn.comb",
        HcAttnCollapsedSuffix = "hc_attn.collapsed", HcFfnPreSuffix = "hc_ffn.pre", HcFfnPostSuffix = "hc_ffn.post",
        HcFfnCombSuffix = "hc_ffn.comb", HcFfnCollapsedSuffix = "hc_ffn.collapsed",
        AttnKvSuffix = "attn.kv", AttnCompressedSuffix = "attn.compressed_kv", IndexerCompressedKSuffix = "attn.indexer.compressed_k",
        AttnSlotsSuffix = "attn.topk_idxs", AttnSlotProbsSuffix = "attn.probs", AttnSinkShareSuffix = "attn.sink_share",
        HashIdsSuffix = "moe.hash_ids";

    /// <summary>mHC head: the collapsed stream Σ pre_j H_j before the final RMSNorm [batch, seq, dim] (DeepSeek-V4).</summary>
    public const string HcHeadCollapsed = "hc_head.collapsed";
    /// <summary>mHC head: the weights pre_j of the streams [batch, seq, hc_mult] (DeepSeek-V4).</summary>
    public const string HcHeadPre = "hc_head.pre";
    private static readonly string[] HcHeadPoints = { HcHeadPre, HcHeadCollapsed };

    /// <summary>mHC weights with which the attention site of block L reads the streams [batch, seq, hc_mult].</summary>
    public static string HcAttnPre(int layer) => Block(layer, HcAttnPreSuffix);
    /// <summary>mHC weights with which block L writes its attention output into each stream [batch, seq, hc_mult].</summary>
    public static string HcAttnPost(int layer) => Block(layer, HcAttnPostSuffix);
    /// <summary>mHC stream mixing at the attention site of block L, comb[j, k] moves stream j into stream k [batch, seq, n, n] (doubly stochastic).</summary>
    public static string HcAttnComb(int layer) => Block(layer, HcAttnCombSuffix);
    /// <summary>The attention sub-layer's input Σ pre_j H_j before <c>attn_norm</c> [batch, seq, dim].</summary>
    public static string HcAttnCollapsed(int layer) => Block(layer, HcAttnCollapsedSuffix);
    /// <summary>mHC read weights at the FFN site of block L [batch, seq, hc_mult].</summary>
    public static string HcFfnPre(int layer) => Block(layer, HcFfnPreSuffix);
    /// <summary>mHC write weights at the FFN site of block L [batch, seq, hc_mult].</summary>
    public static string HcFfnPost(int layer) => Block(layer, HcFfnPostSuffix);
    /// <summary>mHC stream mixing at the FFN site of block L [batch, seq, n, n].</summary>
    public static string HcFfnComb(int layer) => Block(layer, HcFfnCombSuffix);
    /// <summary>The FFN's input Σ pre_j H_j before <c>ffn_norm</c> [batch, seq, dim].</summary>
    public static string HcFfnCollapsed(int layer) => Block(layer, HcFfnCollapsedSuffix);
    /// <summary>
    /// The key (= value) axis of V4 attention in block L [batch, seq + C, head_dim]: rows 0 … seq−1 the raw tokens (after
    /// kv_norm, RoPE and the QAT rounding), rows seq … seq+C−1 the compressed entries.
    /// </summary>
    public static string AttnKv(int layer) => Block(layer, AttnKvSuffix);
    /// <summary>Compressed entries of block L's main compressor [batch, C, head_dim]; entry e pools tokens e·m … e·m+m−1 (CSA: and the window before).</summary>
    public static string AttnCompressedKv(int layer) => Block(layer, AttnCompressedSuffix);
    /// <summary>Indexer keys of a CSA block L, one per compressed entry, after the Hadamard rotation [batch, C, index_head_dim].</summary>
    public static string IndexerCompressedK(int layer) => Block(layer, IndexerCompressedKSuffix);
    /// <summary>
    /// The key rows each query attends in block L [batch, seq, w + k] (int64): first the window (ascending, −1 padded),
    /// then the compressed entries as rows seq + e (CSA in indexer order, HCA ascending); −1 = empty slot.
    /// </summary>
    public static string AttnTopkIdxs(int layer) => Block(layer, AttnSlotsSuffix);
    /// <summary>Probability of each slot of <see cref="AttnTopkIdxs"/> [batch, heads, seq, w + k] (0 on empty slots).</summary>
    public static string AttnSlotProbs(int layer) => Block(layer, AttnSlotProbsSuffix);
    /// <summary>The sink's share exp(sink_h) / denominator [batch, heads, seq]: attention mass that goes to no token.</summary>
    public static string AttnSinkShare(int layer) => Block(layer, AttnSinkShareSuffix);
    /// <summary>Token ids → experts table rows of a hash-routed block L, i.e. tid2eid[input_ids] [tokens, k] (int64).</summary>
    public static string HashIds(int layer) => Block(layer, HashIdsSuffix);

    private static bool IsV4(DeepSeekConfig c) => c.CompressedAttention is not null || c.HyperConnections is not null;

    /// <summary>A V4 block's points in forward order (an MLA block inside a hyper-connection model keeps its own attention points).</summary>
    private static IEnumerable<string> V4SuffixesOf(DeepSeekConfig c, int layer)
    {
        bool hc = c.HyperConnections is not null;
        yield return ResidPreSuffix;
        if (hc) { yield return HcAttnPreSuffix; yield return HcAttnPostSuffix; yield return HcAttnCombSuffix; yield return HcAttnCollapsedSuffix; }
        var kind = c.AttentionKindOf(layer);
        if (kind is AttentionKind.Mla or AttentionKind.MlaWithIndexer)
        {
            if (kind == AttentionKind.MlaWithIndexer) { yield return IndexerScoresSuffix; yield return IndexerTopkSuffix; }
            yield return AttnPatternSuffix;
        }
        else
        {
            yield return AttnKvSuffix;
            if (kind != AttentionKind.SlidingWindow) yield return AttnCompressedSuffix;
            if (kind == AttentionKind.CompressedSparse)
            {
                yield return IndexerCompressedKSuffix; yield return IndexerScoresSuffix; yield return IndexerTopkSuffix;
            }
            yield return AttnSlotsSuffix; yield return AttnSlotProbsSuffix; yield return AttnSinkShareSuffix; yield return AttnPatternSuffix;
        }
        yield return AttnOutSuffix;
        yield return ResidMidSuffix;
        if (hc) { yield return HcFfnPreSuffix; yield return HcFfnPostSuffix; yield return HcFfnCombSuffix; yield return HcFfnCollapsedSuffix; }
        if (c.IsMoeLayer(layer))
        {
            yield return RouterSuffix;
            if (c.IsHashLayer(layer)) yield return HashIdsSuffix; else yield return SelectionSuffix;
            yield return IndicesSuffix; yield return WeightsSuffix;
            if (c.NSharedExperts > 0) yield return SharedOutSuffix;
        }
        yield return MlpOutSuffix;
        yield return ResidPostSuffix;
    }

    /// <summary>Patterns of a V4 model: each suffix with the blocks that have it, in first-appearance order.</summary>
    private static IReadOnlyList<string> V4Patterns(DeepSeekConfig c)
    {
        var order = new List<string>();
        var layersOf = new Dictionary<string, List<int>>();
        for (int l = 0; l < c.NumHiddenLayers; l++)
            foreach (var s in V4SuffixesOf(c, l))
            {
                if (!layersOf.TryGetValue(s, out var list)) { layersOf[s] = list = new List<int>(); order.Add(s); }
                list.Add(l);
            }
        var patterns = new List<string> { Embed };
        patterns.AddRange(order.Select(s => $"blocks.{{{Ranges(layersOf[s])}}}.{s}"));
        if (c.HyperConnections is not null) patterns.AddRange(HcHeadPoints);
        patterns.Add(FinalNorm);
        patterns.Add(Logits);
        return patterns;
    }

    /// <summary>Why a V4 block lacks a point another block kind has (null: no specific reason).</summary>
    private static string? V4Why(DeepSeekConfig c, int layer, string suffix)
    {
        var kind = c.AttentionKindOf(layer);
        string kindName = kind switch
        {
            AttentionKind.SlidingWindow => "sliding-window attention (compress ratio 0)",
            AttentionKind.CompressedSparse => "compressed sparse attention (compress ratio 4)",
            AttentionKind.HeavilyCompressed => $"heavily compressed attention (compress ratio {c.CompressRatio(layer)})",
            _ => kind.ToString(),
        };
        if (suffix is AttnCompressedSuffix && kind == AttentionKind.SlidingWindow)
            return $": block {layer} is {kindName} and compresses nothing";
        if (suffix is IndexerCompressedKSuffix or IndexerScoresSuffix or IndexerTopkSuffix && kind != AttentionKind.CompressedSparse)
            return $": block {layer} is {kindName}; only compressed sparse attention blocks (ratio 4) have an indexer";
        if (suffix is HashIdsSuffix && !c.IsHashLayer(layer))
            return $": block {layer} routes by score; hash-routed blocks are 0..{c.NumHashLayers - 1}";
        if (suffix is SelectionSuffix && c.IsHashLayer(layer))
            return $": block {layer} is hash-routed (tid2eid), it has no selection scores";
        if (suffix.StartsWith("hc_", StringComparison.Ordinal) && c.HyperConnections is null)
            return ": the model has a single residual stream (no hyper-connections)";
        return null;
    }
}
