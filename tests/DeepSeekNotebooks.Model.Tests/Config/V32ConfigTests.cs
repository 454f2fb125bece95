using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Tests.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Config;

/// <summary>
/// DeepSeek-V3.2 configurations (tests/fixtures/golden/v32, copied from shared/golden/v32): the Hugging Face
/// <c>deepseek_v32</c> config.json and the official ModelArgs describe the same model, lightning indexer included;
/// missing or inconsistent index fields fail naming the field.
/// </summary>
public class V32ConfigTests
{
    internal static string V32Dir => Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "golden", "v32");
    private static string HfJson => File.ReadAllText(Path.Combine(V32Dir, "public.hf_config.json"));
    private static string ArgsJson => File.ReadAllText(Path.Combine(V32Dir, "public.model_args.json"));

    [Fact]
    public void HfConfig_ReadsTheIndexer()
    {
        var c = DeepSeekConfig.FromJson(HfJson);
        Assert.Equal(new LightningIndexerConfig { NHeads = 4, HeadDim = 128, Topk = 6 }, c.Indexer);
        Assert.Equal("deepseek_v32", c.ModelType);
        Assert.Empty(c.UnknownFields);
        Assert.Equal(ScaleFormat.Float, c.ScaleFmt); // the float checkpoint's config.json has no quantization_config
    }

    [Fact]
    public void ModelArgs_ReadsIndexerAndScaleFormat_AndAgreesWithHfConfig()
    {
        var args = DeepSeekConfig.FromModelArgsJson(ArgsJson, hasGateBias: true);
        Assert.Equal(new LightningIndexerConfig { NHeads = 4, HeadDim = 128, Topk = 6 }, args.Indexer);
        Assert.Equal(ScaleFormat.Ue8m0, args.ScaleFmt);
        var hf = DeepSeekConfig.FromJson(HfJson);
        // Same architecture; ModelArgs always carries YaRN settings (inactive here: max_seq_len 64 <= 4096) and a dtype.
        Assert.False(args.YarnActive);
        Assert.Equal(hf with { ExtraFields = null, RopeScaling = null, TorchDtype = null, ScaleFmt = ScaleFormat.Ue8m0 },
                     args with { RopeScaling = null, TorchDtype = null });
    }

    [Fact]
    public void BothFormats_RoundTrip_TheIndexer()
    {
        var hf = DeepSeekConfig.FromJson(HfJson);
        var back = DeepSeekConfig.FromJson(hf.ToJson());
        Assert.Equal(hf with { ExtraFields = null }, back with { ExtraFields = null });
        Assert.Equal("DeepseekV32ForCausalLM", JsonNode.Parse(hf.ToJson())!["architectures"]![0]!.GetValue<string>());

        var args = DeepSeekConfig.FromModelArgsJson(ArgsJson, hasGateBias: true);
        Assert.Equal(args, DeepSeekConfig.FromModelArgsJson(args.ToModelArgsJson(), hasGateBias: true));
        // V3 configurations stay as they were: no indexer, no index fields written.
        var v3 = DeepSeekConfig.DeepSeekV3;
        Assert.Null(v3.Indexer);
        Assert.Null(JsonNode.Parse(v3.ToJson())!["index_topk"]);
        Assert.Null(JsonNode.Parse(v3.ToModelArgsJson())!["index_topk"]);
    }

    private static string Edit(string json, Action<JsonObject> edit)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        edit(o);
        return o.ToJsonString();
    }

    [Theory]
    [InlineData("index_topk", 0)]
    [InlineData("index_n_heads", -1)]
    [InlineData("index_head_dim", 96)]   // not a power of two: no Sylvester Hadamard matrix
    [InlineData("index_head_dim", 8)]    // not larger than qk_rope_head_dim (8)
    public void BadIndexField_NamesIt(string field, int value)
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(Edit(HfJson, o => o[field] = value)));
        Assert.Equal(field, e.Field);
        var e2 = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromModelArgsJson(Edit(ArgsJson, o => o[field] = value)));
        Assert.Equal(field, e2.Field);
    }

    [Fact]
    public void V32Type_WithoutIndexFields_Fails()
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(Edit(HfJson, o =>
        {
            o.Remove("index_n_heads"); o.Remove("index_head_dim"); o.Remove("index_topk");
        })));
        Assert.Equal("index_n_heads", e.Field);
        Assert.Contains("deepseek_v32", e.Message);
    }

    [Fact]
    public void OneIndexFieldMissing_NamesIt()
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(Edit(HfJson, o => o.Remove("index_topk"))));
        Assert.Equal("index_topk", e.Field);
    }

    [Fact]
    public void IndexFields_UnderAV3Type_AreInconsistent()
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(Edit(HfJson, o =>
        {
            o["model_type"] = "deepseek_v3";
            o["architectures"] = new JsonArray("DeepseekV3ForCausalLM");
        })));
        Assert.Equal("index_n_heads", e.Field);
        Assert.Contains("DeepseekV32ForCausalLM", e.Message);
    }

    [Fact]
    public void BadScaleFmt_NamesIt()
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromModelArgsJson(Edit(ArgsJson, o => o["scale_fmt"] = "e8m0")));
        Assert.Equal("scale_fmt", e.Field);
        var e2 = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(Edit(HfJson, o => o["quantization_config"] =
            new JsonObject { ["quant_method"] = "fp8", ["weight_block_size"] = new JsonArray(128, 128), ["scale_fmt"] = "ue4m3" })));
        Assert.Equal("quantization_config.scale_fmt", e2.Field);
    }

    [Fact]
    public void IndexerWithoutQueryLora_Fails()
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(Edit(HfJson, o => o["q_lora_rank"] = null)));
        Assert.Equal("q_lora_rank", e.Field);
    }
}
