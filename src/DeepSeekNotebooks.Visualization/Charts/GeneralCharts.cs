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

    /// <summary>Grouped bars: categories on x, one bar per named series.</summary>
    public static GenericChart Bars(string title, string xTitle, string yTitle, IReadOnlyList<string> categories,
        IReadOnlyDictionary<string, IReadOnlyList<double>> series)
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
            ("yaxis", Axis(yTitle)),
            ("legend", Obj(("title", Title("series")))));
    }
}
