namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Divergences between two discrete distributions (nats), e.g. the mean attention of a head on two groups of inputs.
/// Inputs are non-negative weights, normalised to sum 1 here. Edge cases, once for all: weights of different lengths, a
/// negative or NaN weight, or a vector summing to 0 are errors; 0·log 0 = 0.
/// </summary>
public static class Divergence
{
    /// <summary>
    /// Kullback–Leibler divergence KL(p‖q) = Σ pᵢ ln(pᵢ/qᵢ) (Kullback &amp; Leibler 1951; <c>scipy.stats.entropy(p, q)</c>);
    /// +∞ when p has mass where q has none.
    /// </summary>
    /// <exception cref="ArgumentException">Different lengths, a negative/NaN weight, or no mass.</exception>
    public static double KullbackLeibler(IReadOnlyList<double> p, IReadOnlyList<double> q)
    {
        var (a, b) = Normalise(p, q);
        double kl = 0;
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i] == 0) continue;
            if (b[i] == 0) return double.PositiveInfinity;
            kl += a[i] * Math.Log(a[i] / b[i]);
        }
        return Math.Max(0, kl);
    }

    /// <summary>
    /// Jensen–Shannon divergence JS(p, q) = ½ KL(p‖m) + ½ KL(q‖m), m = ½(p + q) (Lin 1991, IEEE Trans. Inf. Theory 37:145):
    /// symmetric, finite, between 0 and ln 2. Its square root is <c>scipy.spatial.distance.jensenshannon</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Different lengths, a negative/NaN weight, or no mass.</exception>
    public static double JensenShannon(IReadOnlyList<double> p, IReadOnlyList<double> q)
    {
        var (a, b) = Normalise(p, q);
        double js = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double m = 0.5 * (a[i] + b[i]);
            if (a[i] > 0) js += 0.5 * a[i] * Math.Log(a[i] / m);
            if (b[i] > 0) js += 0.5 * b[i] * Math.Log(b[i] / m);
        }
        return Math.Clamp(js, 0, Math.Log(2));
    }

    private static (double[] P, double[] Q) Normalise(IReadOnlyList<double> p, IReadOnlyList<double> q)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(q);
        if (p.Count != q.Count) throw new ArgumentException($"the distributions have {p.Count} and {q.Count} outcomes; they must have the same", nameof(q));
        return (One(p, nameof(p)), One(q, nameof(q)));
    }

    private static double[] One(IReadOnlyList<double> w, string name)
    {
        double sum = 0;
        for (int i = 0; i < w.Count; i++)
        {
            if (!(w[i] >= 0)) throw new ArgumentException($"{name}[{i}] is {w[i]}; weights must be non-negative numbers", name);
            sum += w[i];
        }
        if (sum == 0) throw new ArgumentException($"{name} has no mass (all weights 0 or empty); a distribution needs a positive total", name);
        return w.Select(v => v / sum).ToArray();
    }
}
