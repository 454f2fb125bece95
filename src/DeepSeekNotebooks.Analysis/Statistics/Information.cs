namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Mutual information of two discrete variables from their contingency table (counts[x, y]) — e.g. domain label × top-1
/// expert, the statistic used to quantify expert specialisation by domain.
/// </summary>
public static class Information
{
    /// <summary>Shannon entropy (nats) of a count vector; 0 for an empty or single-valued one.</summary>
    public static double Entropy(IEnumerable<long> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        var c = counts.Where(v => v > 0).ToArray();
        double n = c.Sum();
        return n <= 0 ? 0 : -c.Sum(v => v / n * Math.Log(v / n));
    }

    /// <summary>Mutual information I(X; Y) in nats of the empirical joint distribution counts[x, y] / N.</summary>
    /// <exception cref="ArgumentException">A negative count.</exception>
    public static double MutualInformation(long[,] counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        int nx = counts.GetLength(0), ny = counts.GetLength(1);
        var rows = new double[nx]; var cols = new double[ny];
        double n = 0;
        for (int i = 0; i < nx; i++)
            for (int j = 0; j < ny; j++)
            {
                if (counts[i, j] < 0) throw new ArgumentException($"negative count at [{i}, {j}]", nameof(counts));
                rows[i] += counts[i, j]; cols[j] += counts[i, j]; n += counts[i, j];
            }
        if (n == 0) return 0;
        double mi = 0;
        for (int i = 0; i < nx; i++)
            for (int j = 0; j < ny; j++)
                if (counts[i, j] > 0) mi += counts[i, j] / n * Math.Log(counts[i, j] * n / (rows[i] * cols[j]));
        return Math.Max(0, mi);
    }

    /// <summary>
    /// Normalised mutual information I(X; Y) / ((H(X) + H(Y)) / 2) — the arithmetic-mean normalisation (scikit-learn's
    /// default for normalized_mutual_info_score; Strehl &amp; Ghosh 2002 use the geometric mean). In [0, 1]: 0 = independent,
    /// 1 = each variable determines the other. 0 when either variable is constant (and 1 when both are).
    /// </summary>
    public static double NormalisedMutualInformation(long[,] counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        int nx = counts.GetLength(0), ny = counts.GetLength(1);
        var rows = Enumerable.Range(0, nx).Select(i => Enumerable.Range(0, ny).Sum(j => counts[i, j])).ToArray();
        var cols = Enumerable.Range(0, ny).Select(j => Enumerable.Range(0, nx).Sum(i => counts[i, j])).ToArray();
        double hx = Entropy(rows), hy = Entropy(cols);
        if (hx == 0 && hy == 0) return rows.Sum() > 0 ? 1 : 0;
        if (hx == 0 || hy == 0) return 0;
        return Math.Clamp(MutualInformation(counts) / ((hx + hy) / 2), 0, 1);
    }

    /// <summary>
    /// Permutation null of <see cref="NormalisedMutualInformation"/>: the table's N (x, y) pairs are re-paired at random
    /// (margins kept), <paramref name="permutations"/> times; returns the mean and standard deviation of the NMI under
    /// independence. Finite samples give NMI &gt; 0 even for independent variables — compare the observed value to this.
    /// </summary>
    /// <exception cref="ArgumentException">permutations &lt; 1, or the table holds more than 10⁷ pairs.</exception>
    public static (double Mean, double StandardDeviation) NmiPermutationNull(long[,] counts, int permutations = 100, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (permutations < 1) throw new ArgumentException("permutations must be at least 1", nameof(permutations));
        int nx = counts.GetLength(0), ny = counts.GetLength(1);
        long total = 0;
        foreach (var c in counts) total += c;
        if (total > 10_000_000) throw new ArgumentException("too many pairs for a permutation null", nameof(counts));
        var xs = new List<int>(); var ys = new List<int>();
        for (int i = 0; i < nx; i++)
            for (int j = 0; j < ny; j++)
                for (long k = 0; k < counts[i, j]; k++) { xs.Add(i); ys.Add(j); }
        var y = ys.ToArray();
        var rng = new Random(seed);
        var values = new double[permutations];
        for (int p = 0; p < permutations; p++)
        {
            rng.Shuffle(y);
            var t = new long[nx, ny];
            for (int k = 0; k < y.Length; k++) t[xs[k], y[k]]++;
            values[p] = NormalisedMutualInformation(t);
        }
        double mean = values.Average();
        double sd = permutations > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (permutations - 1)) : 0;
        return (mean, sd);
    }
}
