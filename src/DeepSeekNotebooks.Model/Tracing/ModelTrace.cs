using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tracing;

/// <summary>Which hook points a traced forward records, plus optional hooks.</summary>
public sealed record TraceOptions
{
    /// <summary>Record attention probabilities [batch, heads, query, key] per layer.</summary>
    public bool AttentionPatterns { get; init; } = true;
    /// <summary>Record router scores, selected experts and routing weights per MoE layer.</summary>
    public bool Routing { get; init; } = true;
    /// <summary>Record the residual stream after every block.</summary>
    public bool HiddenStates { get; init; } = true;
    /// <summary>Record logits for every position.</summary>
    public bool Logits { get; init; } = true;
    /// <summary>Record every hook point (<see cref="HookPoints"/>).</summary>
    public bool Everything { get; init; }
    /// <summary>Extra hook points to record, by exact name.</summary>
    public IReadOnlyCollection<string> Extra { get; init; } = Array.Empty<string>();
    /// <summary>Keep recorded tensors attached to the autograd graph (for gradients w.r.t. attention, e.g. attention×gradient).</summary>
    public bool KeepGraph { get; init; }
    /// <summary>Hooks to apply during the pass, by hook point name.</summary>
    public IReadOnlyDictionary<string, HookFunction>? Hooks { get; init; }

    /// <summary>Attention, routing, hidden states and logits.</summary>
    public static TraceOptions Default { get; } = new();

    internal bool ShouldRecord(string name)
    {
        if (Everything || Extra.Contains(name)) return true;
        if (name == HookPoints.Logits) return Logits;
        if (name.EndsWith(".attn.pattern", StringComparison.Ordinal)) return AttentionPatterns;
        if (name.EndsWith(".resid_post", StringComparison.Ordinal)) return HiddenStates;
        if (name.EndsWith(".moe.router", StringComparison.Ordinal) || name.EndsWith(".moe.indices", StringComparison.Ordinal) ||
            name.EndsWith(".moe.weights", StringComparison.Ordinal)) return Routing;
        return false;
    }
}

/// <summary>
/// The observations of one traced forward (TransformerLens' <c>ActivationCache</c>): tensors by hook point name.
/// Dispose it to free the native memory of the recorded tensors.
/// </summary>
public sealed class ModelTrace : IDisposable
{
    private readonly Dictionary<string, Tensor> _cache;

    internal ModelTrace(DeepSeekConfig config, Dictionary<string, Tensor> cache)
    {
        Config = config;
        _cache = cache;
    }

    /// <summary>The traced model's configuration.</summary>
    public DeepSeekConfig Config { get; }
    /// <summary>The recorded hook points.</summary>
    public IReadOnlyCollection<string> Names => _cache.Keys;
    /// <summary>The tensor recorded at a hook point.</summary>
    public Tensor this[string hookPoint] => _cache.TryGetValue(hookPoint, out var t) ? t
        : throw new KeyNotFoundException($"'{hookPoint}' was not recorded; recorded: {string.Join(", ", _cache.Keys.Order())}");
    /// <summary>Whether a hook point was recorded.</summary>
    public bool Contains(string hookPoint) => _cache.ContainsKey(hookPoint);

    /// <summary>Logits at every position [batch, seq, vocab].</summary>
    public Tensor Logits => this[HookPoints.Logits];
    /// <summary>Residual stream after block <paramref name="layer"/> [batch, seq, dim].</summary>
    public Tensor Hidden(int layer) => this[HookPoints.ResidPost(layer)];
    /// <summary>Attention probabilities of block <paramref name="layer"/> [batch, heads, query, key].</summary>
    public Tensor AttentionPattern(int layer) => this[HookPoints.AttnPattern(layer)];
    /// <summary>Gate scores of MoE block <paramref name="layer"/> [batch·seq, experts].</summary>
    public Tensor RouterScores(int layer) => this[HookPoints.RouterScores(layer)];
    /// <summary>Selected experts of MoE block <paramref name="layer"/> [batch·seq, k] (int64, top-k order).</summary>
    public Tensor ExpertIndices(int layer) => this[HookPoints.ExpertIndices(layer)];
    /// <summary>Routing weights of MoE block <paramref name="layer"/> [batch·seq, k].</summary>
    public Tensor ExpertWeights(int layer) => this[HookPoints.ExpertWeights(layer)];
    /// <summary>Indices of the MoE blocks.</summary>
    public IEnumerable<int> MoeLayers => Enumerable.Range(0, Config.NumHiddenLayers).Where(Config.IsMoeLayer);

    public void Dispose()
    {
        foreach (var t in _cache.Values) t.Dispose();
        _cache.Clear();
    }
}
