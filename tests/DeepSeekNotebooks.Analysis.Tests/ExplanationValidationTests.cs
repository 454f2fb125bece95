using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// Sanity checks (Adebayo et al. 2018) and deletion/insertion curves (Petsiuk et al. 2018) on the golden model
/// (sequence 1 of the golden inputs, target 311 = the argmax at the last position, baseline token 0).
/// </summary>
public class ExplanationValidationTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    private readonly ITestOutputHelper _out;

    public ExplanationValidationTests(GoldenFixture g, ITestOutputHelper output) { _g = g; _out = output; }

    private static long[] Ids => GoldenFixture.ReadI64("captum2/public.captum2.safetensors", "input_ids").Data;
    private static AttributionTarget Target => AttributionTarget.Logit(-1, 311);
    private static readonly AttributionOptions Fast = new() { NSteps = 16, NSamples = 3 };

    private static double[] Params(DeepSeekModel m) =>
        m.named_parameters().Select(p => { using var _ = no_grad(); return p.parameter.to(ScalarType.Float64).sum().item<double>(); }).ToArray();

    private static bool Same(Tensor a, Tensor b) { using var _ = no_grad(); return a.shape.SequenceEqual(b.shape) && (a - b).abs().max().item<float>() == 0; }

    [Fact]
    public void Randomised_CopiesTheModel_ReDrawsOnlyTheNamedModules_AndLeavesTheOriginalAlone()
    {
        var before = Params(_g.Model);
        using (var copy = SanityChecks.Randomised(_g.Model, new[] { "layers.2.", "head." }, seed: 5))
        {
            var src = _g.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            using var freshModel = DeepSeekModel.Create(_g.Model.Config, 5);
            var fresh = freshModel.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in copy.named_parameters())
            {
                bool redrawn = name.StartsWith("layers.2.") || name.StartsWith("head.");
                // Re-drawn modules are exactly DeepSeekModel.Create's initialisation with the seed; the rest are copies.
                Assert.True(Same(p, redrawn ? fresh[name] : src[name]), $"{name} ({(redrawn ? "re-drawn" : "copied")})");
                if (redrawn && !name.EndsWith("norm.weight")) Assert.False(Same(p, src[name]), $"{name} was not re-drawn");
            }
        }
        Assert.Equal(before, Params(_g.Model));
        using (var same = SanityChecks.Randomised(_g.Model, Array.Empty<string>()))
        using (no_grad())
        using (var ids = tensor(Ids, new long[] { 1, 12 }))
            Assert.True(Same(same.forward(ids), _g.Model.forward(ids)), "a copy with nothing re-drawn must compute the same logits");
        var ex = Assert.Throws<ArgumentException>(() => SanityChecks.Randomised(_g.Model, new[] { "layer.1." }));
        Assert.Contains("layers.0.", ex.Message);
    }

    [Fact]
    public void CascadingRandomisation_LastStage_IsAFreshModelWithTheTrainedEmbedding()
    {
        var methods = new[] { AttributionMethod.IntegratedGradients, AttributionMethod.Saliency, AttributionMethod.Occlusion };
        var r = SanityChecks.Run(_g.Model, Ids, Target, methods, Fast, seed: 3, randomTargets: 1);
        _out.WriteLine(SanityChecks.Summary(r));
        Assert.Equal(new[] { "head", "head → block 2", "head → block 1", "head → block 0" }, r.Cascading.Select(s => s.Label));
        Assert.Equal(new[] { "head", "block 2", "block 1", "block 0" }, r.Independent.Select(s => s.Label));
        Assert.Equal(311, r.Target.TokenId);
        // Independent construction of the fully randomised model: Create(seed) with the trained embedding copied in.
        using var fresh = DeepSeekModel.Create(_g.Model.Config, 3);
        using (no_grad()) fresh.EmbeddingWeight.copy_(_g.Model.EmbeddingWeight);
        var sal = Saliency.Attribute(fresh, tensor(Ids, new long[] { 1, 12 }), Target);
        Assert.Equal(sal.TokenSums, r.Cascading[^1].TokenScores[1]);
        // The originals are the methods' own maps on the trained model.
        Assert.Equal(Saliency.Attribute(_g.Model, tensor(Ids, new long[] { 1, 12 }), Target).TokenSums, r.OriginalTokenScores[1]);
        // Threshold: the one-sided 5 % critical value of Spearman's ρ for n = 12 (tables: 0.503).
        Assert.InRange(r.Threshold, 0.48, 0.53);
        foreach (var (m, i) in methods.Select((m, i) => (m, i)))
            Assert.Equal(r.Cascading[^1].Similarity[i].Spearman >= r.Threshold, r.Flagged.Contains(m));
        // IG passes Adebayo's test on this model: its map decorrelates once every block is re-drawn.
        Assert.DoesNotContain(AttributionMethod.IntegratedGradients, r.Flagged);
        Assert.True(r.Cascading[^1].Similarity[0].Spearman < r.Threshold);
        Assert.Single(r.TargetRandomisation);
        Assert.NotEqual("target 311", r.TargetRandomisation[0].Label);
        var back = SanityCheckReport.FromJson(r.ToJson());
        Assert.Equal(r.Cascading[^1].Similarity[0].Spearman, back.Cascading[^1].Similarity[0].Spearman);
        Assert.Equal(r.Flagged, back.Flagged);
    }

    [Fact]
    public void MapSimilarity_AndRankHelpers_OnHandComputedCases()
    {
        var a = new float[] { 3, -1, 2, 0.5f, -4 };
        var same = SanityChecks.Compare(AttributionMethod.Saliency, a, a, 2);
        Assert.Equal((1.0, 1.0, 1.0, 1.0), (same.Spearman, same.SpearmanAbs, same.PearsonAbs, same.TopKOverlap));
        var neg = SanityChecks.Compare(AttributionMethod.Saliency, a, a.Select(v => -v).ToArray(), 2);
        Assert.Equal(-1.0, neg.Spearman, 12);
        Assert.Equal(1.0, neg.SpearmanAbs, 12);
        Assert.Equal(0.0, neg.TopKOverlap);   // top-2 of a: {0, 2}; of −a: {4, 1}
        Assert.Equal(0.5, Correlation.TopKOverlap(new double[] { 5, 4, 1, 0 }, new double[] { 5, 0, 4, 1 }, 2));
        Assert.Throws<ArgumentException>(() => Correlation.TopKOverlap(new double[] { 1, 2 }, new double[] { 1, 2 }, 3));
        // Spearman critical values (one-sided α = 0.05; Zar 1972 table): n = 10 → 0.564, n = 20 → 0.380.
        Assert.InRange(Correlation.SpearmanCriticalValue(10), 0.54, 0.59);
        Assert.InRange(Correlation.SpearmanCriticalValue(20), 0.36, 0.40);
        Assert.True(double.IsNaN(Correlation.SpearmanCriticalValue(2)));
        Assert.Equal(0.25, Faithfulness.Auc(new[] { 0.0, 0.5, 1.0 }, new[] { 1.0, 0.0, 0.0 }), 12);
    }

    [Fact]
    public void DeletionInsertion_EndPoints_AndOcclusionsFirstStep()
    {
        var ids = tensor(Ids, new long[] { 1, 12 });
        var occ = Occlusion.Attribute(_g.Model, ids, Target);
        var ig = IntegratedGradients.Attribute(_g.Model, ids, Target, nSteps: 16);
        var sal = Saliency.Attribute(_g.Model, ids, Target);
        var r = Faithfulness.Evaluate(_g.Model, ids, new[] { occ, ig, sal }, Target, Baseline.Token(0), randomOrders: 10, seed: 1);
        _out.WriteLine(Faithfulness.Summary(r));
        // F(E), F(B) as in the golden study; normalised curves start and end where the definition puts them.
        Assert.Equal(GoldenFixture.ReadF32("captum2/public.captum2.safetensors", "f_input").Data[0], r.FInput, 5);
        Assert.Equal(GoldenFixture.ReadF32("captum2/public.captum2.safetensors", "f_baseline").Data[0], r.FBaseline, 5);
        foreach (var c in r.Curves.Append(r.Random))
        {
            Assert.Equal(13, c.Deletion.Length);
            Assert.Equal(1.0, c.Deletion[0], 5); Assert.Equal(0.0, c.Deletion[^1], 5);
            Assert.Equal(0.0, c.Insertion[0], 5); Assert.Equal(1.0, c.Insertion[^1], 5);
        }
        // Deleting occlusion's top token removes exactly that token's occlusion score: the golden FeatureAblation values
        // (fa.per_position, Captum) give the expected first step independently.
        var fa = GoldenFixture.ReadF32("captum2/public.captum2.safetensors", "fa.per_position").Data;
        double gap = r.FInput - r.FBaseline;
        Assert.Equal(1 - fa.Max() / gap, r.Curves[0].Deletion[1], 5);
        Assert.Equal(Array.IndexOf(fa, fa.Max()), r.Curves[0].Order[0]);
        // ... and no single deletion drops the target further (occlusion's first step is the minimum over tokens).
        foreach (var c in r.Curves) Assert.True(c.Deletion[1] >= r.Curves[0].Deletion[1] - 1e-6);
        Assert.Equal(Faithfulness.Auc(r.Curves[1].Fractions, r.Curves[1].Deletion), r.Curves[1].DeletionAuc, 12);
        var back = FaithfulnessReport.FromJson(r.ToJson());
        Assert.Equal(r.Curves[2].InsertionAuc, back.Curves[2].InsertionAuc);
    }

    [Fact]
    public void DeletionInsertion_RefusesResultsOfAnotherInputOrTarget()
    {
        var ids = tensor(Ids, new long[] { 1, 12 });
        var other = Saliency.Attribute(_g.Model, _g.Ids(), AttributionTarget.Logit(-1, 311));
        var e1 = Assert.Throws<ArgumentException>(() => Faithfulness.Evaluate(_g.Model, ids, new[] { other }, Target));
        Assert.Contains("another input", e1.Message);
        var wrongTarget = Saliency.Attribute(_g.Model, ids, AttributionTarget.Logit(-1, 391));
        var e2 = Assert.Throws<ArgumentException>(() => Faithfulness.Evaluate(_g.Model, ids, new[] { wrongTarget }, Target));
        Assert.Contains("token 391", e2.Message);
        Assert.Throws<ArgumentException>(() => Faithfulness.Evaluate(_g.Model, ids, Array.Empty<AttributionResult>(), Target));
    }
}
