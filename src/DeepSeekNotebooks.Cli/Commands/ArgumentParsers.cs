using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// The command line's spellings of the analysis library's typed values (the library itself takes only the typed
/// values). Each parser throws a <see cref="UsageException"/> naming the option, the bad text and the accepted forms.
/// </summary>
internal static class ArgumentParsers
{
    /// <summary>The <c>--method</c> names of <c>attribute</c>, in help order, with the method each selects.</summary>
    internal static readonly IReadOnlyList<(string Name, AttributionMethod Method)> AttributionMethodNames = new[]
    {
        ("ig", AttributionMethod.IntegratedGradients),
        ("saliency", AttributionMethod.Saliency),
        ("inputxgrad", AttributionMethod.InputXGradient),
        ("smoothgrad", AttributionMethod.SmoothGrad),
        ("occlusion", AttributionMethod.Occlusion),
        ("attnxgrad", AttributionMethod.AttentionXGradient),
        ("layer-ig", AttributionMethod.LayerIntegratedGradients),
        ("layer-conductance", AttributionMethod.LayerConductance),
        ("feature-ablation", AttributionMethod.FeatureAblation),
    };

    /// <summary>
    /// <c>ig</c>, <c>saliency</c>, <c>inputxgrad</c>, <c>smoothgrad</c>, <c>occlusion</c>, <c>attnxgrad</c>, or a saved
    /// name (<c>integrated_gradients</c>, <c>input_x_gradient</c>, <c>attention_x_gradient</c>, …); case-insensitive.
    /// </summary>
    internal static AttributionMethod ParseAttributionMethod(string text, string option = "--method")
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim().ToLowerInvariant();
        foreach (var (name, method) in AttributionMethodNames) if (name == s) return method;
        foreach (var method in AttributionMethods.All) if (method.Name() == s) return method;
        throw new UsageException($"{option}: unknown attribution method '{text}': use {string.Join(", ", AttributionMethodNames.Select(m => m.Name))}");
    }

    /// <summary><c>zeros</c> (or <c>zero</c>) or <c>token:&lt;id&gt;</c>; case-insensitive.</summary>
    internal static Baseline ParseBaseline(string text, string option = "--baseline")
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim();
        if (s.Equals("zeros", StringComparison.OrdinalIgnoreCase) || s.Equals("zero", StringComparison.OrdinalIgnoreCase)) return Baseline.Zeros;
        if (s.StartsWith("token:", StringComparison.OrdinalIgnoreCase) && long.TryParse(s.AsSpan(6), out var id) && id >= 0) return Baseline.Token(id);
        throw new UsageException($"{option}: unknown baseline '{text}': use 'zeros' or 'token:<id>' with a non-negative id (e.g. token:0)");
    }

    /// <summary><c>mean</c>, <c>max</c> or <c>min</c>; case-insensitive.</summary>
    internal static HeadFusion ParseHeadFusion(string text, string option = "--head-fusion") =>
        text?.Trim().ToLowerInvariant() switch
        {
            "mean" => HeadFusion.Mean,
            "max" => HeadFusion.Max,
            "min" => HeadFusion.Min,
            _ => throw new UsageException($"{option}: unknown head fusion '{text}': use mean, max or min"),
        };

    /// <summary>Captum's names <c>gausslegendre</c>, <c>riemann_left|right|middle|trapezoid</c> (also <c>-</c> for <c>_</c>); case-insensitive.</summary>
    internal static IntegrationMethod ParseIntegration(string text, string option = "--integration")
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim().ToLowerInvariant().Replace("-", "_");
        foreach (var m in Enum.GetValues<IntegrationMethod>()) if (ApproximationMethods.CaptumName(m) == s) return m;
        throw new UsageException($"{option}: unknown integration method '{text}': use {string.Join(", ", Enum.GetValues<IntegrationMethod>().Select(ApproximationMethods.CaptumName))}");
    }
}
