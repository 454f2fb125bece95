using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Analysis.Tracing;
using DeepSeekNotebooks.Visualization.Html;
using Plotly.NET;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>
/// Charts for the analysis library's result types (thin adapters over the array-based builders), so a notebook can
/// write <c>ResultCharts.Attention(snapshot)</c> instead of converting arrays by hand.
/// </summary>
public static class ResultCharts
{
    /// <summary>Display labels of an attribution's tokens: the token strings, else the ids.</summary>
    public static string[] Labels(AttributionResult r) => r.TokenStrings ?? r.TokenIds.Select(i => i.ToString()).ToArray();

    /// <summary>Bar chart of per-token attribution (sum over embedding dimensions), titled with the method and target.</summary>
    public static GenericChart TokenScores(AttributionResult r, bool useNorms = false) =>
        AttributionCharts.TokenScores(Labels(r), (useNorms ? r.TokenNorms : r.TokenSums).Select(v => (double)v).ToArray(),
            $"{r.Method.Name()}: attribution to {TargetText(r)}", r.Method.Name());

    /// <summary>
    /// The attribution as coloured text (red positive, blue negative) with the exact score on hover, the explained target
    /// as text (<see cref="AttributionResult.TargetText"/>, else its id) and the model's prediction there with its
    /// probability (<see cref="AttributionResult.Prediction"/>).
    /// </summary>
    public static TokenAttributionView TokenView(AttributionResult r) =>
        new(Labels(r), r.TokenSums.Select(v => (double)v).ToArray(), $"{r.Method.Name()}: attribution to {TargetText(r)}", r.Method.Name())
        {
            Target = TargetDescription(r),
            TargetProbability = r.Prediction?.TargetProbability,
            PredictedToken = r.Prediction is { } p ? p.Text ?? $"token {p.TokenId}" : null,
            PredictedProbability = r.Prediction?.Probability,
        };

    /// <summary>E.g. <c>logit of “ mat” (token 9) at position 4</c>; a custom target by its name.</summary>
    private static string TargetDescription(AttributionResult r)
    {
        var t = r.Target;
        if (t.TokenId is not { } id) return $"{t.Name} at position {t.Position}";
        string kind = t.Kind switch { TargetKind.Logit => "logit", TargetKind.Probability => "probability", TargetKind.LogProbability => "log-probability", _ => t.Kind.ToString() };
        return r.TargetText is { } text ? $"{kind} of “{text}” (token {id}) at position {t.Position}" : $"{kind} of token {id} at position {t.Position}";
    }

    /// <summary>Rollout heatmap of a rollout or attention-flow result, titled by its method (<c>Attention rollout</c>, <c>Attention flow</c>).</summary>
    public static GenericChart Rollout(RolloutResult r) =>
        AttentionCharts.Rollout(r.Tokens ?? r.TokenIds?.Select(i => i.ToString()).ToArray() ?? Enumerable.Range(0, r.SequenceLength).Select(i => i.ToString()).ToArray(),
            r.Matrix, r.Method.DisplayName());

    /// <summary>All layers × heads of a traced sequence in one interactive figure.</summary>
    public static GenericChart Attention(TraceSnapshot s) => AttentionCharts.LayerHeadGrid(s.Tokens, s.Attention);

    /// <summary>Share of routed choices per expert in each MoE block of a traced sequence.</summary>
    public static GenericChart ExpertUsage(TraceSnapshot s) =>
        ExpertCharts.UsageHeatmap(s.ExpertUsage(), s.Routing.Select(r => r.Layer).ToArray(), "Expert usage on this input");

    /// <summary>Tokens → experts across the MoE blocks, link width = routing weight.</summary>
    public static GenericChart RoutingSankey(TraceSnapshot s) =>
        ExpertCharts.RoutingSankey(s.Tokens, s.Routing);

    /// <summary>The 3D architecture view with this sequence's routing drawn as flows.</summary>
    public static GenericChart ModelView(DeepSeekNotebooks.Model.DeepSeekConfig config, TraceSnapshot s, string? title = null) =>
        ModelView3D.Build(ModelArchitecture.From(config), s.Tokens, s.Routing, title);

    /// <summary>
    /// Everything the one-file dashboard shows for one input: attention and routing from the trace, the rollout, and
    /// per-token scores of each attribution (by method name).
    /// </summary>
    public static DashboardData Dashboard(string title, TraceSnapshot s, RolloutResult? rollout = null, IEnumerable<AttributionResult>? attributions = null)
    {
        var scores = attributions?.ToDictionary(a => a.Method.Name(), a => a.TokenSums.Select(v => (double)v).ToArray());
        return new DashboardData(title, s.Tokens, s.Attention, rollout?.Matrix, scores, s.Routing, s.RoutedExperts);
    }

    private static string TargetText(AttributionResult r) =>
        r.Target.ContrastTokenId is { } t2 ? $"logit of token {r.Target.TokenId} minus logit of token {t2} at position {r.Target.Position}"
        : r.Target.TokenId is { } t ? $"{r.Target.Kind} of token {t}{(r.TargetText is { } s ? $" “{s}”" : "")} at position {r.Target.Position}" : $"{r.Target.Name} at position {r.Target.Position}";
}
