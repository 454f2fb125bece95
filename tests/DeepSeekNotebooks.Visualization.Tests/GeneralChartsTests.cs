using DeepSeekNotebooks.Visualization.Charts;

namespace DeepSeekNotebooks.Visualization.Tests;

public class GeneralChartsTests
{
    [Fact]
    public void Lines_HaveTitleAxesAndLogScale()
    {
        var chart = GeneralCharts.Lines("F along the path", "alpha", "logit", new Dictionary<string, (IReadOnlyList<double>, IReadOnlyList<double>)>
        {
            ["zeros <b>"] = (new double[] { 1e-4, 1e-2, 1 }, new double[] { 0.1, 0.2, 0.45 }),
        }, logX: true);
        var fig = ChartAssert.Figure(chart);
        Assert.Equal("F along the path", ChartAssert.Str(fig, "layout", "title", "text"));
        Assert.Equal("alpha", ChartAssert.Str(fig, "layout", "xaxis", "title", "text"));
        Assert.Equal("log", ChartAssert.Str(fig, "layout", "xaxis", "type"));
        Assert.Equal("zeros &lt;b&gt;", ChartAssert.Str(ChartAssert.Trace(fig), "name"));
        Assert.Throws<ArgumentException>(() => GeneralCharts.Lines("t", "x", "y", new Dictionary<string, (IReadOnlyList<double>, IReadOnlyList<double>)>
        {
            ["bad"] = (new double[] { 1, 2 }, new double[] { 1 }),
        }));
    }

    [Fact]
    public void Bars_GroupOneTracePerSeries()
    {
        var chart = GeneralCharts.Bars("Scores", "token", "score", new[] { "a", "<img src=x onerror=alert(1)>" },
            new Dictionary<string, IReadOnlyList<double>> { ["ig"] = new[] { 1.0, 2.0 }, ["saliency"] = new[] { 0.5, 0.1 } });
        var fig = ChartAssert.Figure(chart);
        Assert.Equal("bar", ChartAssert.Str(ChartAssert.Trace(fig, 1), "type"));
        ChartAssert.HostileSafe(chart);
    }

    [Fact]
    public void Heatmap_LabelsRowsColumnsAndCentresDivergingScale()
    {
        var chart = GeneralCharts.Heatmap("Restored", "position", "layer", new[] { "a", "b" }, new[] { "L0", "L1", "<img src=x onerror=alert(1)>" },
            new double[,] { { 0.1, -0.5 }, { 1, 0 }, { 0.2, double.NaN } }, "restored fraction", diverging: true);
        ChartAssert.Basics(chart, "heatmap", "Restored", "position", "layer", "restored fraction");
        var t = ChartAssert.Trace(ChartAssert.Figure(chart));
        Assert.Equal(0.0, t.GetProperty("zmid").GetDouble());
        Assert.Equal(-1.0, t.GetProperty("zmin").GetDouble());
        Assert.Equal(1.0, t.GetProperty("zmax").GetDouble());
        ChartAssert.HostileSafe(chart);
        Assert.Throws<ArgumentException>(() => GeneralCharts.Heatmap("t", "x", "y", new[] { "a" }, new[] { "r" }, new double[1, 2], "v"));
    }
}

public class DataFrameHtmlTests
{
    [Fact]
    public void DataFrame_RendersAsAnEscapedTable_WithRowLimit()
    {
        var frame = new Microsoft.Data.Analysis.DataFrame(
            new Microsoft.Data.Analysis.StringDataFrameColumn("token", new[] { "<img src=x onerror=alert(1)>", "b", "c" }),
            new Microsoft.Data.Analysis.DoubleDataFrameColumn("score", new[] { 0.123456, 2e-7, 3.0 }));
        var html = DeepSeekNotebooks.Visualization.Html.DataFrameHtml.ToHtml(frame, maxRows: 2);
        ChartAssert.NoRawHostile(html);
        Assert.Contains("<th style=\"border-bottom:1px solid #999;padding:2px 6px;text-align:right\">score</th>", html);
        Assert.Contains("0.1235", html);
        Assert.Contains("2E-7", html);
        Assert.Contains("1 more rows (3 in all)", html);
        Assert.DoesNotContain(">3<", html);
    }
}
