using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

public class HtmlTests
{
    [Fact]
    public void EscapeAndScriptJson()
    {
        Assert.Equal("&lt;img src=x onerror=alert(1)&gt;", HtmlText.Escape(HostileImg));
        Assert.Equal("a&amp;b&#34;&#39;", HtmlText.Escape("a&b\"'"));
        Assert.Equal("{\"t\":\"\\u003c/script\\u003e\\u0026\\u2028\"}", HtmlText.JsonForScript("{\"t\":\"</script>&\u2028\"}"));
        Assert.Equal("a↵b", HtmlText.Token("a\nb"));
    }

    [Fact]
    public void PlotlyJsComesFromPlotlyNetResource()
    {
        Assert.Matches(@"^\d+\.\d+\.\d+$", PlotlyJs.Version);
        Assert.True(PlotlyJs.Source.Length > 3_000_000);
        Assert.DoesNotContain("</script", PlotlyJs.Source, StringComparison.OrdinalIgnoreCase);
        string tag = PlotlyJs.InlineScriptTag(skipIfLoaded: true);
        Assert.StartsWith("<script type=\"text/javascript\">if(!window.Plotly){(function(define,module,exports){", tag);
    }

    [Fact]
    public void ReportIsSelfContainedAndSafe()
    {
        string[] toks = { "Hi", HostileImg, HostileScript };
        var report = new HtmlReport("Report " + HostileScript)
            .AddHeading(HostileImg)
            .AddParagraph("p " + HostileScript)
            .AddChart(AttentionCharts.Heatmap(toks, toks, new float[3, 3]))
            .AddChart(AttributionCharts.TokenScores(toks, new[] { 1.0, -1, 0 }))
            .AddView(new TokenAttributionView(toks, new[] { 1.0, -1, 0 }, HostileImg, "IG"));
        string page = report.ToPage();
        OfflinePage(page);
        NoRawHostile(page);
        Assert.Contains("Content-Security-Policy", page);
        Assert.Contains("<title>Report &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>", page);
        // plotly.js exactly once, each chart drawn by its own small script
        Assert.Equal(1, CountOf(page, "plotly.js v" + PlotlyJs.Version));
        Assert.Equal(2, CountOf(page.Replace(PlotlyJs.Source, ""), "Plotly.newPlot("));

        string dir = Path.Combine(Path.GetTempPath(), $"dsn-report-{Guid.NewGuid():N}");
        string path = Path.Combine(dir, "report.html");
        try
        {
            Assert.Equal(page, File.ReadAllText(report.Save(path)));
            Assert.Equal(new[] { path }, Directory.GetFileSystemEntries(dir)); // written via a temp file that is gone
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void NotebookFragmentCarriesPlotlyInline()
    {
        var c = TrainingCharts.LossCurves(new[] { 1, 2 }, new[] { 2.0, 1.0 });
        string html = ChartHtml.Fragment(c);
        OfflinePage(html);
        Assert.Contains("if(!window.Plotly)", html);
    }

    [Fact]
    public void TokenAttributionViewColoursAndTooltips()
    {
        var v = new TokenAttributionView(new[] { "good", HostileImg, "bad", "zero" }, new[] { 2.0, 0.123456789, -2.0, 0 }, method: "IG");
        string html = v.ToHtml();
        NoRawHostile(html);
        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;</span>", html);
        Assert.Contains("title=\"#1 &lt;img src=x onerror=alert(1)&gt;: 0.123456789\"", html);
        Assert.Contains("background:rgb(214,39,40)", html);   // +max → red
        Assert.Contains("background:rgb(31,119,180)", html);  // −max → blue
        Assert.Contains("background:rgb(255,255,255)", html); // 0 → white
        Assert.Contains("IG attribution score", html);        // legend
        Assert.Contains("linear-gradient", html);
        Assert.Equal("rgb(143,187,218)", TokenAttributionView.ColorFor(-1, 2));
        Assert.Throws<ArgumentException>(() => new TokenAttributionView(new[] { "a" }, Array.Empty<double>()));
    }

    private static int CountOf(string s, string sub)
    {
        int n = 0;
        for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
