using DeepSeekNotebooks.Analysis.Representations;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

public sealed class RepresentationTests(GoldenModel golden) : IClassFixture<GoldenModel>
{
    [Fact]
    public void LogitLensAtTheLastLayerEqualsTheModelsTopK()
    {
        var model = golden.Model;
        var rows = LogitLens.Run(model, GoldenModel.Seq0, topK: 5);
        Assert.Equal(4 * 12, rows.Count); // embeddings + 3 layers
        using var trace = model.RunWithCache(tensor(GoldenModel.Seq0).unsqueeze(0));
        var probs = trace.Logits[0].to(ScalarType.Float64).softmax(-1);
        var (vals, idx) = probs.topk(5, dim: -1);
        foreach (var r in rows.Where(r => r.Layer == 2))
        {
            Assert.Equal(idx[r.Position].data<long>().ToArray(), r.TopTokens);
            for (int j = 0; j < 5; j++) Assert.Equal(vals[r.Position, j].item<double>(), r.TopProbabilities[j], 5);
            if (r.Position < 11)
            {
                Assert.Equal(GoldenModel.Seq0[r.Position + 1], r.Target);
                var p = probs[r.Position];
                int rank = 1 + (int)p.gt(p[r.Target!.Value]).sum().item<long>();
                Assert.Equal(rank, r.TargetRank);
            }
            else Assert.Null(r.Target);
        }
        Assert.Equal(48, LogitLens.ToDataFrame(rows).Rows.Count);
        Assert.Throws<ArgumentException>(() => LogitLens.Run(model, Array.Empty<long>()));
        Assert.Throws<ArgumentException>(() => LogitLens.Run(model, GoldenModel.Seq0, targets: new long[] { 1 }));
    }

    [Fact]
    public void PatchingTheFullLastResidualReproducesTheSourceLogits()
    {
        var model = golden.Model;
        using var traceB = model.RunWithCache(tensor(GoldenModel.Seq1).unsqueeze(0));
        var bLast = traceB.Logits[0, -1].data<float>().ToArray();
        long target = traceB.Logits[0, -1].argmax().item<long>();
        foreach (int? position in new int?[] { null, 11 })
        {
            var r = ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.ResidPost(2), target, foil: 7, position: position);
            for (int v = 0; v < bLast.Length; v++) Assert.Equal(bLast[v], r.PatchedLastLogits[v], 4);
            Assert.Equal(1.0, r.RestoredFraction, 4);
            Assert.Equal(r.SourceMetric, r.PatchedMetric, 4);
        }
        // Patching an early position of the first residual has a partial (finite) effect.
        var early = ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.ResidPre(0), target, position: 0);
        Assert.True(double.IsFinite(early.RestoredFraction));
        Assert.Equal(3 * 12, ActivationPatching.Sweep(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.ResidPre, target, 7).Count);
    }

    [Fact]
    public void PatchingRejectsBadInputs()
    {
        var model = golden.Model;
        var ex = Assert.Throws<ArgumentException>(() => ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1[..5], HookPoints.ResidPost(2), 1));
        Assert.Contains("equal length", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.ResidPost(9), 1));
        Assert.Contains("is not a hook point of this model", ex.Message);
        Assert.Throws<ArgumentException>(() => ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.RouterScores(0), 1)); // dense layer
        Assert.Throws<ArgumentException>(() => ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.ResidPost(1), 1, position: 12));
        Assert.Throws<ArgumentException>(() => ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.ResidPost(1), 512));
    }

    [Fact]
    public void PcaMatchesAHand2DCase()
    {
        double r = Math.Sqrt(0.5);
        // Along (1,1)/√2 at ±2, along (1,−1)/√2 at ±1: variances 8/3 and 2/3 → ratios 0.8 and 0.2.
        var data = new[] { new[] { 2 * r, 2 * r }, new[] { -2 * r, -2 * r }, new[] { r, -r }, new[] { -r, r } };
        var pca = Pca.Fit(data, 2);
        Assert.Equal(0.8, pca.ExplainedVarianceRatio[0], 12);
        Assert.Equal(0.2, pca.ExplainedVarianceRatio[1], 12);
        Assert.Equal(8.0 / 3, pca.ExplainedVariance[0], 12);
        Assert.Equal(r, pca.Axes[0][0], 12);
        Assert.Equal(r, pca.Axes[0][1], 12);
        Assert.Equal(r, Math.Abs(pca.Axes[1][0]), 12);
        Assert.Equal(2.0, pca.Projections[0][0], 12);
        Assert.Equal(-2.0, pca.Projections[1][0], 12);
        Assert.Equal(pca.Projections[2], pca.Project(data[2]), new Tol());
        // Sign convention is deterministic: negating the data does not flip the axes.
        Assert.Equal(pca.Axes[0], Pca.Fit(data.Select(p => p.Select(v => -v).ToArray()).ToArray(), 2).Axes[0], new Tol());
    }

    [Fact]
    public void PcaOfGoldenRepresentations()
    {
        var model = golden.Model;
        using var trace = model.RunWithCache(tensor(new[] { GoldenModel.Seq0, GoldenModel.Seq1 }.SelectMany(s => s).ToArray()).reshape(2, 12));
        var pca = Pca.OfHiddenStates(trace, 1, 3);
        Assert.Equal(24, pca.Projections.Length);
        Assert.InRange(pca.ExplainedVarianceRatio.Sum(), 0, 1 + 1e-12);
        Assert.True(pca.ExplainedVarianceRatio[0] >= pca.ExplainedVarianceRatio[1] && pca.ExplainedVarianceRatio[1] >= pca.ExplainedVarianceRatio[2]);
        var emb = Pca.OfEmbeddings(model, components: 2);
        Assert.InRange(emb.ExplainedVarianceRatio.Sum(), 0, 1);
        Assert.Equal(3, Pca.OfEmbeddings(model, new long[] { 1, 2, 3 }, 2).Projections.Length);
        Assert.Equal(3, pca.ToDataFrame().Columns.Count);
        Assert.Throws<ArgumentException>(() => Pca.OfHiddenStates(trace, 3));
        Assert.Throws<ArgumentException>(() => Pca.Fit(new[] { new[] { 1.0, 2.0 } }));
        Assert.Throws<ArgumentException>(() => Pca.Fit(new[] { new[] { 1.0, 2.0 }, new[] { 1.0 } }));
        Assert.Throws<ArgumentException>(() => Pca.Fit(new[] { new[] { 1.0, 2.0 }, new[] { 3.0, 1.0 } }, 3));
    }

    private sealed class Tol : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= 1e-9;
        public int GetHashCode(double obj) => 0;
    }
}
