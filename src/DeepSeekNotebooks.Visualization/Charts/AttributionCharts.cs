using DeepSeekNotebooks.Analysis.Statistics;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>Token attribution: per-token score bars, method comparison by rank correlation, IG convergence.</summary>
public static class AttributionCharts
{
    /// <summary>
    /// Bar per token, height and colour = attribution score (diverging blue/white/red scale centred at 0).
    /// For the coloured-text form see <see cref="Html.TokenAttributionView"/>.
    /// </summary>
    public static GenericChart TokenScores(IReadOnlyList<string> tokens, IReadOnlyList<double> scores,
        string title = "Token attribution", string? method = null)
    {
        RequireLength(tokens.Count, scores.Count, "scores");
        double max = scores.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max();
        if (max == 0) max = 1;
        string scoreName = method is null ? "attribution score" : $"{method} attribution score";
        var trace = Trace2D("bar",
            ("x", Enumerable.Range(0, tokens.Count).ToArray()),
            ("y", scores.Select(Num).ToArray()),
            ("text", tokens.Select(Tok).ToArray()),
            ("textposition", "none"),
            ("hovertemplate", "%{text}<br>score = %{y:.6g}<extra></extra>"),
            ("marker", Obj(
                ("color", scores.Select(Num).ToArray()),
                ("colorscale", Diverging),
                ("cmin", -max), ("cmax", max), ("cmid", 0.0),
                ("showscale", true),
                ("colorbar", ColorBar($"{scoreName} (red = +, blue = −)")))));
        return Chart(new[] { trace }, title,
            ("xaxis", LabelledAxis("token", tokens, tokens: true, ("tickangle", -45))),
            ("yaxis", Axis(scoreName, ("zeroline", true))));
    }

    /// <summary>
    /// Spearman rank correlation between every pair of methods' per-token scores, as a heatmap in [−1, 1].
    /// <paramref name="scores"/>[m] holds method m's score per token (all the same length).
    /// </summary>
    public static GenericChart MethodComparison(IReadOnlyList<string> methods, IReadOnlyList<IReadOnlyList<double>> scores,
        string title = "Attribution methods: rank correlation")
    {
        RequireLength(methods.Count, scores.Count, "scores (one series per method)");
        return RankCorrelationHeatmap(methods, Correlation.SpearmanMatrix(scores), title);
    }

    /// <summary>A precomputed method × method rank-correlation matrix as a heatmap in [−1, 1].</summary>
    public static GenericChart RankCorrelationHeatmap(IReadOnlyList<string> methods, double[,] correlation,
        string title = "Attribution methods: rank correlation")
    {
        RequireLength(methods.Count, correlation.GetLength(0), "correlation rows");
        RequireLength(methods.Count, correlation.GetLength(1), "correlation columns");
        var z = Rows(correlation);
        var text = z.Select(r => r.Select(v => v is null ? "" : v.Value.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture)).ToArray()).ToArray();
        var names = methods.Select(T).ToArray();
        var hover = new string[methods.Count][];
        for (int i = 0; i < methods.Count; i++)
            hover[i] = Enumerable.Range(0, methods.Count).Select(j => $"{names[i]} vs {names[j]}").ToArray();
        var trace = Trace2D("heatmap",
            ("z", z),
            ("text", text),
            ("texttemplate", "%{text}"),
            ("customdata", hover),
            ("hovertemplate", "%{customdata}<br>ρ = %{z:.3f}<extra></extra>"),
            ("colorscale", Diverging),
            ("zmin", -1.0), ("zmax", 1.0), ("zmid", 0.0),
            ("colorbar", ColorBar("Spearman rank correlation ρ")));
        return Chart(new[] { trace }, title,
            ("xaxis", LabelledAxis("method", methods, tokens: false)),
            ("yaxis", LabelledAxis("method", methods, tokens: false, ("autorange", "reversed"))),
            ("height", Math.Clamp(200 + 60 * methods.Count, 380, 900)));
    }

    /// <summary>
    /// Integrated-gradients convergence: |completeness delta| (sum of attributions − (F(x) − F(baseline))) against
    /// the number of integration steps, log-scaled y. Several series (e.g. per integration rule) may be given.
    /// </summary>
    public static GenericChart IgConvergence(IReadOnlyList<int> nSteps, IReadOnlyDictionary<string, IReadOnlyList<double>> deltaBySeries,
        string title = "Integrated gradients: convergence")
    {
        var traces = new List<Trace>();
        foreach (var (name, delta) in deltaBySeries)
        {
            RequireLength(nSteps.Count, delta.Count, $"delta series '{name}'");
            traces.Add(Trace2D("scatter",
                ("mode", "lines+markers"),
                ("name", T(name)),
                ("x", nSteps.ToArray()),
                ("y", delta.Select(d => Num(Math.Abs(d))).ToArray()),
                ("hovertemplate", "n_steps = %{x}<br>|delta| = %{y:.3e}<extra>%{fullData.name}</extra>")));
        }
        return Chart(traces, title,
            ("xaxis", Axis("n_steps (integration steps)", ("type", "log"))),
            ("yaxis", Axis("|completeness delta| (log scale)", ("type", "log"), ("exponentformat", "power"))),
            ("legend", Obj(("title", Title("series")))));
    }

    /// <summary>Single-series form of <see cref="IgConvergence(IReadOnlyList{int}, IReadOnlyDictionary{string, IReadOnlyList{double}}, string)"/>.</summary>
    public static GenericChart IgConvergence(IReadOnlyList<int> nSteps, IReadOnlyList<double> delta,
        string title = "Integrated gradients: convergence")
        => IgConvergence(nSteps, new Dictionary<string, IReadOnlyList<double>> { ["integrated gradients"] = delta }, title);
}
