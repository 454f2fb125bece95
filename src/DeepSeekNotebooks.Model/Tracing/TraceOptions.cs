namespace DeepSeekNotebooks.Model.Tracing;

/// <summary>
/// What a traced forward (<see cref="DeepSeekModel.RunWithCache"/>) records — a <see cref="NamesFilter"/> — plus
/// optional hooks. <see cref="Names"/> is the selection; the flags <see cref="AttentionPatterns"/>, <see cref="Routing"/>,
/// <see cref="HiddenStates"/>, <see cref="Logits"/> and <see cref="Everything"/> read and set its presets, and
/// <see cref="Extra"/> its exact names, so <c>new TraceOptions { AttentionPatterns = false, Logits = false }</c> and
/// <c>new TraceOptions { Names = "blocks.*.resid_mid" }</c> both work. Initialisers apply in order: setting
/// <see cref="Names"/> replaces what flags set before it.
/// </summary>
public sealed record TraceOptions
{
    private NamesFilter _names = NamesFilter.Default;

    /// <summary>
    /// The hook points to record (TransformerLens' <c>names_filter</c>); default <see cref="NamesFilter.Default"/>
    /// (attention patterns, routing, hidden states, logits). Exact names and patterns must exist in the traced model.
    /// </summary>
    public NamesFilter Names
    {
        get => _names;
        init => _names = value ?? throw new ArgumentNullException(nameof(Names), "give NamesFilter.None to record nothing");
    }

    /// <summary>Record attention probabilities [batch, heads, query, key] per layer (preset <see cref="NamesFilter.AttentionPatterns"/>).</summary>
    public bool AttentionPatterns { get => Has(NamesFilter.AttentionPatterns); init => Set(NamesFilter.AttentionPatterns, value); }
    /// <summary>Record router scores, selected experts and routing weights per MoE layer (preset <see cref="NamesFilter.Routing"/>).</summary>
    public bool Routing { get => Has(NamesFilter.Routing); init => Set(NamesFilter.Routing, value); }
    /// <summary>Record the residual stream after every block (preset <see cref="NamesFilter.HiddenStates"/>).</summary>
    public bool HiddenStates { get => Has(NamesFilter.HiddenStates); init => Set(NamesFilter.HiddenStates, value); }
    /// <summary>Record logits for every position (preset <see cref="NamesFilter.Logits"/>).</summary>
    public bool Logits { get => Has(NamesFilter.Logits); init => Set(NamesFilter.Logits, value); }
    /// <summary>Record every hook point (<see cref="HookPoints.All"/>; preset <see cref="NamesFilter.All"/>).</summary>
    public bool Everything { get => Has(NamesFilter.All); init => Set(NamesFilter.All, value); }

    /// <summary>The hook points recorded by exact name on top of the presets and patterns (each must exist in the traced model).</summary>
    public IReadOnlyCollection<string> Extra
    {
        get => _names.ExactNames;
        init => _names = _names.WithExactNames(value ?? throw new ArgumentNullException(nameof(Extra)));
    }

    /// <summary>Keep recorded tensors attached to the autograd graph (for gradients w.r.t. attention, e.g. attention×gradient).</summary>
    public bool KeepGraph { get; init; }
    /// <summary>Hooks to apply during the pass, by hook point name (each must exist in the traced model).</summary>
    public IReadOnlyDictionary<string, HookFunction>? Hooks { get; init; }

    /// <summary>Attention, routing, hidden states and logits.</summary>
    public static TraceOptions Default { get; } = new();

    private bool Has(NamesFilter preset) => _names.Includes(preset);
    private void Set(NamesFilter preset, bool on) => _names = on ? _names | preset : _names.Without(preset);

    /// <summary>
    /// One set of options that does what all of <paramref name="all"/> ask: the union of the names filters, graphs kept if
    /// any asks, and every hook; two hooks at the same point run in the given order, the second seeing the first's result.
    /// </summary>
    public static TraceOptions Union(IEnumerable<TraceOptions> all)
    {
        ArgumentNullException.ThrowIfNull(all);
        var names = NamesFilter.None;
        bool keepGraph = false;
        var hooks = new Dictionary<string, HookFunction>();
        foreach (var o in all)
        {
            ArgumentNullException.ThrowIfNull(o, nameof(all));
            names |= o.Names;
            keepGraph |= o.KeepGraph;
            if (o.Hooks is null) continue;
            foreach (var (point, hook) in o.Hooks)
                hooks[point] = hooks.TryGetValue(point, out var first) && first != hook ? Chain(first, hook) : hook;
        }
        return new TraceOptions { Names = names, KeepGraph = keepGraph, Hooks = hooks.Count > 0 ? hooks : null };
    }

    private static HookFunction Chain(HookFunction first, HookFunction second) => (value, point) =>
    {
        var a = first(value, point);
        return second(a ?? value, point) ?? a;
    };
}
