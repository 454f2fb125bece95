using DeepSeekNotebooks.Analysis.Experts;
namespace DeepSeekNotebooks.Visualization;

/// <summary>Kind of a transformer block's feed-forward part.</summary>
public enum LayerKind
{
    /// <summary>A dense MLP (DeepSeek-V3's first <c>first_k_dense_replace</c> layers).</summary>
    Dense,
    /// <summary>A mixture-of-experts layer: routed experts (top-k per token) plus always-active shared experts.</summary>
    Moe,
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
        return Create(config.NumHiddenLayers, config.IsMoeLayer, config.NumAttentionHeads, config.NRoutedExperts,
            config.NRoutedExperts > 0 ? config.NSharedExperts : 0, config.NRoutedExperts > 0 ? config.NumExpertsPerTok : 0,
            name ?? $"DeepSeek-V3-style model ({config.NumHiddenLayers} blocks)");
    }

    /// <summary>Indices of the MoE blocks.</summary>
    public IReadOnlyList<int> MoeLayers => Enumerable.Range(0, Layers.Count).Where(i => Layers[i] == LayerKind.Moe).ToArray();

    /// <summary>Throws <see cref="ArgumentException"/> when a count is negative or inconsistent.</summary>
    public void Validate()
    {
        if (Layers is null) throw new ArgumentException("Layers is null.");
        if (AttentionHeads < 1) throw new ArgumentException($"AttentionHeads must be ≥ 1 (got {AttentionHeads}).");
        if (RoutedExperts < 0 || SharedExperts < 0 || ExpertsPerToken < 0)
            throw new ArgumentException("Expert counts must be ≥ 0.");
        if (Layers.Contains(LayerKind.Moe) && RoutedExperts < 1)
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
