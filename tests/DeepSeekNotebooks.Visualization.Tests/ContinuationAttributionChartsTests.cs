using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Visualization.Charts;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>The targets × prompt heatmap of a continuation attribution, and a contrastive target's title.</summary>
public class ContinuationAttributionChartsTests(GoldenModelFixture golden) : IClassFixture<GoldenModelFixture>
{
    [Fact]
    public void TokenAttrHeatmap_RowsAreTargets_ColumnsPromptTokens_ValuesUnchanged_TextEscaped()
    {
        var r = new LlmAttributionResult
        {
            PromptIds = new long[] { 1, 2, 3 },
            TargetIds = new long[] { 7, 8 },
            PromptTokens = new[] { "a", ChartAssert.HostileImg, "c" },
            TargetTokens = new[] { "x", "y" },
            TokenAttr = new[] { 0.5f, -0.25f, 0.125f, -1f, 0f, 2f },   // [2, 3]
            SeqAttr = new[] { -0.5f, -0.25f, 2.125f },
            LogProbs = new[] { -1.5, -0.75 },
            LogProbsBaseline = new[] { -2.0, -2.0 },
            Deltas = new[] { 0.0, 0.0 },
        };
        var chart = ContinuationAttributionCharts.TokenAttrHeatmap(r);
        ChartAssert.Basics(chart, "heatmap", "Continuation attribution: log-probability of each target token, by prompt token",
            "prompt token", "target token (teacher-forced)", "attribution to log p (red = raises, blue = lowers)");
        var fig = ChartAssert.Figure(chart);
        var z = ChartAssert.Trace(fig).GetProperty("z");
        Assert.Equal(2, z.GetArrayLength());                                  // one row per target
        Assert.Equal(new[] { 0.5, -0.25, 0.125 }, z[0].EnumerateArray().Select(v => v.GetDouble()));
        Assert.Equal(new[] { -1.0, 0.0, 2.0 }, z[1].EnumerateArray().Select(v => v.GetDouble()));
        Assert.Equal(2.0, ChartAssert.Trace(fig).GetProperty("zmax").GetDouble());   // symmetric scale around 0
        Assert.Equal(-2.0, ChartAssert.Trace(fig).GetProperty("zmin").GetDouble());
        var rowLabels = fig.GetProperty("layout").GetProperty("yaxis").GetProperty("ticktext").EnumerateArray().Select(v => v.GetString()).ToArray();
        Assert.Equal(new[] { "&#39;x&#39; (log p -1.50)", "&#39;y&#39; (log p -0.75)" }, rowLabels);   // escaped quotes
        ChartAssert.HostileSafe(chart);
    }

    [Fact]
    public void TokenAttrHeatmap_MismatchedLabels_AreRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => ContinuationAttributionCharts.TokenAttrHeatmap(new[] { "a" }, new[] { "x" }, new double[1, 2]));
        Assert.Contains("tokenAttr columns", e.Message);
    }

    [Fact]
    public void ContrastiveTarget_IsTitledAsTheLogitDifference()
    {
        using var ids = golden.IdTensor();
        var r = Saliency.Attribute(golden.Checkpoint.Model, ids, AttributionTarget.Contrast(4, 2, 9));
        var fig = ChartAssert.Figure(ResultCharts.TokenScores(r));
        Assert.Contains("attribution to logit of token 9 minus logit of token 4 at position 2", ChartAssert.Str(fig, "layout", "title", "text"));
    }
}
