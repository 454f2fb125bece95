using System.Buffers.Binary;
using System.Text.Json;
using DeepSeekNotebooks.Model.Tests.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Config;

/// <summary>
/// <see cref="ArchitectureCost"/>: its parameter table is exactly what the model creates, its totals equal the tensors of a
/// real checkpoint, and at real size it reproduces the published DeepSeek parameter counts.
/// </summary>
public class ArchitectureCostTests
{
    private static string GoldenHf => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf");

    public static TheoryData<string> TableConfigs => new() { "tiny-full", "no-q-lora", "dense-only", "every-other-moe", "no-shared", "tied", "golden", "v32-golden", "v4-golden" };

    private static DeepSeekConfig Named(string name) => name switch
    {
        "tiny-full" => DeepSeekConfig.TinyFullFeatured,
        "no-q-lora" => DeepSeekConfig.TinyFullFeatured with { QLoraRank = null },
        "dense-only" => DeepSeekConfig.TinyFullFeatured with { NRoutedExperts = 0 },
        "every-other-moe" => DeepSeekConfig.TinyFullFeatured with { NumHiddenLayers = 5, FirstKDenseReplace = 1, MoeLayerFreq = 2 },
        "no-shared" => DeepSeekConfig.TinyFullFeatured with { NSharedExperts = 0, TopkMethod = TopkMethod.Greedy, NGroup = 1, TopkGroup = 1 },
        "tied" => DeepSeekConfig.TinyFullFeatured with { TieWordEmbeddings = true },
        "v32-golden" => DeepSeekConfig.Load(Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "golden", "v32", "public.hf_config.json")),
        "v4-golden" => DeepSeekConfig.Load(Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "golden", "v4", "public.hf_config.json")),
        _ => DeepSeekConfig.Load(Path.Combine(GoldenHf, "config.json")),
    };

    [Theory]
    [MemberData(nameof(TableConfigs))]
    public void ParameterTable_IsExactlyWhatTheModelCreates(string name)
    {
        var c = Named(name);
        using var model = DeepSeekModel.CreateEmpty(c);
        var actual = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        if (c.TieWordEmbeddings)
        {
            // A tied head is the embedding's storage: write through one, read through the other; the table counts it once.
            var ps = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            using (TorchSharp.torch.no_grad()) ps["embed.weight"][0, 0] = TorchSharp.torch.tensor(5f);
            Assert.Equal(5f, ps["head.weight"][0, 0].item<float>());
            actual.Remove("head.weight");
        }
        var table = ArchitectureCost.ParameterShapes(c).ToDictionary(t => t.Name, t => t.Shape);
        Assert.Equal(actual.Keys.Order(), table.Keys.Order());
        foreach (var (n, shape) in actual) Assert.Equal(shape, table[n]);

        long modelTotal = actual.Values.Sum(s => s.Aggregate(1L, (a, d) => a * d));
        Assert.Equal(modelTotal, ArchitectureCost.FromConfig(c).TotalParameters);
    }

    /// <summary>Sums element counts and bytes per dtype straight from a safetensors header (no kit code involved).</summary>
    private static (long Elements, Dictionary<string, long> BytesByDType) ReadHeader(string path)
    {
        using var f = File.OpenRead(path);
        var len = new byte[8];
        f.ReadExactly(len);
        var header = new byte[BinaryPrimitives.ReadInt64LittleEndian(len)];
        f.ReadExactly(header);
        long elements = 0;
        var bytes = new Dictionary<string, long>();
        foreach (var t in JsonDocument.Parse(header).RootElement.EnumerateObject())
        {
            if (t.Name == "__metadata__") continue;
            elements += t.Value.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, d) => a * d.GetInt64());
            var off = t.Value.GetProperty("data_offsets");
            var dt = t.Value.GetProperty("dtype").GetString()!;
            bytes[dt] = bytes.GetValueOrDefault(dt) + off[1].GetInt64() - off[0].GetInt64();
        }
        return (elements, bytes);
    }

    [Fact]
    public void GoldenCheckpoint_TotalEqualsTheElementsStoredInModelSafetensors()
    {
        var (elements, bytes) = ReadHeader(Path.Combine(GoldenHf, "model.safetensors"));
        var cost = ArchitectureCost.FromCheckpoint(GoldenHf);
        Assert.Equal(elements, cost.TotalParameters);
        Assert.Equal(elements, cost.StoredParameters);
        Assert.Equal(bytes.GetValueOrDefault("F32"), cost.BytesByDType["f32"]);
        Assert.Equal(0, cost.BytesByDType["bf16"]);
        Assert.Equal(0, cost.BytesByDType["fp8"]);
        // The config-only estimate agrees with the file (torch_dtype float32, no quantization).
        Assert.Equal(cost.BytesByDType["f32"], ArchitectureCost.FromConfig(cost.Config).BytesByDType["f32"]);
    }

    [Fact]
    public void GoldenCheckpoint_Layers_FollowFirstKDenseReplace()
    {
        var cost = ArchitectureCost.FromCheckpoint(GoldenHf);
        var j = JsonDocument.Parse(File.ReadAllText(Path.Combine(GoldenHf, "config.json"))).RootElement;
        int n = j.GetProperty("num_hidden_layers").GetInt32(), k = j.GetProperty("first_k_dense_replace").GetInt32();
        Assert.Equal(Enumerable.Range(0, n), cost.Layers.Select(l => l.Index));
        Assert.Equal(Enumerable.Range(0, n).Select(i => i < k ? "dense" : "moe"), cost.Layers.Select(l => l.Mlp));
        Assert.All(cost.Layers, l => Assert.Equal("mla", l.Attention)); // q_lora_rank null
        Assert.Equal(cost.TotalParameters, cost.Layers.Sum(l => l.Parameters) + (2L * 512 * 64) + 64); // + embed, head, final norm
    }

    [Fact]
    public void DeepSeekV3_AtRealSize_Is671BTotal_37BActive_WithMtpApart()
    {
        // DeepSeek-V3 README_WEIGHTS.md: main model 671B total, "36.6B activated (including 0.9B for the output head)"
        // (the report rounds it to 37B); the MTP module "11.5B unique parameters".
        var cost = ArchitectureCost.FromConfig(DeepSeekConfig.Load(RealConfigFixtureTests.Fixture("deepseek-v3-hf-config.json")));
        Assert.InRange(cost.TotalParameters, 670_500_000_000, 671_499_999_999);
        Assert.InRange(cost.ActiveParametersPerToken, 36_550_000_000, 36_649_999_999);
        Assert.InRange(cost.MtpParameters, 11_400_000_000, 11_699_999_999);
        Assert.Equal(61, cost.Layers.Count);
        Assert.Equal(3, cost.Layers.Count(l => l.Mlp == "dense"));
        // FP8 checkpoint: every projection weight is one byte; the bf16 part is embedding + head + norms + router.
        long bf16Elements = cost.BytesByDType["bf16"] / 2;
        Assert.Equal(cost.TotalParameters - bf16Elements - 58L * 256, cost.BytesByDType["fp8"]); // 58 MoE layers' float32 gate biases
        Assert.True(cost.BytesByDType["f32"] > 0); // block scales + biases
    }

    [Fact]
    public void DeepSeekV2Lite_AtRealSize_Is15_7BTotal_2_4BActive()
    {
        // DeepSeek-V2-Lite model card: 15.7B total parameters, 2.4B activated (the exact count is 2.451B: the card truncates).
        var c = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(RealConfigFixtureTests.Fixture("deepseek-v3-inference-config_16B.json")));
        var cost = ArchitectureCost.FromConfig(c);
        Assert.InRange(cost.TotalParameters, 15_650_000_000, 15_749_999_999);
        Assert.InRange(cost.ActiveParametersPerToken, 2_400_000_000, 2_459_999_999);
        Assert.Equal(0, cost.MtpParameters);
    }

    [Fact]
    public void DeepSeekV2_AtRealSize_Is236BTotal_21BActive()
    {
        // DeepSeek-V2 paper: 236B total, 21B activated per token.
        var c = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(RealConfigFixtureTests.Fixture("deepseek-v3-inference-config_236B.json")));
        var cost = ArchitectureCost.FromConfig(c);
        Assert.InRange(cost.TotalParameters, 235_500_000_000, 236_999_999_999);
        Assert.InRange(cost.ActiveParametersPerToken, 20_500_000_000, 21_499_999_999);
    }

    [Fact]
    public void KimiK2Shape_AtRealSize_IsAbout1TTotal_32BActive()
    {
        // Kimi K2 (model card: 1T total, 32B activated) is DeepseekV3ForCausalLM under model_type "kimi_k2" with 384
        // experts, 64 heads, one dense layer, no expert groups, a 163840-token vocabulary and no MTP module.
        var o = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(RealConfigFixtureTests.Fixture("deepseek-v3-hf-config.json")))!.AsObject();
        o["model_type"] = "kimi_k2";
        o["n_routed_experts"] = 384;
        o["num_attention_heads"] = 64;
        o["num_key_value_heads"] = 64;
        o["first_k_dense_replace"] = 1;
        o["n_group"] = 1;
        o["topk_group"] = 1;
        o["vocab_size"] = 163840;
        o["num_nextn_predict_layers"] = 0;
        var cost = ArchitectureCost.FromConfig(DeepSeekConfig.FromJson(o.ToJsonString()));
        Assert.InRange(cost.TotalParameters, 1_000_000_000_000, 1_060_000_000_000);
        Assert.InRange(cost.ActiveParametersPerToken, 31_500_000_000, 33_499_999_999);
        Assert.Equal(0, cost.MtpParameters);
        Assert.Equal(60, cost.Layers.Count(l => l.Mlp == "moe"));

        // Exact cross-check against the real checkpoint: a public weight-statistics listing of the moonshotai/Kimi-K2-Instruct
        // safetensors (found in the code index; no citable repository path) gives 1,026,470,731,056 stored elements
        // and 958.49 GiB. Stored = parameters + FP8 block scales (float32; the 60×384 router biases are the other f32
        // tensors) + 61 rotary inv_freq buffers of 56 bf16 values that the kit does not load.
        long scales = (cost.BytesByDType["f32"] - 60L * 384 * 4) / 4;
        Assert.Equal(1_026_470_731_056, cost.TotalParameters + scales + 61 * 56);
        Assert.Equal(958.49, Math.Round((cost.BytesByDType.Values.Sum() + 61 * 56 * 2) / (double)(1L << 30), 2));
    }
}
