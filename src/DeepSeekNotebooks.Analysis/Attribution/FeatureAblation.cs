using System.Globalization;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Feature ablation over token positions, as Captum's <c>FeatureAblation</c> (<c>captum/attr/_core/feature_ablation.py</c>)
/// with a feature mask that groups the embedding tensor by position: each feature (a token, or a group of tokens) is
/// replaced by the baseline's rows and F(input) − F(ablated) is credited to every element of the feature.
/// Unlike Integrated Gradients it has no completeness: the per-token drops need not add up to F(input) − F(baseline).
/// </summary>
public static class FeatureAblation
{
    /// <summary>
    /// Captum <c>FeatureAblation(f).attribute(E, baselines=B, target, feature_mask=M, perturbations_per_eval)</c> with
    /// M[0, p, d] = <paramref name="featureMask"/>[p] (default: p, one feature per token). Each feature g is ablated by
    /// E·(1 − M_g) + B·M_g (the rows of g replaced by <paramref name="baseline"/>'s, default <see cref="Baseline.Default"/>;
    /// Captum's own default is zeros, <see cref="Baseline.Zeros"/>), and F(E) − F(ablated) is written to every element of
    /// the rows of g. The ablated inputs are evaluated <paramref name="perturbationsPerEval"/> at a time.
    /// <c>TokenSums</c> holds each token's value (every element of a token carries it), not dim × value.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids, target out of range, a mask of the wrong length or with negative ids, perturbationsPerEval &lt; 1.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, Baseline? baseline = null,
        IReadOnlyList<int>? featureMask = null, int perturbationsPerEval = 1)
    {
        baseline ??= Baseline.Default;
        if (perturbationsPerEval < 1) throw new ArgumentException($"perturbationsPerEval must be at least 1, got {perturbationsPerEval}", nameof(perturbationsPerEval));
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        int seq = (int)p.Embeddings.shape[1], dim = (int)p.Embeddings.shape[2];
        var mask = featureMask?.ToArray() ?? Enumerable.Range(0, seq).ToArray();
        if (mask.Length != seq)
            throw new ArgumentException($"featureMask has {mask.Length} entries but the input has {seq} tokens: give one feature id per token", nameof(featureMask));
        if (mask.Any(g => g < 0))
            throw new ArgumentException($"featureMask holds a negative feature id ({mask.First(g => g < 0)}): ids must be ≥ 0", nameof(featureMask));
        var b = baseline.Build(model, p.Embeddings);
        var features = mask.Distinct().Order().ToArray();
        var perToken = new float[seq];
        for (int start = 0; start < features.Length; start += perturbationsPerEval)
        {
            using var inner = NewDisposeScope();
            int m = Math.Min(perturbationsPerEval, features.Length - start);
            var batch = p.Embeddings.expand(m, seq, dim).clone();
            using (var _ = no_grad())
                for (int j = 0; j < m; j++)
                    for (int t = 0; t < seq; t++)
                        if (mask[t] == features[start + j]) batch[j, t] = b[0, t];
            var f = Ablated(model, batch, p.Target, p.FInput);
            for (int j = 0; j < m; j++)
                for (int t = 0; t < seq; t++)
                    if (mask[t] == features[start + j]) perToken[t] = f[j];
        }
        var attr = tensor(perToken).view(seq, 1).expand(seq, dim);
        double fBaseline = AttributionCore.Evaluate(model, b, p.Target)[0];
        var parameters = new Dictionary<string, string>
        {
            ["baseline"] = baseline.Describe(),
            ["features"] = features.Length.ToString(CultureInfo.InvariantCulture),
            ["feature_mask"] = string.Join(",", mask),
            ["perturbations_per_eval"] = perturbationsPerEval.ToString(CultureInfo.InvariantCulture),
        };
        return AttributionCore.Result(AttributionMethod.FeatureAblation, p, attr, parameters, fBaseline: fBaseline, tokenSumsOverride: perToken);
    }

    /// <summary>F(input) − F(row) for each ablated row, in float32 as Captum subtracts (the input's F is the float32 value).</summary>
    private static float[] Ablated(DeepSeekModel model, Tensor batch, ResolvedTarget target, double fInput)
    {
        var f = AttributionCore.Evaluate(model, batch, target);
        return f.Select(v => (float)fInput - (float)v).ToArray();
    }
}
