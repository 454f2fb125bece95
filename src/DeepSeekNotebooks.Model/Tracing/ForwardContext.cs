using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tracing;

/// <summary>
/// A hook: receives the tensor at a hook point and its name; returns a replacement tensor (same shape and dtype)
/// or null to leave it unchanged. Hooks run inside the forward pass, so replacements flow into everything after.
/// </summary>
public delegate Tensor? HookFunction(Tensor value, string hookPoint);

/// <summary>
/// Carries hooks and the observation cache through one forward pass; absent (null) in a plain forward.
/// Every hook name and every exact name or pattern to record is checked against the model's hook registry
/// (<see cref="HookPoints.Validate"/>) when the context is made, so a misspelled name fails before the pass runs.
/// </summary>
internal sealed class ForwardContext
{
    private readonly NamesFilter? _record;
    private readonly IReadOnlyDictionary<string, HookFunction>? _hooks;
    private readonly bool _keepGraph;

    internal ForwardContext(DeepSeekConfig config, NamesFilter? record, IReadOnlyDictionary<string, HookFunction>? hooks, bool keepGraph)
    {
        record?.Validate(config, "options");
        if (hooks is not null)
            foreach (var name in hooks.Keys)
                HookPoints.Validate(name, config, nameof(hooks));
        _record = record;
        _hooks = hooks is { Count: > 0 } ? hooks : null;
        _keepGraph = keepGraph;
    }

    private ForwardContext(IReadOnlyDictionary<string, HookFunction>? hooks, bool keepGraph)
    {
        _hooks = hooks;
        _keepGraph = keepGraph;
    }

    /// <summary>
    /// The same hooks, recording nothing: what a streamed block's recomputation in the backward pass runs with (the
    /// forward already recorded; hooks replace again, so the recomputed block is the one the forward ran).
    /// </summary>
    internal ForwardContext WithoutRecording() => new(_hooks, _keepGraph);

    /// <summary>Whether this pass records any block-internal hook point (a name <c>blocks.{L}.…</c>).</summary>
    internal bool RecordsInsideBlocks(DeepSeekConfig config) =>
        _record is not null && HookPoints.All(config).Any(n => n.StartsWith("blocks.", StringComparison.Ordinal) && _record.Matches(n));

    /// <summary>Recorded tensors by hook point (owned by the caller of the traced forward).</summary>
    internal Dictionary<string, Tensor> Cache { get; } = new();

    /// <summary>Runs the hook registered at <paramref name="name"/> (if any) and records the result (if requested).</summary>
    internal Tensor Point(string name, Tensor value)
    {
        if (_hooks is not null && _hooks.TryGetValue(name, out var hook) && hook(value, name) is { } replaced)
        {
            if (!replaced.shape.SequenceEqual(value.shape))
                throw new InvalidOperationException(
                    $"hook at '{name}' returned shape [{string.Join(", ", replaced.shape)}] but must keep [{string.Join(", ", value.shape)}]");
            value = replaced;
        }
        if (_record?.Matches(name) ?? false)
        {
            var kept = _keepGraph ? value.alias() : value.detach().clone();
            Cache[name] = kept.DetachFromDisposeScope();
        }
        return value;
    }
}
