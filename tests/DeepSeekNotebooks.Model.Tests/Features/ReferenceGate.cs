namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>
/// An independent double-precision transcription of the <c>Gate.forward</c> of DeepSeek-V3's official
/// <c>inference/model.py</c>, written from the formula (not from this project's implementation):
/// scores = softmax|sigmoid(logits); original = scores; scores += bias (selection only); with groups, group score =
/// amax (no bias) or sum of the top-2 (bias), groups outside the top topk_group are masked with −∞; top-k by the
/// (biased, masked) scores; weights = original[top-k], renormalised for sigmoid (or norm_topk_prob), × route_scale.
/// </summary>
internal static class ReferenceGate
{
    internal sealed record Result(int[] Indices, double[] Weights, double[] Scores, double[] Selection, double Margin);

    public static Result Route(double[] logits, double[]? bias, DeepSeekConfig c)
    {
        int e = c.NRoutedExperts, k = c.NumExpertsPerTok;
        double[] scores;
        if (c.ScoringFunc == ScoringFunc.Softmax)
        {
            double max = logits.Max();
            var ex = logits.Select(v => Math.Exp(v - max)).ToArray();
            double sum = ex.Sum();
            scores = ex.Select(v => v / sum).ToArray();
        }
        else scores = logits.Select(v => 1.0 / (1.0 + Math.Exp(-v))).ToArray();
        return RouteScores(scores, bias, c);
    }

    /// <summary>The same, from given gate scores (after softmax/sigmoid, before bias).</summary>
    public static Result RouteScores(double[] scores, double[]? bias, DeepSeekConfig c)
    {
        int e = c.NRoutedExperts, k = c.NumExpertsPerTok;
        var selection = scores.Select((v, i) => v + (bias?[i] ?? 0.0)).ToArray();
        double margin = double.PositiveInfinity;
        if (c.NGroup > 1)
        {
            int gs = e / c.NGroup;
            var groupScores = new double[c.NGroup];
            for (int g = 0; g < c.NGroup; g++)
            {
                var sorted = selection.Skip(g * gs).Take(gs).OrderByDescending(v => v).ToArray();
                groupScores[g] = bias is null ? sorted[0] : sorted[0] + sorted[1];
            }
            var order = Enumerable.Range(0, c.NGroup).OrderByDescending(g => groupScores[g]).ToArray();
            if (c.TopkGroup < c.NGroup) margin = Math.Min(margin, groupScores[order[c.TopkGroup - 1]] - groupScores[order[c.TopkGroup]]);
            var keep = order.Take(c.TopkGroup).ToHashSet();
            for (int i = 0; i < e; i++)
                if (!keep.Contains(i / gs)) selection[i] = double.NegativeInfinity;
        }
        var byScore = Enumerable.Range(0, e).OrderByDescending(i => selection[i]).ToArray();
        for (int j = 0; j < k; j++)   // also the order inside the top-k matters (top-k order is reported)
            if (j + 1 < e && !double.IsNegativeInfinity(selection[byScore[j + 1]]))
                margin = Math.Min(margin, selection[byScore[j]] - selection[byScore[j + 1]]);
        var idx = byScore.Take(k).ToArray();
        var w = idx.Select(i => scores[i]).ToArray();
        if (c.ScoringFunc == ScoringFunc.Sigmoid || c.NormTopkProb)
        {
            double s = w.Sum();
            w = w.Select(v => v / s).ToArray();
        }
        w = w.Select(v => v * c.RoutedScalingFactor).ToArray();
        return new Result(idx, w, scores, selection, margin);
    }
}
