using DeepSeekNotebooks.Cli;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// attribute's layer methods, feature ablation, contrastive target and continuation attribution against Captum v0.8.0
/// (tests/fixtures/golden/captum2), and its errors for bad combinations.
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class AttributeCommandTests : IDisposable
{
    private const string Seq1 = "154,30,171,158,236,380,282,374,442,120,368,476";   // captum2's input_ids
    private const string Prompt = "154,30,171,158,236,380,282,374";
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private static string Golden2 => Path.Combine(Root, "tests", "fixtures", "golden", "captum2", "public.captum2.safetensors");
    private static string Hf => Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf");
    private static string Bundled => Path.Combine(Root, "data", "checkpoints", "deepseek-tiny-moe");
    private readonly string _tmp = Directory.CreateTempSubdirectory("attribute-cli").FullName;

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        Assert.Equal(b.Length, a.Length);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }

    private static long ReadI64(SafetensorsFile f, string name)
    {
        var bytes = new byte[8];
        f.ReadBytes(name, bytes);
        return BitConverter.ToInt64(bytes);
    }

    private string Out(string name) => Path.Combine(_tmp, name + ".safetensors");

    [Theory]
    [InlineData("layer-ig", "lig", "gausslegendre")]
    [InlineData("layer-conductance", "lc_gausslegendre", "gausslegendre")]
    [InlineData("layer-conductance", "lc_riemann_trapezoid", "riemann_trapezoid")]
    public void LayerMethods_Block1_MatchCaptum(string method, string prefix, string integration)
    {
        var output = Out(prefix);
        Assert.Equal(0, Program.Run(new[] { "attribute", "--checkpoint", Hf, "--input-ids", Seq1, "--method", method, "--layer", "1",
            "--target-position", "-1", "--target-token", "311", "--baseline", "token:0", "--n-steps", "32", "--integration", integration, "--out", output }));
        using var got = SafetensorsFile.Open(output);
        using var want = SafetensorsFile.Open(Golden2);
        Assert.Equal(new long[] { 1, 12, 64 }, got.GetTensor("attributions").Shape);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("attributions"), want.ReadAsFloat32(prefix + ".attr")) <= 1e-6);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("token_sums"), want.ReadAsFloat32(prefix + ".token_sums")) <= 1e-6);
        Assert.True(Math.Abs(got.ReadAsFloat32("delta")[0] - want.ReadAsFloat32(prefix + ".delta")[0]) <= 5e-6);
        Assert.Equal(311, ReadI64(got, "target"));
        Assert.Equal("blocks.1.resid_post", got.Metadata["param.layer"]);
    }

    [Fact]
    public void FeatureAblation_MatchesCaptum()
    {
        var output = Out("fa");
        Assert.Equal(0, Program.Run(new[] { "attribute", "--checkpoint", Hf, "--input-ids", Seq1, "--method", "feature-ablation",
            "--target-position", "-1", "--target-token", "311", "--baseline", "token:0", "--out", output }));
        using var got = SafetensorsFile.Open(output);
        using var want = SafetensorsFile.Open(Golden2);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("attributions"), want.ReadAsFloat32("fa.attr")) <= 2e-6);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("token_sums")[..12], want.ReadAsFloat32("fa.per_position")) <= 2e-6);
        Assert.False(got.TryGetTensor("delta", out _));       // no completeness, no delta
    }

    [Fact]
    public void ContrastToken_IsIgOfTheLogitDifference()
    {
        var output = Out("contrast");
        Assert.Equal(0, Program.Run(new[] { "attribute", "--checkpoint", Hf, "--input-ids", Seq1, "--method", "ig", "--target-position", "-1",
            "--contrast-token", "391", "--baseline", "token:0", "--n-steps", "32", "--out", output }));
        using var got = SafetensorsFile.Open(output);
        using var want = SafetensorsFile.Open(Golden2);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("attributions"), want.ReadAsFloat32("ig_contrast.attr")) <= 1e-6);
        Assert.True(Math.Abs(got.ReadAsFloat32("delta")[0] - want.ReadAsFloat32("ig_contrast.delta")[0]) <= 5e-6);
        Assert.Equal(311, ReadI64(got, "target"));           // the argmax
        Assert.Equal(391, ReadI64(got, "contrast_token"));
        Assert.Equal("LogitDifference", got.Metadata["target_kind"]);
    }

    [Fact]
    public void ContinuationIds_MatchCaptumLlmGradientAttribution()
    {
        var output = Out("llm");
        Assert.Equal(0, Program.Run(new[] { "attribute", "--checkpoint", Hf, "--input-ids", Prompt, "--continuation-ids", "442,120,368,476",
            "--baseline", "token:0", "--n-steps", "32", "--out", output }));
        using var got = SafetensorsFile.Open(output);
        using var want = SafetensorsFile.Open(Golden2);
        Assert.Equal(new long[] { 4, 8 }, got.GetTensor("token_attr").Shape);
        Assert.Equal(new long[] { 4 }, got.GetTensor("delta").Shape);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("token_attr"), want.ReadAsFloat32("llm.token_attr")) <= 1e-6);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("seq_attr"), want.ReadAsFloat32("llm.seq_attr")) <= 1e-6);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("delta"), want.ReadAsFloat32("llm.delta")) <= 5e-6);
        Assert.True(MaxAbsDiff(got.ReadAsFloat32("log_probs"), want.ReadAsFloat32("llm.log_probs")) <= 5e-6);
    }

    [Fact]
    public void ContinuationText_OnTheBundledModel_UsesItsTokenizerAndThePadBaseline()
    {
        var output = Out("text");
        Assert.Equal(0, Program.Run(new[] { "attribute", "--checkpoint", Bundled, "--text", "Q: 44-9=? A:", "--continuation", " 35", "--n-steps", "16", "--out", output }));
        using var got = SafetensorsFile.Open(output);
        using var tok = Model.Tokenization.DeepSeekTokenizer.FromFile(Path.Combine(Bundled, "tokenizer.json"));
        long prompt = tok.Encode("Q: 44-9=? A:").Length, targets = tok.Encode(" 35", addSpecialTokens: false).Length;
        Assert.Equal(new[] { targets, prompt }, got.GetTensor("token_attr").Shape);
        Assert.Equal("token:511", got.Metadata["param.baseline"]);      // Baseline.For(tokenizer): <|pad|>
        // Completeness per row, as written: Σ_i token_attr[k, i] − (log p − log p_baseline) = delta[k].
        var attr = got.ReadAsFloat32("token_attr");
        var (lp, lb, d) = (got.ReadAsFloat32("log_probs"), got.ReadAsFloat32("log_probs_baseline"), got.ReadAsFloat32("delta"));
        for (int k = 0; k < targets; k++)
            Assert.Equal(d[k], attr.Skip(k * (int)prompt).Take((int)prompt).Sum() - (lp[k] - lb[k]), 4);
    }

    [Theory]
    [InlineData(1, "layer 3 does not exist", "--method", "layer-ig", "--layer", "3", "--target-position", "-1")]
    [InlineData(1, "use a layer in 0..2", "--method", "layer-conductance", "--layer", "-1", "--target-position", "-1")]
    [InlineData(2, "give --layer L", "--method", "layer-ig", "--target-position", "-1")]
    [InlineData(2, "--layer applies to layer-ig and layer-conductance only", "--method", "ig", "--layer", "1", "--target-position", "-1")]
    [InlineData(2, "--contrast-token 311 equals --target-token", "--method", "ig", "--target-position", "-1", "--target-token", "311", "--contrast-token", "311")]
    [InlineData(1, "contrast token 311 equals the target token (the argmax", "--method", "saliency", "--target-position", "-1", "--contrast-token", "311")]
    [InlineData(2, "--continuation-ids is empty", "--continuation-ids", " ")]
    [InlineData(2, "--continuation is empty", "--continuation", "")]
    [InlineData(2, "mutually exclusive", "--continuation", "t1", "--continuation-ids", "1")]
    [InlineData(2, "--target-position and --continuation-ids are mutually exclusive", "--continuation-ids", "1,2", "--target-position", "-1")]
    [InlineData(2, "--layer and --continuation-ids are mutually exclusive", "--continuation-ids", "1,2", "--layer", "1")]
    [InlineData(2, "not saliency", "--continuation-ids", "1,2", "--method", "saliency")]
    [InlineData(2, "needs a checkpoint with tokenizer.json", "--continuation", "some text")]
    [InlineData(2, "--method is required", "--target-position", "-1")]
    [InlineData(2, "--target-position is required", "--method", "ig")]
    [InlineData(2, "--baseline pad needs the checkpoint's tokenizer.json", "--method", "ig", "--target-position", "-1", "--baseline", "pad")]
    public void BadCombinations_FailNamingTheProblem_WithoutWriting(int exit, string message, params string[] extra)
    {
        var output = Out("bad");
        var args = new[] { "attribute", "--checkpoint", Hf, "--input-ids", Seq1, "--n-steps", "2", "--out", output }.Concat(extra).ToArray();
        var (code, err) = RunCapturingErrors(args);
        Assert.Equal(exit, code);
        Assert.Contains(message, err);
        Assert.Empty(Directory.GetFiles(_tmp));
    }

    [Fact]
    public void InputIdsAndText_AreMutuallyExclusive()
    {
        var (code, err) = RunCapturingErrors(new[] { "attribute", "--checkpoint", Bundled, "--input-ids", "1,2", "--text", "hi", "--method", "ig", "--target-position", "-1", "--out", Out("x") });
        Assert.Equal(2, code);
        Assert.Contains("exactly one of --input-ids or --text", err);
    }

    private static readonly object ConsoleLock = new();

    private static (int Code, string Err) RunCapturingErrors(string[] args)
    {
        lock (ConsoleLock)
        {
            var previous = Console.Error;
            var sw = new StringWriter();
            Console.SetError(sw);
            try { return (Program.Run(args), sw.ToString()); }
            finally { Console.SetError(previous); }
        }
    }

    public void Dispose() => Directory.Delete(_tmp, true);
}
