namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>Load-balance summary of one layer's expert counts.</summary>
/// <param name="MeanLoad">Mean count per expert.</param>
/// <param name="CoefficientOfVariation">Population standard deviation of the counts / mean (0 = perfectly balanced).</param>
/// <param name="MaxVio">(max − mean) / mean: DeepSeek-V3's maximal violation of balance (0 = perfectly balanced).</param>
/// <param name="NormalisedEntropy">Entropy of the load distribution / log(E) (1 = uniform; 0 = one expert takes everything).</param>
public readonly record struct LoadBalanceMetrics(double MeanLoad, double CoefficientOfVariation, double MaxVio, double NormalisedEntropy);

/// <summary>Pure array computations behind the expert diagnostics; usable on any counts, not just traced ones.</summary>
public static class ExpertMetrics
{
    /// <summary>
    /// Load-balance metrics of per-expert selection counts, from <see cref="Statistics.Balance"/> and
    /// <see cref="Statistics.Information"/>: coefficient of variation, MaxVio = (max − mean)/mean (DeepSeek-V3
    /// arXiv:2412.19437 §2.1.2 / Wang et al. 2024) and the normalised entropy of the load distribution. All-zero counts
    /// (nothing routed) give NaN metrics and mean 0 — see <see cref="Statistics.Balance"/> for the edge cases.
    /// </summary>
    /// <exception cref="ArgumentException">Empty or negative counts.</exception>
    public static LoadBalanceMetrics LoadBalance(IReadOnlyList<long> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        var load = counts.Select(c => (double)c).ToArray();
        return new LoadBalanceMetrics(Statistics.Balance.Mean(load, nameof(counts)), Statistics.Balance.CoefficientOfVariation(load),
            Statistics.Balance.MaxVio(load), Statistics.Information.NormalisedEntropy(load));
    }

    /// <summary>
    /// Shannon entropy (nats) of the gate scores normalised to sum 1, divided by log(length) when
    /// <paramref name="normalise"/> — the per-token routing entropy (1 = the router is indifferent). The one
    /// implementation is <see cref="Statistics.Information.Entropy(ReadOnlySpan{float})"/> /
    /// <see cref="Statistics.Information.NormalisedEntropy(ReadOnlySpan{float})"/>: NaN when the scores sum to 0, 1 (normalised)
    /// for a single expert.
    /// </summary>
    /// <exception cref="ArgumentException">A negative or NaN score.</exception>
    public static double Entropy(ReadOnlySpan<float> scores, bool normalise = true) =>
        normalise ? Statistics.Information.NormalisedEntropy(scores) : Statistics.Information.Entropy(scores);

    /// <summary>
    /// Probability that two tokens routed independently, each by the observed top-1 distribution <paramref name="top1Frequencies"/>,
    /// share their top-1 expert: Σₑ pₑ² — the random baseline for Mixtral's (arXiv:2401.04088 Table 5) consecutive-token
    /// repetition (1/E for uniform routing). Frequencies are normalised to sum 1.
    /// </summary>
    public static double Top1RepetitionBaseline(IReadOnlyList<double> top1Frequencies)
    {
        ArgumentNullException.ThrowIfNull(top1Frequencies);
        double total = top1Frequencies.Sum();
        if (!(total > 0)) throw new ArgumentException("frequencies must have a positive sum", nameof(top1Frequencies));
        return top1Frequencies.Sum(p => (p / total) * (p / total));
    }

    /// <summary>
    /// Probability that two independently routed tokens share at least one of their top-k experts, by inclusion–exclusion
    /// truncated at order 2: Σₑ πₑ² − Σ_{e&lt;f} π_{ef}², where πₑ is the fraction of tokens selecting e and π_{ef} the fraction
    /// selecting both e and f (the co-activation matrix / tokens). Exact for k ≤ 2 (two k-sets cannot share three experts);
    /// for k &gt; 2 it is a Bonferroni lower bound. The top-k baseline of Mixtral arXiv:2401.04088 Table 5 (46% for top-2 of 8
    /// uniformly: 1 − C(6,2)/C(8,2)).
    /// </summary>
    /// <param name="coActivation">E×E counts: diagonal = tokens selecting e, off-diagonal = tokens selecting both.</param>
    /// <param name="tokens">Number of routed tokens.</param>
    public static double AnySharedRepetitionBaseline(long[,] coActivation, long tokens)
    {
        ArgumentNullException.ThrowIfNull(coActivation);
        if (tokens <= 0) throw new ArgumentException("tokens must be positive", nameof(tokens));
        int e = coActivation.GetLength(0);
        if (coActivation.GetLength(1) != e) throw new ArgumentException("the co-activation matrix must be square", nameof(coActivation));
        double single = 0, pairs = 0;
        for (int i = 0; i < e; i++)
        {
            double p = (double)coActivation[i, i] / tokens;
            single += p * p;
            for (int j = i + 1; j < e; j++) { double q = (double)coActivation[i, j] / tokens; pairs += q * q; }
        }
        return single - pairs;
    }
}
