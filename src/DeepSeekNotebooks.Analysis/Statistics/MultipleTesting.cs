namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Multiple-comparison corrections of a family of p-values, returned in the input order as adjusted p-values (compare
/// each with the family-wise or false-discovery level directly) — the values of R's <c>p.adjust(p, "holm")</c> and
/// <c>p.adjust(p, "BH")</c>.
/// </summary>
public static class MultipleTesting
{
    /// <summary>
    /// Holm's step-down adjustment (Holm 1979, "A simple sequentially rejective multiple test procedure", Scand. J.
    /// Statist. 6:65), controlling the family-wise error rate: with p₍₁₎ ≤ … ≤ p₍ₘ₎,
    /// p̃₍ᵢ₎ = min(1, maxⱼ≤ᵢ (m − j + 1) p₍ⱼ₎).
    /// </summary>
    /// <exception cref="ArgumentException">A p-value outside [0, 1] or NaN, naming its index.</exception>
    public static double[] Holm(IReadOnlyList<double> pValues)
    {
        var order = Sorted(pValues);
        int m = order.Length;
        var adjusted = new double[m];
        double running = 0;
        for (int i = 0; i < m; i++)
        {
            running = Math.Max(running, Math.Min(1, (m - i) * pValues[order[i]]));
            adjusted[order[i]] = running;
        }
        return adjusted;
    }

    /// <summary>
    /// Benjamini–Hochberg step-up adjustment (Benjamini &amp; Hochberg 1995, "Controlling the false discovery rate", JRSS B
    /// 57:289), controlling the false discovery rate for independent or positively dependent tests: with
    /// p₍₁₎ ≤ … ≤ p₍ₘ₎, p̃₍ᵢ₎ = min(1, minⱼ≥ᵢ m p₍ⱼ₎ / j).
    /// </summary>
    /// <exception cref="ArgumentException">A p-value outside [0, 1] or NaN, naming its index.</exception>
    public static double[] BenjaminiHochberg(IReadOnlyList<double> pValues)
    {
        var order = Sorted(pValues);
        int m = order.Length;
        var adjusted = new double[m];
        double running = 1;
        for (int i = m - 1; i >= 0; i--)
        {
            running = Math.Min(running, (double)m / (i + 1) * pValues[order[i]]);
            adjusted[order[i]] = running;
        }
        return adjusted;
    }

    private static int[] Sorted(IReadOnlyList<double> p)
    {
        ArgumentNullException.ThrowIfNull(p);
        for (int i = 0; i < p.Count; i++)
            if (!(p[i] >= 0 && p[i] <= 1))
                throw new ArgumentException($"p-values must lie in [0, 1]; pValues[{i}] is {p[i]}", "pValues");
        return Enumerable.Range(0, p.Count).OrderBy(i => p[i]).ThenBy(i => i).ToArray();
    }
}
