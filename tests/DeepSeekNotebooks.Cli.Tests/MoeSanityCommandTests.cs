using System.Text.Json;
using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// <c>attribute --routing standard|frozen</c> and the <c>sanity</c> verb on the golden model (sequence 1 of the golden
/// inputs, target 311, baseline token 0: tests/fixtures/golden/captum2).
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class MoeSanityCommandTests : IDisposable
{
    private const string Seq1 = "154,30,171,158,236,380,282,374,442,120,368,476";
    private static string Hf => Path.Combine(ReportTestSupport.RepoRoot, "data", "checkpoints", "golden-tiny-hf");
    private readonly string _tmp = Directory.CreateTempSubdirectory("moe-cli").FullName;

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var (so, se) = (Console.Out, Console.Error);
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Program.Run(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(so); Console.SetError(se); }
    }

    private static float Delta(string path)
    {
        using var f = SafetensorsFile.Open(path);
        return f.ReadAsFloat32("delta")[0];
    }

    [Fact]
    public void Attribute_RoutingFrozen_ClosesTheDelta_StandardKeepsTheGoldenOne()
    {
        string std = Path.Combine(_tmp, "std.safetensors"), frz = Path.Combine(_tmp, "frz.safetensors");
        var common = new[] { "attribute", "--checkpoint", Hf, "--input-ids", Seq1, "--method", "ig", "--target-position", "-1", "--target-token", "311", "--n-steps", "64" };
        Assert.Equal(0, Cli(common.Concat(new[] { "--out", std }).ToArray()).Code);
        var (code, output, _) = Cli(common.Concat(new[] { "--routing", "frozen", "--out", frz }).ToArray());
        Assert.Equal(0, code);
        // Golden convergence study, 64 Gauss–Legendre steps: standard delta 2.35e-3; frozen routing removes the jumps.
        Assert.Equal(2.3513e-3, Delta(std), 5);
        Assert.True(Math.Abs(Delta(frz)) < 1e-5, $"frozen delta {Delta(frz)}");
        using var f = SafetensorsFile.Open(frz);
        Assert.Equal("frozen", f.Metadata["param.routing"]);
        Assert.Contains("convergence delta", output);
    }

    [Theory]
    [InlineData(2, "--routing", "fixed")]                                   // not standard|frozen
    [InlineData(2, "--routing", "frozen", "--method", "saliency")]          // frozen is an IG option
    public void Attribute_BadRouting_IsAUsageError(int expected, params string[] extra)
    {
        var args = new[] { "attribute", "--checkpoint", Hf, "--input-ids", Seq1, "--target-position", "-1", "--out", Path.Combine(_tmp, "bad.safetensors") }
            .Concat(extra.Contains("--method") ? extra : extra.Concat(new[] { "--method", "ig" })).ToArray();
        var (code, _, err) = Cli(args);
        Assert.Equal(expected, code);
        Assert.Contains("routing", err);
        if (extra.Contains("saliency")) Assert.Contains("--method ig only", err);
        Assert.Empty(Directory.GetFiles(_tmp));
    }

    [Fact]
    public void Sanity_WritesRandomisationAndFaithfulness_AsJson()
    {
        var path = Path.Combine(_tmp, "sanity.json");
        var (code, output, err) = Cli("sanity", "--checkpoint", Hf, "--input-ids", Seq1, "--target-token", "311", "--methods", "saliency,occlusion",
            "--random-orders", "4", "--out", path);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var rnd = doc.RootElement.GetProperty("randomisation");
        Assert.Equal(new[] { "saliency", "occlusion" }, rnd.GetProperty("Methods").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal(4, rnd.GetProperty("Cascading").GetArrayLength());   // head, blocks 2, 1, 0
        Assert.Equal(311, rnd.GetProperty("Target").GetProperty("TokenId").GetInt64());
        var faith = doc.RootElement.GetProperty("faithfulness");
        var curves = faith.GetProperty("Curves");
        Assert.Equal("saliency", curves[0].GetProperty("Label").GetString());
        Assert.Equal(13, curves[1].GetProperty("Deletion").GetArrayLength());
        Assert.Equal(4, faith.GetProperty("RandomOrders").GetInt32());
        Assert.Contains("deletion AUC", output);
        Assert.Contains("after head → block 0", output);
    }

    [Theory]
    [InlineData("--methods", "ig,ig")]
    [InlineData("--methods", "magic")]
    [InlineData("--methods", "ig,layer-ig")]                               // a layer method attributes to a block output
    [InlineData("--checks", "all")]
    [InlineData("--random-orders", "-1")]
    public void Sanity_BadOptions_AreUsageErrors_AndWriteNothing(params string[] extra)
    {
        var args = new[] { "sanity", "--checkpoint", Hf, "--input-ids", Seq1, "--out", Path.Combine(_tmp, "bad.json") }.Concat(extra).ToArray();
        var (code, _, err) = Cli(args);
        Assert.Equal(2, code);
        Assert.Contains(extra[0], err);
        Assert.Empty(Directory.GetFiles(_tmp));
    }

    public void Dispose() => Directory.Delete(_tmp, true);
}
