using DeepSeekNotebooks.Analysis.Attention.Diagnostics;
using DeepSeekNotebooks.Analysis.Statistics;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

public sealed class AttentionDiagnosticsTests(GoldenModel golden) : IClassFixture<GoldenModel>
{
    // Head 0: uniform over the causal prefix. Head 1: everything on the first token. seq = 4.
    private static float[] HandPattern()
    {
        var p = new float[2 * 4 * 4];
        for (int q = 0; q < 4; q++)
        {
            for (int k = 0; k <= q; k++) p[q * 4 + k] = 1f / (q + 1);
            p[16 + q * 4] = 1f;
        }
        return p;
    }

    private static readonly string[] Words = { "Hello", ",", "Ġworld", "Ċ" };

    [Fact]
    public void HandPatternGivesKnownDiagnostics()
    {
        var acc = new AttentionHeadAccumulator(epsilon: 0.3, tokenText: id => Words[id], distanceBinStarts: new[] { 0, 1, 2 });
        acc.ObservePattern(0, 2, new long[] { 0, 1, 2, 3 }, HandPattern());
        var heads = acc.Heads();
        var uniform = heads[0];
        Assert.Equal(3, uniform.Queries);
        Assert.Equal(1.0, uniform.MeanEntropy, 6);
        double sink = (1 / 2.0 + 1 / 3.0 + 1 / 4.0) / 3;
        Assert.Equal(sink, uniform.SinkScore, 6);
        Assert.Equal(2.0 / 3, uniform.SinkQueryRate, 12); // 1/2 and 1/3 exceed 0.3, 1/4 does not
        Assert.True(uniform.IsSink);
        Assert.Equal(sink, uniform.MeanMaxAttention, 6);
        Assert.Equal(new[] { sink, sink, (1 / 3.0 + 0.5) / 3 }, uniform.DistanceProfile, new ToleranceComparer(1e-6));
        Assert.Equal((0.5 + 1 / 3.0 + 0.5) / 3, uniform.BoundaryMass, 6);
        Assert.Equal(uniform.BoundaryMass, uniform.BoundaryBaseline, 6);

        var sinkHead = heads[1];
        Assert.Equal(0.0, sinkHead.MeanEntropy, 9);
        Assert.Equal(1.0, sinkHead.SinkScore, 9);
        Assert.Equal(1.0, sinkHead.SinkQueryRate);
        Assert.Equal(0.0, sinkHead.BoundaryMass, 9);
        Assert.Equal(new[] { 0.0, 1 / 3.0, 2 / 3.0 }, sinkHead.DistanceProfile, new ToleranceComparer(1e-6)); // distances 1, 2, 3
        Assert.Equal(1.0, acc.SinkRate());

        var classes = acc.ClassProfile();
        // Sink head: every query puts all its mass on "Hello" (letter).
        Assert.All(classes.Where(c => c.Head == 1 && c.KeyClass == "letter"), c => Assert.Equal(1.0, c.Mass, 9));
        Assert.Contains(classes, c => c.Head == 0 && c.QueryClass == "newline" && c.KeyClass == "punct" && Math.Abs(c.Mass - 0.25) < 1e-6);
        Assert.Equal(2, acc.ToDataFrame().Rows.Count);
    }

    [Fact]
    public void TokenClassifiers()
    {
        Assert.Equal("digit", TokenClasses.Classify("Ġ123"));
        Assert.Equal("letter", TokenClasses.Classify("Ġfoo"));
        Assert.Equal("symbol", TokenClasses.Classify("+="));
        Assert.Equal("punct", TokenClasses.Classify("."));
        Assert.Equal("newline", TokenClasses.Classify("ĊĊ"));
        Assert.Equal("mixed", TokenClasses.Classify("x1"));
        Assert.True(TokenClasses.IsBoundary("Ġ."));
        Assert.True(TokenClasses.IsBoundary("\n"));
        Assert.False(TokenClasses.IsBoundary("abc"));
    }

    [Fact]
    public void AnomalyRankingPutsTheOverActiveSinkFirst()
    {
        var heads = Enumerable.Range(0, 10).Select(h => new HeadDiagnostics(0, h, 100, 0.8 + 0.01 * h, 0, 0.2 + 0.005 * h, 0, false, 0.3 + 0.01 * (h % 3),
            Array.Empty<double>(), double.NaN, double.NaN)).ToList();
        heads.Add(new HeadDiagnostics(1, 0, 100, 0.81, 0, 0.95, 1, true, 0.31, Array.Empty<double>(), double.NaN, double.NaN));
        var ranked = HeadAnomalies.Rank(heads);
        Assert.Equal((1, 0), (ranked[0].Layer, ranked[0].Head));
        Assert.Contains("over-active sink", ranked[0].Reasons);
        Assert.All(ranked.Skip(1), a => Assert.Empty(a.Reasons));
        Assert.Equal(new[] { -1.0, 0.0, 1.0 }.Select(v => v * 0.6745), DeepSeekNotebooks.Analysis.Statistics.Robust.ModifiedZ(new[] { 1.0, 2.0, 3.0 }));
        Assert.Throws<ArgumentException>(() => HeadAnomalies.Rank(heads.Take(2).ToList()));
    }

    [Fact]
    public void GoldenModelDiagnosticsMatchTheTracedPattern()
    {
        var model = golden.Model;
        var acc = new AttentionHeadAccumulator();
        DatasetRunner.Run(model, new[] { GoldenModel.Seq0 }, new IDatasetAccumulator[] { acc });
        var heads = acc.Heads();
        Assert.Equal(12, heads.Count);
        using var trace = model.RunWithCache(tensor(GoldenModel.Seq0).unsqueeze(0));
        foreach (var h in heads)
        {
            Assert.Equal(11, h.Queries);
            Assert.InRange(h.MeanEntropy, 0, 1 + 1e-6);
            Assert.Equal(1.0, h.DistanceProfile.Sum(), 5);
            var direct = trace.AttentionPattern(h.Layer)[0, h.Head, TensorIndex.Slice(1), 0].mean().item<float>();
            Assert.Equal(direct, h.SinkScore, 5);
        }
        Assert.InRange(acc.SinkRate(), 0, 1);
        Assert.Equal(12, HeadAnomalies.Rank(heads).Count);
        Assert.Throws<ArgumentException>(() => new AttentionHeadAccumulator(epsilon: 1.5));
        Assert.Throws<ArgumentException>(() => acc.ObservePattern(0, 4, new long[] { 1, 2 }, new float[3]));
    }

    [Fact]
    public void HeadAblationImportance()
    {
        var model = golden.Model;
        var rows = HeadImportance.ByAblation(model, new[] { GoldenModel.Seq0 }, new[] { 0, 2 });
        Assert.Equal(8, rows.Count);
        Assert.All(rows, r => Assert.Equal(11, r.Tokens));
        Assert.Contains(rows, r => Math.Abs(r.LossChange) > 1e-6);
        Assert.Equal(8, HeadImportance.ToDataFrame(rows).Rows.Count);
        Assert.Throws<ArgumentException>(() => HeadImportance.ByAblation(model, new[] { GoldenModel.Seq0 }, new[] { 3 }));
    }

    private sealed class ToleranceComparer(double tol) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tol;
        public int GetHashCode(double obj) => 0;
    }
}
