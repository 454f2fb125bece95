using System.Runtime.CompilerServices;
using System.Text;
using DeepSeekNotebooks.Visualization.Html;
using Microsoft.DotNet.Interactive.Formatting;
using Plotly.NET;

namespace DeepSeekNotebooks.Interactive;

/// <summary>
/// .NET Interactive formatters: a <see cref="GenericChart"/>, <see cref="TokenAttributionView"/>, <see cref="HeadView"/>,
/// <see cref="ModelView"/> or <see cref="HtmlReport"/> returned from a cell renders as text/html (plotly.js inline, see
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
        // BertViz-style attention views: plain SVG/JS fragments, no plotly.js needed.
        Formatter.Register<HeadView>((view, writer) => writer.Write(view.ToHtml()), HtmlMime);
        Formatter.Register<HeadView>(v => v.ToString(), PlainMime);
        Formatter.Register<ModelView>((view, writer) => writer.Write(view.ToHtml()), HtmlMime);
        Formatter.Register<ModelView>(v => v.ToString(), PlainMime);
        Formatter.Register<HtmlReport>((r, writer) => writer.Write(ChartHtmlWithPlotly(r)), HtmlMime);
        Formatter.Register<HtmlReport>(r => $"HtmlReport \"{r.Title}\" ({r.Count} parts)", PlainMime);
        Formatter.Register<Microsoft.Data.Analysis.DataFrame>((f, writer) => writer.Write(DataFrameHtml.ToHtml(f)), HtmlMime);
        // Analysis results render as their natural chart.
        Formatter.Register<DeepSeekNotebooks.Analysis.Attribution.AttributionResult>((r, writer) =>
            writer.Write(DeepSeekNotebooks.Visualization.Charts.ResultCharts.TokenView(r).ToHtml() + ChartHtml.Fragment(DeepSeekNotebooks.Visualization.Charts.ResultCharts.TokenScores(r))), HtmlMime);
        Formatter.Register<DeepSeekNotebooks.Analysis.Attention.RolloutResult>((r, writer) =>
            writer.Write(ChartHtml.Fragment(DeepSeekNotebooks.Visualization.Charts.ResultCharts.Rollout(r))), HtmlMime);
        Formatter.Register<DeepSeekNotebooks.Analysis.Tracing.TraceSnapshot>((s, writer) =>
            writer.Write(ChartHtml.Fragment(DeepSeekNotebooks.Visualization.Charts.ResultCharts.Attention(s))), HtmlMime);
        foreach (var t in new[] { typeof(GenericChart), typeof(TokenAttributionView), typeof(HtmlReport), typeof(HeadView), typeof(ModelView),
                     typeof(DeepSeekNotebooks.Analysis.Attribution.AttributionResult), typeof(DeepSeekNotebooks.Analysis.Attention.RolloutResult),
                     typeof(DeepSeekNotebooks.Analysis.Tracing.TraceSnapshot), typeof(Microsoft.Data.Analysis.DataFrame) })
            Formatter.SetPreferredMimeTypesFor(t, HtmlMime);
        // GenericChart values are instances of its F# union-case subclasses.
        foreach (var t in typeof(GenericChart).GetNestedTypes().Where(typeof(GenericChart).IsAssignableFrom))
            Formatter.SetPreferredMimeTypesFor(t, HtmlMime);
    }

    internal const string HtmlMime = "text/html";
    internal const string PlainMime = "text/plain";

    private static string ChartHtmlWithPlotly(HtmlReport r) => PlotlyJs.InlineScriptTag(skipIfLoaded: true) + r.ToHtml();

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
