using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Cli.Commands;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>The command line's text forms (they left the analysis library, which takes typed values only).</summary>
public class CliParsingTests
{
    [Theory]
    [InlineData("zeros")]
    [InlineData(" ZERO ")]
    public void Zeros_baseline(string text) => Assert.Equal(Baseline.Zeros, CliParsing.ParseBaseline(text));

    [Fact]
    public void Token_baseline_keeps_its_id() => Assert.Equal(Baseline.Token(5), CliParsing.ParseBaseline("token:5"));

    [Theory]
    [InlineData("ones")]
    [InlineData("token:")]
    [InlineData("token:-1")]
    [InlineData("token:x")]
    public void Bad_baselines_name_the_text_and_the_accepted_forms(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => CliParsing.ParseBaseline(text));
        Assert.Contains($"'{text}'", e.Message);
        Assert.Contains("'zeros' or 'token:<id>'", e.Message);
    }

    [Theory]
    [InlineData("mean", HeadFusion.Mean)]
    [InlineData("MAX", HeadFusion.Max)]
    [InlineData(" min ", HeadFusion.Min)]
    public void Head_fusions(string text, HeadFusion expected) => Assert.Equal(expected, CliParsing.ParseHeadFusion(text));

    [Theory]
    [InlineData("median")]
    [InlineData("1")]   // Enum.TryParse accepts numbers; the command line must not
    public void Bad_head_fusions_are_refused(string text) =>
        Assert.Contains("use mean, max or min", Assert.Throws<ArgumentException>(() => CliParsing.ParseHeadFusion(text)).Message);
}
