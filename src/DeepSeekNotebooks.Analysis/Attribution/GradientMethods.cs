using System.Globalization;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Saliency (Simonyan, Vedaldi &amp; Zisserman 2013, "Deep Inside Convolutional Networks: Visualising Image
/// Classification Models and Saliency Maps"), as Captum's <c>Saliency</c>: the gradient of the target w.r.t. the input
/// embeddings, absolute by default (Captum <c>abs=True</c>).
/// </summary>
public static class Saliency
{
    /// <summary>
    /// |∂F/∂E| (or ∂F/∂E when <paramref name="abs"/> is false) at the token embeddings of <paramref name="inputIds"/> for
    /// <paramref name="target"/> (default: logit of the argmax at the last position); Simonyan et al. 2013, Captum
    /// <c>Saliency.attribute(inputs, target, abs=True)</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids or target out of range.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, bool abs = true)
    {
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var attr = AsMethod(abs)(model, p.Embeddings, p.Target);
        return AttributionCore.Result(AttributionMethod.Saliency, p, attr[0], new Dictionary<string, string> { ["abs"] = abs ? "true" : "false" });
    }

    /// <summary>Saliency as an <see cref="EmbeddingAttributionMethod"/> (Simonyan et al. 2013), e.g. for SmoothGrad.</summary>
    public static EmbeddingAttributionMethod AsMethod(bool abs = true) => (model, e, t) =>
    {
        var g = AttributionCore.Gradient(model, e, t);
        return abs ? g.abs() : g;
    };
}

/// <summary>
/// Input × Gradient (Shrikumar, Greenside, Shcherbina &amp; Kundaje 2016, "Not Just a Black Box: Learning Important
/// Features Through Propagating Activation Differences"), as Captum's <c>InputXGradient</c>: E ⊙ ∂F/∂E.
/// </summary>
public static class InputXGradient
{
    /// <summary>
    /// E ⊙ ∂F/∂E at the token embeddings E of <paramref name="inputIds"/> for <paramref name="target"/> (default: logit of
    /// the argmax at the last position); Shrikumar et al. 2016, Captum <c>InputXGradient.attribute</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids or target out of range.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null)
    {
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var attr = AsMethod()(model, p.Embeddings, p.Target);
        return AttributionCore.Result(AttributionMethod.InputXGradient, p, attr[0], new Dictionary<string, string>());
    }

    /// <summary>Input × Gradient as an <see cref="EmbeddingAttributionMethod"/> (Shrikumar et al. 2016).</summary>
    public static EmbeddingAttributionMethod AsMethod() => (model, e, t) => e * AttributionCore.Gradient(model, e, t);
}

/// <summary>How <see cref="NoiseTunnel"/> aggregates the per-sample attributions (Captum's <c>nt_type</c>).</summary>
public enum NoiseTunnelType
{
    /// <summary>Mean of the attributions (Smilkov et al. 2017).</summary>
    SmoothGrad,
    /// <summary>Mean of the squared attributions.</summary>
    SmoothGradSquared,
    /// <summary>Variance of the attributions (Adebayo et al. 2018).</summary>
    VarGrad,
}

/// <summary>
/// NoiseTunnel / SmoothGrad (Smilkov, Thorat, Kim, Viégas &amp; Wattenberg 2017, "SmoothGrad: removing noise by adding
/// noise"), as Captum's <c>NoiseTunnel</c>: the wrapped method's attributions averaged over copies of the input
/// embeddings with Gaussian noise N(0, σ²) added.
/// </summary>
public static class NoiseTunnel
{
    /// <summary>
    /// Runs <paramref name="method"/> (default: <see cref="Saliency"/> with abs) on <paramref name="nSamples"/> noisy copies
    /// E + N(0, σ²) of the token embeddings and aggregates them per <paramref name="ntType"/> (Smilkov et al. 2017; Captum
    /// <c>NoiseTunnel.attribute(nt_type, nt_samples, stdevs)</c>). σ = <paramref name="stdev"/> (absolute, as Captum's
    /// <c>stdevs</c>); when null, σ = 0.15·(max(E) − min(E)), the noise level Smilkov et al. recommend (10–20 % of the input
    /// range; Captum's default 1.0 would swamp embeddings of norm ~1). <paramref name="seed"/> fixes the noise.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids, target out of range, nSamples &lt; 1, negative stdev.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null,
        EmbeddingAttributionMethod? method = null, string methodName = "saliency", NoiseTunnelType ntType = NoiseTunnelType.SmoothGrad,
        int nSamples = 5, double? stdev = null, long seed = 0)
    {
        if (nSamples < 1) throw new ArgumentException($"nSamples must be at least 1, got {nSamples}", nameof(nSamples));
        if (stdev is < 0 || stdev is double.NaN) throw new ArgumentException($"stdev must be ≥ 0, got {stdev}", nameof(stdev));
        method ??= Saliency.AsMethod();
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var e = p.Embeddings;
        double sigma = stdev ?? 0.15 * (e.max().to(float64).item<double>() - e.min().to(float64).item<double>());
        var gen = new Generator((ulong)seed);
        var sum = zeros_like(e, dtype: float64);
        var sumSq = zeros_like(e, dtype: float64);
        for (int s = 0; s < nSamples; s++)
        {
            using var inner = NewDisposeScope();
            var noise = (randn(e.shape, dtype: e.dtype, generator: gen) * sigma).to(e.device);   // CPU generator: the same noise on any device
            var a = method(model, e + noise, p.Target).to(float64);
            sum.add_(a);
            sumSq.add_(a * a);
        }
        var mean = sum / nSamples;
        var meanSq = sumSq / nSamples;
        var attr = ntType switch
        {
            NoiseTunnelType.SmoothGrad => mean,
            NoiseTunnelType.SmoothGradSquared => meanSq,
            NoiseTunnelType.VarGrad => meanSq - mean * mean,
            _ => throw new ArgumentOutOfRangeException(nameof(ntType)),
        };
        var parameters = new Dictionary<string, string>
        {
            ["method"] = methodName,
            ["nt_type"] = ntType switch { NoiseTunnelType.SmoothGrad => "smoothgrad", NoiseTunnelType.SmoothGradSquared => "smoothgrad_sq", _ => "vargrad" },
            ["nt_samples"] = nSamples.ToString(CultureInfo.InvariantCulture),
            ["stdev"] = sigma.ToString("R", CultureInfo.InvariantCulture),
            ["seed"] = seed.ToString(CultureInfo.InvariantCulture),
        };
        return AttributionCore.Result(AttributionMethod.SmoothGrad, p, attr[0], parameters);
    }

    /// <summary>SmoothGrad of saliency (Smilkov et al. 2017): <see cref="Attribute"/> with <see cref="Saliency"/>.</summary>
    public static AttributionResult SmoothGrad(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null,
        int nSamples = 5, double? stdev = null, long seed = 0, bool abs = true) =>
        Attribute(model, inputIds, target, Saliency.AsMethod(abs), "saliency", NoiseTunnelType.SmoothGrad, nSamples, stdev, seed);
}
