using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>Representation analysis: PCA scatter, logit lens, head anomaly ranking.</summary>
public static class RepresentationCharts
{
    /// <summary>
    /// 2-D scatter of projected points (<paramref name="points"/>[i] = (pc1, pc2, …)), one colour per category
    /// (<paramref name="categories"/>[i]); <paramref name="hoverText"/>[i] (e.g. the token) shows on hover.
    /// </summary>
    public static GenericChart Pca2D(IReadOnlyList<double[]> points, IReadOnlyList<string> categories, IReadOnlyList<string>? hoverText = null,
        string title = "PCA of hidden states", string categoryName = "category", IReadOnlyList<double>? explainedVariance = null)
        => Pca(points, categories, hoverText, title, categoryName, explainedVariance, dims: 2);

    /// <summary>3-D version of <see cref="Pca2D"/> (needs three components per point).</summary>
    public static GenericChart Pca3D(IReadOnlyList<double[]> points, IReadOnlyList<string> categories, IReadOnlyList<string>? hoverText = null,
        string title = "PCA of hidden states (3-D)", string categoryName = "category", IReadOnlyList<double>? explainedVariance = null)
        => Pca(points, categories, hoverText, title, categoryName, explainedVariance, dims: 3);

    private static GenericChart Pca(IReadOnlyList<double[]> points, IReadOnlyList<string> categories, IReadOnlyList<string>? hoverText,
        string title, string categoryName, IReadOnlyList<double>? ev, int dims)
    {
        RequireLength(points.Count, categories.Count, "categories");
        if (hoverText is not null) RequireLength(points.Count, hoverText.Count, "hoverText");
        if (points.Any(p => p.Length < dims)) throw new ArgumentException($"Every point needs at least {dims} components.", nameof(points));
        string AxisTitle(int c) => ev is not null && ev.Count > c
            ? $"PC{c + 1} ({ev[c] * 100:0.#}% of variance)" : $"PC{c + 1}";
        var traces = new List<Trace>();
        foreach (var g in Enumerable.Range(0, points.Count).GroupBy(i => categories[i]))
        {
            var idx = g.ToArray();
            var props = new List<(string, object?)>
            {
                ("mode", "markers"),
                ("name", T(g.Key)),
                ("x", idx.Select(i => Num(points[i][0])).ToArray()),
                ("y", idx.Select(i => Num(points[i][1])).ToArray()),
                ("text", idx.Select(i => hoverText is null ? $"#{i}" : $"#{i} {Tok(hoverText[i])}").ToArray()),
                ("marker", Obj(("size", dims == 2 ? 8 : 4), ("opacity", 0.8))),
                ("hovertemplate", "%{text}<br>" + T(categoryName) + ": " + T(g.Key) + "<extra></extra>"),
            };
            if (dims == 3) props.Add(("z", idx.Select(i => Num(points[i][2])).ToArray()));
            traces.Add(dims == 2 ? Trace2D("scatter", props.ToArray()) : Trace3D("scatter3d", props.ToArray()));
        }
        var legend = ("legend", (object?)Obj(("title", Title($"colour = {categoryName}"))));
        return dims == 2
            ? Chart(traces, title, ("xaxis", Axis(AxisTitle(0))), ("yaxis", Axis(AxisTitle(1))), legend)
            : Chart(traces, title, ("scene", Obj(("xaxis", Axis(AxisTitle(0))), ("yaxis", Axis(AxisTitle(1))), ("zaxis", Axis(AxisTitle(2))))), legend, ("height", 650));
    }

    /// <summary>
    /// Logit lens: rows = layers, columns = positions (labelled by the input tokens); cell text = the top predicted
    /// token at that layer, colour = its probability. <paramref name="topTokens"/> and <paramref name="topProbs"/> are [layer][position].
    /// </summary>
    public static GenericChart LogitLens(IReadOnlyList<string> positionTokens, IReadOnlyList<IReadOnlyList<string>> topTokens,
        IReadOnlyList<IReadOnlyList<double>> topProbs, IReadOnlyList<int>? layerIds = null, string title = "Logit lens")
    {
        int layers = topTokens.Count;
        RequireLength(layers, topProbs.Count, "topProbs layers");
        if (layerIds is not null) RequireLength(layers, layerIds.Count, "layerIds");
        for (int l = 0; l < layers; l++)
        {
            RequireLength(positionTokens.Count, topTokens[l].Count, $"topTokens[{l}]");
            RequireLength(positionTokens.Count, topProbs[l].Count, $"topProbs[{l}]");
        }
        var layerLabels = Enumerable.Range(0, layers).Select(l => $"layer {layerIds?[l] ?? l}").ToArray();
        var trace = Trace2D("heatmap",
            ("z", topProbs.Select(r => r.Select(Num).ToArray()).ToArray()),
            ("text", topTokens.Select(r => r.Select(Tok).ToArray()).ToArray()),
            ("texttemplate", "%{text}"),
            ("textfont", Obj(("size", 10))),
            ("hovertemplate", "top token: %{text}<br>p = %{z:.3f}<extra></extra>"),
            ("colorscale", "Viridis"),
            ("zmin", 0.0), ("zmax", 1.0),
            ("colorbar", ColorBar("probability of top-1 token")));
        return Chart(new[] { trace }, title,
            ("xaxis", LabelledAxis("input position (token)", positionTokens, tokens: true, ("tickangle", -45))),
            ("yaxis", LabelledAxis("layer", layerLabels, tokens: false)),
            ("height", Math.Clamp(200 + 28 * layers, 400, 1200)));
    }

    /// <summary>
    /// Heads ranked by an anomaly score (highest first, at most <paramref name="top"/>), as horizontal bars coloured by
    /// the same score. <paramref name="heads"/>[i] is (layer, head).
    /// </summary>
    public static GenericChart HeadAnomalyRanking(IReadOnlyList<(int Layer, int Head)> heads, IReadOnlyList<double> scores,
        int top = 20, string scoreName = "anomaly score", string title = "Attention heads ranked by anomaly")
    {
        RequireLength(heads.Count, scores.Count, "scores");
        var order = Enumerable.Range(0, heads.Count).Where(i => double.IsFinite(scores[i]))
            .OrderByDescending(i => scores[i]).Take(Math.Max(1, top)).ToArray();
        var labels = order.Select(i => $"L{heads[i].Layer} H{heads[i].Head}").ToArray();
        var values = order.Select(i => scores[i]).ToArray();
        var trace = Trace2D("bar",
            ("orientation", "h"),
            ("x", values),
            ("y", Enumerable.Range(0, order.Length).ToArray()),
            ("text", labels),
            ("textposition", "none"),
            ("hovertemplate", "%{text}<br>" + T(scoreName) + " = %{x:.4g}<extra></extra>"),
            ("marker", Obj(("color", values), ("colorscale", "Viridis"), ("showscale", true), ("colorbar", ColorBar(scoreName)))));
        return Chart(new[] { trace }, title,
            ("xaxis", Axis(scoreName)),
            ("yaxis", LabelledAxis("head (layer, head)", labels, tokens: false, ("autorange", "reversed"))),
            ("height", Math.Clamp(150 + 24 * order.Length, 380, 1000)));
    }
}
