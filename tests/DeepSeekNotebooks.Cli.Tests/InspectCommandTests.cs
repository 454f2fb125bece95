using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Cli.Commands;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary><c>inspect</c>: architecture and cost of a checkpoint or config, checked against the files themselves and published counts.</summary>
public class InspectCommandTests : IDisposable
{
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private static string GoldenHf => Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf");
    private static string Fixture(string name) => Path.Combine(Root, "tests", "fixtures", "configs", name);
    private readonly string _tmp = Directory.CreateTempSubdirectory("inspect-tests").FullName;

    private static (int Code, string Out) Inspect(string? checkpoint, string? config, bool json)
    {
        var w = new StringWriter();
        int code = CliSupport.Run(() => InspectCommand.Run(checkpoint, config, json, w));
        return (code, w.ToString());
    }

    private static JsonObject InspectJson(string? checkpoint, string? config)
    {
        var (code, text) = Inspect(checkpoint, config, json: true);
        Assert.Equal(0, code);
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>Sum of the element counts of every tensor in a safetensors file, read straight from its JSON header.</summary>
    private static long ElementsInFile(string path)
    {
        using var f = File.OpenRead(path);
        var len = new byte[8];
        f.ReadExactly(len);
        var header = new byte[BinaryPrimitives.ReadInt64LittleEndian(len)];
        f.ReadExactly(header);
        return JsonDocument.Parse(header).RootElement.EnumerateObject().Where(t => t.Name != "__metadata__")
            .Sum(t => t.Value.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, d) => a * d.GetInt64()));
    }

    [Fact]
    public void GoldenCheckpoint_TotalParameters_EqualsTheTensorsInModelSafetensors()
    {
        var o = InspectJson(GoldenHf, null);
        long expected = ElementsInFile(Path.Combine(GoldenHf, "model.safetensors"));
        Assert.Equal(expected, (long)o["total_parameters"]!);
        Assert.Equal(expected, (long)o["stored_parameters"]!);
        Assert.Equal("deepseek_v3", (string)o["model_type"]!);
        Assert.Equal(3, (int)o["num_layers"]!);
        Assert.Equal(0, (long)o["mtp_parameters"]!);
        Assert.Equal(new[] { "dense", "moe", "moe" }, o["layers"]!.AsArray().Select(l => (string)l!["mlp"]!));
        Assert.Equal(new[] { 0, 1, 2 }, o["layers"]!.AsArray().Select(l => (int)l!["index"]!));
        Assert.Equal(new FileInfo(Path.Combine(GoldenHf, "model.safetensors")).Length - 8 - HeaderLength(Path.Combine(GoldenHf, "model.safetensors")),
            (long)o["bytes_by_dtype"]!["f32"]!);
        Assert.Equal(0, (long)o["bytes_by_dtype"]!["bf16"]!);
        Assert.Equal(0, (long)o["bytes_by_dtype"]!["fp8"]!);
    }

    private static long HeaderLength(string path)
    {
        using var f = File.OpenRead(path);
        var len = new byte[8];
        f.ReadExactly(len);
        return BinaryPrimitives.ReadInt64LittleEndian(len);
    }

    [Fact]
    public void OfficialLayoutCheckpoint_HasTheSameArchitectureCost()
    {
        var hf = InspectJson(GoldenHf, null);
        var official = InspectJson(Path.Combine(Root, "data", "checkpoints", "golden-tiny-official"), null);
        Assert.Equal((long)hf["total_parameters"]!, (long)official["total_parameters"]!);
        Assert.Equal((long)hf["active_parameters_per_token"]!, (long)official["active_parameters_per_token"]!);
        var shard = Directory.GetFiles(Path.Combine(Root, "data", "checkpoints", "golden-tiny-official"), "*.safetensors").Single();
        Assert.Equal(ElementsInFile(shard), (long)official["stored_parameters"]!);
    }

    [Fact]
    public void DeepSeekV3Config_Is671BTotal_WithOneMtpModuleApart_AndFp8Bytes()
    {
        var o = InspectJson(null, Fixture("deepseek-v3-hf-config.json"));
        // Published: 671B total (MTP excluded), 36.6B activated incl. the 0.9B head, MTP 11.5B unique.
        Assert.InRange((long)o["total_parameters"]!, 670_500_000_000, 671_499_999_999);
        Assert.InRange((long)o["active_parameters_per_token"]!, 36_550_000_000, 36_649_999_999);
        Assert.InRange((long)o["mtp_parameters"]!, 11_400_000_000, 11_699_999_999);
        Assert.Equal(61, o["layers"]!.AsArray().Count);
        Assert.Equal(3, o["layers"]!.AsArray().Count(l => (string)l!["mlp"]! == "dense"));
        Assert.All(o["layers"]!.AsArray(), l => Assert.Equal("mla_q_lora", (string)l!["attention"]!));
        // FP8 release: ~669 GB of FP8 projection weights, a few GB of bf16 (embedding, head, norms, router).
        Assert.InRange((long)o["bytes_by_dtype"]!["fp8"]!, 660_000_000_000, 671_000_000_000);
        Assert.InRange((long)o["bytes_by_dtype"]!["bf16"]!, 3_000_000_000, 5_000_000_000);
        Assert.Empty(o["unknown_fields"]!.AsArray());
    }

    [Fact]
    public void V32ExpConfig_AddsExactlyTheLightningIndexersParameters_ToDeepSeekV3()
    {
        var v32 = InspectJson(null, Fixture("deepseek-v3.2-exp-inference-config_671B_v3.2.json"));
        var v3 = InspectJson(null, Fixture("deepseek-v3-inference-config_671B.json"));
        // The official V3.2-Exp Indexer (inference/model.py): wq_b q_lora_rank→heads·head_dim, wk dim→head_dim,
        // k_norm LayerNorm(head_dim) weight + bias, weights_proj dim→heads; no biases on the Linears. Per layer:
        long perLayer = 1536L * 64 * 128 + 7168L * 128 + 2 * 128 + 7168L * 64;
        Assert.Equal(13_959_424L, perLayer);
        Assert.Equal((long)v3["total_parameters"]! + 61 * perLayer, (long)v32["total_parameters"]!);
        Assert.Equal(61, v32["layers"]!.AsArray().Count);
    }

    [Fact]
    public void V2LiteModelArgsConfig_Is15_7BTotal_2_4BActive()
    {
        var o = InspectJson(null, Fixture("deepseek-v3-inference-config_16B.json"));
        Assert.InRange((long)o["total_parameters"]!, 15_650_000_000, 15_749_999_999);
        Assert.InRange((long)o["active_parameters_per_token"]!, 2_400_000_000, 2_459_999_999);
        Assert.All(o["layers"]!.AsArray(), l => Assert.Equal("mla", (string)l!["attention"]!));
        Assert.Null(o["model_type"]);
    }

    [Fact]
    public void HumanReadable_NamesTheCounts()
    {
        var (code, text) = Inspect(null, Fixture("deepseek-v3-hf-config.json"), json: false);
        Assert.Equal(0, code);
        Assert.Contains("model_type deepseek_v3: 61 layers", text);
        Assert.Contains("671.03B total", text);
        Assert.Contains("0-2 dense, 3-60 moe", text);
        Assert.Contains("MTP modules: 1", text);
        Assert.Contains("fp8", text);
    }

    [Fact]
    public void Inspect_IsRegisteredAsAVerb()
    {
        var root = Program.BuildRootCommand();
        Assert.Contains(root.Subcommands, c => c.Name == "inspect");
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void NeitherOrBoth_IsAUsageError(bool checkpoint, bool config)
    {
        var (code, _) = Inspect(checkpoint ? GoldenHf : null, config ? Fixture("deepseek-v3-hf-config.json") : null, json: true);
        Assert.Equal(2, code);
    }

    [Fact]
    public void MissingOrInvalidInput_FailsWithExitCode1()
    {
        Assert.Equal(1, Inspect(null, Path.Combine(_tmp, "nope.json"), json: true).Code);
        Assert.Equal(1, Inspect(_tmp, null, json: true).Code); // empty directory: no checkpoint
        var bad = Path.Combine(_tmp, "bad.json");
        File.WriteAllText(bad, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8}");
        Assert.Equal(1, Inspect(null, bad, json: true).Code);
    }

    public void Dispose() => Directory.Delete(_tmp, recursive: true);
}
