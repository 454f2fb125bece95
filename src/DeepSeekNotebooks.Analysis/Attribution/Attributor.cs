using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>Options of <see cref="Attributor.Run(AttributionMethod, DeepSeekModel, Tensor, AttributionTarget?, AttributionOptions?)"/> (each method reads the ones it uses).</summary>
public sealed record AttributionOptions
{
    /// <summary>IG baseline / occlusion replacement (default <see cref="Baseline.Default"/>).</summary>
    public Baseline? Baseline { get; init; }
    /// <summary>IG steps.</summary>
    public int NSteps { get; init; } = 50;
    /// <summary>IG integration rule.</summary>
    public IntegrationMethod Integration { get; init; } = IntegrationMethod.GaussLegendre;
    /// <summary>IG internal batch size (null: all steps at once).</summary>
    public int? InternalBatchSize { get; init; }
    /// <summary>Saliency/SmoothGrad absolute value.</summary>
    public bool Abs { get; init; } = true;
    /// <summary>SmoothGrad samples.</summary>
    public int NSamples { get; init; } = 5;
    /// <summary>SmoothGrad noise σ (null: 0.15·range of the embeddings).</summary>
    public double? Stdev { get; init; }
    /// <summary>SmoothGrad seed.</summary>
    public long Seed { get; init; }
    /// <summary>Occlusion window (tokens).</summary>
    public int SlidingWindow { get; init; } = 1;
    /// <summary>Occlusion stride (tokens).</summary>
    public int Stride { get; init; } = 1;
    /// <summary>The block whose output (<c>blocks.{L}.resid_post</c>) the layer methods attribute to (Captum's <c>layer</c>); required by them.</summary>
    public int? Layer { get; init; }
    /// <summary>Feature ablation: one feature id per token (Captum's <c>feature_mask</c> over positions; null: one feature per token).</summary>
    public IReadOnlyList<int>? FeatureMask { get; init; }
    /// <summary>Occlusion / feature ablation: perturbed inputs per forward (Captum's <c>perturbations_per_eval</c>).</summary>
    public int PerturbationsPerEval { get; init; } = 1;
}

/// <summary>Runs an attribution method chosen by value (for command lines and notebooks that pick methods at run time).</summary>
public static class Attributor
{
    /// <summary>
    /// Dispatches to <see cref="IntegratedGradients"/> (Sundararajan et al. 2017), <see cref="Saliency"/> (Simonyan et al.
    /// 2013), <see cref="InputXGradient"/> (Shrikumar et al. 2016), <see cref="NoiseTunnel.SmoothGrad"/> (Smilkov et al.
    /// 2017), <see cref="Occlusion"/> (Zeiler &amp; Fergus 2014), <see cref="AttentionTimesGradient"/>,
    /// <see cref="Attribution.LayerIntegratedGradients"/>, <see cref="Attribution.LayerConductance"/> (both need
    /// <see cref="AttributionOptions.Layer"/>) or <see cref="Attribution.FeatureAblation"/> by
    /// <paramref name="method"/>; the result's <see cref="AttributionResult.Method"/> is <paramref name="method"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Any argument error of the method.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A value outside <see cref="AttributionMethod"/>.</exception>
    public static AttributionResult Run(AttributionMethod method, DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, AttributionOptions? options = null)
    {
        var o = options ?? new AttributionOptions();
        return method switch
        {
            AttributionMethod.IntegratedGradients =>
                IntegratedGradients.Attribute(model, inputIds, target, o.Baseline, o.NSteps, o.Integration, o.InternalBatchSize),
            AttributionMethod.Saliency => Saliency.Attribute(model, inputIds, target, o.Abs),
            AttributionMethod.InputXGradient => InputXGradient.Attribute(model, inputIds, target),
            AttributionMethod.SmoothGrad => NoiseTunnel.SmoothGrad(model, inputIds, target, o.NSamples, o.Stdev, o.Seed, o.Abs),
            AttributionMethod.Occlusion => Occlusion.Attribute(model, inputIds, target, o.SlidingWindow, o.Stride, o.Baseline, o.PerturbationsPerEval),
            AttributionMethod.AttentionXGradient => AttentionTimesGradient.Attribute(model, inputIds, target),
            AttributionMethod.LayerIntegratedGradients =>
                Attribution.LayerIntegratedGradients.Attribute(model, inputIds, RequireLayer(o, method), target, o.Baseline, o.NSteps, o.Integration, o.InternalBatchSize),
            AttributionMethod.LayerConductance =>
                Attribution.LayerConductance.Attribute(model, inputIds, RequireLayer(o, method), target, o.Baseline, o.NSteps, o.Integration, o.InternalBatchSize),
            AttributionMethod.FeatureAblation => Attribution.FeatureAblation.Attribute(model, inputIds, target, o.Baseline, o.FeatureMask, o.PerturbationsPerEval),
            _ => throw new ArgumentOutOfRangeException(nameof(method), method, $"not an AttributionMethod: use one of {string.Join(", ", AttributionMethods.All)}"),
        };
    }

    private static int RequireLayer(AttributionOptions o, AttributionMethod method) =>
        o.Layer ?? throw new ArgumentException($"{method.Name()} attributes to a block's output: set AttributionOptions.Layer to the block index", "options");

    /// <summary>As <see cref="Run(AttributionMethod, DeepSeekModel, Tensor, AttributionTarget?, AttributionOptions?)"/> with token ids as an array.</summary>
    public static AttributionResult Run(AttributionMethod method, DeepSeekModel model, long[] inputIds, AttributionTarget? target = null, AttributionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        DeepSeekNotebooks.Model.Native.TorchRuntime.EnsureLoaded();
        using var ids = tensor(inputIds, new long[] { 1, inputIds.Length });
        return Run(method, model, ids, target, options);
    }
}
