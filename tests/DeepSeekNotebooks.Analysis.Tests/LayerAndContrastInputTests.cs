using DeepSeekNotebooks.Analysis.Attribution;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>Bad input to the layer methods, contrastive targets and continuation attribution; the dispatcher and the contrast identity.</summary>
public class LayerAndContrastInputTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    public LayerAndContrastInputTests(GoldenFixture g) => _g = g;

    [Theory]
    [InlineData(3)]
    [InlineData(-1)]
    public void LayerMethods_UnknownLayer_NameTheValidRange(int layer)
    {
        using var ids = _g.Ids();
        var e1 = Assert.Throws<ArgumentException>(() => LayerIntegratedGradients.Attribute(_g.Model, ids, layer, nSteps: 2));
        var e2 = Assert.Throws<ArgumentException>(() => LayerConductance.Attribute(_g.Model, ids, layer, nSteps: 2));
        foreach (var e in new[] { e1, e2 })
        {
            Assert.Contains($"layer {layer} does not exist", e.Message);
            Assert.Contains("0..2", e.Message);          // the golden model has 3 blocks
            Assert.Equal("layer", e.ParamName);
        }
    }

    [Fact]
    public void Attributor_LayerMethodWithoutLayer_SaysWhatToSet()
    {
        var e = Assert.Throws<ArgumentException>(() => Attributor.Run(AttributionMethod.LayerConductance, _g.Model, _g.InputIds));
        Assert.Contains("AttributionOptions.Layer", e.Message);
    }

    [Fact]
    public void Attributor_DispatchesTheNewMethods_ToTheirClasses()
    {
        var o = new AttributionOptions { Layer = 2, NSteps = 4 };
        var t = AttributionTarget.Logit(-1, 468);
        var lig = Attributor.Run(AttributionMethod.LayerIntegratedGradients, _g.Model, _g.InputIds, t, o);
        Assert.Equal(AttributionMethod.LayerIntegratedGradients, lig.Method);
        Assert.Equal("blocks.2.resid_post", lig.Parameters["layer"]);
        using var ids = _g.Ids();
        var direct = LayerIntegratedGradients.Attribute(_g.Model, ids, 2, t, nSteps: 4);
        Assert.Equal(direct.Attributions, lig.Attributions);
        Assert.Equal(AttributionMethod.LayerConductance, Attributor.Run(AttributionMethod.LayerConductance, _g.Model, _g.InputIds, t, o).Method);
        var fa = Attributor.Run(AttributionMethod.FeatureAblation, _g.Model, _g.InputIds, t, o);
        Assert.Equal(AttributionMethod.FeatureAblation, fa.Method);
        Assert.Equal("feature_ablation", fa.Method.Name());
        Assert.Equal(AttributionMethod.LayerConductance, AttributionMethods.FromName("layer_conductance"));
    }

    [Fact]
    public void Contrast_EqualToTarget_IsRefused()
    {
        var given = Assert.Throws<ArgumentException>(() => AttributionTarget.Contrast(468, -1, 468));
        Assert.Contains("equals the target token", given.Message);
        // The argmax (468 on this input) as the contrast: refused when the target is resolved.
        using var ids = _g.Ids();
        var argmax = Assert.Throws<ArgumentException>(() => Saliency.Attribute(_g.Model, ids, AttributionTarget.Contrast(468)));
        Assert.Contains("contrast token 468 equals the target token (the argmax at position 11)", argmax.Message);
        var range = Assert.Throws<ArgumentException>(() => Saliency.Attribute(_g.Model, ids, AttributionTarget.Contrast(512)));
        Assert.Contains("contrast token 512 is out of range", range.Message);
    }

    [Fact]
    public void LogitDifference_EqualsTheLogProbabilityDifference()
    {
        // log p(A) − log p(B) = logit A − logit B: both log-probabilities subtract the same log-sum-exp.
        using var ids = _g.Ids();
        var contrast = Saliency.Attribute(_g.Model, ids, AttributionTarget.Contrast(7, -1, 468), abs: false);
        var a = Saliency.Attribute(_g.Model, ids, AttributionTarget.LogProbability(-1, 468), abs: false);
        var b = Saliency.Attribute(_g.Model, ids, AttributionTarget.LogProbability(-1, 7), abs: false);
        Assert.Equal(a.FInput!.Value - b.FInput!.Value, contrast.FInput!.Value, 5);
        double err = 0;
        for (int i = 0; i < contrast.Attributions.Length; i++)
            err = Math.Max(err, Math.Abs(contrast.Attributions[i] - (a.Attributions[i] - b.Attributions[i])));
        Assert.True(err < 1e-5 * GoldenFixture.MaxAbs(contrast.Attributions), $"gradient of the logit difference vs of the log-prob difference: {err}");
    }

    [Fact]
    public void Continuation_EmptyOrTooLong_IsRefused()
    {
        var empty = Assert.Throws<ArgumentException>(() => LlmGradientAttribution.Attribute(_g.Model, new long[] { 1, 2 }, Array.Empty<long>()));
        Assert.Contains("the continuation is empty", empty.Message);
        var noPrompt = Assert.Throws<ArgumentException>(() => LlmGradientAttribution.Attribute(_g.Model, Array.Empty<long>(), new long[] { 1 }));
        Assert.Contains("the prompt is empty", noPrompt.Message);
        var badTarget = Assert.Throws<ArgumentException>(() => LlmGradientAttribution.Attribute(_g.Model, new long[] { 1, 2 }, new long[] { 3, 999 }));
        Assert.Contains("token 999 is out of range", badTarget.Message);
        long max = _g.Model.Config.MaxPositionEmbeddings;
        var tooLong = Assert.Throws<ArgumentException>(() => LlmGradientAttribution.Attribute(_g.Model, Enumerable.Repeat(1L, (int)max).ToArray(), new long[] { 3, 4 }));
        Assert.Contains("max_position_embeddings", tooLong.Message);
    }

    [Fact]
    public void FeatureAblation_MaskOfTheWrongLength_IsRefused()
    {
        using var ids = _g.Ids();
        var e = Assert.Throws<ArgumentException>(() => FeatureAblation.Attribute(_g.Model, ids, featureMask: new[] { 0, 1 }));
        Assert.Contains("featureMask has 2 entries but the input has 12 tokens", e.Message);
    }
}

public class LlmAttributionResultTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    public LlmAttributionResultTests(GoldenFixture g) => _g = g;

    [Fact]
    public void Json_RoundTrips_AndTheMatrixIsRowMajorTargetsByPrompt()
    {
        var r = LlmGradientAttribution.Attribute(_g.Model, new long[] { 303, 211, 294 }, new long[] { 53, 204 }, nSteps: 4) with
        {
            PromptTokens = new[] { "a", "b", "c" },
            TargetTokens = new[] { "x", "y" },
        };
        var back = LlmAttributionResult.FromJson(r.ToJson());
        Assert.Equal(r.TokenAttr, back.TokenAttr);
        Assert.Equal(r.Deltas, back.Deltas);
        Assert.Equal(r.PromptTokens, back.PromptTokens);
        Assert.Equal(r.Parameters, back.Parameters);
        var m = r.Matrix();
        Assert.Equal(2, m.GetLength(0));
        Assert.Equal(3, m.GetLength(1));
        Assert.Equal(r.TokenAttr[1 * 3 + 2], m[1, 2]);
        for (int i = 0; i < 3; i++) Assert.Equal(r.TokenAttr[i] + r.TokenAttr[3 + i], r.SeqAttr[i], 6);
        // Row k's completeness as stated: Σ_i TokenAttr[k, i] − (log p − log p_baseline) = delta k.
        for (int k = 0; k < 2; k++)
            Assert.Equal(r.Deltas[k], Enumerable.Range(0, 3).Sum(i => (double)r.At(k, i)) - (r.LogProbs[k] - r.LogProbsBaseline[k]), 5);
    }

    [Fact]
    public void Baseline_ReplacesOnlyThePrompt_SoTheFirstRowEqualsPlainIgOfTheLogProbability()
    {
        // Row 0 has no appended tokens: it is exactly IG of log p(y_0) over the prompt's embeddings.
        var r = LlmGradientAttribution.Attribute(_g.Model, new long[] { 303, 211, 294 }, new long[] { 53, 204 }, Baseline.Token(0), nSteps: 8);
        using var ids = TorchSharp.torch.tensor(new long[] { 303, 211, 294 }, new long[] { 1, 3 });
        var ig = IntegratedGradients.Attribute(_g.Model, ids, AttributionTarget.LogProbability(-1, 53), Baseline.Token(0), 8);
        for (int i = 0; i < 3; i++) Assert.Equal(ig.TokenSums[i], r.At(0, i), 6);
        Assert.Equal(ig.ConvergenceDelta!.Value, r.Deltas[0], 5);
    }
}
