using System.Runtime.CompilerServices;
using System.Text;
using DeepSeekNotebooks.Visualization.Html;
using Microsoft.DotNet.Interactive.Formatting;
using Plotly.NET;

namespace DeepSeekNotebooks.Visualization.Interactive;

/// <summary>
/// .NET Interactive formatters: a <see cref="GenericChart"/>, <see cref="TokenAttributionView"/> or
/// <see cref="HtmlReport"/> returned from a cell renders as text/html (plotly.js inline, see
/// <see cref="ChartHtml.Fragment"/>), and as a short description in text/plain. Run automatically by the package's
/// <c>interactive-extensions/dotnet/extension.dib</c> on <c>#r "nuget: DeepSeekNotebooks.Visualization"</c>.
/// </summary>
public static class DeepSeekNotebooksFormatters
{
    private static int s_registered;

    /// <summary>True once <see cref="Register"/> has run.</summary>
    public static bool IsRegistered => Volatile.Read(ref s_registered) == 1;

    /// <summary>Installs <see cref="FSharpCoreRedirect"/> and registers the formatters (idempotent).</summary>
    public static void Register()
    {
        FSharpCoreRedirect.Install();
        if (Interlocked.Exchange(ref s_registered, 1) == 1) return;
        RegisterCore(); // separate method so the redirect is in place before Plotly.NET types are resolved
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void RegisterCore()
    {
        Formatter.Register<GenericChart>((chart, writer) => writer.Write(ChartHtml.Fragment(chart)), HtmlMime);
        Formatter.Register<GenericChart>(Describe, PlainMime);
        Formatter.Register<TokenAttributionView>((view, writer) => writer.Write(view.ToHtml()), HtmlMime);
        Formatter.Register<TokenAttributionView>(v => v.ToString(), PlainMime);
        Formatter.Register<HtmlReport>((r, writer) => writer.Write(ChartHtmlWithPlotly(r)), HtmlMime);
        Formatter.Register<HtmlReport>(r => $"HtmlReport \"{r.Title}\" ({r.Count} parts)", PlainMime);
        // Analysis results render as their natural chart.
        Formatter.Register<DeepSeekNotebooks.Analysis.Attribution.AttributionResult>((r, writer) =>
            writer.Write(Charts.ResultCharts.TokenView(r).ToHtml() + ChartHtml.Fragment(Charts.ResultCharts.TokenScores(r))), HtmlMime);
        Formatter.Register<DeepSeekNotebooks.Analysis.Attention.RolloutResult>((r, writer) =>
            writer.Write(ChartHtml.Fragment(Charts.ResultCharts.Rollout(r))), HtmlMime);
        Formatter.Register<DeepSeekNotebooks.Analysis.Tracing.TraceSnapshot>((s, writer) =>
            writer.Write(ChartHtml.Fragment(Charts.ResultCharts.Attention(s))), HtmlMime);
        // DataFrames (Microsoft.Data.Analysis) as a plain HTML table; without this the default formatter shows an object tree.
        Formatter.Register<Microsoft.Data.Analysis.DataFrame>((df, writer) => writer.Write(DataFrameHtml(df)), HtmlMime);
        foreach (var t in new[] { typeof(GenericChart), typeof(TokenAttributionView), typeof(HtmlReport), typeof(Microsoft.Data.Analysis.DataFrame),
                     typeof(DeepSeekNotebooks.Analysis.Attribution.AttributionResult), typeof(DeepSeekNotebooks.Analysis.Attention.RolloutResult),
                     typeof(DeepSeekNotebooks.Analysis.Tracing.TraceSnapshot) })
            Formatter.SetPreferredMimeTypesFor(t, HtmlMime);
        // GenericChart values are instances of its F# union-case subclasses.
        foreach (var t in typeof(GenericChart).GetNestedTypes().Where(typeof(GenericChart).IsAssignableFrom))
            Formatter.SetPreferredMimeTypesFor(t, HtmlMime);
    }

    internal const string HtmlMime = "text/html";
    internal const string PlainMime = "text/plain";

    private static string ChartHtmlWithPlotly(HtmlReport r) => PlotlyJs.InlineScriptTag(skipIfLoaded: true) + r.ToHtml();

    /// <summary>
    /// A DataFrame as an HTML table: column names as headers, the first <paramref name="maxRows"/> rows (numbers to 4
    /// significant digits, invariant culture), and a line saying how many rows were left out. All text is escaped.
    /// </summary>
    public static string DataFrameHtml(Microsoft.Data.Analysis.DataFrame frame, int maxRows = 30)
    {
        ArgumentNullException.ThrowIfNull(frame);
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        string Cell(object? v) => v switch
        {
            null => "",
            double d => d.ToString("G4", inv),
            float f => f.ToString("G4", inv),
            IFormattable x => x.ToString(null, inv),
            _ => v.ToString() ?? "",
        };
        const string cell = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;font-family:monospace";
        var sb = new StringBuilder("<table class=\"dsn-frame\" style=\"border-collapse:collapse;font-size:13px\"><thead><tr>");
        foreach (var c in frame.Columns) sb.Append($"<th style=\"{cell};border-bottom:2px solid #999\">").Append(HtmlText.Escape(c.Name)).Append("</th>");
        sb.Append("</tr></thead><tbody>");
        long shown = Math.Min(frame.Rows.Count, Math.Max(0, maxRows));
        for (long r = 0; r < shown; r++)
        {
            sb.Append("<tr>");
            foreach (var c in frame.Columns) sb.Append($"<td style=\"{cell}\">").Append(HtmlText.Escape(Cell(c[r]))).Append("</td>");
            sb.Append("</tr>");
        }
        sb.Append("</tbody></table>");
        if (frame.Rows.Count > shown) sb.Append($"<p><i>… {frame.Rows.Count - shown} more rows ({frame.Rows.Count} in all)</i></p>");
        return sb.ToString();
    }

    /// <summary>Plain-text description: trace types and title, e.g. <c>GenericChart [heatmap] "Attention"</c>.</summary>
    public static string Describe(GenericChart chart)
    {
        var types = GenericChart.getTraces(chart)
            .Select(t => t.TryGetPropertyValue("type") is { } v && v.Value is string s ? s : "?")
            .Distinct();
        var sb = new StringBuilder("GenericChart [").Append(string.Join(", ", types)).Append(']');
        var layout = GenericChart.getLayout(chart);
        if (layout.TryGetPropertyValue("title") is { } tv && tv.Value is DynamicObj.DynamicObj title
            && title.TryGetPropertyValue("text") is { } txt && txt.Value is string text)
            sb.Append(" \"").Append(System.Net.WebUtility.HtmlDecode(text)).Append('"');
        return sb.ToString();
    }
}
