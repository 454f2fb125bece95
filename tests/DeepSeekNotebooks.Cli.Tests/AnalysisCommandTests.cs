using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>The attribute and rollout verbs against the golden Captum / rollout references.</summary>
public class AnalysisCommandTests : IDisposable
{
    private const string Seq0 = "303,211,294,53,204,372,152,505,143,177,279,233";
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private static string Fixture(string f) => Path.Combine(Root, "tests", "fixtures", "golden", f);
    private static string Hf => Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf");
    private readonly string _tmp = Directory.CreateTempSubdirectory("analysis-cli").FullName;

    private static int Cli(params string[] args) => Program.Run(args);

    private static double MaxAbsDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

    [Theory]
    [InlineData("ig", "ig_gausslegendre", "gausslegendre")]
    [InlineData("saliency", "saliency", null)]
    [InlineData("inputxgrad", "input_x_gradient", null)]
    public void Attribute_MatchesCaptum(string method, string goldenPrefix, string? integration)
    {
        using var golden = SafetensorsFile.Open(Fixture("public.captum.safetensors"));
        var prefix = goldenPrefix;
        var output = Path.Combine(_tmp, $"{method}.safetensors");
        var args = new List<string> { "attribute", "--checkpoint", Hf, "--input-ids", Seq0, "--method", method, "--target-position", "-1",
            "--target-token", "468", "--baseline", "zeros", "--out", output };
        if (integration is not null) args.AddRange(new[] { "--integration", integration, "--n-steps", "50" });
        Assert.Equal(0, Cli(args.ToArray()));

        using var got = SafetensorsFile.Open(output);
        var want = golden.ReadAsFloat32($"{prefix}.attr");
        var scale = want.Max(Math.Abs);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("attributions"), want) < 1e-4 * scale, $"{method} differs from Captum");
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("token_sums"), golden.ReadAsFloat32($"{prefix}.token_sums")) < 1e-4 * scale * 64);
        Assert.Equal(new long[] { 1, 12, 64 }, got.GetTensor("attributions").Shape);
        var target = new byte[8];
        got.ReadBytes("target", target);
        Assert.Equal(468L, BitConverter.ToInt64(target));
        if (method == "ig")
        {
            var delta = got.ReadAsFloat32("delta")[0];
            Assert.Equal(golden.ReadAsFloat32($"{prefix}.delta")[0], delta, 3);
        }
    }

    [Fact]
    public void Rollout_MatchesReference()
    {
        var output = Path.Combine(_tmp, "rollout.safetensors");
        Assert.Equal(0, Cli("rollout", "--checkpoint", Hf, "--input-ids", Seq0, "--out", output));
        using var got = SafetensorsFile.Open(output);
        using var want = SafetensorsFile.Open(Fixture("public.rollout.safetensors"));
        Assert.Equal(new long[] { 12, 12 }, got.GetTensor("rollout").Shape);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("rollout"), want.ReadAsFloat32("rollout")) < 1e-5);
    }

    [Theory]
    [InlineData(2, "--method", "magic", "--target-position", "-1")]                      // unknown method
    [InlineData(2, "--method", "ig", "--target-position", "-1", "--baseline", "ones")]  // bad baseline
    [InlineData(1, "--method", "ig", "--target-position", "12")]                       // position out of range
    [InlineData(1, "--method", "ig", "--target-position", "-1", "--target-token", "512")] // token out of range
    [InlineData(1, "--method", "ig", "--target-position", "-1", "--n-steps", "0")]     // n_steps < 1
    public void Attribute_BadInput_FailsWithoutWriting(int expected, params string[] extra)
    {
        var output = Path.Combine(_tmp, "bad.safetensors");
        var args = new[] { "attribute", "--checkpoint", Hf, "--input-ids", Seq0, "--out", output }.Concat(extra).ToArray();
        Assert.Equal(expected, Cli(args));
        Assert.Empty(Directory.GetFiles(_tmp));
    }

    [Fact]
    public void Dashboard_WritesOneSelfContainedPage()
    {
        var output = Path.Combine(_tmp, "dash.html");
        Assert.Equal(0, Cli("dashboard", "--checkpoint", Hf, "--input-ids", "303,211,294,53", "--out", output));
        var html = File.ReadAllText(output);
        Assert.Contains("#303", html);
        Assert.Contains("integrated_gradients", html);
        Assert.DoesNotMatch(ReportTestSupport.RemoteScriptSource(), html);
        Assert.Equal(2, Cli("dashboard", "--checkpoint", Hf, "--out", Path.Combine(_tmp, "none.html")));  // neither ids nor text
        Assert.Single(Directory.GetFiles(_tmp));
    }

    public void Dispose() => Directory.Delete(_tmp, true);
}
