namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>How a bootstrap confidence interval is read off the bootstrap distribution.</summary>
public enum BootstrapMethod
{
    /// <summary>
    /// The percentile interval: the α/2 and 1 − α/2 quantiles of the bootstrap replicates (Efron &amp; Tibshirani 1993,
    /// <i>An Introduction to the Bootstrap</i>, §13.3).
    /// </summary>
    Percentile,

    /// <summary>
    /// The bias-corrected and accelerated interval (Efron 1987, "Better bootstrap confidence intervals", JASA 82:171;
    /// Efron &amp; Tibshirani 1993 §14.3): the percentile interval at levels shifted by the median bias z₀ and the
    /// jackknife acceleration a. Second-order accurate, and transformation-respecting like the percentile interval;
    /// computed as <c>scipy.stats.bootstrap(method="BCa")</c> does (mid-rank z₀, per-sample jackknife for two samples).
    /// </summary>
    BCa,
}

/// <summary>Which tail of the null distribution a permutation test counts (as <c>scipy.stats.permutation_test</c>).</summary>
public enum Alternative
{
    /// <summary>Either direction: twice the smaller one-sided p-value, at most 1.</summary>
    TwoSided,
    /// <summary>The statistic is larger than under the null: counts permuted statistics ≥ the observed one.</summary>
    Greater,
    /// <summary>The statistic is smaller than under the null: counts permuted statistics ≤ the observed one.</summary>
    Less,
}

/// <summary>
/// A bootstrap confidence interval: the statistic on the data (<see cref="Estimate"/>), the interval, and how it was
/// obtained (method, level, resamples, seed) so that it can be reproduced.
/// </summary>
/// <param name="Estimate">The statistic computed on the original sample(s).</param>
/// <param name="Lower">Lower end of the interval.</param>
/// <param name="Upper">Upper end of the interval.</param>
/// <param name="ConfidenceLevel">Nominal coverage, e.g. 0.95.</param>
/// <param name="Method">How the interval was read off; <see cref="BootstrapMethod.Percentile"/> also when BCa was asked for
/// but is undefined for these replicates (the estimate lies outside all of them, so z₀ is infinite).</param>
/// <param name="Resamples">Number of bootstrap resamples B.</param>
/// <param name="Seed">Seed of the resampling.</param>
/// <param name="StandardError">Standard deviation of the B replicates (the bootstrap standard error, ddof 1).</param>
public sealed record BootstrapInterval(double Estimate, double Lower, double Upper, double ConfidenceLevel, BootstrapMethod Method,
    int Resamples, int Seed, double StandardError)
{
    /// <summary>Whether <paramref name="value"/> lies in [<see cref="Lower"/>, <see cref="Upper"/>].</summary>
    public bool Contains(double value) => value >= Lower && value <= Upper;

    /// <summary>Whether the interval excludes 0 (the usual reading of "the effect is distinguishable from none").</summary>
    public bool ExcludesZero => Lower > 0 || Upper < 0;

    /// <summary>"0.412 [0.351, 0.470] (95 % BCa, B = 2000)".</summary>
    public override string ToString() => ToString("0.###");

    /// <summary>Like <see cref="ToString()"/> with a numeric format for the three numbers.</summary>
    public string ToString(string format) =>
        $"{Estimate.ToString(format, System.Globalization.CultureInfo.InvariantCulture)} " +
        $"[{Lower.ToString(format, System.Globalization.CultureInfo.InvariantCulture)}, {Upper.ToString(format, System.Globalization.CultureInfo.InvariantCulture)}] " +
        $"({ConfidenceLevel * 100:0.#} % {Method}, B = {Resamples})";
}

/// <param name="Observed">The statistic on the observed split.</param>
/// <param name="PValue">The p-value; with random permutations (b + 1)/(m + 1) per tail (Phipson &amp; Smyth 2010), with
/// exact enumeration b/m where the observed split is one of the m.</param>
/// <param name="Permutations">m: random permutations drawn, or the number of distinct splits when exact.</param>
/// <param name="Exact">Whether every distinct split of the pooled units was enumerated.</param>
/// <param name="Alternative">The tail(s) counted.</param>
public sealed record PermutationTestResult(double Observed, double PValue, int Permutations, bool Exact, Alternative Alternative)
{
    /// <summary>"T = 0.412, p = 0.0012 (two-sided, 9999 permutations)".</summary>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"T = {Observed:0.###}, p = {PValue:0.####} ({(Alternative == Alternative.TwoSided ? "two-sided" : Alternative.ToString().ToLowerInvariant())}, " +
        $"{(Exact ? $"exact over {Permutations} splits" : $"{Permutations} permutations")})");
}

/// <summary>
/// Seeded resampling statistics: bootstrap confidence intervals (percentile, BCa) of a statistic of one sample, two
/// independent samples, or units given by index (paired or record data), and two-sample permutation tests. The same
/// seed gives the same result on every machine (<see cref="Random(int)"/>'s seeded generator).
/// </summary>
/// <remarks>
/// Bootstrap: Efron &amp; Tibshirani (1993), <i>An Introduction to the Bootstrap</i>, ch. 13–14; two samples are resampled
/// independently, each within itself (the "two-sample bootstrap", §8.3). Quantiles interpolate linearly between order
/// statistics (R's type 7, numpy's default). Permutation tests: the null distribution of the statistic over random
/// re-assignments of the pooled units to the two groups; the p-value of random permutations counts the observed split as
/// one of them, p = (b + 1)/(m + 1) (Phipson &amp; Smyth 2010, "Permutation p-values should never be zero", SAGMB 9:39),
/// and when the number of distinct splits C(n₁+n₂, n₁) is at most the permutations asked for, all splits are enumerated
/// and p = b/m is exact — both as <c>scipy.stats.permutation_test</c>. Comparisons with the observed value allow a
/// relative tolerance of 1e-12 so that splits equal to it in exact arithmetic count as at least as extreme.
/// A statistic that returns NaN on a resample is an error (say, a recall on a resample without positives): use a
/// statistic defined on every resample, or more data.
/// </remarks>
public static class Resampling
{
    /// <summary>Bootstrap confidence interval of <paramref name="statistic"/> of one sample (resampled with replacement).</summary>
    /// <param name="sample">The observations (at least 2, no NaN).</param>
    /// <param name="statistic">The statistic of a sample, e.g. <c>s =&gt; s.Average()</c>.</param>
    /// <param name="resamples">B, the number of bootstrap resamples (≥ 100).</param>
    /// <param name="confidenceLevel">Nominal coverage in (0, 1).</param>
    /// <param name="method">Percentile or BCa.</param>
    /// <param name="seed">Seed of the resampling.</param>
    /// <exception cref="ArgumentException">Too few observations, a NaN observation, B &lt; 100 or a level outside (0, 1).</exception>
    /// <exception cref="InvalidOperationException">The statistic was NaN on the data or on a resample.</exception>
    public static BootstrapInterval Bootstrap(IReadOnlyList<double> sample, Func<IReadOnlyList<double>, double> statistic,
        int resamples = 2000, double confidenceLevel = 0.95, BootstrapMethod method = BootstrapMethod.BCa, int seed = 0)
    {
        CheckSample(sample, nameof(sample));
        ArgumentNullException.ThrowIfNull(statistic);
        var buffer = new double[sample.Count];
        return Bootstrap(sample.Count, idx => statistic(Gather(sample, idx, buffer)), resamples, confidenceLevel, method, seed);
    }

    /// <summary>
    /// Bootstrap confidence interval of a two-sample statistic (a mean difference, Cohen's d, a ratio of shares); each
    /// sample is resampled with replacement within itself, their sizes kept.
    /// </summary>
    /// <param name="a">First sample (at least 2 observations, no NaN).</param>
    /// <param name="b">Second sample (at least 2 observations, no NaN).</param>
    /// <param name="statistic">The statistic of the two samples, e.g. <see cref="EffectSize.MeanDifference"/>.</param>
    /// <param name="resamples">B (≥ 100).</param>
    /// <param name="confidenceLevel">Nominal coverage in (0, 1).</param>
    /// <param name="method">Percentile or BCa (jackknife acceleration summed over the two samples, as scipy).</param>
    /// <param name="seed">Seed of the resampling.</param>
    /// <exception cref="ArgumentException">Too few observations, a NaN observation, B &lt; 100 or a level outside (0, 1).</exception>
    /// <exception cref="InvalidOperationException">The statistic was NaN on the data or on a resample.</exception>
    public static BootstrapInterval Bootstrap(IReadOnlyList<double> a, IReadOnlyList<double> b,
        Func<IReadOnlyList<double>, IReadOnlyList<double>, double> statistic,
        int resamples = 2000, double confidenceLevel = 0.95, BootstrapMethod method = BootstrapMethod.BCa, int seed = 0)
    {
        CheckSample(a, nameof(a));
        CheckSample(b, nameof(b));
        ArgumentNullException.ThrowIfNull(statistic);
        var bufA = new double[a.Count];
        var bufB = new double[b.Count];
        return Bootstrap(a.Count, b.Count, (ia, ib) => statistic(Gather(a, ia, bufA), Gather(b, ib, bufB)), resamples, confidenceLevel, method, seed);
    }

    /// <summary>
    /// Bootstrap over <paramref name="count"/> units given by index: the statistic receives the indices of a resample
    /// (with repetitions) and reads whatever it needs per unit — paired measurements (recall with and without an
    /// intervention on the same cases), records, rows of a table.
    /// </summary>
    /// <param name="count">Number of units (≥ 2).</param>
    /// <param name="statistic">The statistic of the units with these indices (each in [0, count)).</param>
    /// <param name="resamples">B (≥ 100).</param>
    /// <param name="confidenceLevel">Nominal coverage in (0, 1).</param>
    /// <param name="method">Percentile or BCa.</param>
    /// <param name="seed">Seed of the resampling.</param>
    /// <exception cref="ArgumentException">Fewer than 2 units, B &lt; 100 or a level outside (0, 1).</exception>
    /// <exception cref="InvalidOperationException">The statistic was NaN on the data or on a resample.</exception>
    public static BootstrapInterval Bootstrap(int count, Func<IReadOnlyList<int>, double> statistic,
        int resamples = 2000, double confidenceLevel = 0.95, BootstrapMethod method = BootstrapMethod.BCa, int seed = 0)
    {
        CheckCount(count, nameof(count));
        ArgumentNullException.ThrowIfNull(statistic);
        CheckOptions(resamples, confidenceLevel);
        var all = Enumerable.Range(0, count).ToArray();
        double estimate = Evaluate(() => statistic(all), "the data");
        var rng = new Random(seed);
        var idx = new int[count];
        var replicates = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            for (int i = 0; i < count; i++) idx[i] = rng.Next(count);
            replicates[r] = Evaluate(() => statistic(idx), $"bootstrap resample {r}");
        }
        double[][]? jackknife = method == BootstrapMethod.BCa ? new[] { Jackknife(count, leaveOut => statistic(leaveOut)) } : null;
        return Interval(estimate, replicates, jackknife, confidenceLevel, method, seed);
    }

    /// <summary>
    /// Two-sample bootstrap over units given by index: the statistic receives the resampled indices of the first group
    /// (in [0, countA)) and of the second (in [0, countB)), each resampled within its group.
    /// </summary>
    /// <param name="countA">Units in the first group (≥ 2).</param>
    /// <param name="countB">Units in the second group (≥ 2).</param>
    /// <param name="statistic">The statistic of the two groups of units.</param>
    /// <param name="resamples">B (≥ 100).</param>
    /// <param name="confidenceLevel">Nominal coverage in (0, 1).</param>
    /// <param name="method">Percentile or BCa.</param>
    /// <param name="seed">Seed of the resampling.</param>
    /// <exception cref="ArgumentException">A group with fewer than 2 units, B &lt; 100 or a level outside (0, 1).</exception>
    /// <exception cref="InvalidOperationException">The statistic was NaN on the data or on a resample.</exception>
    public static BootstrapInterval Bootstrap(int countA, int countB, Func<IReadOnlyList<int>, IReadOnlyList<int>, double> statistic,
        int resamples = 2000, double confidenceLevel = 0.95, BootstrapMethod method = BootstrapMethod.BCa, int seed = 0)
    {
        CheckCount(countA, nameof(countA));
        CheckCount(countB, nameof(countB));
        ArgumentNullException.ThrowIfNull(statistic);
        CheckOptions(resamples, confidenceLevel);
        var allA = Enumerable.Range(0, countA).ToArray();
        var allB = Enumerable.Range(0, countB).ToArray();
        double estimate = Evaluate(() => statistic(allA, allB), "the data");
        var rng = new Random(seed);
        var ia = new int[countA];
        var ib = new int[countB];
        var replicates = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            for (int i = 0; i < countA; i++) ia[i] = rng.Next(countA);
            for (int i = 0; i < countB; i++) ib[i] = rng.Next(countB);
            replicates[r] = Evaluate(() => statistic(ia, ib), $"bootstrap resample {r}");
        }
        double[][]? jackknife = method == BootstrapMethod.BCa
            ? new[] { Jackknife(countA, leaveOut => statistic(leaveOut, allB)), Jackknife(countB, leaveOut => statistic(allA, leaveOut)) }
            : null;
        return Interval(estimate, replicates, jackknife, confidenceLevel, method, seed);
    }

    /// <summary>
    /// Two-sample permutation test of <paramref name="statistic"/>: is it more extreme on the observed groups than on
    /// random re-assignments of the pooled observations to groups of the same sizes?
    /// </summary>
    /// <param name="a">First sample (≥ 1 observation, no NaN).</param>
    /// <param name="b">Second sample (≥ 1 observation, no NaN).</param>
    /// <param name="statistic">The statistic of the two groups, e.g. <see cref="EffectSize.MeanDifference"/>.</param>
    /// <param name="permutations">Random permutations m (≥ 99); when the distinct splits are at most m, all are enumerated.</param>
    /// <param name="alternative">Which tail(s).</param>
    /// <param name="seed">Seed of the permutations.</param>
    /// <exception cref="ArgumentException">An empty sample, a NaN observation or m &lt; 99.</exception>
    /// <exception cref="InvalidOperationException">The statistic was NaN on the data or on a permutation.</exception>
    public static PermutationTestResult PermutationTest(IReadOnlyList<double> a, IReadOnlyList<double> b,
        Func<IReadOnlyList<double>, IReadOnlyList<double>, double> statistic,
        int permutations = 9999, Alternative alternative = Alternative.TwoSided, int seed = 0)
    {
        CheckSample(a, nameof(a), minimum: 1);
        CheckSample(b, nameof(b), minimum: 1);
        ArgumentNullException.ThrowIfNull(statistic);
        var pooled = a.Concat(b).ToArray();
        var bufA = new double[a.Count];
        var bufB = new double[b.Count];
        return PermutationTest(a.Count, b.Count, (ia, ib) => statistic(Gather(pooled, ia, bufA), Gather(pooled, ib, bufB)), permutations, alternative, seed);
    }

    /// <summary>
    /// Two-sample permutation test over pooled units given by index: units 0 … countA − 1 form the observed first
    /// group, countA … countA + countB − 1 the second; the statistic receives the pooled indices of each group.
    /// </summary>
    /// <param name="countA">Units in the first group (≥ 1).</param>
    /// <param name="countB">Units in the second group (≥ 1).</param>
    /// <param name="statistic">The statistic of the two groups of pooled indices.</param>
    /// <param name="permutations">Random permutations m (≥ 99); when the distinct splits are at most m, all are enumerated.</param>
    /// <param name="alternative">Which tail(s).</param>
    /// <param name="seed">Seed of the permutations.</param>
    /// <exception cref="ArgumentException">An empty group or m &lt; 99.</exception>
    /// <exception cref="InvalidOperationException">The statistic was NaN on the data or on a permutation.</exception>
    public static PermutationTestResult PermutationTest(int countA, int countB, Func<IReadOnlyList<int>, IReadOnlyList<int>, double> statistic,
        int permutations = 9999, Alternative alternative = Alternative.TwoSided, int seed = 0)
    {
        if (countA < 1) throw new ArgumentException($"the first group needs at least 1 unit, got {countA}", nameof(countA));
        if (countB < 1) throw new ArgumentException($"the second group needs at least 1 unit, got {countB}", nameof(countB));
        ArgumentNullException.ThrowIfNull(statistic);
        if (permutations < 99)
            throw new ArgumentException($"permutations must be at least 99 for a p-value resolution of 0.01, got {permutations}", nameof(permutations));
        int n = countA + countB;
        var ia = Enumerable.Range(0, countA).ToArray();
        var ib = Enumerable.Range(countA, countB).ToArray();
        double observed = Evaluate(() => statistic(ia, ib), "the data");
        double tol = 1e-12 * Math.Max(1, Math.Abs(observed));
        long greater = 0, less = 0, m = 0;
        void Count(double t)
        {
            if (t >= observed - tol) greater++;
            if (t <= observed + tol) less++;
            m++;
        }

        double splits = Binomial(n, countA);
        bool exact = splits <= permutations;
        if (exact)
        {
            // Every combination of countA pooled units, in lexicographic order; the observed split is the first.
            var comb = Enumerable.Range(0, countA).ToArray();
            var inA = new bool[n];
            while (true)
            {
                Array.Clear(inA);
                foreach (var c in comb) inA[c] = true;
                int pa = 0, pb = 0;
                for (int u = 0; u < n; u++) { if (inA[u]) ia[pa++] = u; else ib[pb++] = u; }
                Count(Evaluate(() => statistic(ia, ib), $"split {m}"));
                int k = countA - 1;
                while (k >= 0 && comb[k] == n - countA + k) k--;
                if (k < 0) break;
                comb[k]++;
                for (int j = k + 1; j < countA; j++) comb[j] = comb[j - 1] + 1;
            }
        }
        else
        {
            var rng = new Random(seed);
            var perm = Enumerable.Range(0, n).ToArray();
            for (int r = 0; r < permutations; r++)
            {
                for (int i = 0; i < countA; i++)   // partial Fisher–Yates: the first countA positions are a uniform random subset
                {
                    int j = i + rng.Next(n - i);
                    (perm[i], perm[j]) = (perm[j], perm[i]);
                }
                Array.Copy(perm, 0, ia, 0, countA);
                Array.Copy(perm, countA, ib, 0, countB);
                Count(Evaluate(() => statistic(ia, ib), $"permutation {r}"));
            }
        }

        int adjust = exact ? 0 : 1;
        double pGreater = (greater + adjust) / (double)(m + adjust);
        double pLess = (less + adjust) / (double)(m + adjust);
        double p = alternative switch
        {
            Alternative.Greater => pGreater,
            Alternative.Less => pLess,
            _ => Math.Min(1, 2 * Math.Min(pGreater, pLess)),
        };
        return new PermutationTestResult(observed, p, (int)m, exact, alternative);
    }

    // ---- internals -------------------------------------------------------------------------------------------------

    /// <summary>Reads the interval off the replicates; <paramref name="jackknife"/> holds per sample the leave-one-out values (BCa).</summary>
    internal static BootstrapInterval Interval(double estimate, double[] replicates, double[][]? jackknife, double level, BootstrapMethod method, int seed)
    {
        var sorted = (double[])replicates.Clone();
        Array.Sort(sorted);
        double alpha = 1 - level;
        double lo = alpha / 2, hi = 1 - alpha / 2;
        var used = BootstrapMethod.Percentile;
        if (method == BootstrapMethod.BCa && jackknife is not null)
        {
            double z0 = BiasCorrection(sorted, estimate);
            if (double.IsFinite(z0))
            {
                double a = Acceleration(jackknife);
                double Adjust(double q)
                {
                    double z = Normal.Quantile(q);
                    return Normal.Cdf(z0 + (z0 + z) / (1 - a * (z0 + z)));
                }
                lo = Adjust(lo);
                hi = Adjust(hi);
                used = BootstrapMethod.BCa;
            }
        }
        double mean = replicates.Average();
        double se = replicates.Length > 1 ? Math.Sqrt(replicates.Sum(v => (v - mean) * (v - mean)) / (replicates.Length - 1)) : 0;
        return new BootstrapInterval(estimate, Quantile(sorted, lo), Quantile(sorted, hi), level, used, replicates.Length, seed, se);
    }

    /// <summary>z₀ = Φ⁻¹(share of replicates below the estimate, ties counted half) — scipy's mid-rank form of Efron's (14.14).</summary>
    internal static double BiasCorrection(double[] sortedReplicates, double estimate)
    {
        int below = 0, atOrBelow = 0;
        foreach (var v in sortedReplicates)
        {
            if (v < estimate) below++;
            if (v <= estimate) atOrBelow++;
        }
        double share = (below + atOrBelow) / (2.0 * sortedReplicates.Length);
        return share <= 0 || share >= 1 ? double.NaN : Normal.Quantile(share);
    }

    /// <summary>
    /// Jackknife acceleration â = Σⱼ Σᵢ Uⱼᵢ³/nⱼ³ / (6 (Σⱼ Σᵢ Uⱼᵢ²/nⱼ²)^{3/2}) with Uⱼᵢ = (nⱼ − 1)(θ̄ⱼ − θ₍ⱼᵢ₎), the
    /// leave-one-out values θ₍ⱼᵢ₎ of sample j (Efron &amp; Tibshirani 1993 eq. 14.15 for one sample; scipy's sum over samples);
    /// 0 when the statistic does not move under the jackknife.
    /// </summary>
    internal static double Acceleration(IReadOnlyList<double[]> jackknife)
    {
        double num = 0, den = 0;
        foreach (var theta in jackknife)
        {
            int n = theta.Length;
            double mean = theta.Average();
            foreach (var t in theta)
            {
                double u = (n - 1) * (mean - t);
                num += u * u * u / ((double)n * n * n);
                den += u * u / ((double)n * n);
            }
        }
        return den == 0 ? 0 : num / (6 * Math.Pow(den, 1.5));
    }

    /// <summary>The statistic on each leave-one-out set of <paramref name="count"/> indices.</summary>
    private static double[] Jackknife(int count, Func<int[], double> statistic)
    {
        var values = new double[count];
        var idx = new int[count - 1];
        for (int leave = 0; leave < count; leave++)
        {
            for (int i = 0, k = 0; i < count; i++) if (i != leave) idx[k++] = i;
            values[leave] = Evaluate(() => statistic(idx), $"the jackknife sample without unit {leave}");
        }
        return values;
    }

    /// <summary>Quantile of sorted values by linear interpolation between order statistics (R type 7, numpy "linear").</summary>
    internal static double Quantile(double[] sorted, double q)
    {
        if (sorted.Length == 1) return sorted[0];
        double h = (sorted.Length - 1) * Math.Clamp(q, 0, 1);
        int lo = (int)Math.Floor(h);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    private static double Evaluate(Func<double> statistic, string where)
    {
        double v = statistic();
        if (double.IsNaN(v))
            throw new InvalidOperationException($"the statistic is NaN on {where}; resampling needs a statistic defined on every resample " +
                "(e.g. a recall needs at least one positive in each resample: use more data or a statistic without that condition)");
        return v;
    }

    private static IReadOnlyList<double> Gather(IReadOnlyList<double> values, IReadOnlyList<int> idx, double[] buffer)
    {
        var b = idx.Count == buffer.Length ? buffer : new double[idx.Count];
        for (int i = 0; i < idx.Count; i++) b[i] = values[idx[i]];
        return b;
    }

    private static double Binomial(int n, int k)
    {
        double c = 1;
        for (int i = 1; i <= k; i++)
        {
            c = c * (n - k + i) / i;
            if (c > int.MaxValue) return double.PositiveInfinity;
        }
        return Math.Round(c);
    }

    private static void CheckSample(IReadOnlyList<double> sample, string name, int minimum = 2)
    {
        ArgumentNullException.ThrowIfNull(sample, name);
        if (sample.Count < minimum)
            throw new ArgumentException($"{name} needs at least {minimum} observation{(minimum == 1 ? "" : "s")}, got {sample.Count}", name);
        for (int i = 0; i < sample.Count; i++)
            if (!double.IsFinite(sample[i]))
                throw new ArgumentException($"{name}[{i}] is {sample[i]}; observations must be finite numbers", name);
    }

    private static void CheckCount(int count, string name)
    {
        if (count < 2) throw new ArgumentException($"{name} must be at least 2 units to resample, got {count}", name);
    }

    private static void CheckOptions(int resamples, double level)
    {
        if (resamples < 100)
            throw new ArgumentException($"resamples must be at least 100 (2000 or more for a 95 % interval), got {resamples}", nameof(resamples));
        if (!(level > 0 && level < 1))
            throw new ArgumentException($"confidenceLevel must lie strictly between 0 and 1 (e.g. 0.95), got {level}", "confidenceLevel");
    }
}

/// <summary>The standard normal distribution's CDF and quantile, accurate to ~1e-15 absolute — for BCa and normal approximations.</summary>
internal static class Normal
{
    private const double LogSqrtTwoPi = 0.91893853320467274178;

    /// <summary>Φ(x): Marsaglia's (2004, J. Stat. Softw. 11(4)) Taylor series for |x| &lt; 3, Laplace's continued fraction for the tails.</summary>
    public static double Cdf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x < -38) return 0;
        if (x > 38) return 1;
        if (Math.Abs(x) < 3)
        {
            double s = x, t = 0, b = x, q = x * x, i = 1;
            while (s != t) s = (t = s) + (b *= q / (i += 2));
            return 0.5 + s * Math.Exp(-0.5 * q - LogSqrtTwoPi);
        }
        double ax = Math.Abs(x), f = ax;
        for (int k = 300; k >= 1; k--) f = ax + k / f;    // Q(x) = φ(x) / (x + 1/(x + 2/(x + 3/(x + …))))
        double tail = Math.Exp(-0.5 * ax * ax - LogSqrtTwoPi) / f;
        return x > 0 ? 1 - tail : tail;
    }

    /// <summary>Φ⁻¹(p) by bisection to a bracket and Newton steps on <see cref="Cdf"/>; ±∞ at 0 and 1.</summary>
    public static double Quantile(double p)
    {
        if (double.IsNaN(p) || p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "a probability must lie in [0, 1]");
        if (p == 0) return double.NegativeInfinity;
        if (p == 1) return double.PositiveInfinity;
        if (p == 0.5) return 0;
        double lo = -38, hi = 38;
        for (int i = 0; i < 60; i++)
        {
            double mid = 0.5 * (lo + hi);
            if (Cdf(mid) < p) lo = mid; else hi = mid;
            if (hi - lo < 1e-6) break;
        }
        double x = 0.5 * (lo + hi);
        for (int i = 0; i < 5; i++)
        {
            double density = Math.Exp(-0.5 * x * x - LogSqrtTwoPi);
            if (density == 0) break;
            double step = (Cdf(x) - p) / density;
            x -= step;
            if (Math.Abs(step) < 1e-15 * Math.Max(1, Math.Abs(x))) break;
        }
        return x;
    }
}
