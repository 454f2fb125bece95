using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Tests.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Config;

/// <summary>
/// Every real configuration file under tests/fixtures/configs loads, and the values the kit reads equal the file's own
/// values (parsed independently here with <see cref="JsonDocument"/>).
/// </summary>
public class RealConfigFixtureTests
{
    internal static string Fixture(string name) => Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "configs", name);

    private static JsonElement Root(string name) => JsonDocument.Parse(File.ReadAllText(Fixture(name))).RootElement;

    [Fact]
    public void EveryFixtureFile_IsListedInTheReadme_AndLoads()
    {
        var dir = Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "configs");
        var readme = File.ReadAllText(Path.Combine(dir, "README.md"));
        var files = Directory.GetFiles(dir, "*.json");
        Assert.True(files.Length >= 5, $"expected the fixture files, found {files.Length}");
        foreach (var f in files)
        {
            Assert.Contains($"`{Path.GetFileName(f)}`", readme);
            var root = JsonDocument.Parse(File.ReadAllText(f)).RootElement;
            var c = root.TryGetProperty("dim", out _) ? DeepSeekConfig.FromModelArgsJson(File.ReadAllText(f)) : DeepSeekConfig.Load(f);
            Assert.True(c.NumHiddenLayers > 0);
        }
    }

    [Fact]
    public void DeepSeekV3HfConfig_ReadsEveryArchitectureField()
    {
        const string name = "deepseek-v3-hf-config.json";
        var j = Root(name);
        var c = DeepSeekConfig.Load(Fixture(name));

        Assert.Equal(j.GetProperty("vocab_size").GetInt32(), c.VocabSize);
        Assert.Equal(j.GetProperty("hidden_size").GetInt32(), c.HiddenSize);
        Assert.Equal(j.GetProperty("intermediate_size").GetInt32(), c.IntermediateSize);
        Assert.Equal(j.GetProperty("moe_intermediate_size").GetInt32(), c.MoeIntermediateSize);
        Assert.Equal(j.GetProperty("num_hidden_layers").GetInt32(), c.NumHiddenLayers);
        Assert.Equal(j.GetProperty("first_k_dense_replace").GetInt32(), c.FirstKDenseReplace);
        Assert.Equal(j.GetProperty("moe_layer_freq").GetInt32(), c.MoeLayerFreq);
        Assert.Equal(j.GetProperty("num_attention_heads").GetInt32(), c.NumAttentionHeads);
        Assert.Equal(j.GetProperty("n_routed_experts").GetInt32(), c.NRoutedExperts);
        Assert.Equal(j.GetProperty("n_shared_experts").GetInt32(), c.NSharedExperts);
        Assert.Equal(j.GetProperty("num_experts_per_tok").GetInt32(), c.NumExpertsPerTok);
        Assert.Equal(j.GetProperty("n_group").GetInt32(), c.NGroup);
        Assert.Equal(j.GetProperty("topk_group").GetInt32(), c.TopkGroup);
        Assert.Equal("sigmoid", j.GetProperty("scoring_func").GetString());
        Assert.Equal(ScoringFunc.Sigmoid, c.ScoringFunc);
        Assert.Equal("noaux_tc", j.GetProperty("topk_method").GetString());
        Assert.Equal(TopkMethod.NoauxTc, c.TopkMethod);
        Assert.Equal(j.GetProperty("norm_topk_prob").GetBoolean(), c.NormTopkProb);
        Assert.Equal(j.GetProperty("routed_scaling_factor").GetDouble(), c.RoutedScalingFactor);
        Assert.Equal(j.GetProperty("q_lora_rank").GetInt32(), c.QLoraRank);
        Assert.Equal(j.GetProperty("kv_lora_rank").GetInt32(), c.KvLoraRank);
        Assert.Equal(j.GetProperty("qk_nope_head_dim").GetInt32(), c.QkNopeHeadDim);
        Assert.Equal(j.GetProperty("qk_rope_head_dim").GetInt32(), c.QkRopeHeadDim);
        Assert.Equal(j.GetProperty("v_head_dim").GetInt32(), c.VHeadDim);
        Assert.Equal(j.GetProperty("rope_theta").GetDouble(), c.RopeTheta);
        Assert.Equal(j.GetProperty("rms_norm_eps").GetDouble(), c.RmsNormEps);
        Assert.Equal(j.GetProperty("max_position_embeddings").GetInt32(), c.MaxPositionEmbeddings);
        Assert.Equal(j.GetProperty("tie_word_embeddings").GetBoolean(), c.TieWordEmbeddings);

        var rope = j.GetProperty("rope_scaling");
        Assert.NotNull(c.RopeScaling);
        Assert.Equal(rope.GetProperty("type").GetString(), c.RopeScaling!.Type);
        Assert.Equal(rope.GetProperty("factor").GetDouble(), c.RopeScaling.Factor);
        Assert.Equal(rope.GetProperty("original_max_position_embeddings").GetInt32(), c.RopeScaling.OriginalMaxPositionEmbeddings);
        Assert.Equal(rope.GetProperty("beta_fast").GetDouble(), c.RopeScaling.BetaFast);
        Assert.Equal(rope.GetProperty("beta_slow").GetDouble(), c.RopeScaling.BetaSlow);
        Assert.Equal(rope.GetProperty("mscale").GetDouble(), c.RopeScaling.Mscale);
        Assert.Equal(rope.GetProperty("mscale_all_dim").GetDouble(), c.RopeScaling.MscaleAllDim);

        // MTP modules: counted, not part of the blocks.
        Assert.Equal(1, j.GetProperty("num_nextn_predict_layers").GetInt32());
        Assert.Equal(1, c.NumNextnPredictLayers);

        var q = j.GetProperty("quantization_config");
        Assert.NotNull(c.Quantization);
        Assert.Equal(q.GetProperty("quant_method").GetString(), c.Quantization!.QuantMethod);
        Assert.Equal(q.GetProperty("fmt").GetString(), c.Quantization.Fmt);
        Assert.Equal(q.GetProperty("activation_scheme").GetString(), c.Quantization.ActivationScheme);
        Assert.Equal(q.GetProperty("weight_block_size")[0].GetInt32(), c.Quantization.WeightBlockRows);
        Assert.Equal(q.GetProperty("weight_block_size")[1].GetInt32(), c.Quantization.WeightBlockColumns);

        Assert.Equal(j.GetProperty("torch_dtype").GetString(), c.TorchDtype);
        Assert.Equal(j.GetProperty("model_type").GetString(), c.ModelType);
        // auto_map etc. are kept (written back by ToJson) but are known bookkeeping, so nothing is unknown.
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(j.GetProperty("auto_map").GetRawText()), c.ExtraFields!["auto_map"]));
        Assert.Empty(c.UnknownFields);

        // And the named preset is this file.
        Assert.Equal(DeepSeekConfig.DeepSeekV3, c with { ExtraFields = null, NumNextnPredictLayers = 0, Quantization = null, TorchDtype = null });
    }

    [Fact]
    public void DeepSeekV3HfConfig_RoundTripsThroughToJson_KeepingEveryField()
    {
        var c = DeepSeekConfig.Load(Fixture("deepseek-v3-hf-config.json"));
        var back = DeepSeekConfig.FromJson(c.ToJson());
        Assert.Equal(c with { ExtraFields = null }, back with { ExtraFields = null });
        var original = JsonNode.Parse(File.ReadAllText(Fixture("deepseek-v3-hf-config.json")))!.AsObject();
        var written = JsonNode.Parse(c.ToJson())!.AsObject();
        foreach (var (key, value) in original)
            Assert.True(written.ContainsKey(key), $"ToJson dropped '{key}' ({value?.ToJsonString()})");
    }

    [Fact]
    public void UnknownFields_AreKeptAndListed()
    {
        var o = JsonNode.Parse(File.ReadAllText(Fixture("deepseek-v3-hf-config.json")))!.AsObject();
        o["future_topk"] = 2048;           // fields this kit does not know (a newer release's)
        o["zz_custom"] = "x";
        var c = DeepSeekConfig.FromJson(o.ToJsonString());
        Assert.Equal(new[] { "future_topk", "zz_custom" }, c.UnknownFields);
        Assert.Equal(2048, (int)c.ExtraFields!["future_topk"]!);
        Assert.Equal(2048, (int)JsonNode.Parse(c.ToJson())!["future_topk"]!);
    }

    [Fact]
    public void KimiK2Style_ModelTypeUnderDeepseekV3Architecture_Loads_WithEqualYarnBetas()
    {
        // Kimi K2 ships model_type "kimi_k2", architectures [DeepseekV3ForCausalLM], and YaRN beta_fast = beta_slow = 1.
        var o = JsonNode.Parse(File.ReadAllText(Fixture("deepseek-v3-hf-config.json")))!.AsObject();
        o["model_type"] = "kimi_k2";
        o["rope_scaling"]!["beta_fast"] = 1.0;
        o["rope_scaling"]!["beta_slow"] = 1.0;
        var c = DeepSeekConfig.FromJson(o.ToJsonString());
        Assert.Equal("kimi_k2", c.ModelType);
        Assert.Equal(1.0, c.RopeScaling!.BetaFast);
        Assert.Equal(1.0, c.RopeScaling.BetaSlow);
        // And ToJson keeps the source's model_type.
        Assert.Equal("kimi_k2", (string)JsonNode.Parse(c.ToJson())!["model_type"]!);
    }

    [Fact]
    public void MoonlightStyle_OtherModelTypeUnderDeepseekV3Architecture_Loads()
    {
        var o = JsonNode.Parse(File.ReadAllText(Fixture("deepseek-v3-hf-config.json")))!.AsObject();
        o["model_type"] = "moonlight_custom";   // architectures still says DeepseekV3ForCausalLM
        Assert.Equal("moonlight_custom", DeepSeekConfig.FromJson(o.ToJsonString()).ModelType);
    }

    [Fact]
    public void NonDeepSeekArchitecture_IsRejected_NamingTheField()
    {
        var o = JsonNode.Parse(File.ReadAllText(Fixture("deepseek-v3-hf-config.json")))!.AsObject();
        o["architectures"] = new JsonArray("LlamaForCausalLM");
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(o.ToJsonString()));
        Assert.Equal("architectures", e.Field);
        Assert.Contains("DeepseekV3ForCausalLM", e.Message);
        Assert.Contains("LlamaForCausalLM", e.Message);

        o.Remove("architectures");
        o["model_type"] = "llama";
        var e2 = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(o.ToJsonString()));
        Assert.Equal("model_type", e2.Field);
        Assert.Contains("\"llama\"", e2.Message);
    }

    [Fact]
    public void BadQuantizationConfig_IsRejected_NamingTheField()
    {
        var o = JsonNode.Parse(File.ReadAllText(Fixture("deepseek-v3-hf-config.json")))!.AsObject();
        o["quantization_config"]!["weight_block_size"] = new JsonArray(128);
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(o.ToJsonString()));
        Assert.Equal("quantization_config.weight_block_size", e.Field);

        o["quantization_config"] = new JsonObject { ["quant_method"] = "gptq", ["weight_block_size"] = new JsonArray(128, 128) };
        var e2 = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(o.ToJsonString()));
        Assert.Equal("quantization_config.quant_method", e2.Field);
        Assert.Contains("\"gptq\"", e2.Message);
    }

    [Fact]
    public void NegativeMtpLayerCount_IsRejected()
    {
        var o = JsonNode.Parse(File.ReadAllText(Fixture("deepseek-v3-hf-config.json")))!.AsObject();
        o["num_nextn_predict_layers"] = -1;
        Assert.Equal("num_nextn_predict_layers", Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(o.ToJsonString())).Field);
    }

    public static TheoryData<string, string, string> ModelArgsFiles => new()
    {
        // file, expected topk_method (derived: bias iff dim == 7168, else groups > 1 → group-limited), expected scoring
        { "deepseek-v3-inference-config_671B.json", "noaux_tc", "sigmoid" },
        { "deepseek-v3-inference-config_v3.1.json", "noaux_tc", "sigmoid" },
        { "deepseek-v3-inference-config_236B.json", "group_limited_greedy", "softmax" },
        { "deepseek-v3-inference-config_16B.json", "greedy", "softmax" },
        { "deepseek-v3.2-exp-inference-config_671B_v3.2.json", "noaux_tc", "sigmoid" },
    };

    [Fact]
    public void OfficialV32ExpFile_ReadsTheLightningIndexer_AndIsV3Otherwise()
    {
        const string name = "deepseek-v3.2-exp-inference-config_671B_v3.2.json";
        var j = Root(name);
        var c = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(Fixture(name)));
        Assert.NotNull(c.Indexer);
        Assert.Equal(j.GetProperty("index_n_heads").GetInt32(), c.Indexer!.NHeads);
        Assert.Equal(j.GetProperty("index_head_dim").GetInt32(), c.Indexer.HeadDim);
        Assert.Equal(j.GetProperty("index_topk").GetInt32(), c.Indexer.Topk);
        // Everything but the indexer (and the released dtype, scale format and context length) is DeepSeek-V3's architecture.
        var v3 = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(Fixture("deepseek-v3-inference-config_671B.json")));
        Assert.Equal(v3.ToJson(), (c with { Indexer = null, Quantization = v3.Quantization, ScaleFmt = v3.ScaleFmt, MaxPositionEmbeddings = v3.MaxPositionEmbeddings }).ToJson());
    }

    [Theory]
    [MemberData(nameof(ModelArgsFiles))]
    public void OfficialModelArgsFile_ReadsTheFilesValues(string name, string topk, string scoring)
    {
        var j = Root(name);
        var c = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(Fixture(name)));
        int Get(string f) => j.GetProperty(f).GetInt32();
        Assert.Equal(Get("vocab_size"), c.VocabSize);
        Assert.Equal(Get("dim"), c.HiddenSize);
        Assert.Equal(Get("inter_dim"), c.IntermediateSize);
        Assert.Equal(Get("moe_inter_dim"), c.MoeIntermediateSize);
        Assert.Equal(Get("n_layers"), c.NumHiddenLayers);
        Assert.Equal(Get("n_dense_layers"), c.FirstKDenseReplace);
        Assert.Equal(Get("n_heads"), c.NumAttentionHeads);
        Assert.Equal(Get("n_routed_experts"), c.NRoutedExperts);
        Assert.Equal(Get("n_shared_experts"), c.NSharedExperts);
        Assert.Equal(Get("n_activated_experts"), c.NumExpertsPerTok);
        Assert.Equal(j.TryGetProperty("n_expert_groups", out var g) ? g.GetInt32() : 1, c.NGroup);
        Assert.Equal(j.TryGetProperty("n_limited_groups", out var l) ? l.GetInt32() : 1, c.TopkGroup);
        Assert.Equal(j.GetProperty("route_scale").GetDouble(), c.RoutedScalingFactor);
        Assert.Equal(Get("q_lora_rank") == 0 ? null : Get("q_lora_rank"), c.QLoraRank);
        Assert.Equal(Get("kv_lora_rank"), c.KvLoraRank);
        Assert.Equal(Get("qk_nope_head_dim"), c.QkNopeHeadDim);
        Assert.Equal(Get("qk_rope_head_dim"), c.QkRopeHeadDim);
        Assert.Equal(Get("v_head_dim"), c.VHeadDim);
        if (j.TryGetProperty("mscale", out var m)) Assert.Equal(m.GetDouble(), c.RopeScaling!.MscaleAllDim);
        Assert.Equal(topk, c.TopkMethod.ToJsonName());
        Assert.Equal(scoring, c.ScoringFunc.ToJsonName());
        // dtype "fp8" is FP8 block quantization with the official kernel's 128x128 blocks.
        var dtype = j.TryGetProperty("dtype", out var d) ? d.GetString() : null;
        Assert.Equal(dtype == "fp8", c.Quantization is not null);
        if (c.Quantization is { } qc) Assert.Equal((128, 128), (qc.WeightBlockRows, qc.WeightBlockColumns));
    }

    [Fact]
    public void Official671BFile_DescribesTheSameArchitectureAsTheHfFile()
    {
        var hf = DeepSeekConfig.Load(Fixture("deepseek-v3-hf-config.json"));
        var official = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(Fixture("deepseek-v3-inference-config_671B.json")));
        // The ModelArgs file has no max_seq_len (dataclass default 16384) and no MTP/quantization description.
        Assert.Equal(hf with { ExtraFields = null, NumNextnPredictLayers = 0, MaxPositionEmbeddings = 0, TorchDtype = null, Quantization = null },
            official with { ExtraFields = null, MaxPositionEmbeddings = 0, TorchDtype = null, Quantization = null });
    }
}
