using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;

namespace DeepSeekNotebooks.Visualization.Tests;

public class ResultChartsTests
{
    private const string Hostile = "<img src=x onerror=alert(1)>";

    private static AttributionResult Attribution() => new()
    {
        Method = "ig",
        TokenIds = new long[] { 5, 6, 7 },
        TokenStrings = new[] { "a", Hostile, "c" },
        Target = new TargetInfo(2, 9, "logit", "logit"),
        Shape = new[] { 3, 2 },
        Attributions = new float[] { 0.1f, 0.2f, -0.5f, 0.1f, 0f, 0f },
        TokenSums = new[] { 0.3f, -0.4f, 0f },
        TokenNorms = new[] { 0.22f, 0.51f, 0f },
    };

    [Fact]
    public void AttributionResult_ChartsAndView_CarryMethodTargetAndEscapedTokens()
    {
        var r = Attribution();
        var chart = ResultCharts.TokenScores(r);
        var fig = ChartAssert.Figure(chart);
        Assert.Contains("ig: attribution to logit of token 9 at position 2", ChartAssert.Str(fig, "layout", "title", "text"));
        ChartAssert.HostileSafe(chart);
        var view = ResultCharts.TokenView(r).ToHtml();
        ChartAssert.NoRawHostile(view);
        Assert.Contains("&lt;img", view);
    }

    [Fact]
    public void RolloutResult_IsAHeatmapOverItsTokens()
    {
        var r = new RolloutResult("rollout", new float[,] { { 1, 0 }, { 0.4f, 0.6f } }, new Dictionary<string, string>(), new long[] { 1, 2 }, new[] { "x", "y" });
        var fig = ChartAssert.Figure(ResultCharts.Rollout(r));
        Assert.Equal("heatmap", ChartAssert.Str(ChartAssert.Trace(fig), "type"));
        Assert.Equal("Attention rollout", ChartAssert.Str(fig, "layout", "title", "text"));
    }
}
