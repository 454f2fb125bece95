using DeepSeekNotebooks.Analysis.Attribution;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>Bad inputs listed in docs/reliability.md that no other test covered.</summary>
public class BadInputTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    public BadInputTests(GoldenFixture g) => _g = g;

    [Theory]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    public void SmoothGrad_NegativeOrNaNStdev_IsRefused(double stdev)
    {
        using var ids = _g.Ids();
        var e = Assert.Throws<ArgumentException>(() => NoiseTunnel.SmoothGrad(_g.Model, ids, nSamples: 1, stdev: stdev));
        Assert.Contains("stdev must be ≥ 0", e.Message);
        Assert.Equal("stdev", e.ParamName);
    }
}
