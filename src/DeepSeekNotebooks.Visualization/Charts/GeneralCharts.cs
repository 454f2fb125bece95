using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>General line and bar charts for quantities computed in a notebook, with a title and labelled axes required.</summary>
public static class GeneralCharts
{
    /// <summary>One line (with markers) per named series over shared or per-series x values; optional log axes.</summary>
    public static GenericChart Lines(string title, string xTitle, string yTitle,
        IReadOnlyDictionary<string, (IReadOnlyList<double> X, IReadOnlyList<double> Y)> series, bool logX = false, bool logY = false)
    {
        if (series.Count == 0) throw new ArgumentException("no series to draw", nameof(series));
        var traces = series.Select(kv =>
        {
            RequireLength(kv.Value.X.Count, kv.Value.Y.Count, $"series '{kv.Key}' y values");
            return Trace2D("scatter",
                ("mode", "lines+markers"),
                ("name", T(kv.Key)),
                ("x", kv.Value.X.Select(Num).ToArray()),
                ("y", kv.Value.Y.Select(Num).ToArray()),
                ("hovertemplate", T(kv.Key) + ": %{x} → %{y}<extra></extra>"));
        });
        return Chart(traces, title,
            ("xaxis", Axis(xTitle, ("type", logX ? "log" : "linear"))),
            ("yaxis", Axis(yTitle, ("type", logY ? "log" : "linear"))),
            ("legend", Obj(("title", Title("series")))));
    }

    /// <summary>Grouped bars: categories on x, one bar per named series; optional log y axis (quantities spanning decades).</summary>
    public static GenericChart Bars(string title, string xTitle, string yTitle, IReadOnlyList<string> categories,
        IReadOnlyDictionary<string, IReadOnlyList<double>> series, bool logY = false)
    {
        if (series.Count == 0) throw new ArgumentException("no series to draw", nameof(series));
        var labels = categories.Select(c => T(c)).ToArray();
        var traces = series.Select(kv =>
        {
            RequireLength(categories.Count, kv.Value.Count, $"series '{kv.Key}'");
            return Trace2D("bar", ("name", T(kv.Key)), ("x", Enumerable.Range(0, labels.Length).ToArray()), ("y", kv.Value.Select(Num).ToArray()));
        });
        return Chart(traces, title,
            ("barmode", "group"),
            ("xaxis", LabelledAxis(xTitle, categories, tokens: true)),
            ("yaxis", logY ? Axis(yTitle, ("type", "log")) : Axis(yTitle)),
            ("legend", Obj(("title", Title("series")))));
    }

    /// <summary>
    /// A heatmap of <paramref name="z"/>[row, column] with labelled rows and columns; <paramref name="diverging"/> centres a
    /// blue–white–red scale on 0 (for signed values); <paramref name="showValues"/> writes each cell's value.
    /// </summary>
    public static GenericChart Heatmap(string title, string xTitle, string yTitle, IReadOnlyList<string> columns, IReadOnlyList<string> rows,
        double[,] z, string valueLabel, bool diverging = false, bool tokenLabels = false, bool showValues = false)
    {
        RequireLength(rows.Count, z.GetLength(0), "z rows");
        RequireLength(columns.Count, z.GetLength(1), "z columns");
        double max = 0;
        foreach (var v in z) if (double.IsFinite(v)) max = Math.Max(max, Math.Abs(v));
        var trace = Trace2D("heatmap",
            ("z", Rows(z)),
            ("hovertemplate", "row %{y}, column %{x}<br>" + T(valueLabel) + " = %{z:.4g}<extra></extra>"),
            ("colorscale", diverging ? Diverging : "Viridis"),
            ("zmid", diverging ? 0.0 : null),
            ("zmin", diverging ? -Math.Max(max, 1e-12) : null),
            ("zmax", diverging ? Math.Max(max, 1e-12) : null),
            ("texttemplate", showValues ? "%{z:.2f}" : null),
            ("colorbar", ColorBar(valueLabel)));
        return Chart(new[] { trace }, title,
            ("xaxis", LabelledAxis(xTitle, columns, tokens: tokenLabels, ("tickangle", -45))),
            ("yaxis", LabelledAxis(yTitle, rows, tokens: false, ("autorange", "reversed"))),
            ("height", Math.Clamp(220 + 30 * rows.Count, 380, 1000)));
    }
}
