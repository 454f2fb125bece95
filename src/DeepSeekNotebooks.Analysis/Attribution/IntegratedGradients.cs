using System.Diagnostics;
using System.Globalization;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Integrated Gradients (Sundararajan, Taly &amp; Yan 2017, "Axiomatic Attribution for Deep Networks") at the embedding
/// layer, as Captum's <c>IntegratedGradients</c> applied to f(E) = F(ForwardFromEmbeddings(E)) (equivalently
/// <c>LayerIntegratedGradients</c> on the embedding): attr = (E − B) ⊙ Σ_k w_k ∂F/∂E(B + α_k (E − B)), with the
/// α_k, w_k of <see cref="ApproximationMethods"/>.
/// </summary>
public static class IntegratedGradients
{
    /// <summary>A convergence delta larger than this fraction of |F(input) − F(baseline)| produces a warning.</summary>
    public const double DeltaWarningFraction = 0.05;

    /// <summary>
    /// Integrated Gradients of <paramref name="target"/> (default: logit of the argmax at the last position) w.r.t. the
    /// token embeddings of <paramref name="inputIds"/> ([seq] or [1, seq]), following Captum's
    /// <c>IntegratedGradients.attribute</c> (Sundararajan et al. 2017): the <paramref name="nSteps"/> scaled inputs
    /// B + α_k(E − B) are evaluated in chunks of <paramref name="internalBatchSize"/> rows (all at once when null), their
    /// gradients weighted by w_k and summed, then multiplied by (E − B). <paramref name="baseline"/> defaults to
    /// <see cref="Baseline.Default"/> (token 0's embedding; zeros are degenerate for RMSNorm models). The convergence
    /// delta is Σ attr − (F(E) − F(B)) (Captum's <c>compute_convergence_delta</c>); when |delta| exceeds
    /// <see cref="DeltaWarningFraction"/>·|F(E) − F(B)| (5 %) a warning is added to the result and traced.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids, target out of range, baseline of the wrong shape, nSteps &lt; 1 (&lt; 2 for Riemann rules), internalBatchSize &lt; 1.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, Baseline? baseline = null,
        int nSteps = 50, IntegrationMethod method = IntegrationMethod.GaussLegendre, int? internalBatchSize = null, bool returnConvergenceDelta = true)
    {
        Validate(nSteps, method, internalBatchSize);
        baseline ??= Baseline.Default;
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var b = baseline.Build(model, p.Embeddings);
        var attr = AttributeEmbeddings(model, p.Embeddings, b, p.Target, nSteps, method, internalBatchSize);
        double fBaseline = AttributionCore.Evaluate(model, b, p.Target)[0];
        var warnings = new List<string>();
        double? delta = null;
        if (returnConvergenceDelta)
        {
            double d = attr.to(float64).sum().item<double>() - (p.FInput - fBaseline);
            delta = d;
            ConvergenceDelta.Check("IG", d, p.FInput, fBaseline, baseline, warnings, model.Config);
        }
        var parameters = new Dictionary<string, string>
        {
            ["n_steps"] = nSteps.ToString(CultureInfo.InvariantCulture),
            ["method"] = ApproximationMethods.CaptumName(method),
            ["baseline"] = baseline.Describe(),
            ["internal_batch_size"] = internalBatchSize?.ToString(CultureInfo.InvariantCulture) ?? "none",
        };
        return AttributionCore.Result(AttributionMethod.IntegratedGradients, p, attr[0], parameters, delta, fBaseline, warnings);
    }

    /// <summary>
    /// The IG attributions [1, seq, dim] of embeddings <paramref name="embeddings"/> [1, seq, dim] against
    /// <paramref name="baselineEmbeddings"/> (same shape) for a resolved target, exactly as in <see cref="Attribute"/>
    /// (Sundararajan et al. 2017; Captum <c>IntegratedGradients._attribute</c>). Returns a tensor in the caller's scope.
    /// </summary>
    public static Tensor AttributeEmbeddings(DeepSeekModel model, Tensor embeddings, Tensor baselineEmbeddings, ResolvedTarget target,
        int nSteps = 50, IntegrationMethod method = IntegrationMethod.GaussLegendre, int? internalBatchSize = null)
    {
        Validate(nSteps, method, internalBatchSize);
        if (!embeddings.shape.SequenceEqual(baselineEmbeddings.shape))
            throw new ArgumentException($"baseline has shape [{string.Join(", ", baselineEmbeddings.shape)}] but the input embeddings are [{string.Join(", ", embeddings.shape)}]", nameof(baselineEmbeddings));
        var (alphas, weights) = ApproximationMethods.Get(method, nSteps);
        int chunk = internalBatchSize ?? nSteps;
        Tensor total;
        using (var scope = NewDisposeScope())
        {
            var x = embeddings.detach();
            var b = baselineEmbeddings.detach();
            var diff = x - b;
            var acc = zeros_like(x);
            for (int start = 0; start < nSteps; start += chunk)
            {
                using var inner = NewDisposeScope();
                int m = Math.Min(chunk, nSteps - start);
                var a = tensor(alphas.Skip(start).Take(m).Select(v => (float)v).ToArray()).view(m, 1, 1).to(x.device);
                var w = tensor(weights.Skip(start).Take(m).Select(v => (float)v).ToArray()).view(m, 1, 1).to(x.device);
                var scaled = b + a * diff;               // [m, seq, dim], Captum: baseline + alpha * (input - baseline)
                var g = AttributionCore.Gradient(model, scaled, target);
                acc.add_((g * w).sum(0, keepdim: true));
            }
            total = (acc * diff).MoveToOuterDisposeScope();
        }
        return total;
    }

    /// <summary>IG as an <see cref="EmbeddingAttributionMethod"/> (for <see cref="NoiseTunnel"/>).</summary>
    public static EmbeddingAttributionMethod AsMethod(Baseline? baseline = null, int nSteps = 50,
        IntegrationMethod method = IntegrationMethod.GaussLegendre, int? internalBatchSize = null)
    {
        Validate(nSteps, method, internalBatchSize);
        var bl = baseline ?? Baseline.Default;
        return (model, e, t) =>
        {
            using var scope = NewDisposeScope();
            return AttributeEmbeddings(model, e, bl.Build(model, e), t, nSteps, method, internalBatchSize).MoveToOuterDisposeScope();
        };
    }

    private static void Validate(int nSteps, IntegrationMethod method, int? internalBatchSize)
    {
        if (nSteps < 1) throw new ArgumentException($"nSteps must be at least 1, got {nSteps}", nameof(nSteps));
        if (method != IntegrationMethod.GaussLegendre && nSteps < 2)
            throw new ArgumentException($"Riemann rules need nSteps ≥ 2 (as Captum), got {nSteps}", nameof(nSteps));
        if (internalBatchSize is < 1) throw new ArgumentException($"internalBatchSize must be at least 1, got {internalBatchSize}", nameof(internalBatchSize));
    }
}
