using DeepSeekNotebooks.Analysis.Surrogates;
using DeepSeekNotebooks.Visualization.Charts;

namespace DeepSeekNotebooks.Visualization.Tests;

public class SurrogateChartsTests
{
    private static DecisionTree Xor()
    {
        var x = new[] { new double[] { 0, 0 }, new double[] { 0, 1 }, new double[] { 1, 0 }, new double[] { 1, 1 } };
        return DecisionTree.FitClassifier(x, new[] { 0, 1, 1, 0 }, new[] { "a", "<img src=x onerror=alert(1)>" });
    }

    [Fact]
    public void Tree_IsAnIcicleWithOneTilePerNode_ParentsAndSampleCounts()
    {
        var tree = Xor();
        var chart = SurrogateCharts.Tree(tree, "XOR tree", c => $"expert {c}");
        var fig = ChartAssert.Figure(chart);
        var t = ChartAssert.Trace(fig);
        Assert.Equal("icicle", ChartAssert.Str(t, "type"));
        Assert.Equal("XOR tree", ChartAssert.Str(fig, "layout", "title", "text"));
        Assert.Equal(tree.Nodes.Count, t.GetProperty("ids").GetArrayLength());
        Assert.Equal("", t.GetProperty("parents")[0].GetString());
        Assert.Equal(4, t.GetProperty("values")[0].GetInt32());
        Assert.Contains(t.GetProperty("labels").EnumerateArray(), l => l.GetString()!.Contains("→ expert 1"));
        ChartAssert.HostileSafe(chart);
    }

    [Fact]
    public void FeatureImportances_AreBarsMostImportantFirst()
    {
        var chart = SurrogateCharts.FeatureImportances(Xor());
        var t = ChartAssert.Trace(ChartAssert.Figure(chart));
        Assert.Equal("bar", ChartAssert.Str(t, "type"));
        var y = t.GetProperty("y").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.True(y[0] >= y[1]);
    }
}
