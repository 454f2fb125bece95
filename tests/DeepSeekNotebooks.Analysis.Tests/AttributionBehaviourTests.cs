using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>Occlusion, SmoothGrad, attention×gradient, targets, integration rules, serialisation and input validation.</summary>
public class AttributionBehaviourTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    private readonly ITestOutputHelper _out;
    public AttributionBehaviourTests(GoldenFixture g, ITestOutputHelper output) { _g = g; _out = output; }

    private double F(Tensor embeddings, int pos, long token)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return _g.Model.ForwardFromEmbeddings(embeddings)[0, pos, token].item<float>();
    }

    [Fact]
    public void GaussLegendre_MatchesNumpyLeggauss()
    {
        var (x, w) = ApproximationMethods.GaussLegendre(5); // numpy.polynomial.legendre.leggauss(5)
        double[] nx = { -0.906179845938664, -0.5384693101056831, 0.0, 0.5384693101056831, 0.906179845938664 };
        double[] nw = { 0.23692688505618908, 0.47862867049936647, 0.5688888888888889, 0.47862867049936647, 0.23692688505618908 };
        for (int i = 0; i < 5; i++) { Assert.Equal(nx[i], x[i], 14); Assert.Equal(nw[i], w[i], 14); }
        var (a, v) = ApproximationMethods.Get(IntegrationMethod.GaussLegendre, 50);
        Assert.Equal(1.0, v.Sum(), 12);
        Assert.True(a.Zip(a.Skip(1)).All(p => p.First < p.Second) && a[0] > 0 && a[^1] < 1);
        var (ta, tw) = ApproximationMethods.Get(IntegrationMethod.RiemannTrapezoid, 50);
        Assert.Equal(0.0, ta[0]); Assert.Equal(1.0, ta[^1]); Assert.Equal(0.01, tw[0], 15); Assert.Equal(0.02, tw[1], 15);
    }

    [Fact]
    public void Occlusion_IsTheOutputDropOfTheOccludedTokens()
    {
        using var scope = NewDisposeScope();
        var target = AttributionTarget.Logit(-1, 468);
        var r = Occlusion.Attribute(_g.Model, _g.Ids(), target, slidingWindow: 1, baseline: Baseline.Token(0), perturbationsPerEval: 5);
        var e = _g.Model.Embed(_g.Ids()).detach();
        double fx = F(e, 11, 468);
        foreach (int t in new[] { 0, 5, 11 })
        {
            var occluded = e.clone();
            occluded[0, t] = _g.Model.EmbeddingWeight[0].detach();
            Assert.Equal(fx - F(occluded, 11, 468), r.TokenSums[t], 5);
            Assert.Equal(r.TokenSums[t], r.At(t, 63));
        }
        // a window covering the whole input credits F(x) − F(baseline) to every token
        var whole = Occlusion.Attribute(_g.Model, _g.Ids(), target, slidingWindow: 12, baseline: Baseline.Zeros);
        Assert.All(whole.TokenSums, v => Assert.Equal(whole.FInput!.Value - whole.FBaseline!.Value, v, 5));
        // window 3, stride 2: windows [0,3) [2,5) … [10,12) (6 windows, the last one cut); token 2 is the mean of two drops
        var w3 = Occlusion.Attribute(_g.Model, _g.Ids(), target, slidingWindow: 3, stride: 2, perturbationsPerEval: 2);
        Assert.Equal("6", w3.Parameters["windows"]);
        double Drop(int from, int to) { var o = e.clone(); o[0, TensorIndex.Slice(from, to)] = _g.Model.EmbeddingWeight[0].detach().expand(to - from, 64); return fx - F(o, 11, 468); }
        Assert.Equal((Drop(0, 3) + Drop(2, 5)) / 2, w3.TokenSums[2], 5);
        Assert.Equal(Drop(10, 12), w3.TokenSums[11], 5);
    }

    [Fact]
    public void SmoothGrad_IsSeededAndReducesToSaliencyWithoutNoise()
    {
        var target = AttributionTarget.Logit(-1, 468);
        var sal = Saliency.Attribute(_g.Model, _g.Ids(), target);
        var zeroNoise = NoiseTunnel.SmoothGrad(_g.Model, _g.Ids(), target, nSamples: 2, stdev: 0);
        Assert.True(GoldenFixture.MaxAbsDiff(sal.Attributions, zeroNoise.Attributions) < 1e-6);
        var a = NoiseTunnel.SmoothGrad(_g.Model, _g.Ids(), target, nSamples: 4, seed: 7);
        var b = NoiseTunnel.SmoothGrad(_g.Model, _g.Ids(), target, nSamples: 4, seed: 7);
        var c = NoiseTunnel.SmoothGrad(_g.Model, _g.Ids(), target, nSamples: 4, seed: 8);
        Assert.Equal(a.Attributions, b.Attributions);
        Assert.NotEqual(a.Attributions, c.Attributions);
        Assert.Equal(AttributionMethod.SmoothGrad, a.Method);
        var ixg = NoiseTunnel.Attribute(_g.Model, _g.Ids(), target, InputXGradient.AsMethod(), "input_x_gradient", NoiseTunnelType.VarGrad, 3, 0.01, 1);
        Assert.All(ixg.Attributions, v => Assert.True(v >= -1e-12));
    }

    [Fact]
    public void AttentionTimesGradient_EqualsGradientAtALeafPattern()
    {
        var target = AttributionTarget.Logit(-1, 468);
        var r = AttentionTimesGradient.Attribute(_g.Model, _g.Ids(), target);
        Assert.Equal(new[] { 12, 3 * 4 }, r.Shape);
        var scores = AttentionTimesGradient.PerLayerHead(r);
        foreach (int layer in new[] { 0, 2 })
        {
            using var scope = NewDisposeScope();
            using var _ = enable_grad();
            Tensor? leaf = null;
            var hooks = new Dictionary<string, HookFunction> { [HookPoints.AttnPattern(layer)] = (v, _) => leaf = v.detach().requires_grad_(true).DetachFromDisposeScope() };
            var logits = _g.Model.RunWithHooks(_g.Ids(), hooks);
            var g = torch.autograd.grad(new[] { logits[0, 11, 468] }, new[] { leaf! })[0];
            var expected = (leaf! * g)[0, TensorIndex.Colon, 11].contiguous().data<float>().ToArray(); // [heads, k]
            for (int h = 0; h < 4; h++)
                for (int k = 0; k < 12; k++)
                    Assert.Equal(expected[h * 12 + k], scores[layer, h, k], 6);
            leaf!.Dispose();
        }
        var first = AttentionTimesGradient.Attribute(_g.Model, _g.Ids(), AttributionTarget.Logit(0));
        for (int k = 1; k < 12; k++) Assert.Equal(0f, first.TokenSums[k]); // query row 0 only attends to token 0
    }

    [Fact]
    public void Targets_ProbabilityAndLogProbability_AreConsistent()
    {
        var p = Saliency.Attribute(_g.Model, _g.Ids(), AttributionTarget.Probability(5), abs: false);
        var lp = Saliency.Attribute(_g.Model, _g.Ids(), AttributionTarget.LogProbability(5), abs: false);
        Assert.Equal(p.Target.TokenId, lp.Target.TokenId);
        Assert.Equal(Math.Log(p.FInput!.Value), lp.FInput!.Value, 5);
        // d log p = dp / p
        double scale = GoldenFixture.MaxAbs(lp.Attributions);
        for (int i = 0; i < p.Attributions.Length; i++) Assert.True(Math.Abs(p.Attributions[i] / p.FInput.Value - lp.Attributions[i]) < 1e-4 * scale);
        var custom = Saliency.Attribute(_g.Model, _g.Ids(), AttributionTarget.Custom(l => l[TensorIndex.Colon, -1, 468], -1, "logit468"), abs: true);
        var sal = Saliency.Attribute(_g.Model, _g.Ids(), AttributionTarget.Logit(-1, 468));
        Assert.Equal(sal.Attributions, custom.Attributions);
        Assert.Null(custom.Target.TokenId);
    }

    [Fact]
    public void Result_RoundTripsJson_AndSavesSafetensors()
    {
        var r = IntegratedGradients.Attribute(_g.Model, _g.Ids(), AttributionTarget.Logit(-1, 468), nSteps: 8) with { TokenStrings = _g.InputIds.Select(i => $"<{i}>").ToArray() };
        var back = AttributionResult.FromJson(r.ToJson(indented: true));
        Assert.Equal(r.Attributions, back.Attributions);
        Assert.Equal(r.TokenSums, back.TokenSums);
        Assert.Equal(r.TokenNorms, back.TokenNorms);
        Assert.Equal(r.TokenIds, back.TokenIds);
        Assert.Equal(r.TokenStrings, back.TokenStrings);
        Assert.Equal(r.Target, back.Target);
        Assert.Equal(r.Shape, back.Shape);
        Assert.Equal(r.ConvergenceDelta, back.ConvergenceDelta);
        Assert.Equal(r.FInput, back.FInput);
        Assert.Equal(r.FBaseline, back.FBaseline);
        Assert.Equal(r.Parameters, back.Parameters);
        Assert.Equal(r.Warnings, back.Warnings);
        Assert.Equal(AttributionMethod.IntegratedGradients, back.Method);
        Assert.Contains("\"Method\": \"integrated_gradients\"", r.ToJson(indented: true));
        Assert.Contains("\"Kind\": \"Logit\"", r.ToJson(indented: true));
        var path = Path.Combine(Path.GetTempPath(), $"ig-{Guid.NewGuid():N}.safetensors");
        try
        {
            r.SaveSafetensors(path);
            using var f = SafetensorsFile.Open(path);
            Assert.Equal(new long[] { 1, 12, 64 }, f.GetTensor("attributions").ToShapeArray());
            Assert.Equal(r.Attributions, f.ReadAsFloat32("attributions"));
            Assert.Equal(new long[] { 1, 12 }, f.GetTensor("token_sums").ToShapeArray());
            Assert.Equal(r.TokenSums, f.ReadAsFloat32("token_sums"));
            Assert.Equal(new long[] { 1 }, f.GetTensor("target").ToShapeArray());
            Assert.Equal(SafetensorsDType.I64, f.GetTensor("target").DType);
            Assert.Equal((float)r.ConvergenceDelta!.Value, f.ReadAsFloat32("delta")[0]);
            Assert.Equal("integrated_gradients", f.Metadata["method"]);
            Assert.Equal("Logit", f.Metadata["target_kind"]);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void BadInputs_ThrowArgumentExceptions()
    {
        var m = _g.Model;
        var ids = _g.Ids();
        void Bad(Action a, string fragment) => Assert.Contains(fragment, Assert.ThrowsAny<ArgumentException>(a).Message);
        Bad(() => IntegratedGradients.Attribute(m, tensor(Array.Empty<long>())), "empty");
        Bad(() => Saliency.Attribute(m, tensor(new long[] { 1, 2, 3, 4 }, new long[] { 2, 2 })), "one sequence");
        Bad(() => Saliency.Attribute(m, tensor(new long[] { 1, 600 })), "out of range");
        Bad(() => Saliency.Attribute(m, ids, AttributionTarget.Logit(12)), "target position 12");
        Bad(() => Saliency.Attribute(m, ids, AttributionTarget.Logit(-13)), "target position -13");
        Bad(() => InputXGradient.Attribute(m, ids, AttributionTarget.Probability(0, 512)), "target token 512");
        Bad(() => IntegratedGradients.Attribute(m, ids, baseline: Baseline.Custom(zeros(11, 64))), "baseline has shape");
        Bad(() => IntegratedGradients.Attribute(m, ids, baseline: Baseline.Token(512)), "baseline token 512");
        Bad(() => IntegratedGradients.Attribute(m, ids, nSteps: 0), "nSteps");
        Bad(() => IntegratedGradients.Attribute(m, ids, nSteps: 1, method: IntegrationMethod.RiemannTrapezoid), "nSteps");
        Bad(() => IntegratedGradients.Attribute(m, ids, internalBatchSize: 0), "internalBatchSize");
        Bad(() => Occlusion.Attribute(m, ids, slidingWindow: 13), "larger than the input");
        Bad(() => Occlusion.Attribute(m, ids, slidingWindow: 2, stride: 3), "stride");
        Bad(() => NoiseTunnel.SmoothGrad(m, ids, nSamples: 0), "nSamples");
    }
}

public class AttributorTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    public AttributorTests(GoldenFixture g) => _g = g;

    [Fact]
    public void Run_DispatchesByMethod_ToTheMethodsOwnProducer()
    {
        var target = AttributionTarget.Logit(-1, 468);
        var opts = new AttributionOptions { NSteps = 4, NSamples = 1, Baseline = Baseline.Token(3), Layer = 1 };
        var direct = new Dictionary<AttributionMethod, AttributionResult>
        {
            [AttributionMethod.IntegratedGradients] = IntegratedGradients.Attribute(_g.Model, _g.Ids(), target, Baseline.Token(3), nSteps: 4),
            [AttributionMethod.Saliency] = Saliency.Attribute(_g.Model, _g.Ids(), target),
            [AttributionMethod.InputXGradient] = InputXGradient.Attribute(_g.Model, _g.Ids(), target),
            [AttributionMethod.SmoothGrad] = NoiseTunnel.SmoothGrad(_g.Model, _g.Ids(), target, nSamples: 1),
            [AttributionMethod.Occlusion] = Occlusion.Attribute(_g.Model, _g.Ids(), target, baseline: Baseline.Token(3)),
            [AttributionMethod.AttentionXGradient] = AttentionTimesGradient.Attribute(_g.Model, _g.Ids(), target),
            [AttributionMethod.LayerIntegratedGradients] = LayerIntegratedGradients.Attribute(_g.Model, _g.Ids(), 1, target, Baseline.Token(3), nSteps: 4),
            [AttributionMethod.LayerConductance] = LayerConductance.Attribute(_g.Model, _g.Ids(), 1, target, Baseline.Token(3), nSteps: 4),
            [AttributionMethod.FeatureAblation] = FeatureAblation.Attribute(_g.Model, _g.Ids(), target, Baseline.Token(3)),
        };
        Assert.Equal(Enum.GetValues<AttributionMethod>(), direct.Keys.Order());
        foreach (var (method, expected) in direct)
        {
            var r = Attributor.Run(method, _g.Model, _g.InputIds, target, opts);
            Assert.Equal(method, r.Method);
            Assert.Equal(method, expected.Method);
            Assert.Equal(expected.Attributions, r.Attributions);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => Attributor.Run((AttributionMethod)42, _g.Model, _g.InputIds));
    }

    [Fact]
    public void MethodNames_AreTheSavedForms_AndReadBack()
    {
        // The names files written before the enum hold (safetensors "method" metadata, JSON "Method").
        var saved = new[] { "integrated_gradients", "saliency", "input_x_gradient", "smoothgrad", "occlusion", "attention_x_gradient",
                            "layer_integrated_gradients", "layer_conductance", "feature_ablation" };
        Assert.Equal(saved, AttributionMethods.All.Select(m => m.Name()));
        foreach (var name in saved) Assert.Equal(name, AttributionMethods.FromName(name).Name());
        var e = Assert.Throws<ArgumentException>(() => AttributionMethods.FromName("ig"));
        Assert.Contains("'ig'", e.Message);
        Assert.Contains("integrated_gradients", e.Message);
        Assert.Throws<System.Text.Json.JsonException>(() => AttributionResult.FromJson(
            """{"Method":"lime","TokenIds":[1],"Target":{"Position":0,"TokenId":1,"Kind":"Logit","Name":"logit"},"Shape":[1,1],"Attributions":[0],"TokenSums":[0],"TokenNorms":[0]}"""));
        var old = AttributionResult.FromJson(
            """{"Method":"occlusion","TokenIds":[1],"Target":{"Position":0,"TokenId":1,"Kind":"Logit","Name":"logit"},"Shape":[1,1],"Attributions":[0.5],"TokenSums":[0.5],"TokenNorms":[0.5]}""");
        Assert.Equal(AttributionMethod.Occlusion, old.Method);
        Assert.Equal(TargetKind.Logit, old.Target.Kind);   // the target kind is typed too; saved by its name
    }
}
