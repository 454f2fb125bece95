namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Correlation of paired samples — the one implementation behind method agreement (attribution, rollout vs flow) in the
/// notebooks and charts. Edge case, once for all: a series with no variance (constant, or fewer than two values) has an
/// undefined correlation (0/0) and gives NaN, as <c>scipy.stats.pearsonr</c>/<c>spearmanr</c> do; NaN inputs give NaN.
/// </summary>
public static class Correlation
{
    /// <summary>Pearson's r of two equally long series; NaN when either has zero variance.</summary>
    /// <exception cref="ArgumentException">The series differ in length.</exception>
    public static double Pearson(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        Check(a, b);
        int n = a.Count;
        if (n < 2) return double.NaN;
        double ma = 0, mb = 0;
        for (int i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
        ma /= n; mb /= n;
        double num = 0, da = 0, db = 0;
        for (int i = 0; i < n; i++)
        {
            num += (a[i] - ma) * (b[i] - mb);
            da += (a[i] - ma) * (a[i] - ma);
            db += (b[i] - mb) * (b[i] - mb);
        }
        return da == 0 || db == 0 ? double.NaN : Math.Clamp(num / Math.Sqrt(da * db), -1, 1);
    }

    /// <summary>
    /// Spearman's ρ: Pearson's r of the ranks, ties given their average rank (as <c>scipy.stats.spearmanr</c>); NaN when
    /// either series is constant or holds a NaN.
    /// </summary>
    /// <exception cref="ArgumentException">The series differ in length.</exception>
    public static double Spearman(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        Check(a, b);
        if (a.Any(double.IsNaN) || b.Any(double.IsNaN)) return double.NaN;
        return Pearson(Ranks(a), Ranks(b));
    }

    /// <summary>Pairwise <see cref="Spearman"/> matrix (symmetric; the diagonal is 1, or NaN for a constant series).</summary>
    /// <exception cref="ArgumentException">The series differ in length.</exception>
    public static double[,] SpearmanMatrix(IReadOnlyList<IReadOnlyList<double>> series)
    {
        ArgumentNullException.ThrowIfNull(series);
        int m = series.Count;
        var r = new double[m, m];
        for (int i = 0; i < m; i++)
            for (int j = i; j < m; j++)
                r[i, j] = r[j, i] = Spearman(series[i], series[j]);
        return r;
    }

    /// <summary>1-based ranks with ties averaged (scipy's <c>rankdata(method="average")</c>).</summary>
    public static double[] Ranks(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        int n = values.Count;
        var idx = Enumerable.Range(0, n).OrderBy(i => values[i]).ToArray();
        var ranks = new double[n];
        for (int s = 0; s < n;)
        {
            int e = s;
            while (e + 1 < n && values[idx[e + 1]] == values[idx[s]]) e++;
            double avg = (s + e) / 2.0 + 1;
            for (int k = s; k <= e; k++) ranks[idx[k]] = avg;
            s = e + 1;
        }
        return ranks;
    }

    /// <summary>
    /// Top-k overlap: the fraction of the <paramref name="k"/> largest values of <paramref name="a"/> whose positions are
    /// also among the k largest of <paramref name="b"/> (|top_k(a) ∩ top_k(b)| / k, in [0, 1]; ties broken by position).
    /// A rank-agreement measure that looks only at the most important features, as used to compare saliency maps
    /// (e.g. Adebayo et al. 2018's sanity checks, Hooker et al. 2019).
    /// </summary>
    /// <exception cref="ArgumentException">The series differ in length, or k is not in 1..length.</exception>
    public static double TopKOverlap(IReadOnlyList<double> a, IReadOnlyList<double> b, int k)
    {
        Check(a, b);
        if (k < 1 || k > a.Count) throw new ArgumentException($"k must be in 1..{a.Count} (the series length), got {k}", nameof(k));
        static HashSet<int> Top(IReadOnlyList<double> v, int k) =>
            Enumerable.Range(0, v.Count).OrderByDescending(i => double.IsNaN(v[i]) ? double.NegativeInfinity : v[i]).ThenBy(i => i).Take(k).ToHashSet();
        var ta = Top(a, k);
        ta.IntersectWith(Top(b, k));
        return (double)ta.Count / k;
    }

    /// <summary>
    /// The one-sided critical value of Spearman's ρ for <paramref name="n"/> untied values under independence: the
    /// (1 − <paramref name="alpha"/>) quantile of ρ between a fixed ranking and <paramref name="samples"/> uniformly random
    /// permutations (a seeded permutation null, exact up to Monte Carlo error; the large-n limit is z_{1−α}/√(n − 1)).
    /// NaN for n &lt; 3, where ρ takes too few values to test.
    /// </summary>
    /// <exception cref="ArgumentException">alpha not in (0, 1) or samples &lt; 100.</exception>
    public static double SpearmanCriticalValue(int n, double alpha = 0.05, int samples = 20000, int seed = 0)
    {
        if (!(alpha > 0 && alpha < 1)) throw new ArgumentException($"alpha must be in (0, 1), got {alpha}", nameof(alpha));
        if (samples < 100) throw new ArgumentException($"samples must be at least 100, got {samples}", nameof(samples));
        if (n < 3) return double.NaN;
        var rng = new Random(seed);
        var perm = Enumerable.Range(0, n).ToArray();
        var rho = new double[samples];
        double denom = (double)n * ((double)n * n - 1);
        for (int s = 0; s < samples; s++)
        {
            rng.Shuffle(perm);
            double d2 = 0;
            for (int i = 0; i < n; i++) { double d = perm[i] - i; d2 += d * d; }
            rho[s] = 1 - 6 * d2 / denom;
        }
        Array.Sort(rho);
        return rho[Math.Min(samples - 1, (int)Math.Ceiling((1 - alpha) * samples) - 1)];
    }

    private static void Check(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count != b.Count) throw new ArgumentException($"the series must be equally long: the first has {a.Count} values, the second {b.Count}", nameof(b));
    }
}
