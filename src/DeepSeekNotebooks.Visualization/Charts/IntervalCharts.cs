using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>Estimates with their confidence intervals (a forest plot): one row per item, a point and a horizontal bar.</summary>
public static class IntervalCharts
{
    /// <summary>
    /// One marker per item at its estimate with an error bar from <paramref name="lower"/> to <paramref name="upper"/>;
    /// <paramref name="reference"/> (e.g. 0, or a chance level) is drawn as a dashed vertical line labelled
    /// <paramref name="referenceLabel"/>. Items whose interval excludes the reference are drawn in red.
    /// </summary>
    /// <exception cref="ArgumentException">Arrays of different lengths, no items, or a lower bound above its upper bound.</exception>
    public static GenericChart Estimates(string title, string valueTitle, IReadOnlyList<string> items, IReadOnlyList<double> estimates,
        IReadOnlyList<double> lower, IReadOnlyList<double> upper, double? reference = null, string? referenceLabel = null)
    {
        if (items.Count == 0) throw new ArgumentException("no items to draw", nameof(items));
        RequireLength(items.Count, estimates.Count, "estimates");
        RequireLength(items.Count, lower.Count, "lower bounds");
        RequireLength(items.Count, upper.Count, "upper bounds");
        for (int i = 0; i < items.Count; i++)
            if (lower[i] > upper[i]) throw new ArgumentException($"item '{items[i]}': lower bound {lower[i]} is above the upper bound {upper[i]}");
        var rows = Enumerable.Range(0, items.Count).ToArray();
        var colours = rows.Select(i => reference is { } r && (lower[i] > r || upper[i] < r) ? "rgb(214,39,40)" : "rgb(90,90,90)").ToArray();
        var trace = Trace2D("scatter",
            ("mode", "markers"), ("name", T(valueTitle)),
            ("x", estimates.Select(Num).ToArray()), ("y", rows),
            ("marker", Obj(("color", colours), ("size", 9))),
            ("error_x", Obj(("type", "data"), ("symmetric", false),
                ("array", rows.Select(i => Num(upper[i] - estimates[i])).ToArray()),
                ("arrayminus", rows.Select(i => Num(estimates[i] - lower[i])).ToArray()),
                ("color", "rgb(120,120,120)"))),
            ("customdata", rows.Select(i => new[] { Num(lower[i]), Num(upper[i]) }).ToArray()),
            ("text", items.Select(s => T(s)).ToArray()),
            ("hovertemplate", "%{text}: %{x:.4g} [%{customdata[0]:.4g}, %{customdata[1]:.4g}]<extra></extra>"));
        var shapes = reference is { } v
            ? new[] { Obj(("type", "line"), ("xref", "x"), ("yref", "paper"), ("x0", v), ("x1", v), ("y0", 0), ("y1", 1), ("line", Obj(("dash", "dash"), ("color", "rgb(31,119,180)")))) }
            : Array.Empty<DynamicObj.DynamicObj>();
        var annotations = reference is { } v2 && referenceLabel is not null
            ? new[] { Obj(("text", T(referenceLabel)), ("xref", "x"), ("yref", "paper"), ("x", v2), ("y", 1.02), ("showarrow", false), ("yanchor", "bottom")) }
            : Array.Empty<DynamicObj.DynamicObj>();
        return Chart(new[] { trace }, title,
            ("xaxis", Axis(valueTitle, ("zeroline", false))),
            ("yaxis", LabelledAxis("", items, tokens: false, ("autorange", "reversed"))),
            ("shapes", shapes), ("annotations", annotations), ("showlegend", false),
            ("height", Math.Clamp(160 + 28 * items.Count, 300, 900)));
    }
}
