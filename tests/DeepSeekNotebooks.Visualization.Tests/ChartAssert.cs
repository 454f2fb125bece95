using System.Text.Json;
using System.Text.RegularExpressions;
using DeepSeekNotebooks.Visualization.Html;
using Plotly.NET;

namespace DeepSeekNotebooks.Visualization.Tests;

internal static class ChartAssert
{
    public const string HostileImg = "<img src=x onerror=alert(1)>";
    public const string HostileScript = "</script><script>alert(1)</script>";

    /// <summary>The figure as the browser sees it: parsed back from the script-safe JSON embedded in the fragment.</summary>
    public static JsonElement Figure(GenericChart chart)
    {
        string fragment = ChartHtml.Fragment(chart, PlotlyJsInclusion.AssumeLoaded);
        var m = Regex.Match(fragment, @"var fig=(\{.*\});Plotly\.newPlot", RegexOptions.Singleline);
        Assert.True(m.Success, "fragment has no figure JSON");
        return JsonDocument.Parse(m.Groups[1].Value).RootElement;
    }

    public static JsonElement Trace(JsonElement fig, int i = 0) => fig.GetProperty("data")[i];

    public static string? Str(JsonElement e, params string[] path)
    {
        foreach (var p in path)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(p, out e)) return null;
        }
        return e.ValueKind == JsonValueKind.String ? e.GetString() : e.ToString();
    }

    public static void Basics(GenericChart chart, string traceType, string title, string? xTitle, string? yTitle, string? colorbarTitle,
        bool colorbarOnMarker = false)
    {
        var fig = Figure(chart);
        var t = Trace(fig);
        Assert.Equal(traceType, Str(t, "type"));
        Assert.Equal(title, Str(fig, "layout", "title", "text"));
        if (xTitle is not null) Assert.Equal(xTitle, Str(fig, "layout", "xaxis", "title", "text"));
        if (yTitle is not null) Assert.Equal(yTitle, Str(fig, "layout", "yaxis", "title", "text"));
        if (colorbarTitle is not null)
            Assert.Equal(colorbarTitle, colorbarOnMarker ? Str(t, "marker", "colorbar", "title", "text") : Str(t, "colorbar", "title", "text"));
    }

    /// <summary>Hostile strings must not appear raw anywhere: neither in a fragment nor in a full page.</summary>
    public static void NoRawHostile(string html)
    {
        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<script>alert", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("</script><script>alert", html, StringComparison.OrdinalIgnoreCase);
    }

    public static void HostileSafe(GenericChart chart)
    {
        string fragment = ChartHtml.Fragment(chart, PlotlyJsInclusion.AssumeLoaded);
        NoRawHostile(fragment);
        // ... and the escaped form is there (HTML entities inside JSON made script-safe).
        Assert.Contains("\\u0026lt;img src=x onerror=alert(1)\\u0026gt;", fragment);
        // Only our own two elements: the div and one script.
        Assert.Single(Regex.Matches(fragment, "<script", RegexOptions.IgnoreCase));
        Assert.Single(Regex.Matches(fragment, "</script", RegexOptions.IgnoreCase));
    }

    public static void OfflinePage(string page)
    {
        Assert.DoesNotMatch(new Regex(@"<script[^>]*\bsrc\s*=", RegexOptions.IgnoreCase), page);
        // plotly.js itself mentions cdn.plot.ly (default topojson URL for geo traces, unused here); nothing else may.
        Assert.DoesNotContain("cdn.plot.ly", page.Replace(PlotlyJs.Source, ""), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("plotly.js v" + PlotlyJs.Version, page);
        Assert.True(page.Length > 3_000_000, "plotly.js not inline");
    }
}
