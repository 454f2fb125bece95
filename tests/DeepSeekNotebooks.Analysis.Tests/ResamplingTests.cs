using DeepSeekNotebooks.Analysis.Statistics;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// Resampling statistics against independent expectations: scipy 1.10's <c>stats.bootstrap</c> and
/// <c>stats.permutation_test</c> on fixed data (400 000 resamples there, so their Monte-Carlo error is negligible; the
/// script is in each test's comment), R 4.2's <c>p.adjust</c>, hand-computed cases, the closed-form jackknife
/// acceleration of the mean, normal approximations, and coverage / null rejection rates on simulated data.
/// </summary>
public class ResamplingTests
{
    // Skewed (log-normal-like) sample and a second sample, the same arrays as in the scipy script.
    private static readonly double[] X =
    {
        0.12, 0.35, 0.08, 1.9, 0.44, 0.27, 0.61, 3.2, 0.15, 0.52, 0.09, 0.78, 1.1, 0.33, 0.05, 2.4, 0.21, 0.66, 0.18,
        0.95, 0.41, 0.07, 1.45, 0.29, 0.58,
    };
    private static readonly double[] Y =
    {
        0.31, 0.72, 0.55, 1.2, 0.48, 0.93, 0.62, 0.85, 1.7, 0.44, 0.67, 0.79, 0.58, 1.05, 0.36, 0.91, 0.74, 0.52, 0.88, 0.63,
    };

    [Fact]
    public void Normal_CdfAndQuantile_MatchScipy()
    {
        // scipy.stats.norm.cdf / .ppf
        Assert.Equal(0.8413447460685429, Normal.Cdf(1.0), 14);
        Assert.Equal(0.0013498980316300933, Normal.Cdf(-3.0), 15);
        Assert.Equal(0.9937903346742238, Normal.Cdf(2.5), 14);
        Assert.Equal(2.866515718791933e-07, Normal.Cdf(-5.0), 1e-19);
        Assert.Equal(6.22096057427174e-16, Normal.Cdf(-8.0), 1e-27);
        Assert.Equal(1.959963984540054, Normal.Quantile(0.975), 12);
        Assert.Equal(-3.090232306167813, Normal.Quantile(0.001), 12);
        Assert.Equal(-6.361340902404056, Normal.Quantile(1e-10), 9);
        Assert.Equal(0.5244005127080407, Normal.Quantile(0.7), 12);
    }

    [Fact]
    public void Acceleration_OfTheMean_IsTheClosedForm()
    {
        // Efron & Tibshirani (1993) eq. 14.15 for the mean reduces to Σd³ / (6 (Σd²)^{3/2}), d = x − x̄ (numpy: 0.06198945612377453).
        var loo = Enumerable.Range(0, X.Length).Select(i => X.Where((_, j) => j != i).Average()).ToArray();
        Assert.Equal(0.06198945612377453, Resampling.Acceleration(new[] { loo }), 12);
    }

    [Theory]
    // scipy.stats.bootstrap((x,), np.mean, n_resamples=400000, method=m, confidence_level=0.95)
    [InlineData(BootstrapMethod.Percentile, 0.414, 1.018)]
    [InlineData(BootstrapMethod.BCa, 0.45160000000000006, 1.0938837784769944)]
    public void OneSampleMean_MatchesScipy(BootstrapMethod method, double low, double high)
    {
        var ci = Resampling.Bootstrap(X, s => s.Average(), resamples: 20000, method: method, seed: 3);
        Assert.Equal(method, ci.Method);
        Assert.Equal(X.Average(), ci.Estimate, 12);
        Assert.Equal(low, ci.Lower, 0.02);
        Assert.Equal(high, ci.Upper, 0.02);
        // BCa moves a right-skewed sample's interval to the right of the percentile interval (positive acceleration).
        if (method == BootstrapMethod.BCa)
        {
            var pct = Resampling.Bootstrap(X, s => s.Average(), resamples: 20000, method: BootstrapMethod.Percentile, seed: 3);
            Assert.True(ci.Lower > pct.Lower && ci.Upper > pct.Upper);
        }
    }

    [Theory]
    // scipy.stats.bootstrap((x, y), mean(x) − mean(y), n_resamples=400000, method=m, confidence_level=0.90)
    [InlineData(BootstrapMethod.Percentile, -0.3235, 0.23160000000000003)]
    [InlineData(BootstrapMethod.BCa, -0.2954000000000001, 0.27500000000000013)]
    public void TwoSampleMeanDifference_MatchesScipy(BootstrapMethod method, double low, double high)
    {
        var ci = Resampling.Bootstrap(X, Y, EffectSize.MeanDifference, resamples: 20000, confidenceLevel: 0.90, method: method, seed: 5);
        Assert.Equal(X.Average() - Y.Average(), ci.Estimate, 12);
        Assert.Equal(low, ci.Lower, 0.02);
        Assert.Equal(high, ci.Upper, 0.02);
        Assert.True(ci.Contains(ci.Estimate));
        Assert.False(ci.ExcludesZero);
    }

    [Fact]
    public void BootstrapStandardError_OfTheMean_IsTheClassicalOne()
    {
        // The bootstrap SE of a mean tends to σ̂/√n with σ̂ the plug-in (divide by n) standard deviation (Efron & Tibshirani eq. 5.11).
        double m = X.Average();
        double plugIn = Math.Sqrt(X.Sum(v => (v - m) * (v - m)) / X.Length) / Math.Sqrt(X.Length);
        var ci = Resampling.Bootstrap(X, s => s.Average(), resamples: 20000, method: BootstrapMethod.Percentile, seed: 11);
        Assert.Equal(plugIn, ci.StandardError, plugIn * 0.03);
    }

    [Fact]
    public void ShareInterval_AgreesWithTheWaldInterval_ForALargeSample()
    {
        // 120 of 400 successes: Wald 0.3 ± 1.95996·√(0.3·0.7/400) = [0.25509, 0.34491]; the percentile bootstrap of a
        // proportion this far from 0 and 1 agrees to Monte-Carlo error.
        var outcomes = Enumerable.Range(0, 400).Select(i => i % 10 < 3).ToArray();
        var ci = Resampling.Bootstrap(outcomes.Length, idx => EffectSize.Share(idx.Select(i => outcomes[i]).ToArray()),
            resamples: 4000, method: BootstrapMethod.Percentile, seed: 2);
        Assert.Equal(0.3, ci.Estimate, 12);
        double half = 1.959963984540054 * Math.Sqrt(0.3 * 0.7 / 400);
        Assert.Equal(0.3 - half, ci.Lower, 0.006);
        Assert.Equal(0.3 + half, ci.Upper, 0.006);
    }

    [Theory]
    [InlineData(BootstrapMethod.Percentile)]
    [InlineData(BootstrapMethod.BCa)]
    public void Coverage_OfTheMeanOfExponentialSamples_IsNearNominal(BootstrapMethod method)
    {
        // 300 samples of 40 from Exp(1) (true mean 1): a 95 % interval must cover 1 in about 95 % of them. The bootstrap
        // undercovers slightly for skewed data at n = 40 (≈ 0.93 for the percentile interval); a broken interval
        // (e.g. quantiles swapped, or se not scaled) lands far outside [0.89, 0.99].
        var rng = new Random(20261201);
        int covered = 0, trials = 300;
        for (int t = 0; t < trials; t++)
        {
            var s = Enumerable.Range(0, 40).Select(_ => -Math.Log(1 - rng.NextDouble())).ToArray();
            var ci = Resampling.Bootstrap(s, v => v.Average(), resamples: 1000, method: method, seed: t);
            if (ci.Contains(1.0)) covered++;
        }
        double coverage = covered / (double)trials;
        Assert.InRange(coverage, 0.89, 0.99);
    }

    [Fact]
    public void Bootstrap_IsDeterministicPerSeed()
    {
        var a = Resampling.Bootstrap(X, s => s.Average(), seed: 7);
        var b = Resampling.Bootstrap(X, s => s.Average(), seed: 7);
        var c = Resampling.Bootstrap(X, s => s.Average(), seed: 8);
        Assert.Equal(a, b);
        Assert.NotEqual(a.Lower, c.Lower);
    }

    [Fact]
    public void ConstantSample_GivesAPointInterval()
    {
        var ci = Resampling.Bootstrap(new double[] { 2.5, 2.5, 2.5, 2.5 }, s => s.Average());
        Assert.Equal((2.5, 2.5, 0.0), (ci.Lower, ci.Upper, ci.StandardError));
    }

    [Fact]
    public void PermutationTest_SmallSamples_IsExact_AndMatchesScipy()
    {
        // 5 + 6 observations: C(11, 5) = 462 splits ≤ 9999, so every split is enumerated.
        // scipy.stats.permutation_test((a, b), mean diff, permutation_type="independent", alternative=…, n_resamples=10000)
        double[] a = { 2.1, 3.4, 1.9, 4.0, 2.8 }, b = { 3.9, 4.4, 3.1, 5.2, 4.8, 3.6 };
        var two = Resampling.PermutationTest(a, b, EffectSize.MeanDifference);
        Assert.True(two.Exact);
        Assert.Equal(462, two.Permutations);
        Assert.Equal(-1.326666666666667, two.Observed, 12);
        Assert.Equal(0.03463203463203463, two.PValue, 14);
        Assert.Equal(0.9848484848484849, Resampling.PermutationTest(a, b, EffectSize.MeanDifference, alternative: Alternative.Greater).PValue, 14);
        Assert.Equal(0.017316017316017316, Resampling.PermutationTest(a, b, EffectSize.MeanDifference, alternative: Alternative.Less).PValue, 14);
    }

    [Fact]
    public void PermutationTest_HandComputedCase()
    {
        // {1,2,3} vs {4,5,6}: of the C(6,3) = 20 splits only the observed one and its mirror reach |difference| 3, so the
        // exact two-sided p is 2/20 and the one-sided 1/20.
        double[] a = { 1, 2, 3 }, b = { 4, 5, 6 };
        Assert.Equal(0.1, Resampling.PermutationTest(a, b, EffectSize.MeanDifference).PValue, 14);
        Assert.Equal(0.05, Resampling.PermutationTest(a, b, EffectSize.MeanDifference, alternative: Alternative.Less).PValue, 14);
        Assert.Equal(1.0, Resampling.PermutationTest(a, b, EffectSize.MeanDifference, alternative: Alternative.Greater).PValue, 14);
    }

    [Fact]
    public void PermutationTest_RandomPermutations_NeverGiveZero()
    {
        // Phipson & Smyth (2010): with m random permutations none as extreme as a huge shift, p = 1/(m + 1), not 0.
        var a = Enumerable.Range(0, 20).Select(i => 100.0 + i).ToArray();
        var b = Enumerable.Range(0, 20).Select(i => (double)i).ToArray();
        var r = Resampling.PermutationTest(a, b, EffectSize.MeanDifference, permutations: 999, alternative: Alternative.Greater, seed: 1);
        Assert.False(r.Exact);
        Assert.Equal(1.0 / 1000, r.PValue, 15);
        Assert.Equal(2.0 / 1000, Resampling.PermutationTest(a, b, EffectSize.MeanDifference, permutations: 999, seed: 1).PValue, 15);
    }

    [Fact]
    public void PermutationTest_LargeSamples_AgreesWithTheNormalApproximation()
    {
        // The permutation distribution of a mean difference has variance σ²_N · N/(N − 1) · (1/n₁ + 1/n₂), σ²_N the pooled
        // plug-in variance; for n₁ = n₂ = 100 it is close to normal, so p ≈ 2(1 − Φ(|T|/sd)).
        var rng = new Random(4);
        var a = Enumerable.Range(0, 100).Select(_ => rng.NextDouble() + 0.08).ToArray();
        var b = Enumerable.Range(0, 100).Select(_ => rng.NextDouble()).ToArray();
        var pooled = a.Concat(b).ToArray();
        double mean = pooled.Average(), varN = pooled.Sum(v => (v - mean) * (v - mean)) / pooled.Length;
        double sd = Math.Sqrt(varN * 200 / 199 * (1 / 100.0 + 1 / 100.0));
        double t = a.Average() - b.Average();
        double expected = 2 * (1 - Normal.Cdf(Math.Abs(t) / sd));
        Assert.InRange(expected, 0.01, 0.5);                         // the case is informative: neither 0 nor 1
        var r = Resampling.PermutationTest(a, b, EffectSize.MeanDifference, permutations: 19999, seed: 9);
        Assert.Equal(expected, r.PValue, 0.012);
    }

    [Fact]
    public void PermutationTest_UnderTheNull_RejectsAtTheNominalRate()
    {
        // 300 pairs of samples from one distribution: p ≤ 0.05 in about 5 % (binomial sd 1.3 %).
        var rng = new Random(77);
        int rejections = 0, trials = 300;
        for (int t = 0; t < trials; t++)
        {
            var a = Enumerable.Range(0, 15).Select(_ => rng.NextDouble()).ToArray();
            var b = Enumerable.Range(0, 15).Select(_ => rng.NextDouble()).ToArray();
            if (Resampling.PermutationTest(a, b, EffectSize.MeanDifference, permutations: 499, seed: t).PValue <= 0.05) rejections++;
        }
        Assert.InRange(rejections / (double)trials, 0.01, 0.095);
    }

    [Fact]
    public void CohensD_HandComputed()
    {
        // means 3 and 5, both variances 2.5 → pooled sd √2.5, d = −2/√2.5.
        Assert.Equal(-2 / Math.Sqrt(2.5), EffectSize.CohensD(new double[] { 1, 2, 3, 4, 5 }, new double[] { 3, 4, 5, 6, 7 }), 12);
        // unequal sizes: a = {2, 4} (ss 2), b = {1, 2, 3} (ss 2): pooled var 4/3, d = (3 − 2)/√(4/3)
        Assert.Equal(1 / Math.Sqrt(4.0 / 3), EffectSize.CohensD(new double[] { 2, 4 }, new double[] { 1, 2, 3 }), 12);
        Assert.Equal(0.25, EffectSize.Share(new[] { true, false, false, false }));
    }

    [Fact]
    public void HolmAndBenjaminiHochberg_MatchRsPAdjust()
    {
        // R 4.2: p <- c(0.04, 0.001, 0.03, 0.2, 0.01, 0.03, 0.5, 0.0004, 0.9, 0.045); p.adjust(p, "holm"); p.adjust(p, "BH")
        double[] p = { 0.04, 0.001, 0.03, 0.2, 0.01, 0.03, 0.5, 0.0004, 0.9, 0.045 };
        double[] holm = { 0.21, 0.009, 0.21, 0.6, 0.08, 0.21, 1, 0.004, 1, 0.21 };
        double[] bh = { 0.0642857142857142794, 0.005, 0.06, 0.25, 0.0333333333333333329, 0.06, 0.5555555555555555802, 0.004, 0.9, 0.0642857142857142794 };
        var h = MultipleTesting.Holm(p);
        var q = MultipleTesting.BenjaminiHochberg(p);
        for (int i = 0; i < p.Length; i++)
        {
            Assert.Equal(holm[i], h[i], 14);
            Assert.Equal(bh[i], q[i], 14);
        }
        Assert.Empty(MultipleTesting.Holm(Array.Empty<double>()));
    }

    [Fact]
    public void BadInput_NamesWhatIsWrong()
    {
        Assert.Contains("at least 2 observations, got 1", Assert.Throws<ArgumentException>(() => Resampling.Bootstrap(new[] { 1.0 }, s => s[0])).Message);
        Assert.Contains("sample[1] is NaN", Assert.Throws<ArgumentException>(() => Resampling.Bootstrap(new[] { 1.0, double.NaN }, s => s[0])).Message);
        Assert.Contains("resamples must be at least 100", Assert.Throws<ArgumentException>(() => Resampling.Bootstrap(X, s => s[0], resamples: 10)).Message);
        Assert.Contains("between 0 and 1 (e.g. 0.95), got 95", Assert.Throws<ArgumentException>(() => Resampling.Bootstrap(X, s => s[0], confidenceLevel: 95)).Message);
        Assert.Contains("permutations must be at least 99", Assert.Throws<ArgumentException>(() => Resampling.PermutationTest(X, Y, EffectSize.MeanDifference, permutations: 10)).Message);
        Assert.Contains("pValues[1] is 1.2", Assert.Throws<ArgumentException>(() => MultipleTesting.Holm(new[] { 0.1, 1.2 })).Message);
        Assert.Contains("b is empty", Assert.Throws<ArgumentException>(() => EffectSize.CohensD(X, Array.Empty<double>())).Message);
        // a statistic undefined on a resample (the share of positives among none) is an error saying so, not a silent NaN
        var e = Assert.Throws<InvalidOperationException>(() => Resampling.Bootstrap(new[] { 0.0, 0, 0, 1 }, s => s.Count(v => v == 1) is 0 ? double.NaN : 1, seed: 1));
        Assert.Contains("NaN on bootstrap resample", e.Message);
    }
}

/// <summary>Divergences and recall/precision against scipy / scikit-learn values and hand-computed cases.</summary>
public class DivergenceAndClassificationTests
{
    [Fact]
    public void JensenShannon_AndKl_MatchScipy()
    {
        // scipy.spatial.distance.jensenshannon(p, q)**2 and scipy.stats.entropy(p, q), natural log
        Assert.Equal(0.13226795898617857, Divergence.JensenShannon(new[] { 0.1, 0.4, 0.5, 0.0 }, new[] { 0.3, 0.3, 0.2, 0.2 }), 14);
        Assert.Equal(0.24021341473676927, Divergence.KullbackLeibler(new[] { 0.1, 0.4, 0.5 }, new[] { 0.3, 0.3, 0.2 }), 14);
        Assert.Equal(Math.Log(2), Divergence.JensenShannon(new[] { 1.0, 0 }, new[] { 0.0, 1 }), 14);     // disjoint supports: the maximum
        Assert.Equal(0, Divergence.JensenShannon(new[] { 2.0, 6 }, new[] { 1.0, 3 }), 14);               // normalised first: equal
        Assert.Equal(double.PositiveInfinity, Divergence.KullbackLeibler(new[] { 0.5, 0.5 }, new[] { 1.0, 0 }));
        Assert.Contains("same", Assert.Throws<ArgumentException>(() => Divergence.JensenShannon(new[] { 1.0 }, new[] { 0.5, 0.5 })).Message);
        Assert.Contains("no mass", Assert.Throws<ArgumentException>(() => Divergence.JensenShannon(new[] { 0.0, 0 }, new[] { 0.5, 0.5 })).Message);
    }

    [Fact]
    public void RecallAndPrecision_HandComputed()
    {
        // scores ≥ 0.5 flagged: rows 0, 2, 3 flagged; positives 0, 1, 3 → TP 2 (0, 3), FP 1 (2), FN 1 (1), TN 1 (4)
        double[] s = { 0.9, 0.2, 0.6, 0.5, 0.1 };
        bool[] y = { true, true, false, true, false };
        var c = BinaryClassification.Confusion(s, y, 0.5);
        Assert.Equal(new ConfusionCounts(2, 1, 1, 1), c);
        Assert.Equal(2.0 / 3, c.Recall, 14);
        Assert.Equal(2.0 / 3, c.Precision, 14);
        Assert.Equal(0.6, c.Accuracy, 14);
        var sub = BinaryClassification.Confusion(s, y, 0.5, rows: new[] { 1, 1, 4 });   // rows may repeat (bootstrap)
        Assert.Equal(new ConfusionCounts(0, 0, 2, 1), sub);
        Assert.Equal(0, sub.Recall);
        Assert.True(double.IsNaN(sub.Precision));   // nothing flagged
    }
}
