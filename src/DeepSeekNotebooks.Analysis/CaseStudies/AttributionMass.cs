using DeepSeekNotebooks.Analysis.Attribution;

namespace DeepSeekNotebooks.Analysis.CaseStudies;

/// <summary>
/// How much of an attribution falls on a region of the input: the share of absolute token attribution
/// Σ_{t∈R} |a_t| / Σ_{t∈I} |a_t| over the input positions I (e.g. every patch, without the appended [CLS]) — the
/// "attribution mass" localisation score of pointing-game style evaluations (Zhang et al. 2018, "Top-down neural
/// attention by excitation backprop"; the energy-based pointing game of Wang et al. 2020, Score-CAM). Its chance level is
/// |R| / |I|, the share a uniform attribution would give.
/// </summary>
public static class AttributionMass
{
    /// <summary>Share of |token sum| attribution on <paramref name="region"/> among positions 0..<paramref name="inputLength"/>−1.</summary>
    /// <exception cref="ArgumentException">A region position outside the input, or an input longer than the attribution.</exception>
    public static double Share(AttributionResult attribution, IReadOnlyCollection<int> region, int inputLength) =>
        Share(attribution.TokenSums, region, inputLength);

    /// <summary><see cref="Share(AttributionResult, IReadOnlyCollection{int}, int)"/> over per-position scores.</summary>
    public static double Share(IReadOnlyList<float> tokenScores, IReadOnlyCollection<int> region, int inputLength)
    {
        if (inputLength < 1 || inputLength > tokenScores.Count)
            throw new ArgumentException($"input length must be in [1, {tokenScores.Count}] (the attribution's positions), got {inputLength}", nameof(inputLength));
        foreach (var p in region)
            if (p < 0 || p >= inputLength)
                throw new ArgumentException($"region position {p} is outside the input positions [0, {inputLength - 1}]", nameof(region));
        double total = 0, inside = 0;
        var set = region as ISet<int> ?? new HashSet<int>(region);
        for (int t = 0; t < inputLength; t++)
        {
            double a = Math.Abs(tokenScores[t]);
            total += a;
            if (set.Contains(t)) inside += a;
        }
        return total > 0 ? inside / total : 0;
    }

    /// <summary>The positions of the <paramref name="k"/> largest |scores| among the first <paramref name="inputLength"/>.</summary>
    public static int[] TopPositions(IReadOnlyList<float> tokenScores, int k, int inputLength) =>
        Enumerable.Range(0, inputLength).OrderByDescending(t => Math.Abs(tokenScores[t])).ThenBy(t => t).Take(k).ToArray();
}
