using System.Text.RegularExpressions;

namespace DeepSeekNotebooks.Model.Tracing;

/// <summary>
/// Which hook points to record: TransformerLens' <c>names_filter</c> of <c>run_with_cache</c> — exact names, glob
/// patterns (<c>*</c> matches one dot-free part: <c>blocks.*.attn.pattern</c>), a predicate, or a preset
/// (<see cref="AttentionPatterns"/>, <see cref="Routing"/>, <see cref="HiddenStates"/>, <see cref="ResidualStream"/>,
/// <see cref="Logits"/>, <see cref="All"/>), combined with <c>|</c>. A string converts to an exact name (or a pattern
/// when it holds <c>*</c>), a string array to exact names. Exact names and patterns are checked against the model
/// (<see cref="Validate"/>): a misspelled name is an error, not an empty trace.
/// </summary>
public sealed class NamesFilter : IEquatable<NamesFilter>
{
    private enum Kind { Preset, Exact, Pattern, Predicate }

    private sealed class Term : IEquatable<Term>
    {
        internal Term(Kind kind, string text, Func<string, bool> match) { TermKind = kind; Text = text; Match = match; }
        internal Kind TermKind { get; }
        internal string Text { get; }
        internal Func<string, bool> Match { get; }
        public bool Equals(Term? o) => o is not null && o.TermKind == TermKind && o.Text == Text
            && (TermKind != Kind.Predicate || o.Match == Match);
        public override bool Equals(object? obj) => Equals(obj as Term);
        public override int GetHashCode() => HashCode.Combine(TermKind, Text);
        public override string ToString() => TermKind switch
        {
            Kind.Preset => Text,
            Kind.Exact => $"'{Text}'",
            Kind.Pattern => $"pattern '{Text}'",
            _ => $"predicate {Text}",
        };
    }

    private readonly Term[] _terms;

    private NamesFilter(IEnumerable<Term> terms) => _terms = terms.Distinct().ToArray();

    private static NamesFilter Preset(string name, params string[] blockSuffixes) => new(new[]
    {
        new Term(Kind.Preset, name, n => HookPoints.TryParseBlock(n, out _, out var s) && Array.IndexOf(blockSuffixes, s) >= 0),
    });

    /// <summary>Records nothing.</summary>
    public static NamesFilter None { get; } = new(Array.Empty<Term>());
    /// <summary>Every hook point.</summary>
    public static NamesFilter All { get; } = new(new[] { new Term(Kind.Preset, nameof(All), _ => true) });
    /// <summary>Attention probabilities of every block (<c>blocks.*.attn.pattern</c>).</summary>
    public static NamesFilter AttentionPatterns { get; } = Preset(nameof(AttentionPatterns), HookPoints.AttnPatternSuffix);
    /// <summary>Router scores, selected experts and routing weights of every MoE block (<c>blocks.*.moe.{router,indices,weights}</c>).</summary>
    public static NamesFilter Routing { get; } = Preset(nameof(Routing), HookPoints.RouterSuffix, HookPoints.IndicesSuffix, HookPoints.WeightsSuffix);
    /// <summary>The residual stream after every block (<c>blocks.*.resid_post</c>).</summary>
    public static NamesFilter HiddenStates { get; } = Preset(nameof(HiddenStates), HookPoints.ResidPostSuffix);
    /// <summary>The whole residual stream: <c>embed</c> and every block's <c>resid_pre</c>, <c>resid_mid</c>, <c>resid_post</c>.</summary>
    public static NamesFilter ResidualStream { get; } = new(new[]
    {
        new Term(Kind.Preset, nameof(ResidualStream), n => n == HookPoints.Embed ||
            (HookPoints.TryParseBlock(n, out _, out var s) && s is HookPoints.ResidPreSuffix or HookPoints.ResidMidSuffix or HookPoints.ResidPostSuffix)),
    });
    /// <summary>Logits at every position (<c>logits</c>).</summary>
    public static NamesFilter Logits { get; } = new(new[] { new Term(Kind.Preset, nameof(Logits), n => n == HookPoints.Logits) });
    /// <summary>What a trace records by default: attention patterns, routing, hidden states and logits.</summary>
    public static NamesFilter Default { get; } = AttentionPatterns | Routing | HiddenStates | Logits;

    /// <summary>Exactly these hook points (each must exist in the traced model).</summary>
    public static NamesFilter Exact(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        return new(names.Select(n => n ?? throw new ArgumentException("a hook point name is null", nameof(names)))
            .Select(n => new Term(Kind.Exact, n, x => x == n)));
    }

    /// <summary>Exactly these hook points (each must exist in the traced model).</summary>
    public static NamesFilter Exact(params string[] names) => Exact((IEnumerable<string>)names);

    /// <summary>
    /// Hook points matching a glob: <c>*</c> matches one dot-free part (a block index or a name part), everything else
    /// literally; e.g. <c>blocks.*.moe.*</c>, <c>blocks.3.*</c>. The pattern must match at least one hook point of the traced model.
    /// </summary>
    public static NamesFilter Pattern(string glob)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(glob);
        var regex = new Regex("^" + string.Join("[^.]+", glob.Split('*').Select(Regex.Escape)) + "$", RegexOptions.CultureInvariant);
        return new(new[] { new Term(Kind.Pattern, glob, regex.IsMatch) });
    }

    /// <summary>Hook points for which <paramref name="predicate"/> holds (TransformerLens' callable <c>names_filter</c>; not checked against the model).</summary>
    public static NamesFilter Where(Func<string, bool> predicate, string description = "(custom)")
    {
        ArgumentNullException.ThrowIfNull(predicate);
        return new(new[] { new Term(Kind.Predicate, description, predicate) });
    }

    /// <summary>One exact name, or a pattern when it contains <c>*</c>.</summary>
    public static implicit operator NamesFilter(string nameOrPattern) =>
        nameOrPattern is not null && nameOrPattern.Contains('*') ? Pattern(nameOrPattern) : Exact(nameOrPattern!);

    /// <summary>Exact names.</summary>
    public static implicit operator NamesFilter(string[] names) => Exact(names);

    /// <summary>Hook points selected by either filter.</summary>
    public static NamesFilter operator |(NamesFilter a, NamesFilter b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return new(a._terms.Concat(b._terms));
    }

    /// <summary>Hook points selected by this filter or <paramref name="other"/>.</summary>
    public NamesFilter Or(NamesFilter other) => this | other;

    /// <summary>This filter without the parts (presets, names, patterns) of <paramref name="other"/>.</summary>
    public NamesFilter Without(NamesFilter other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return new(_terms.Where(t => !other._terms.Contains(t)));
    }

    /// <summary>Whether every part of <paramref name="other"/> (e.g. a preset) is part of this filter.</summary>
    public bool Includes(NamesFilter other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return other._terms.All(_terms.Contains);
    }

    /// <summary>Whether the hook point <paramref name="name"/> is selected.</summary>
    public bool Matches(string name)
    {
        foreach (var t in _terms) if (t.Match(name)) return true;
        return false;
    }

    /// <summary>The hook points of a model of this configuration that this filter selects, in forward order.</summary>
    public IReadOnlyList<string> Select(DeepSeekConfig config) => HookPoints.All(config).Where(Matches).ToList();

    /// <summary>The exact names of this filter.</summary>
    internal IReadOnlyCollection<string> ExactNames => _terms.Where(t => t.TermKind == Kind.Exact).Select(t => t.Text).ToArray();

    /// <summary>This filter with its exact names replaced by <paramref name="names"/> (presets, patterns, predicates kept).</summary>
    internal NamesFilter WithExactNames(IEnumerable<string> names) =>
        new NamesFilter(_terms.Where(t => t.TermKind != Kind.Exact)) | Exact(names);

    /// <summary>
    /// Checks the filter against a model of this configuration: every exact name must be a hook point
    /// (<see cref="HookPoints.Validate"/>) and every pattern must match one. Throws <see cref="ArgumentException"/>.
    /// </summary>
    public void Validate(DeepSeekConfig config, string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        foreach (var t in _terms)
        {
            if (t.TermKind == Kind.Exact) HookPoints.Validate(t.Text, config, paramName);
            else if (t.TermKind == Kind.Pattern && !HookPoints.All(config).Any(t.Match))
                throw new ArgumentException(
                    $"the pattern '{t.Text}' matches no hook point of this model ('*' matches one dot-free part); the model offers: {string.Join(", ", HookPoints.Patterns(config))}",
                    paramName);
        }
    }

    /// <inheritdoc/>
    public bool Equals(NamesFilter? other) =>
        other is not null && other._terms.Length == _terms.Length && other._terms.All(_terms.Contains);
    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as NamesFilter);
    /// <inheritdoc/>
    public override int GetHashCode() => _terms.Aggregate(0, (h, t) => h ^ t.GetHashCode());
    /// <summary>The parts, e.g. <c>AttentionPatterns | 'blocks.0.resid_mid'</c>; <c>None</c> when empty.</summary>
    public override string ToString() => _terms.Length == 0 ? nameof(None) : string.Join(" | ", _terms.Select(t => t.ToString()));
}
