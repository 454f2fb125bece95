namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Effect sizes of one or two samples — the statistics the case studies put bootstrap intervals and permutation tests on
/// (<see cref="Resampling"/>). Edge cases, once for all: an empty sample is an error; Cohen's d of two samples without
/// spread is NaN (0/0), or ±∞ when their means differ.
/// </summary>
public static class EffectSize
{
    /// <summary>The arithmetic mean.</summary>
    /// <exception cref="ArgumentException">An empty sample.</exception>
    public static double Mean(IReadOnlyList<double> sample)
    {
        Check(sample, nameof(sample));
        double s = 0;
        for (int i = 0; i < sample.Count; i++) s += sample[i];
        return s / sample.Count;
    }

    /// <summary>mean(a) − mean(b).</summary>
    /// <exception cref="ArgumentException">An empty sample.</exception>
    public static double MeanDifference(IReadOnlyList<double> a, IReadOnlyList<double> b) => Mean(a) - Mean(b);

    /// <summary>
    /// Cohen's d = (mean(a) − mean(b)) / s_pooled with s_pooled² = ((n_a − 1) s_a² + (n_b − 1) s_b²) / (n_a + n_b − 2) and
    /// s² the unbiased sample variances (Cohen 1988, <i>Statistical Power Analysis for the Behavioral Sciences</i>, §2.5).
    /// Positive when a is larger.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than 3 observations in total (no pooled variance) or an empty sample.</exception>
    public static double CohensD(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        Check(a, nameof(a));
        Check(b, nameof(b));
        if (a.Count + b.Count < 3)
            throw new ArgumentException($"Cohen's d needs at least 3 observations in total for a pooled variance, got {a.Count} + {b.Count}");
        double ma = Mean(a), mb = Mean(b), ss = 0;
        for (int i = 0; i < a.Count; i++) ss += (a[i] - ma) * (a[i] - ma);
        for (int i = 0; i < b.Count; i++) ss += (b[i] - mb) * (b[i] - mb);
        double sd = Math.Sqrt(ss / (a.Count + b.Count - 2));
        return (ma - mb) / sd;
    }

    /// <summary>The share of true values (a proportion, e.g. "flagged cases whose top feature is the device").</summary>
    /// <exception cref="ArgumentException">An empty sample.</exception>
    public static double Share(IReadOnlyList<bool> outcomes)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        if (outcomes.Count == 0) throw new ArgumentException("a share of no outcomes is undefined; pass at least one", nameof(outcomes));
        int k = 0;
        for (int i = 0; i < outcomes.Count; i++) if (outcomes[i]) k++;
        return k / (double)outcomes.Count;
    }

    private static void Check(IReadOnlyList<double> sample, string name)
    {
        ArgumentNullException.ThrowIfNull(sample, name);
        if (sample.Count == 0) throw new ArgumentException($"{name} is empty; an effect size needs at least one observation", name);
    }
}
