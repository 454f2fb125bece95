using System.Globalization;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Layer Integrated Gradients on a block's output, the residual stream <c>blocks.{L}.resid_post</c>, as Captum's
/// <c>LayerIntegratedGradients(f, model.layers[L])</c> (<c>captum/attr/_core/layer/layer_integrated_gradients.py</c>;
/// IG: Sundararajan, Taly &amp; Yan 2017). The path runs in the layer's activation space: h(B) + α_k (h(E) − h(B)),
/// where h(X) is block L's output of the whole forward from embeddings X (so h(B) is the block output of the baseline
/// sequence, not zero); the activation is substituted through the hook point and F differentiated w.r.t. it.
/// </summary>
public static class LayerIntegratedGradients
{
    /// <summary>
    /// attr = (h(E) − h(B)) ⊙ Σ_k w_k ∂F/∂H(H_k), H_k = h(B) + α_k (h(E) − h(B)), with the α_k, w_k of
    /// <see cref="ApproximationMethods"/> (Captum <c>LayerIntegratedGradients.attribute(inputs, baselines, target, n_steps,
    /// method, internal_batch_size, return_convergence_delta)</c>, <c>attribute_to_layer_input=False</c>). The result's
    /// attributions are [seq, hidden] over block <paramref name="layer"/>'s output ([seq, hc_mult·hidden], stream-major,
    /// on a hyper-connection model (DeepSeek-V4), whose block output is all its streams). The convergence delta uses the
    /// input-space end points, Σ attr − (F(E) − F(B)), as Captum; a delta above
    /// <see cref="IntegratedGradients.DeltaWarningFraction"/> of the gap adds a warning.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids, target out of range, a layer outside 0..layers−1, a baseline of the wrong shape, nSteps &lt; 1 (&lt; 2 for Riemann rules), internalBatchSize &lt; 1.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, int layer, AttributionTarget? target = null, Baseline? baseline = null,
        int nSteps = 50, IntegrationMethod method = IntegrationMethod.GaussLegendre, int? internalBatchSize = null, bool returnConvergenceDelta = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        var point = LayerActivations.HookPoint(model, layer);
        Validate(nSteps, method, internalBatchSize);
        baseline ??= Baseline.Default;
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var e = p.Embeddings;
        var b = baseline.Build(model, e);
        var hE = LayerActivations.Read(model, e, point, p.Target);
        var hB = LayerActivations.Read(model, b, point, p.Target);
        var diff = hE - hB;
        var (alphas, weights) = ApproximationMethods.Get(method, nSteps);
        int chunk = internalBatchSize ?? nSteps;
        var acc = zeros_like(hE);
        for (int start = 0; start < nSteps; start += chunk)
        {
            using var inner = NewDisposeScope();
            int m = Math.Min(chunk, nSteps - start);
            var a = tensor(alphas.Skip(start).Take(m).Select(v => (float)v).ToArray()).view(LayerActivations.BatchShape(m, hE)).to(diff.device);
            var w = tensor(weights.Skip(start).Take(m).Select(v => (float)v).ToArray()).view(LayerActivations.BatchShape(m, hE)).to(diff.device);
            var scaled = hB + a * diff;                                   // Captum: baseline + alpha * (input - baseline), in layer space
            var (g, _, _) = LayerActivations.Gradient(model, e.expand(m, -1, -1).contiguous(), point, scaled, p.Target);
            acc.add_((g * w).sum(0, keepdim: true));
        }
        var attr = acc * diff;
        double fBaseline = AttributionCore.Evaluate(model, b, p.Target)[0];
        var warnings = new List<string>();
        double? delta = null;
        if (returnConvergenceDelta)
        {
            double d = attr.to(float64).sum().item<double>() - (p.FInput - fBaseline);
            delta = d;
            ConvergenceDelta.Check("layer IG", d, p.FInput, fBaseline, baseline, warnings, model.Config);
        }
        var parameters = new Dictionary<string, string>
        {
            ["layer"] = point,
            ["n_steps"] = nSteps.ToString(CultureInfo.InvariantCulture),
            ["method"] = ApproximationMethods.CaptumName(method),
            ["baseline"] = baseline.Describe(),
            ["internal_batch_size"] = internalBatchSize?.ToString(CultureInfo.InvariantCulture) ?? "none",
        };
        return AttributionCore.Result(AttributionMethod.LayerIntegratedGradients, p, LayerActivations.PerToken(attr[0]), parameters, delta, fBaseline, warnings);
    }

    internal static void Validate(int nSteps, IntegrationMethod method, int? internalBatchSize)
    {
        if (nSteps < 1) throw new ArgumentException($"nSteps must be at least 1, got {nSteps}", nameof(nSteps));
        if (method != IntegrationMethod.GaussLegendre && nSteps < 2)
            throw new ArgumentException($"Riemann rules need nSteps ≥ 2 (as Captum), got {nSteps}", nameof(nSteps));
        if (internalBatchSize is < 1) throw new ArgumentException($"internalBatchSize must be at least 1, got {internalBatchSize}", nameof(internalBatchSize));
    }
}
