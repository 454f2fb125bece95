using System.Globalization;
using DeepSeekNotebooks.Analysis.Attribution;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>
/// Attribution of a continuation to its prompt (<see cref="LlmGradientAttribution"/>): a targets × prompt heatmap, as
/// Captum's <c>LLMAttributionResult.plot_token_attr</c> draws it (one row per generated/target token, one column per
/// prompt token, diverging colours centred at 0).
/// </summary>
public static class ContinuationAttributionCharts
{
    /// <summary>
    /// Heatmap of <paramref name="tokenAttr"/>[k, i] (target k × prompt token i) with each cell's value written in it;
    /// rows are labelled by the target tokens (quoted, with their log-probability, when <paramref name="logProbs"/> is given),
    /// columns by the prompt tokens (escaped, whitespace made visible).
    /// </summary>
    /// <exception cref="ArgumentException">Label counts that do not match the matrix.</exception>
    public static GenericChart TokenAttrHeatmap(IReadOnlyList<string> promptTokens, IReadOnlyList<string> targetTokens, double[,] tokenAttr,
        IReadOnlyList<double>? logProbs = null, string title = "Continuation attribution: log-probability of each target token, by prompt token")
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        ArgumentNullException.ThrowIfNull(targetTokens);
        ArgumentNullException.ThrowIfNull(tokenAttr);
        RequireLength(targetTokens.Count, tokenAttr.GetLength(0), "tokenAttr rows (one per target token)");
        RequireLength(promptTokens.Count, tokenAttr.GetLength(1), "tokenAttr columns (one per prompt token)");
        if (logProbs is not null) RequireLength(targetTokens.Count, logProbs.Count, "logProbs (one per target token)");
        double max = 0;
        foreach (var v in tokenAttr) if (double.IsFinite(v)) max = Math.Max(max, Math.Abs(v));
        max = Math.Max(max, 1e-12);
        var rows = targetTokens.Select((t, k) => logProbs is null ? t
            : string.Create(CultureInfo.InvariantCulture, $"'{t}' (log p {logProbs[k]:0.00})")).ToArray();   // quoted: a space token stays visible
        var hover = new string[targetTokens.Count][];
        for (int k = 0; k < targetTokens.Count; k++)
            hover[k] = promptTokens.Select(p => $"target {Tok(targetTokens[k])} ← prompt {Tok(p)}").ToArray();
        var trace = Trace2D("heatmap",
            ("z", Rows(tokenAttr)),
            ("customdata", hover),
            ("hovertemplate", "%{customdata}<br>attribution = %{z:.4g}<extra></extra>"),
            ("texttemplate", "%{z:.3f}"),
            ("colorscale", Diverging),
            ("zmid", 0.0), ("zmin", -max), ("zmax", max),
            ("colorbar", ColorBar("attribution to log p (red = raises, blue = lowers)")));
        return Chart(new[] { trace }, title,
            ("xaxis", LabelledAxis("prompt token", promptTokens, tokens: true, ("tickangle", -45))),
            ("yaxis", LabelledAxis("target token (teacher-forced)", rows, tokens: true, ("autorange", "reversed"))),
            ("height", Math.Clamp(240 + 40 * targetTokens.Count, 380, 1000)));
    }

    /// <summary>
    /// The heatmap of a <see cref="LlmAttributionResult"/>: its <c>TokenAttr</c>, labelled by <c>PromptTokens</c> /
    /// <c>TargetTokens</c> when set (else <c>#id</c>), rows annotated with each target's log-probability.
    /// </summary>
    public static GenericChart TokenAttrHeatmap(LlmAttributionResult result, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        var prompt = result.PromptTokens ?? result.PromptIds.Select(i => $"#{i}").ToArray();
        var targets = result.TargetTokens ?? result.TargetIds.Select(i => $"#{i}").ToArray();
        return title is null
            ? TokenAttrHeatmap(prompt, targets, result.Matrix(), result.LogProbs)
            : TokenAttrHeatmap(prompt, targets, result.Matrix(), result.LogProbs, title);
    }
}
