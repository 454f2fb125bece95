using System.Globalization;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Layer conductance on a block's output, the residual stream <c>blocks.{L}.resid_post</c>, as Captum's
/// <c>LayerConductance(f, model.layers[L])</c> (<c>captum/attr/_core/layer/layer_conductance.py</c>; Dhamdhere,
/// Sundararajan &amp; Yan 2018, "How Important Is a Neuron?"): the path runs in input space, X_k = B + α_k (E − B), and
/// the flow through the layer is Σ_k (h(X_{k+1}) − h(X_k)) ⊙ ∂F/∂h(X_k) — a left Riemann sum of ∫ ∂F/∂h dh along the
/// activations' path, with no quadrature weights.
/// </summary>
public static class LayerConductance
{
    /// <summary>
    /// Conductance of block <paramref name="layer"/>'s output (Captum <c>LayerConductance.attribute(inputs, baselines,
    /// target, n_steps, method, internal_batch_size, return_convergence_delta)</c>): <paramref name="nSteps"/> + 1 points
    /// α_0..α_n from the rule's n + 1 nodes (Gauss–Legendre, Captum's default here, or a Riemann rule's grid; the weights are
    /// not used), activations h_k and gradients g_k = ∂F/∂h at each X_k, attr = Σ_{k&lt;n} (h_{k+1} − h_k) ⊙ g_k, [seq, hidden].
    /// The convergence delta is Σ attr − (F(E) − F(B)); with Gauss–Legendre it also holds the gaps F(X_0) − F(B) and
    /// F(E) − F(X_n), since those nodes stop short of 0 and 1.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids, target out of range, a layer outside 0..layers−1, a baseline of the wrong shape, nSteps &lt; 1, internalBatchSize &lt; 1.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, int layer, AttributionTarget? target = null, Baseline? baseline = null,
        int nSteps = 50, IntegrationMethod method = IntegrationMethod.GaussLegendre, int? internalBatchSize = null, bool returnConvergenceDelta = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        var point = LayerActivations.HookPoint(model, layer);
        LayerIntegratedGradients.Validate(nSteps, IntegrationMethod.GaussLegendre, internalBatchSize);
        baseline ??= Baseline.Default;
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var e = p.Embeddings;
        var b = baseline.Build(model, e);
        var diff = e - b;
        int points = nSteps + 1;
        var (alphas, _) = ApproximationMethods.Get(method, points);
        int chunk = internalBatchSize ?? points;
        var grads = new List<Tensor>();
        var acts = new List<Tensor>();
        for (int start = 0; start < points; start += chunk)
        {
            int m = Math.Min(chunk, points - start);
            var a = tensor(alphas.Skip(start).Take(m).Select(v => (float)v).ToArray()).view(m, 1, 1).to(diff.device);
            var (g, h, _) = LayerActivations.Gradient(model, b + a * diff, point, null, p.Target);   // Captum: baseline + alpha * (input - baseline)
            grads.Add(g); acts.Add(h);
        }
        var grad = cat(grads, 0);
        var act = cat(acts, 0);
        var steps = act.narrow(0, 1, nSteps) - act.narrow(0, 0, nSteps);          // h_{k+1} − h_k
        var attr = (steps * grad.narrow(0, 0, nSteps)).sum(0, keepdim: true);      // left point, summed over the steps
        double fBaseline = AttributionCore.Evaluate(model, b, p.Target)[0];
        var warnings = new List<string>();
        double? delta = null;
        if (returnConvergenceDelta)
        {
            double d = attr.to(float64).sum().item<double>() - (p.FInput - fBaseline);
            delta = d;
            ConvergenceDelta.Check("layer conductance", d, p.FInput, fBaseline, baseline, warnings, model.Config);
        }
        var parameters = new Dictionary<string, string>
        {
            ["layer"] = point,
            ["n_steps"] = nSteps.ToString(CultureInfo.InvariantCulture),
            ["method"] = ApproximationMethods.CaptumName(method),
            ["baseline"] = baseline.Describe(),
            ["internal_batch_size"] = internalBatchSize?.ToString(CultureInfo.InvariantCulture) ?? "none",
        };
        return AttributionCore.Result(AttributionMethod.LayerConductance, p, LayerActivations.PerToken(attr[0]), parameters, delta, fBaseline, warnings);
    }
}
