using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tests.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Config;

/// <summary>Hugging Face config.json and official ModelArgs JSON: round trips, cross-format agreement, validation messages.</summary>
public class ConfigTests
{
    private static string GoldenHfConfig => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf", "config.json");
    private static string GoldenModelArgs => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-official", "config.json");

    [Fact]
    public void HfConfig_RoundTrip_IsEqual_IncludingRopeScaling()
    {
        var c = DeepSeekConfig.TinyFullFeatured;
        var back = DeepSeekConfig.FromJson(c.ToJson());
        // ExtraFields is a JsonObject (reference equality in the record), so compare it separately.
        Assert.Equal(c, back with { ExtraFields = null });
        Assert.Equal(c.RopeScaling, back.RopeScaling);
        Assert.NotNull(back.RopeScaling);
        Assert.Equal(16, back.QLoraRank);

        var noLora = c with { QLoraRank = null, RopeScaling = null };
        Assert.Equal(noLora, DeepSeekConfig.FromJson(noLora.ToJson()) with { ExtraFields = null });
    }

    [Fact]
    public void HfConfig_GoldenFile_RoundTrip_KeepsUnknownFields()
    {
        var a = DeepSeekConfig.Load(GoldenHfConfig);
        var b = DeepSeekConfig.FromJson(a.ToJson());
        Assert.Equal(a with { ExtraFields = null }, b with { ExtraFields = null });
        Assert.True(JsonNode.DeepEquals(a.ExtraFields, b.ExtraFields), $"{a.ExtraFields?.ToJsonString()} vs {b.ExtraFields?.ToJsonString()}");
        Assert.Equal(0, b.NumNextnPredictLayers);
    }

    [Fact]
    public void ModelArgs_RoundTrip_IsEqual()
    {
        var c = DeepSeekConfig.TinyFullFeatured;
        Assert.Equal(c, DeepSeekConfig.FromModelArgsJson(c.ToModelArgsJson(), hasGateBias: true));
        var golden = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(GoldenModelArgs));
        Assert.Equal(golden, DeepSeekConfig.FromModelArgsJson(golden.ToModelArgsJson()));
    }

    [Fact]
    public void GoldenHfConfig_AndGoldenModelArgs_DescribeTheSameModel()
    {
        var hf = DeepSeekConfig.Load(GoldenHfConfig);
        var official = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(GoldenModelArgs), hasGateBias: false);
        // rope_scaling differs in form (null vs factor 40 from 4096) but YaRN is inactive in both (64 <= original).
        Assert.Equal(hf with { RopeScaling = null, ExtraFields = null, TorchDtype = null }, official with { RopeScaling = null, ExtraFields = null });
        Assert.False(hf.YarnActive);
        Assert.False(official.YarnActive);
        Assert.Equal(hf.SoftmaxScale, official.SoftmaxScale);
        Assert.Equal(RotaryEmbedding.InverseFrequencies(hf), RotaryEmbedding.InverseFrequencies(official));
    }

    private static string Mutate(string json, Action<JsonObject> edit)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        edit(o);
        return o.ToJsonString();
    }

    public static TheoryData<string, string> HfErrors => new()
    {
        { "missing hidden_size", "hidden_size" },
        { "n_group 3 with 8 experts", "n_group" },
        { "topk_group > n_group", "topk_group" },
        { "num_experts_per_tok > n_routed_experts", "num_experts_per_tok" },
        { "odd qk_rope_head_dim", "qk_rope_head_dim" },
        { "scoring_func relu", "scoring_func" },
        { "hidden_size as a string", "hidden_size" },
        { "q_lora_rank 0", "q_lora_rank" },
        { "rope_scaling.factor as a string", "rope_scaling.factor" },
    };

    [Theory]
    [MemberData(nameof(HfErrors))]
    public void HfConfig_ValidationErrors_NameTheField(string defect, string field)
    {
        var json = Mutate(File.ReadAllText(GoldenHfConfig), o =>
        {
            switch (defect)
            {
                case "missing hidden_size": o.Remove("hidden_size"); break;
                case "n_group 3 with 8 experts": o["n_group"] = 3; break;
                case "topk_group > n_group": o["n_group"] = 2; o["topk_group"] = 3; break;
                case "num_experts_per_tok > n_routed_experts": o["num_experts_per_tok"] = 9; break;
                case "odd qk_rope_head_dim": o["qk_rope_head_dim"] = 7; break;
                case "scoring_func relu": o["scoring_func"] = "relu"; break;
                case "hidden_size as a string": o["hidden_size"] = "64"; break;
                case "q_lora_rank 0": o["q_lora_rank"] = 0; break;
                case "rope_scaling.factor as a string":
                    o["rope_scaling"] = new JsonObject { ["type"] = "yarn", ["factor"] = "4", ["original_max_position_embeddings"] = 16 }; break;
            }
        });
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(json));
        Assert.Equal(field, e.Field);
        Assert.Contains($"'{field}'", e.Message);
    }

    [Theory]
    [InlineData("{ \"vocab_size\": 512, ")]
    [InlineData("not json at all")]
    [InlineData("[1, 2, 3]")]
    public void InvalidJsonText_IsAConfigException(string text)
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(text));
        Assert.Equal("(root)", e.Field);
        Assert.Throws<ConfigException>(() => DeepSeekConfig.FromModelArgsJson(text));
    }

    [Fact]
    public void Load_MissingFile_NamesThePath()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.Load(dir.File("config.json")));
        Assert.Contains("config.json", e.Message);
    }

    public static TheoryData<string, string> ModelArgsErrors => new()
    {
        { "n_expert_groups 3 with 8 experts", "n_expert_groups" },
        { "n_limited_groups > n_expert_groups", "n_limited_groups" },
        { "n_activated_experts > n_routed_experts", "n_activated_experts" },
        { "score_func relu", "score_func" },
        { "dim as a string", "dim" },
        { "odd qk_rope_head_dim", "qk_rope_head_dim" },
        { "negative dim", "dim" },
    };

    /// <summary>Errors in a ModelArgs file name the field as that file spells it (ConfigException.Field: "in the source file's spelling").</summary>
    [Theory]
    [MemberData(nameof(ModelArgsErrors))]
    public void ModelArgs_ValidationErrors_NameTheFieldAsSpelledInTheFile(string defect, string field)
    {
        var json = Mutate(File.ReadAllText(GoldenModelArgs), o =>
        {
            switch (defect)
            {
                case "n_expert_groups 3 with 8 experts": o["n_expert_groups"] = 3; break;
                case "n_limited_groups > n_expert_groups": o["n_expert_groups"] = 2; o["n_limited_groups"] = 3; break;
                case "n_activated_experts > n_routed_experts": o["n_activated_experts"] = 9; break;
                case "score_func relu": o["score_func"] = "relu"; break;
                case "dim as a string": o["dim"] = "64"; break;
                case "odd qk_rope_head_dim": o["qk_rope_head_dim"] = 7; break;
                case "negative dim": o["dim"] = -64; break;
            }
        });
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromModelArgsJson(json));
        Assert.Equal(field, e.Field);
    }

    // ------------------------------------------------------------------ one set of defaults, presets, enum spellings

    private const string MinimalHf = """
        { "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2,
          "kv_lora_rank": 8, "qk_nope_head_dim": 4, "qk_rope_head_dim": 4, "v_head_dim": 4 }
        """;

    [Fact]
    public void AbsentHfFields_TakeTheRecordsInitialValues_OneSetOfDefaults()
    {
        var read = DeepSeekConfig.FromJson(MinimalHf) with { ExtraFields = null };
        var constructed = new DeepSeekConfig
        {
            VocabSize = 64, HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 2, NumAttentionHeads = 2,
            KvLoraRank = 8, QkNopeHeadDim = 4, QkRopeHeadDim = 4, VHeadDim = 4,
        };
        Assert.Equal(constructed, read);
        // The documented meaning of an absent field: a dense model, softmax/greedy routing, full-rank queries, no YaRN, 4096 tokens.
        Assert.Equal((0, 0, 1, 1, 1, ScoringFunc.Softmax, TopkMethod.Greedy, false, 1.0, (int?)null, (RopeScaling?)null, 4096, 1e-6, 10000.0),
            (read.NRoutedExperts, read.NSharedExperts, read.NGroup, read.TopkGroup, read.NumExpertsPerTok, read.ScoringFunc, read.TopkMethod,
             read.NormTopkProb, read.RoutedScalingFactor, read.QLoraRank, read.RopeScaling, read.MaxPositionEmbeddings, read.RmsNormEps, read.RopeTheta));
        Assert.All(new[] { 0, 1 }, l => Assert.False(read.IsMoeLayer(l)));
    }

    [Fact]
    public void AbsentRopeScalingFields_TakeTheRopeScalingInitialValues()
    {
        var json = Mutate(MinimalHf, o => o["rope_scaling"] = new JsonObject { ["type"] = "yarn", ["factor"] = 4, ["original_max_position_embeddings"] = 16 });
        Assert.Equal(new RopeScaling { Factor = 4, OriginalMaxPositionEmbeddings = 16 }, DeepSeekConfig.FromJson(json).RopeScaling);
    }

    [Fact]
    public void AbsentModelArgsFields_TakeTheModelArgsDataclassDefaults()
    {
        // ModelArgs of DeepSeek-V3's inference/model.py: vocab 102400, dim 2048, inter 10944, moe_inter 1408, 27 layers,
        // 1 dense, 16 heads, 64 routed / 2 shared / 6 active, 1 group, softmax, route_scale 1, q_lora_rank 0, kv 512,
        // 128/64/128 head dims, max_seq_len 16384, original_seq_len 4096, rope_theta 10000, rope_factor 40, beta 32/1, mscale 1.
        var c = DeepSeekConfig.FromModelArgsJson("{}");
        Assert.Equal(new DeepSeekConfig
        {
            VocabSize = 102400, HiddenSize = 2048, IntermediateSize = 10944, MoeIntermediateSize = 1408, NumHiddenLayers = 27,
            FirstKDenseReplace = 1, NumAttentionHeads = 16, NRoutedExperts = 64, NSharedExperts = 2, NumExpertsPerTok = 6,
            NGroup = 1, TopkGroup = 1, ScoringFunc = ScoringFunc.Softmax, TopkMethod = TopkMethod.Greedy, NormTopkProb = false,
            RoutedScalingFactor = 1.0, QLoraRank = null, KvLoraRank = 512, QkNopeHeadDim = 128, QkRopeHeadDim = 64, VHeadDim = 128,
            RopeTheta = 10000, MaxPositionEmbeddings = 16384, RmsNormEps = 1e-6,
            RopeScaling = new RopeScaling { Factor = 40, OriginalMaxPositionEmbeddings = 4096, BetaFast = 32, BetaSlow = 1, Mscale = 1, MscaleAllDim = 1 },
        }, c);
    }

    [Fact]
    public void TheShapeFields_AreRequired_SoNoModelSizeIsASilentDefault()
    {
        var required = typeof(DeepSeekConfig).GetProperties()
            .Where(p => p.GetCustomAttributes(typeof(System.Runtime.CompilerServices.RequiredMemberAttribute), false).Length > 0)
            .Select(p => p.Name).Order();
        Assert.Equal(new[] { "HiddenSize", "IntermediateSize", "KvLoraRank", "NumAttentionHeads", "NumHiddenLayers", "QkNopeHeadDim",
            "QkRopeHeadDim", "VHeadDim", "VocabSize" }, required);
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(Mutate(MinimalHf, o => o.Remove("intermediate_size"))));
        Assert.Equal("intermediate_size", e.Field);
    }

    // The official inference/configs/*.json of deepseek-ai/DeepSeek-V3 (config_671B: V3; config_236B: V2; config_16B: V2-Lite).
    private const string Config671B = """
        { "vocab_size": 129280, "dim": 7168, "inter_dim": 18432, "moe_inter_dim": 2048, "n_layers": 61, "n_dense_layers": 3,
          "n_heads": 128, "n_routed_experts": 256, "n_shared_experts": 1, "n_activated_experts": 8, "n_expert_groups": 8,
          "n_limited_groups": 4, "route_scale": 2.5, "score_func": "sigmoid", "q_lora_rank": 1536, "kv_lora_rank": 512,
          "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "dtype": "fp8" }
        """;
    private const string Config236B = """
        { "vocab_size": 102400, "dim": 5120, "inter_dim": 12288, "moe_inter_dim": 1536, "n_layers": 60, "n_dense_layers": 1,
          "n_heads": 128, "n_routed_experts": 160, "n_shared_experts": 2, "n_activated_experts": 6, "n_expert_groups": 8,
          "n_limited_groups": 3, "route_scale": 16.0, "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
          "qk_rope_head_dim": 64, "v_head_dim": 128 }
        """;
    private const string Config16B = """
        { "vocab_size": 102400, "dim": 2048, "inter_dim": 10944, "moe_inter_dim": 1408, "n_layers": 27, "n_dense_layers": 1,
          "n_heads": 16, "n_routed_experts": 64, "n_shared_experts": 2, "n_activated_experts": 6, "route_scale": 1.0,
          "q_lora_rank": 0, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "mscale": 0.707 }
        """;

    public static TheoryData<string> Presets => new() { "V3", "V2", "V2-Lite" };

    private static (DeepSeekConfig Preset, string Official) PresetAndOfficial(string name) => name switch
    {
        "V3" => (DeepSeekConfig.DeepSeekV3, Config671B),
        "V2" => (DeepSeekConfig.DeepSeekV2, Config236B),
        _ => (DeepSeekConfig.DeepSeekV2Lite, Config16B),
    };

    [Theory]
    [MemberData(nameof(Presets))]
    public void Presets_AgreeWithTheOfficialModelArgsConfigs(string name)
    {
        var (preset, official) = PresetAndOfficial(name);
        var args = DeepSeekConfig.FromModelArgsJson(official);
        // ModelArgs files leave the context length to the run (max_seq_len), and the 236B file leaves mscale at its default;
        // the presets are architectures, without the 671B file's storage dtype (fp8).
        Assert.Equal(preset with { MaxPositionEmbeddings = 0, RopeScaling = null },
            args with { MaxPositionEmbeddings = 0, RopeScaling = null, ExtraFields = null, Quantization = null, TorchDtype = null });
        Assert.Equal((40.0, 4096), (args.RopeScaling!.Factor, args.RopeScaling.OriginalMaxPositionEmbeddings));
        Assert.Equal((preset.RopeScaling!.Factor, preset.RopeScaling.OriginalMaxPositionEmbeddings), (args.RopeScaling.Factor, args.RopeScaling.OriginalMaxPositionEmbeddings));
        if (name != "V2") Assert.Equal(preset.RopeScaling.MscaleAllDim, args.RopeScaling.MscaleAllDim);
        Assert.True(preset.YarnActive);
    }

    [Theory]
    [MemberData(nameof(Presets))]
    public void Presets_RoundTripThroughConfigJson_WithTheJsonSpellings(string name)
    {
        var (preset, _) = PresetAndOfficial(name);
        var json = preset.ToJson();
        var o = JsonNode.Parse(json)!.AsObject();
        var (scoring, method) = name switch { "V3" => ("sigmoid", "noaux_tc"), "V2" => ("softmax", "group_limited_greedy"), _ => ("softmax", "greedy") };
        Assert.Equal(scoring, (string)o["scoring_func"]!);
        Assert.Equal(method, (string)o["topk_method"]!);
        Assert.Equal(preset, DeepSeekConfig.FromJson(json) with { ExtraFields = null });
        var args = JsonNode.Parse(preset.ToModelArgsJson())!.AsObject();
        Assert.Equal(scoring, (string)args["score_func"]!);
    }

    [Theory]
    [InlineData("scoring_func", "relu", "must be \"softmax\", \"sigmoid\" or \"sqrtsoftplus\", got \"relu\"")]
    [InlineData("scoring_func", "Sigmoid", "must be \"softmax\", \"sigmoid\" or \"sqrtsoftplus\", got \"Sigmoid\"")]
    [InlineData("topk_method", "noaux", "must be \"greedy\", \"group_limited_greedy\" or \"noaux_tc\", got \"noaux\"")]
    [InlineData("topk_method", "gready", "must be \"greedy\", \"group_limited_greedy\" or \"noaux_tc\", got \"gready\"")]
    public void BadEnumSpellings_NameTheFieldAndTheValidSpellings(string field, string value, string problem)
    {
        var json = Mutate(File.ReadAllText(GoldenHfConfig), o => o[field] = value);
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(json));
        Assert.Equal(field, e.Field);
        Assert.Equal(problem, e.Problem);
    }

    [Fact]
    public void BadEnumValues_InModelArgsAndInCode_NameTheField()
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromModelArgsJson(Mutate(File.ReadAllText(GoldenModelArgs), o => o["score_func"] = "tanh")));
        Assert.Equal("score_func", e.Field);
        Assert.Contains("\"softmax\", \"sigmoid\" or \"sqrtsoftplus\"", e.Message);
        var bad = Assert.Throws<ConfigException>(() => (DeepSeekConfig.TinyFullFeatured with { TopkMethod = (TopkMethod)7 }).Validate());
        Assert.Equal("topk_method", bad.Field);
        Assert.Contains("\"noaux_tc\"", bad.Message);
        Assert.Equal("sigmoid", ScoringFunc.Sigmoid.ToJsonName());
        Assert.Equal(TopkMethod.GroupLimitedGreedy, ConfigSpellings.ParseTopkMethod("group_limited_greedy"));
    }
}
