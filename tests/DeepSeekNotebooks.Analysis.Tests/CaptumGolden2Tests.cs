using System.Runtime.InteropServices;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tracing;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// LayerIntegratedGradients, LayerConductance, FeatureAblation, LLM attribution of a continuation and a contrastive target
/// against Captum v0.8.0 on the golden tiny model, at the tolerances of tests/fixtures/golden/captum2/README.md.
/// </summary>
public class CaptumGolden2Tests : IClassFixture<GoldenFixture>
{
    private const string File2 = "captum2/public.captum2.safetensors";
    private const int Layer = 1, NSteps = 32, T = 311, T2 = 391;
    private readonly GoldenFixture _g;
    private readonly ITestOutputHelper _out;

    public CaptumGolden2Tests(GoldenFixture g, ITestOutputHelper output) { _g = g; _out = output; }

    private static float[] F32(string name) => GoldenFixture.ReadF32(File2, name).Data;
    private static long[] I64(string name) => GoldenFixture.ReadI64(File2, name).Data;
    private static double[] F64(string name)
    {
        using var f = SafetensorsFile.Open(Path.Combine(GoldenFixture.GoldenDir, File2));
        var info = f.GetTensor(name);
        Assert.Equal(SafetensorsDType.F64, info.DType);
        var bytes = new byte[info.ByteLength];
        f.ReadBytes(name, bytes);
        return MemoryMarshal.Cast<byte, double>(bytes).ToArray();
    }

    private Tensor Ids() => tensor(I64("input_ids"), new long[] { 1, 12 });
    private static Baseline B => Baseline.Token(0);   // README: token 0's embedding at every position

    private void Close(string what, IReadOnlyList<float> got, IReadOnlyList<float> want, double atol)
    {
        double err = GoldenFixture.MaxAbsDiff(got, want);
        _out.WriteLine($"{what}: max abs err {err:G3} (atol {atol:G2}, max |want| {GoldenFixture.MaxAbs(want):G4})");
        Assert.True(err <= atol, $"{what}: max abs error {err} > {atol}");
    }

    private void Close(string what, double got, double want, double atol)
    {
        _out.WriteLine($"{what}: {got:G8} vs Captum {want:G8} (err {Math.Abs(got - want):G3}, atol {atol:G2})");
        Assert.True(Math.Abs(got - want) <= atol, $"{what}: {got} vs {want} (atol {atol})");
    }

    private void AssertMethod(string prefix, AttributionResult r, double? fInput = null)
    {
        Assert.Equal(new[] { 12, 64 }, r.Shape);
        Close(prefix + ".attr", r.Attributions, F32(prefix + ".attr"), 1e-6);
        Close(prefix + ".token_sums", r.TokenSums, F32(prefix + ".token_sums"), 1e-6);
        Close(prefix + ".delta", r.ConvergenceDelta!.Value, F32(prefix + ".delta")[0], 5e-6);
        if (fInput is { } f) Close(prefix + " F(input)", r.FInput!.Value, f, 2e-6);
    }

    [Fact]
    public void Quadrature_NodesAndWeights_MatchNumpy()
    {
        var (a32, w32) = ApproximationMethods.Get(IntegrationMethod.GaussLegendre, 32);
        var (a33, _) = ApproximationMethods.Get(IntegrationMethod.GaussLegendre, 33);
        var (t33, _) = ApproximationMethods.Get(IntegrationMethod.RiemannTrapezoid, 33);
        static double MaxDiff(double[] a, double[] b) { Assert.Equal(a.Length, b.Length); return a.Zip(b, (x, y) => Math.Abs(x - y)).Max(); }
        Assert.True(MaxDiff(a32, F64("quad.gausslegendre32.alphas")) <= 1e-15);
        Assert.True(MaxDiff(w32, F64("quad.gausslegendre32.weights")) <= 1e-15);
        Assert.True(MaxDiff(a33, F64("quad.gausslegendre33.alphas")) <= 1e-15);
        Assert.True(MaxDiff(t33, F64("quad.riemann_trapezoid33.alphas")) <= 1e-15);
    }

    [Fact]
    public void InputsBaselineAndTargets_MatchTheFixture()
    {
        using var scope = NewDisposeScope();
        var e = _g.Model.Embed(Ids()).detach();
        Assert.Equal(0.0, GoldenFixture.MaxAbsDiff(e.contiguous().data<float>().ToArray(), F32("embeddings")));
        Assert.Equal(0.0, GoldenFixture.MaxAbsDiff(B.Build(_g.Model, e).contiguous().data<float>().ToArray(), F32("baseline")));
        var logits = _g.Model.ForwardFromEmbeddings(e)[0, -1];
        Close("logits_input", logits.contiguous().data<float>().ToArray(), F32("logits_input"), 2e-6);
        var top = logits.topk(2).indexes.data<long>().ToArray();
        Assert.Equal(new[] { I64("target")[0], I64("target2")[0] }, top);
        Assert.Equal(new long[] { T, T2 }, top);
    }

    [Fact]
    public void LayerIntegratedGradients_Block1Output_MatchesCaptum()
    {
        var r = LayerIntegratedGradients.Attribute(_g.Model, Ids(), Layer, AttributionTarget.Logit(-1, T), B, NSteps, IntegrationMethod.GaussLegendre);
        AssertMethod("lig", r, F32("f_input")[0]);
        Close("lig F(baseline)", r.FBaseline!.Value, F32("f_baseline")[0], 2e-6);
        Assert.Equal(HookPoints.ResidPost(Layer), r.Parameters["layer"]);
        Assert.Empty(r.Warnings);   // delta 2.1e-3 is 0.5 % of the gap
    }

    [Fact]
    public void LayerActivations_EndPoints_AreTheCaptumLayerInputAndBaseline()
    {
        // h(E) and h(B) read independently through RunWithCache (the baseline is the all-token-0 sequence's real forward).
        using var scope = NewDisposeScope();
        var point = HookPoints.ResidPost(Layer);
        using var input = _g.Model.RunWithCache(Ids(), new TraceOptions { Names = point });
        using var baseline = _g.Model.RunWithCache(zeros(1, 12, dtype: int64), new TraceOptions { Names = point });
        Close("lig.layer_input", input[point].contiguous().data<float>().ToArray(), F32("lig.layer_input"), 1e-6);
        Close("lig.layer_baseline", baseline[point].contiguous().data<float>().ToArray(), F32("lig.layer_baseline"), 1e-6);
    }

    [Theory]
    [InlineData("lc_gausslegendre", IntegrationMethod.GaussLegendre)]
    [InlineData("lc_riemann_trapezoid", IntegrationMethod.RiemannTrapezoid)]
    public void LayerConductance_Block1Output_MatchesCaptum(string prefix, IntegrationMethod method)
    {
        var r = LayerConductance.Attribute(_g.Model, Ids(), Layer, AttributionTarget.Logit(-1, T), B, NSteps, method);
        AssertMethod(prefix, r, F32("f_input")[0]);
        // Not LayerIG: the README measures up to 0.017 per element between the two.
        Assert.True(GoldenFixture.MaxAbsDiff(r.Attributions, F32("lig.attr")) > 0.01);
    }

    [Fact]
    public void FeatureAblation_OverPositions_MatchesCaptum()
    {
        var r = FeatureAblation.Attribute(_g.Model, Ids(), AttributionTarget.Logit(-1, T), B);
        Close("fa.attr", r.Attributions, F32("fa.attr"), 2e-6);
        Close("fa.per_position", r.TokenSums, F32("fa.per_position"), 2e-6);
        var ablated = r.TokenSums.Select(s => (float)(r.FInput!.Value - s)).ToArray();
        Close("fa.ablated_output", ablated, F32("fa.ablated_output"), 2e-6);
        Assert.Null(r.ConvergenceDelta);
        // Batched perturbations give the same numbers.
        var batched = FeatureAblation.Attribute(_g.Model, Ids(), AttributionTarget.Logit(-1, T), B, perturbationsPerEval: 5);
        Close("fa batched vs one at a time", batched.TokenSums, r.TokenSums, 1e-6);
    }

    [Fact]
    public void FeatureAblation_GroupedMask_AblatesTheGroupTogether()
    {
        // Two features: positions 0..5 and 6..11. Each group's value is F(E) − F(E with the group's rows replaced),
        // computed here by hand from an explicit forward.
        var mask = Enumerable.Range(0, 12).Select(p => p < 6 ? 0 : 1).ToArray();
        var r = FeatureAblation.Attribute(_g.Model, Ids(), AttributionTarget.Logit(-1, T), B, mask);
        using var scope = NewDisposeScope();
        var e = _g.Model.Embed(Ids()).detach();
        var b = B.Build(_g.Model, e);
        double f = _g.Model.ForwardFromEmbeddings(e)[0, -1, T].item<float>();
        var firstHalf = cat(new[] { b.narrow(1, 0, 6), e.narrow(1, 6, 6) }, 1);
        var secondHalf = cat(new[] { e.narrow(1, 0, 6), b.narrow(1, 6, 6) }, 1);
        double g0 = f - _g.Model.ForwardFromEmbeddings(firstHalf)[0, -1, T].item<float>();
        double g1 = f - _g.Model.ForwardFromEmbeddings(secondHalf)[0, -1, T].item<float>();
        for (int p = 0; p < 12; p++) Assert.Equal(p < 6 ? g0 : g1, r.TokenSums[p], 5);
        Assert.Equal("2", r.Parameters["features"]);
    }

    [Theory]
    [InlineData("llm")]
    [InlineData("llm_literal")]
    public void LlmGradientAttribution_Continuation_MatchesCaptum(string prefix)
    {
        var prompt = I64(prefix + ".prompt_ids");
        var targets = I64(prefix + ".target_ids");
        var r = LlmGradientAttribution.Attribute(_g.Model, prompt, targets, Baseline.Token(0), NSteps, IntegrationMethod.GaussLegendre);
        Assert.Equal(4, r.Targets);
        Assert.Equal(8, r.PromptLength);
        Close(prefix + ".token_attr", r.TokenAttr, F32(prefix + ".token_attr"), 1e-6);
        Close(prefix + ".seq_attr", r.SeqAttr, F32(prefix + ".seq_attr"), 1e-6);
        Close(prefix + ".total_ig_attr (linearity)", r.SeqAttr, F32(prefix + ".total_ig_attr"), 1e-6);
        Close(prefix + ".log_probs", r.LogProbs.Select(v => (float)v).ToArray(), F32(prefix + ".log_probs"), 5e-6);
        Close(prefix + ".log_probs_baseline", r.LogProbsBaseline.Select(v => (float)v).ToArray(), F32(prefix + ".log_probs_baseline"), 5e-6);
        Close(prefix + ".delta", r.Deltas.Select(v => (float)v).ToArray(), F32(prefix + ".delta"), 5e-6);
        Close(prefix + ".total_ig_delta", r.Deltas.Sum(), F32(prefix + ".total_ig_delta")[0], 2e-5);
    }

    [Fact]
    public void ContrastiveTarget_IsCaptumIgOfTheLogitDifference_AndLinear()
    {
        var contrast = IntegratedGradients.Attribute(_g.Model, Ids(), AttributionTarget.Contrast(T2), B, NSteps, IntegrationMethod.GaussLegendre);
        Assert.Equal(TargetKind.LogitDifference, contrast.Target.Kind);
        Assert.Equal(T, contrast.Target.TokenId);          // T defaults to the argmax
        Assert.Equal(T2, contrast.Target.ContrastTokenId);
        AssertMethod("ig_contrast", contrast, F32("fc_input")[0]);
        Close("ig_contrast F(baseline)", contrast.FBaseline!.Value, F32("fc_baseline")[0], 2e-6);

        var t1 = IntegratedGradients.Attribute(_g.Model, Ids(), AttributionTarget.Logit(-1, T), B, NSteps, IntegrationMethod.GaussLegendre);
        var t2 = IntegratedGradients.Attribute(_g.Model, Ids(), AttributionTarget.Logit(-1, T2), B, NSteps, IntegrationMethod.GaussLegendre);
        AssertMethod("ig_target", t1, F32("f_input")[0]);
        AssertMethod("ig_target2", t2);
        var difference = t1.Attributions.Zip(t2.Attributions, (a, b) => a - b).ToArray();
        Close("linearity: contrast − (IG(T) − IG(T2))", contrast.Attributions, difference, 1e-6);
        // The warning stays: here |delta| = 3.0e-3 is under 1 % of the 0.388 gap, so no warning.
        Assert.Empty(contrast.Warnings);
    }
}
