using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// The one home of the kit's statistics (issue 11): values computed by hand (or with scipy/scikit-learn, noted) and the
/// edge cases as documented on <see cref="Balance"/>, <see cref="Information"/> and <see cref="Correlation"/>.
/// </summary>
public class StatisticsTests
{
    [Fact]
    public void MaxVio_AndCv_MatchHandComputedValues()
    {
        Assert.Equal(1.5, Balance.MaxVio(new double[] { 10, 2, 2, 2 }), 12);          // mean 4: (10 − 4) / 4
        Assert.Equal(0.0, Balance.MaxVio(new double[] { 5, 5, 5, 5 }));
        Assert.Equal(1.5, Balance.MaxVio(new long[] { 10, 2, 2, 2 }), 12);
        Assert.Equal(Math.Sqrt(2) / 2, Balance.CoefficientOfVariation(new double[] { 4, 0, 2, 2 }), 12); // mean 2, var 2
        Assert.Equal(0.0, Balance.CoefficientOfVariation(new long[] { 3, 3, 3 }));
    }

    [Fact]
    public void ZeroLoad_IsUndefined_NotBalanced()
    {
        // Before issue 11 the trainer reported MaxVio 0 ("perfectly balanced") here while the diagnostics said NaN.
        Assert.True(double.IsNaN(Balance.MaxVio(new double[] { 0, 0, 0 })));
        Assert.True(double.IsNaN(Balance.CoefficientOfVariation(new long[] { 0, 0 })));
        var m = ExpertMetrics.LoadBalance(new long[] { 0, 0, 0, 0 });
        Assert.Equal(0, m.MeanLoad);
        Assert.True(double.IsNaN(m.MaxVio) && double.IsNaN(m.CoefficientOfVariation) && double.IsNaN(m.NormalisedEntropy));
    }

    [Fact]
    public void BadLoads_NameWhatIsWrong()
    {
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => Balance.MaxVio(Array.Empty<double>())).Message);
        var e = Assert.Throws<ArgumentException>(() => Balance.MaxVio(new double[] { 1, -2 }));
        Assert.Contains("-2 for expert 1", e.Message);
        Assert.Throws<ArgumentException>(() => Balance.CoefficientOfVariation(new[] { 1, double.NaN }));
    }

    [Fact]
    public void ExpertMetrics_LoadBalance_IsTheStatisticsHome()
    {
        var counts = new long[] { 1, 2, 1 };
        var m = ExpertMetrics.LoadBalance(counts);
        Assert.Equal(4.0 / 3, m.MeanLoad, 12);
        Assert.Equal(Balance.MaxVio(counts), m.MaxVio);
        Assert.Equal(0.5, m.MaxVio, 12);                          // (2 − 4/3) / (4/3)
        Assert.Equal(Balance.CoefficientOfVariation(counts), m.CoefficientOfVariation);
        Assert.Equal(0.946394630357186, m.NormalisedEntropy, 12);  // H(¼, ½, ¼) = 1.0397… nats, / ln 3
    }

    [Fact]
    public void Entropy_HandValues_AndEdgeCases()
    {
        Assert.Equal(Math.Log(2), Information.Entropy(new long[] { 7, 7 }), 12);
        Assert.Equal(1.0397207708399179, Information.Entropy(new double[] { 1, 2, 1 }), 12);
        Assert.Equal(1.0397207708399179, Information.Entropy(new float[] { 0.5f, 1, 0.5f }), 6);
        Assert.Equal(0.0, Information.Entropy(new long[] { 0, 5, 0 }));           // one outcome: no uncertainty
        Assert.True(double.IsNaN(Information.Entropy(Array.Empty<long>())));       // no distribution
        Assert.True(double.IsNaN(Information.Entropy(new long[] { 0, 0 })));
        Assert.True(double.IsNaN(Information.Entropy(ReadOnlySpan<double>.Empty)));
        Assert.Contains("-1 at index 1", Assert.Throws<ArgumentException>(() => Information.Entropy(new long[] { 2, -1 })).Message);
        Assert.Throws<ArgumentException>(() => Information.Entropy(new[] { 1f, float.NaN }));
    }

    [Fact]
    public void NormalisedEntropy_IsOneForUniformAndForASingleOutcome()
    {
        Assert.Equal(1.0, Information.NormalisedEntropy(new double[] { 2, 2, 2, 2 }), 12);
        Assert.Equal(0.0, Information.NormalisedEntropy(new double[] { 0, 3 }));
        Assert.Equal(1.0, Information.NormalisedEntropy(new float[] { 0.4f }));    // uniform over its one value
        Assert.True(double.IsNaN(Information.NormalisedEntropy(new float[] { 0, 0 })));
        // Routing entropy and load entropy agree on the single-expert case (was 0 vs 1 before issue 11).
        Assert.Equal(ExpertMetrics.LoadBalance(new long[] { 9 }).NormalisedEntropy, ExpertMetrics.Entropy(new float[] { 0.9f }));
    }

    [Fact]
    public void Nmi_EdgeCases_FollowScikitLearn()
    {
        Assert.Equal(1.0, Information.NormalisedMutualInformation(new long[,] { { 4 } }));            // both constant
        Assert.Equal(1.0, Information.NormalisedMutualInformation(new long[,] { { 4, 0 }, { 0, 0 } }));
        Assert.Equal(0.0, Information.NormalisedMutualInformation(new long[,] { { 3, 5 } }));         // one constant
        Assert.True(double.IsNaN(Information.NormalisedMutualInformation(new long[2, 3])));           // no pairs
        Assert.True(double.IsNaN(Information.MutualInformation(new long[2, 2])));
    }

    [Fact]
    public void Spearman_AndPearson_MatchScipy()
    {
        // scipy.stats.spearmanr([1,2,3,4,5], [5,6,7,8,7]).statistic = 8/√95 (ranks of b: 1, 2, 3.5, 5, 3.5)
        Assert.Equal(8 / Math.Sqrt(95), Correlation.Spearman(new double[] { 1, 2, 3, 4, 5 }, new double[] { 5, 6, 7, 8, 7 }), 12);
        Assert.Equal(new[] { 1, 2, 3.5, 5, 3.5 }, Correlation.Ranks(new double[] { 5, 6, 7, 8, 7 }));
        Assert.Equal(-1.0, Correlation.Spearman(new double[] { 1, 2, 3 }, new double[] { 9, 4, 1 }), 12);
        // scipy.stats.pearsonr([1,2,3], [2,4,7]).statistic
        Assert.Equal(0.9933992677987828, Correlation.Pearson(new double[] { 1, 2, 3 }, new double[] { 2, 4, 7 }), 12);
    }

    [Fact]
    public void Correlation_WithAConstantSeries_IsNaN_AndLengthsMustMatch()
    {
        Assert.True(double.IsNaN(Correlation.Spearman(new double[] { 1, 2, 3 }, new double[] { 4, 4, 4 })));
        Assert.True(double.IsNaN(Correlation.Pearson(new double[] { 2, 2 }, new double[] { 1, 3 })));
        Assert.True(double.IsNaN(Correlation.Spearman(new double[] { 1 }, new double[] { 2 })));
        Assert.True(double.IsNaN(Correlation.Spearman(new double[] { 1, double.NaN, 3 }, new double[] { 1, 2, 3 })));
        var m = Correlation.SpearmanMatrix(new IReadOnlyList<double>[] { new double[] { 1, 2, 3 }, new double[] { 3, 1, 2 }, new double[] { 5, 5, 5 } });
        Assert.Equal(1.0, m[0, 0], 12);
        Assert.Equal(-0.5, m[0, 1], 12);   // ranks (1,2,3) vs (3,1,2)
        Assert.Equal(m[0, 1], m[1, 0]);
        Assert.True(double.IsNaN(m[2, 2]) && double.IsNaN(m[0, 2]));
        var e = Assert.Throws<ArgumentException>(() => Correlation.Spearman(new double[] { 1, 2 }, new double[] { 1, 2, 3 }));
        Assert.Contains("the first has 2 values, the second 3", e.Message);
    }

    [Fact]
    public void RobustZ_HandValues_AndNoSpread()
    {
        // median 2, |deviations| (1, 0, 1, 8, 0) → MAD 1: z = 0.6745·(x − 2)
        Assert.Equal(new[] { -0.6745, 0, 0.6745, 5.396, 0 }, Robust.ModifiedZ(new[] { 1.0, 2, 3, 10, 2 }).Select(z => Math.Round(z, 4)));
        Assert.Equal(2.5, Robust.Median(new[] { 4.0, 1, 2, 3 }));
        Assert.True(double.IsNaN(Robust.Median(new[] { double.NaN })));
        // MAD 0 (three equal values): the scale is the mean absolute deviation × 1.2533 = (0 + 0 + 0 + 4)/4 · 1.2533
        Assert.Equal(4 / 1.2533, Robust.ModifiedZ(new[] { 1.0, 1, 1, 5 })[3], 9);
        Assert.Equal(new[] { 0.0, 0, 0 }, Robust.ModifiedZ(new[] { 7.0, 7, 7 }));   // no spread: no outliers
        var z = Robust.ModifiedZ(new[] { 1.0, double.NaN, 3 });
        Assert.True(double.IsNaN(z[1]));
        Assert.Equal(-0.6745, z[0], 12);
    }
}
