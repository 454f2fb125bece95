namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Entropy and mutual information — the one implementation behind routing entropy, load entropy, attention-head entropy
/// and domain × expert NMI, in the diagnostics, the trainer's training.json and the charts. Edge cases, once for all:
/// a distribution with no mass (empty, or all counts/weights 0) has no entropy and gives NaN; a single outcome has entropy
/// 0 and normalised entropy 1 (it is uniform over its one value); negative or NaN counts/weights are errors. NMI follows
/// scikit-learn: two constant variables give 1, one constant variable gives 0, an empty table gives NaN.
/// </summary>
public static class Information
{
    /// <summary>Shannon entropy (nats) of a count vector; NaN when the total is 0 (no distribution), 0 for a single non-zero count.</summary>
    /// <exception cref="ArgumentException">A negative count.</exception>
    public static double Entropy(IEnumerable<long> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        var c = counts.ToArray();
        for (int i = 0; i < c.Length; i++)
            if (c[i] < 0) throw new ArgumentException($"counts must be non-negative, got {c[i]} at index {i}", nameof(counts));
        double n = c.Sum(v => (double)v), h = 0;
        if (n == 0) return double.NaN;
        foreach (var v in c) if (v > 0) h -= v / n * Math.Log(v / n);
        return h;
    }

    /// <summary>
    /// Shannon entropy (nats) of non-negative weights normalised to sum 1 (scores, probabilities, loads); NaN when they
    /// sum to 0 or the span is empty.
    /// </summary>
    /// <exception cref="ArgumentException">A negative or NaN weight.</exception>
    public static double Entropy(ReadOnlySpan<double> weights) => WeightEntropy(weights);

    /// <inheritdoc cref="Entropy(ReadOnlySpan{double})"/>
    public static double Entropy(ReadOnlySpan<float> weights) => WeightEntropy(weights);

    private static double WeightEntropy<T>(ReadOnlySpan<T> weights) where T : System.Numerics.INumberBase<T>
    {
        double total = 0;
        for (int i = 0; i < weights.Length; i++)
        {
            double w = double.CreateChecked(weights[i]);
            if (!(w >= 0)) throw new ArgumentException($"weights must be non-negative numbers, got {w} at index {i}", nameof(weights));
            total += w;
        }
        if (total == 0) return double.NaN;
        double h = 0;
        foreach (var v in weights)
        {
            double w = double.CreateChecked(v);
            if (w > 0) { double p = w / total; h -= p * Math.Log(p); }
        }
        return h;
    }

    /// <summary>
    /// <see cref="Entropy(ReadOnlySpan{double})"/> / log(length): 1 = uniform, 0 = all mass on one entry; 1 for a single
    /// entry (uniform over one value); NaN when the weights sum to 0.
    /// </summary>
    /// <exception cref="ArgumentException">A negative or NaN weight.</exception>
    public static double NormalisedEntropy(ReadOnlySpan<double> weights)
    {
        double h = Entropy(weights);
        if (double.IsNaN(h)) return h;
        return weights.Length == 1 ? 1 : h / Math.Log(weights.Length);
    }

    /// <inheritdoc cref="NormalisedEntropy(ReadOnlySpan{double})"/>
    public static double NormalisedEntropy(ReadOnlySpan<float> weights)
    {
        double h = Entropy(weights);
        if (double.IsNaN(h)) return h;
        return weights.Length == 1 ? 1 : h / Math.Log(weights.Length);
    }

    /// <summary>Mutual information I(X; Y) in nats of the empirical joint distribution counts[x, y] / N; NaN for an empty table (N = 0).</summary>
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
        if (n == 0) return double.NaN;
        double mi = 0;
        for (int i = 0; i < nx; i++)
            for (int j = 0; j < ny; j++)
                if (counts[i, j] > 0) mi += counts[i, j] / n * Math.Log(counts[i, j] * n / (rows[i] * cols[j]));
        return Math.Max(0, mi);
    }

    /// <summary>
    /// Normalised mutual information I(X; Y) / ((H(X) + H(Y)) / 2) — the arithmetic-mean normalisation (scikit-learn's
    /// default for normalized_mutual_info_score; Strehl &amp; Ghosh 2002 use the geometric mean). In [0, 1]: 0 = independent,
    /// 1 = each variable determines the other. As scikit-learn: 0 when exactly one variable is constant, 1 when both are;
    /// NaN for an empty table (N = 0).
    /// </summary>
    /// <exception cref="ArgumentException">A negative count.</exception>
    public static double NormalisedMutualInformation(long[,] counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        int nx = counts.GetLength(0), ny = counts.GetLength(1);
        var rows = Enumerable.Range(0, nx).Select(i => Enumerable.Range(0, ny).Sum(j => counts[i, j])).ToArray();
        var cols = Enumerable.Range(0, ny).Select(j => Enumerable.Range(0, nx).Sum(i => counts[i, j])).ToArray();
        double mi = MutualInformation(counts);
        if (double.IsNaN(mi)) return double.NaN;
        double hx = Entropy(rows), hy = Entropy(cols);
        if (hx == 0 && hy == 0) return 1;
        if (hx == 0 || hy == 0) return 0;
        return Math.Clamp(mi / ((hx + hy) / 2), 0, 1);
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
