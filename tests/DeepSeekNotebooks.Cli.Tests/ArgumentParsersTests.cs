using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Cli.Commands;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>The command line's spellings of typed analysis values (moved here from Analysis, issue 11).</summary>
public class ArgumentParsersTests
{
    [Theory]
    [InlineData("ig", AttributionMethod.IntegratedGradients)]
    [InlineData("IG", AttributionMethod.IntegratedGradients)]
    [InlineData("integrated_gradients", AttributionMethod.IntegratedGradients)]
    [InlineData("saliency", AttributionMethod.Saliency)]
    [InlineData("inputxgrad", AttributionMethod.InputXGradient)]
    [InlineData("input_x_gradient", AttributionMethod.InputXGradient)]
    [InlineData("smoothgrad", AttributionMethod.SmoothGrad)]
    [InlineData("occlusion", AttributionMethod.Occlusion)]
    [InlineData("attnxgrad", AttributionMethod.AttentionXGradient)]
    [InlineData(" attention_x_gradient ", AttributionMethod.AttentionXGradient)]
    [InlineData("layer-ig", AttributionMethod.LayerIntegratedGradients)]
    [InlineData("layer_integrated_gradients", AttributionMethod.LayerIntegratedGradients)]
    [InlineData("layer-conductance", AttributionMethod.LayerConductance)]
    [InlineData("feature-ablation", AttributionMethod.FeatureAblation)]
    public void AttributionMethod_AcceptsCliAndSavedNames(string text, AttributionMethod expected) =>
        Assert.Equal(expected, ArgumentParsers.ParseAttributionMethod(text));

    [Fact]
    public void EveryMethod_HasACliName() =>
        Assert.Equal(Enum.GetValues<AttributionMethod>(), ArgumentParsers.AttributionMethodNames.Select(m => m.Method).Order());

    [Fact]
    public void Baseline_ParsesZerosAndToken()
    {
        Assert.Equal(Baseline.Zeros, ArgumentParsers.ParseBaseline("zeros"));
        Assert.Equal(Baseline.Zeros, ArgumentParsers.ParseBaseline(" Zero "));
        Assert.Equal(Baseline.Token(5), ArgumentParsers.ParseBaseline("token:5"));
        Assert.Equal(Baseline.Token(0), ArgumentParsers.ParseBaseline("TOKEN:0"));
    }

    [Theory]
    [InlineData("mean", HeadFusion.Mean)]
    [InlineData("MAX", HeadFusion.Max)]
    [InlineData(" min", HeadFusion.Min)]
    public void HeadFusion_IsCaseInsensitive(string text, HeadFusion expected) => Assert.Equal(expected, ArgumentParsers.ParseHeadFusion(text));

    [Theory]
    [InlineData("gausslegendre", IntegrationMethod.GaussLegendre)]
    [InlineData("riemann_left", IntegrationMethod.RiemannLeft)]
    [InlineData("Riemann-Right", IntegrationMethod.RiemannRight)]
    [InlineData("riemann_middle", IntegrationMethod.RiemannMiddle)]
    [InlineData("riemann_trapezoid", IntegrationMethod.RiemannTrapezoid)]
    public void Integration_TakesCaptumsNames(string text, IntegrationMethod expected) => Assert.Equal(expected, ArgumentParsers.ParseIntegration(text));

    [Fact]
    public void BadValues_NameTheOptionTheTextAndTheChoices()
    {
        Bad(() => ArgumentParsers.ParseAttributionMethod("lime"), "--method", "'lime'", "ig, saliency, inputxgrad, smoothgrad, occlusion, attnxgrad");
        Bad(() => ArgumentParsers.ParseBaseline("ones"), "--baseline", "'ones'", "token:<id>");
        Bad(() => ArgumentParsers.ParseBaseline("token:x"), "--baseline", "'token:x'", "zeros");
        Bad(() => ArgumentParsers.ParseBaseline("token:-1"), "--baseline", "'token:-1'", "non-negative");   // was accepted, failing later inside IG
        Bad(() => ArgumentParsers.ParseBaseline("token:"), "--baseline", "'token:'", "token:<id>");
        Bad(() => ArgumentParsers.ParseHeadFusion("1"), "--head-fusion", "'1'", "mean, max or min");       // Enum.TryParse would accept a number
        Bad(() => ArgumentParsers.ParseHeadFusion("median"), "--head-fusion", "'median'", "mean, max or min");
        Bad(() => ArgumentParsers.ParseIntegration("simpson"), "--integration", "'simpson'", "riemann_trapezoid");
    }

    private static void Bad(Action a, params string[] parts)
    {
        var e = Assert.Throws<UsageException>(a);
        foreach (var p in parts) Assert.Contains(p, e.Message);
    }
}
