using DeepSeekNotebooks.Analysis.Experts;
namespace DeepSeekNotebooks.Visualization;

/// <summary>Kind of a transformer block's feed-forward part.</summary>
public enum LayerKind
{
    /// <summary>A dense MLP (DeepSeek-V3's first <c>first_k_dense_replace</c> layers).</summary>
    Dense,
    /// <summary>A mixture-of-experts layer: routed experts (top-k per token) plus always-active shared experts.</summary>
    Moe,
    /// <summary>A hash-routed mixture-of-experts layer (DeepSeek-V4's first <c>num_hash_layers</c>): experts = tid2eid[token id], no learned choice.</summary>
    HashMoe,
}

/// <summary>
/// The shape of a DeepSeek-V3-style model as plain data (no TorchSharp types): one <see cref="LayerKind"/> per block,
/// attention heads per block, routed/shared expert counts of the MoE blocks and the routing top-k.
/// </summary>
/// <param name="Layers">One entry per transformer block, in order.</param>
/// <param name="AttentionHeads">Attention heads per block.</param>
/// <param name="RoutedExperts">Routed experts per MoE block.</param>
/// <param name="SharedExperts">Shared (always active) experts per MoE block.</param>
/// <param name="ExpertsPerToken">Routed experts selected per token (top-k).</param>
/// <param name="Name">A display name.</param>
public sealed record ModelArchitecture(
    IReadOnlyList<LayerKind> Layers,
    int AttentionHeads,
    int RoutedExperts,
    int SharedExperts,
    int ExpertsPerToken,
    string Name = "DeepSeek-V3-style model")
{
    /// <summary>
    /// The attention kind of each block (DeepSeek-V3.2: MLA + lightning indexer; V4: sliding window, CSA, HCA); null
    /// when every block is plain MLA (V2/V3).
    /// </summary>
    public IReadOnlyList<DeepSeekNotebooks.Model.AttentionKind>? AttentionKinds { get; init; }
    /// <summary>Compress ratio of each block (0 = none), with <see cref="AttentionKinds"/>; null otherwise.</summary>
    public IReadOnlyList<int>? CompressRatios { get; init; }
    /// <summary>Keys each query's indexer keeps (V3.2: over raw keys; V4 CSA: over compressed entries); 0 without an indexer.</summary>
    public int IndexTopK { get; init; }
    /// <summary>Sliding-window length of V4 attention (0 otherwise).</summary>
    public int SlidingWindow { get; init; }
    /// <summary>Residual streams: 1, or DeepSeek-V4's hc_mult hyper-connection streams (mHC).</summary>
    public int Streams { get; init; } = 1;

    /// <summary>Whether block <paramref name="layer"/> is an MoE block (learned or hash routing).</summary>
    public bool IsMoe(int layer) => Layers[layer] is LayerKind.Moe or LayerKind.HashMoe;

    /// <summary>A short label of block <paramref name="layer"/>'s attention: MLA, MLA + indexer (top-k), SWA (window), CSA ×4, HCA ×128.</summary>
    public string AttentionLabel(int layer) => (AttentionKinds?[layer] ?? DeepSeekNotebooks.Model.AttentionKind.Mla) switch
    {
        DeepSeekNotebooks.Model.AttentionKind.Mla => "MLA",
        DeepSeekNotebooks.Model.AttentionKind.MlaWithIndexer => $"MLA + indexer (top-{IndexTopK})",
        DeepSeekNotebooks.Model.AttentionKind.SlidingWindow => $"SWA (window {SlidingWindow})",
        DeepSeekNotebooks.Model.AttentionKind.CompressedSparse => $"CSA ×{CompressRatios?[layer]} (top-{IndexTopK} + window {SlidingWindow})",
        DeepSeekNotebooks.Model.AttentionKind.HeavilyCompressed => $"HCA ×{CompressRatios?[layer]} (+ window {SlidingWindow})",
        var k => k.ToString(),
    };

    /// <summary>
    /// Builds an architecture from counts: block <c>i</c> is MoE when <paramref name="isMoeLayer"/>(i) is true
    /// (e.g. <c>DeepSeekConfig.IsMoeLayer</c>).
    /// </summary>
    public static ModelArchitecture Create(int numLayers, Func<int, bool> isMoeLayer, int attentionHeads, int routedExperts,
        int sharedExperts, int expertsPerToken, string name = "DeepSeek-V3-style model")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(numLayers);
        ArgumentNullException.ThrowIfNull(isMoeLayer);
        var layers = Enumerable.Range(0, numLayers).Select(i => isMoeLayer(i) ? LayerKind.Moe : LayerKind.Dense).ToArray();
        var a = new ModelArchitecture(layers, attentionHeads, routedExperts, sharedExperts, expertsPerToken, name);
        a.Validate();
        return a;
    }

    /// <summary>
    /// The architecture of a model configuration (a plain record of the Model project; no tensors):
    /// blocks by <c>IsMoeLayer</c>, <c>NumAttentionHeads</c>, <c>NRoutedExperts</c>, <c>NSharedExperts</c>, <c>NumExpertsPerTok</c>.
    /// </summary>
    public static ModelArchitecture From(DeepSeekNotebooks.Model.DeepSeekConfig config, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var a = Create(config.NumHiddenLayers, config.IsMoeLayer, config.NumAttentionHeads, config.NRoutedExperts,
            config.NRoutedExperts > 0 ? config.NSharedExperts : 0, config.NRoutedExperts > 0 ? config.NumExpertsPerTok : 0,
            name ?? $"{Generation(config)} model ({config.NumHiddenLayers} blocks)");
        // V3.2 / V4: attention kinds, hash-routed layers and hyper-connection streams (V2/V3 stay as they were).
        var kinds = Enumerable.Range(0, config.NumHiddenLayers).Select(config.AttentionKindOf).ToArray();
        bool hash = config.NumHashLayers > 0;
        if (kinds.All(k => k == DeepSeekNotebooks.Model.AttentionKind.Mla) && !hash && config.HyperConnections is null) return a;
        var layers = a.Layers.Select((k, i) => k == LayerKind.Moe && config.IsHashLayer(i) ? LayerKind.HashMoe : k).ToArray();
        return a with
        {
            Layers = layers,
            AttentionKinds = kinds.All(k => k == DeepSeekNotebooks.Model.AttentionKind.Mla) ? null : kinds,
            CompressRatios = config.CompressedAttention is null ? null : Enumerable.Range(0, config.NumHiddenLayers).Select(config.CompressRatio).ToArray(),
            IndexTopK = config.Indexer?.Topk ?? 0,
            SlidingWindow = config.CompressedAttention?.SlidingWindow ?? 0,
            Streams = config.HyperConnections?.Mult ?? 1,
        };
    }

    private static string Generation(DeepSeekNotebooks.Model.DeepSeekConfig c) =>
        c.CompressedAttention is not null || c.HyperConnections is not null ? "DeepSeek-V4-style" : c.Indexer is not null ? "DeepSeek-V3.2-style" : "DeepSeek-V3-style";

    /// <summary>Indices of the MoE blocks (learned and hash routing).</summary>
    public IReadOnlyList<int> MoeLayers => Enumerable.Range(0, Layers.Count).Where(IsMoe).ToArray();
    /// <summary>Indices of the hash-routed MoE blocks (DeepSeek-V4).</summary>
    public IReadOnlyList<int> HashLayers => Enumerable.Range(0, Layers.Count).Where(i => Layers[i] == LayerKind.HashMoe).ToArray();

    /// <summary>Throws <see cref="ArgumentException"/> when a count is negative or inconsistent.</summary>
    public void Validate()
    {
        if (Layers is null) throw new ArgumentException("Layers is null.");
        if (AttentionHeads < 1) throw new ArgumentException($"AttentionHeads must be ≥ 1 (got {AttentionHeads}).");
        if (RoutedExperts < 0 || SharedExperts < 0 || ExpertsPerToken < 0)
            throw new ArgumentException("Expert counts must be ≥ 0.");
        if (Streams < 1) throw new ArgumentException($"Streams must be ≥ 1 (got {Streams}).");
        if (AttentionKinds is not null && AttentionKinds.Count != Layers.Count)
            throw new ArgumentException($"AttentionKinds has {AttentionKinds.Count} entries for {Layers.Count} blocks.");
        if (CompressRatios is not null && CompressRatios.Count != Layers.Count)
            throw new ArgumentException($"CompressRatios has {CompressRatios.Count} entries for {Layers.Count} blocks.");
        if ((Layers.Contains(LayerKind.Moe) || Layers.Contains(LayerKind.HashMoe)) && RoutedExperts < 1)
            throw new ArgumentException("A model with MoE layers needs RoutedExperts ≥ 1.");
        if (ExpertsPerToken > RoutedExperts)
            throw new ArgumentException($"ExpertsPerToken ({ExpertsPerToken}) > RoutedExperts ({RoutedExperts}).");
    }
}

/// <summary>Shape checks of <see cref="LayerRouting"/> inputs to the views, with messages naming the block and token.</summary>
internal static class RoutingChecks
{
    internal static void Validate(this LayerRouting routing, int tokenCount, int routedExperts = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(routing);
        if (routing.Tokens is null) throw new ArgumentException($"Routing of layer {routing.Layer}: Tokens is null.");
        if (routing.Tokens.Length != tokenCount)
            throw new ArgumentException($"Routing of layer {routing.Layer}: {routing.Tokens.Length} tokens, expected {tokenCount}.");
        for (int t = 0; t < routing.Tokens.Length; t++)
        {
            var r = routing.Tokens[t] ?? throw new ArgumentException($"Routing of layer {routing.Layer}, token {t} is null.");
            if (r.Experts is null || r.Weights is null || r.Experts.Length != r.Weights.Length)
                throw new ArgumentException($"Routing of layer {routing.Layer}, token {t}: experts and weights differ in length.");
            foreach (int e in r.Experts)
                if (e < 0 || e >= routedExperts)
                    throw new ArgumentException($"Routing of layer {routing.Layer}, token {t}: expert id {e} out of range [0, {routedExperts}).");
        }
    }
}
