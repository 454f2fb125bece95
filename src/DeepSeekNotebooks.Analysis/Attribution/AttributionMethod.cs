using System.Text.Json;
using System.Text.Json.Serialization;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// The identity of an attribution result: which method produced it. Saved files (JSON, the safetensors
/// <c>method</c> metadata key) hold the snake_case name from <see cref="AttributionMethods.Name"/>.
/// </summary>
[JsonConverter(typeof(AttributionMethodJsonConverter))]
public enum AttributionMethod
{
    /// <summary><see cref="Attribution.IntegratedGradients"/> (Sundararajan et al. 2017); saved as <c>integrated_gradients</c>.</summary>
    IntegratedGradients,
    /// <summary><see cref="Attribution.Saliency"/> (Simonyan et al. 2013); saved as <c>saliency</c>.</summary>
    Saliency,
    /// <summary><see cref="Attribution.InputXGradient"/> (Shrikumar et al. 2016); saved as <c>input_x_gradient</c>.</summary>
    InputXGradient,
    /// <summary><see cref="NoiseTunnel.SmoothGrad"/> (Smilkov et al. 2017); saved as <c>smoothgrad</c>.</summary>
    SmoothGrad,
    /// <summary><see cref="Attribution.Occlusion"/> (Zeiler &amp; Fergus 2014); saved as <c>occlusion</c>.</summary>
    Occlusion,
    /// <summary><see cref="Attribution.AttentionTimesGradient"/>; saved as <c>attention_x_gradient</c>.</summary>
    AttentionXGradient,
    /// <summary><see cref="Attribution.LayerIntegratedGradients"/> on a block's output (Captum <c>LayerIntegratedGradients</c>); saved as <c>layer_integrated_gradients</c>.</summary>
    LayerIntegratedGradients,
    /// <summary><see cref="Attribution.LayerConductance"/> on a block's output (Dhamdhere et al. 2018, Captum <c>LayerConductance</c>); saved as <c>layer_conductance</c>.</summary>
    LayerConductance,
    /// <summary><see cref="Attribution.FeatureAblation"/> over token positions (Captum <c>FeatureAblation</c>); saved as <c>feature_ablation</c>.</summary>
    FeatureAblation,
}

/// <summary>The serialised names of <see cref="AttributionMethod"/> (the form in saved results and chart titles).</summary>
public static class AttributionMethods
{
    private static readonly (AttributionMethod Method, string Name)[] Table =
    {
        (AttributionMethod.IntegratedGradients, "integrated_gradients"),
        (AttributionMethod.Saliency, "saliency"),
        (AttributionMethod.InputXGradient, "input_x_gradient"),
        (AttributionMethod.SmoothGrad, "smoothgrad"),
        (AttributionMethod.Occlusion, "occlusion"),
        (AttributionMethod.AttentionXGradient, "attention_x_gradient"),
        (AttributionMethod.LayerIntegratedGradients, "layer_integrated_gradients"),
        (AttributionMethod.LayerConductance, "layer_conductance"),
        (AttributionMethod.FeatureAblation, "feature_ablation"),
    };

    /// <summary>Every method, in declaration order.</summary>
    public static IReadOnlyList<AttributionMethod> All { get; } = Table.Select(t => t.Method).ToArray();

    /// <summary>
    /// The methods that explain the target by the input tokens' embeddings: every method except the layer methods
    /// (<see cref="AttributionMethod.LayerIntegratedGradients"/>, <see cref="AttributionMethod.LayerConductance"/>), which
    /// attribute to a block's output and need <see cref="AttributionOptions.Layer"/>. The default set of the sanity checks
    /// and the deletion/insertion curves.
    /// </summary>
    public static IReadOnlyList<AttributionMethod> InputAttribution { get; } =
        All.Where(m => m is not (AttributionMethod.LayerIntegratedGradients or AttributionMethod.LayerConductance)).ToArray();

    /// <summary>The saved name of <paramref name="method"/>: <c>integrated_gradients</c>, <c>saliency</c>, <c>input_x_gradient</c>,
    /// <c>smoothgrad</c>, <c>occlusion</c>, <c>attention_x_gradient</c>, <c>layer_integrated_gradients</c>, <c>layer_conductance</c>
    /// or <c>feature_ablation</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value outside the enum.</exception>
    public static string Name(this AttributionMethod method)
    {
        foreach (var (m, n) in Table) if (m == method) return n;
        throw new ArgumentOutOfRangeException(nameof(method), method, "not an AttributionMethod");
    }

    /// <summary>The method whose saved name is <paramref name="name"/> (exactly as <see cref="Name"/> writes it), for reading saved results.</summary>
    /// <exception cref="ArgumentException">Any other string; the message lists the saved names.</exception>
    public static AttributionMethod FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var (m, n) in Table) if (n == name) return m;
        throw new ArgumentException($"unknown attribution method name '{name}': saved results use {string.Join(", ", Table.Select(t => t.Name))}", nameof(name));
    }
}

/// <summary>Writes and reads <see cref="AttributionMethod"/> as its saved name.</summary>
internal sealed class AttributionMethodJsonConverter : JsonConverter<AttributionMethod>
{
    public override AttributionMethod Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String) throw new JsonException($"an attribution method must be a string name, got {reader.TokenType}");
        try { return AttributionMethods.FromName(reader.GetString()!); }
        catch (ArgumentException e) { throw new JsonException(e.Message, e); }
    }

    public override void Write(Utf8JsonWriter writer, AttributionMethod value, JsonSerializerOptions options) => writer.WriteStringValue(value.Name());
}
