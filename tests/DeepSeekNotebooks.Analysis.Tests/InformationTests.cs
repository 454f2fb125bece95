using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;

namespace DeepSeekNotebooks.Analysis.Tests;

public class InformationTests
{
    [Fact]
    public void Nmi_IsOneForABijection_ZeroForIndependence_AndMatchesAHandComputedCase()
    {
        Assert.Equal(1.0, Information.NormalisedMutualInformation(new long[,] { { 2, 0 }, { 0, 2 } }), 12);
        Assert.Equal(0.0, Information.NormalisedMutualInformation(new long[,] { { 1, 1 }, { 1, 1 } }), 12);
        // labels x = [0,0,0,1], y = [0,0,1,1]: scikit-learn's normalized_mutual_info_score (arithmetic mean) by hand.
        var t = new long[,] { { 2, 1 }, { 0, 1 } };
        Assert.Equal(0.21576155433883565, Information.MutualInformation(t), 12);
        Assert.Equal(0.3437110184854508, Information.NormalisedMutualInformation(t), 12);
        Assert.Equal(0.0, Information.NormalisedMutualInformation(new long[,] { { 3, 5 } }), 12); // constant x
        Assert.Throws<ArgumentException>(() => Information.MutualInformation(new long[,] { { -1, 1 } }));
    }

    [Fact]
    public void PermutationNull_IsSmallForLargeIndependentTables_AndDeterministic()
    {
        var t = new long[,] { { 50, 50, 50 }, { 50, 50, 50 } };
        var (mean, sd) = Information.NmiPermutationNull(t, 20, seed: 3);
        Assert.InRange(mean, 0, 0.02);
        Assert.True(sd >= 0);
        Assert.Equal(mean, Information.NmiPermutationNull(t, 20, seed: 3).Mean);
        Assert.Throws<ArgumentException>(() => Information.NmiPermutationNull(t, 0));
    }

    [Fact]
    public void Accumulator_DomainTop1Counts_AndNmi()
    {
        var acc = new ExpertRoutingAccumulator(experts: 4, topK: 1, trackVocabulary: false);
        // domain a always routes to expert 0, domain b to expert 3: NMI = 1.
        acc.ObserveRouting(1, new long[] { 5, 6 }, new long[] { 0, 0 }, new float[] { 1, 1 }, Array.Empty<float>(), "a");
        acc.ObserveRouting(1, new long[] { 7, 8 }, new long[] { 3, 3 }, new float[] { 1, 1 }, Array.Empty<float>(), "b");
        var (domains, counts) = acc.DomainTop1Counts(1);
        Assert.Equal(new[] { "a", "b" }, domains);
        Assert.Equal(2, counts[0, 0]);
        Assert.Equal(2, counts[1, 3]);
        Assert.Equal(1.0, acc.DomainTop1Nmi(1), 12);
        var other = new ExpertRoutingAccumulator(4, 1, false);
        other.ObserveRouting(1, new long[] { 1, 2 }, new long[] { 3, 3 }, new float[] { 1, 1 }, Array.Empty<float>(), "a");
        acc.Merge(other);
        Assert.Equal(2, acc.DomainTop1Counts(1).Counts[0, 3]);
        Assert.InRange(acc.DomainTop1Nmi(1), 0.0, 0.999);
    }
}
