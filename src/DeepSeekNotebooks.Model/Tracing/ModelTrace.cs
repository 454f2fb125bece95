using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tracing;

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
    /// <exception cref="KeyNotFoundException">The point was not recorded (the message lists what was), or is not a hook point of this model at all.</exception>
    public Tensor this[string hookPoint] => _cache.TryGetValue(hookPoint, out var t) ? t
        : throw new KeyNotFoundException(HookPoints.Exists(hookPoint, Config)
            ? $"'{hookPoint}' was not recorded (add it to TraceOptions.Names); recorded: {string.Join(", ", _cache.Keys.Order(StringComparer.Ordinal))}"
            : HookPoints.UnknownNameMessage(hookPoint, Config));
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
