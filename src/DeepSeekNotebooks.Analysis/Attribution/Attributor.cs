using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>Options of <see cref="Attributor.Run(string, DeepSeekModel, Tensor, AttributionTarget?, AttributionOptions?)"/> (each method reads the ones it uses).</summary>
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
}

/// <summary>Runs an attribution method chosen by name (for command lines and notebooks).</summary>
public static class Attributor
{
    /// <summary>The accepted method names: <c>ig</c>, <c>saliency</c>, <c>inputxgrad</c>, <c>smoothgrad</c>, <c>occlusion</c>, <c>attnxgrad</c>.</summary>
    public static IReadOnlyList<string> Methods { get; } = new[] { "ig", "saliency", "inputxgrad", "smoothgrad", "occlusion", "attnxgrad" };

    /// <summary>
    /// Dispatches to <see cref="IntegratedGradients"/> (Sundararajan et al. 2017), <see cref="Saliency"/> (Simonyan et al.
    /// 2013), <see cref="InputXGradient"/> (Shrikumar et al. 2016), <see cref="NoiseTunnel.SmoothGrad"/> (Smilkov et al.
    /// 2017), <see cref="Occlusion"/> (Zeiler &amp; Fergus 2014) or <see cref="AttentionTimesGradient"/> by
    /// <paramref name="method"/> (also accepts <c>integrated_gradients</c>, <c>input_x_gradient</c>, <c>attention_x_gradient</c>).
    /// </summary>
    /// <exception cref="ArgumentException">Unknown method, or any argument error of the method.</exception>
    public static AttributionResult Run(string method, DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, AttributionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(method);
        var o = options ?? new AttributionOptions();
        return method.Trim().ToLowerInvariant().Replace("-", "_") switch
        {
            "ig" or "integrated_gradients" or "integratedgradients" =>
                IntegratedGradients.Attribute(model, inputIds, target, o.Baseline, o.NSteps, o.Integration, o.InternalBatchSize),
            "saliency" => Saliency.Attribute(model, inputIds, target, o.Abs),
            "inputxgrad" or "input_x_gradient" or "inputxgradient" or "ixg" => InputXGradient.Attribute(model, inputIds, target),
            "smoothgrad" or "noise_tunnel" => NoiseTunnel.SmoothGrad(model, inputIds, target, o.NSamples, o.Stdev, o.Seed, o.Abs),
            "occlusion" => Occlusion.Attribute(model, inputIds, target, o.SlidingWindow, o.Stride, o.Baseline),
            "attnxgrad" or "attention_x_gradient" or "attentiontimesgradient" => AttentionTimesGradient.Attribute(model, inputIds, target),
            _ => throw new ArgumentException($"unknown attribution method '{method}': use {string.Join(", ", Methods)}", nameof(method)),
        };
    }

    /// <summary>As <see cref="Run(string, DeepSeekModel, Tensor, AttributionTarget?, AttributionOptions?)"/> with token ids as an array.</summary>
    public static AttributionResult Run(string method, DeepSeekModel model, long[] inputIds, AttributionTarget? target = null, AttributionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        DeepSeekNotebooks.Model.Native.TorchRuntime.EnsureLoaded();
        using var ids = tensor(inputIds, new long[] { 1, inputIds.Length });
        return Run(method, model, ids, target, options);
    }
}
