using System.Threading;
using Plotly.NET;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>How a chart fragment gets plotly.js.</summary>
public enum PlotlyJsInclusion
{
    /// <summary>The fragment carries plotly.js inline (evaluated only if <c>window.Plotly</c> is missing). Default for notebooks.</summary>
    Inline,
    /// <summary>The fragment assumes the page already defines <c>window.Plotly</c> (used by <see cref="HtmlReport"/>).</summary>
    AssumeLoaded,
}

/// <summary>Turns a Plotly.NET chart into an HTML fragment without any CDN reference.</summary>
public static class ChartHtml
{
    private static int s_counter;

    /// <summary>The figure JSON (data + layout) made safe for a <c>&lt;script&gt;</c> element.</summary>
    public static string FigureJson(GenericChart chart) => HtmlText.JsonForScript(GenericChart.toFigureJson(chart));

    /// <summary>
    /// A <c>&lt;div&gt;</c> plus the script that draws <paramref name="chart"/> into it.
    /// With <see cref="PlotlyJsInclusion.Inline"/> the fragment also carries plotly.js (~3.6 MB).
    /// </summary>
    public static string Fragment(GenericChart chart) => Fragment(chart, DefaultInclusion);

    /// <summary>
    /// What <see cref="Fragment(GenericChart)"/> (and so the notebook formatters) do about plotly.js: <see cref="PlotlyJsInclusion.Inline"/>
    /// by default, so every output works alone; a host that embeds plotly.js once per page (the report runner) sets
    /// <see cref="PlotlyJsInclusion.AssumeLoaded"/>.
    /// </summary>
    public static PlotlyJsInclusion DefaultInclusion { get; set; } = PlotlyJsInclusion.Inline;

    /// <summary>Chart HTML fragment with an explicit choice about plotly.js.</summary>
    public static string Fragment(GenericChart chart, PlotlyJsInclusion plotlyJs)
        => Fragment(chart, plotlyJs, $"dsn-chart-{Guid.NewGuid():N}-{Interlocked.Increment(ref s_counter)}");

    internal static string Fragment(GenericChart chart, PlotlyJsInclusion plotlyJs, string id)
    {
        var sb = new System.Text.StringBuilder();
        if (plotlyJs == PlotlyJsInclusion.Inline) sb.Append(PlotlyJs.InlineScriptTag(skipIfLoaded: true));
        sb.Append("<div class=\"dsn-chart\" id=\"").Append(id).Append("\"></div>");
        sb.Append("<script type=\"text/javascript\">(function(){var fig=")
          .Append(FigureJson(chart))
          .Append(";Plotly.newPlot(document.getElementById('").Append(id)
          .Append("'),fig.data,fig.layout,{responsive:true,displaylogo:false});})();</script>");
        return sb.ToString();
    }
}
