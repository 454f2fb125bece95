using DeepSeekNotebooks.Analysis.Surrogates;

namespace DeepSeekNotebooks.Analysis.Tests;

public sealed class SurrogateTests
{
    private static readonly string[] Names = { "x", "y" };

    private static (double[][] X, int[] Y) Xor()
    {
        var grid = new[] { -1.5, -0.5, 0.5, 1.5 };
        var x = grid.SelectMany(a => grid.Select(b => new[] { a, b })).ToArray();
        return (x, x.Select(p => (p[0] > 0) ^ (p[1] > 0) ? 1 : 0).ToArray());
    }

    [Fact]
    public void SeparableDataReachesFullHeldOutFidelity()
    {
        var rng = new Random(3);
        var x = Enumerable.Range(0, 200).Select(_ => new[] { rng.NextDouble(), rng.NextDouble() }).ToArray();
        var y = x.Select(p => p[1] > 0.4 ? 7 : 2).ToArray();
        var report = DecisionTreeSurrogate.FitClassifier(x, y, Names, new DecisionTreeOptions { MaxDepth = 4 }, testFraction: 0.25, seed: 1);
        Assert.Equal(50, report.TestSamples);
        Assert.Equal(1.0, report.TrainFidelity);
        Assert.Equal(1.0, report.TestFidelity);
        Assert.Equal(1, report.Depth);
        Assert.Equal(2, report.LeafCount);
        Assert.Equal(1.0, report.FeatureImportances["y"], 12);
        Assert.Equal(0.0, report.FeatureImportances["x"], 12);
        Assert.Equal(new[] { 2, 7 }, report.Tree.Classes);
        Assert.Contains("y <= ", report.Tree.ToText());
    }

    [Fact]
    public void XorNeedsDepthTwo()
    {
        var (x, y) = Xor();
        var shallow = DecisionTree.FitClassifier(x, y, Names, new DecisionTreeOptions { MaxDepth = 1 });
        Assert.True(shallow.Score(x, y.Select(v => (double)v).ToArray()) < 1.0);
        var tree = DecisionTree.FitClassifier(x, y, Names, new DecisionTreeOptions { MaxDepth = 5 });
        Assert.Equal(1.0, tree.Score(x, y.Select(v => (double)v).ToArray()));
        Assert.Equal(2, tree.Depth);
        Assert.Equal(4, tree.LeafCount);
        Assert.Equal(0.0, tree.Nodes[0].Threshold); // balanced tie-break splits at the centre
        var nodes = tree.Nodes;
        Assert.Equal(7, nodes.Count);
        Assert.All(nodes.Where(n => !n.IsLeaf), n => Assert.True(nodes[n.Left!.Value].Depth == n.Depth + 1 && nodes[n.Right!.Value].Depth == n.Depth + 1));
        Assert.Equal(7, tree.ToDataFrame().Rows.Count);
        Assert.Equal(1.0, tree.FeatureImportances.Sum(), 12);
    }

    [Fact]
    public void RegressionTreeAndLeafSizes()
    {
        // Two clusters with a gap (x < 0.4, x ≥ 0.6) so any midpoint threshold generalises.
        var x = Enumerable.Range(0, 40).Select(i => new[] { i < 20 ? i / 50.0 : 0.6 + (i - 20) / 50.0, (i * 7 % 40) / 40.0 }).ToArray();
        var y = x.Select(p => p[0] > 0.5 ? 3.0 : -1.0).ToArray();
        var report = DecisionTreeSurrogate.FitRegressor(x, y, Names, new DecisionTreeOptions { MaxDepth = 3 }, testFraction: 0.25);
        Assert.Equal(1.0, report.TrainFidelity, 12);
        Assert.Equal(1.0, report.TestFidelity, 12);
        var limited = DecisionTree.FitClassifier(Xor().X, Xor().Y, Names, new DecisionTreeOptions { MaxDepth = 5, MinSamplesLeaf = 5 });
        Assert.All(limited.Nodes.Where(n => n.IsLeaf), n => Assert.True(n.Samples >= 5));
    }

    [Fact]
    public void BadInputsThrowArgumentException()
    {
        Assert.Throws<ArgumentException>(() => DecisionTree.FitClassifier(Array.Empty<double[]>(), Array.Empty<int>(), Names));
        Assert.Throws<ArgumentException>(() => DecisionTree.FitClassifier(new[] { new[] { 1.0, 2.0 } }, new[] { 1, 2 }, Names));
        Assert.Throws<ArgumentException>(() => DecisionTree.FitClassifier(new[] { new[] { 1.0 } }, new[] { 1 }, Names));
        Assert.Throws<ArgumentException>(() => DecisionTree.FitRegressor(new[] { new[] { 1.0, double.NaN } }, new[] { 1.0 }, Names));
        Assert.Throws<ArgumentException>(() => DecisionTree.FitClassifier(new[] { new[] { 1.0, 2.0 } }, new[] { 1 }, Names, new DecisionTreeOptions { MinSamplesLeaf = 0 }));
        Assert.Throws<ArgumentException>(() => DecisionTreeSurrogate.FitClassifier(new[] { new[] { 1.0, 2.0 } }, new[] { 1 }, Names, testFraction: 1.0));
        var tree = DecisionTree.FitClassifier(new[] { new[] { 1.0, 2.0 } }, new[] { 1 }, Names);
        Assert.Equal(0, tree.Depth);
        Assert.Throws<ArgumentException>(() => tree.Predict(new[] { 1.0 }));
    }
}
