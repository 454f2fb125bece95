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
        Assert.Equal(0, (int)b.ExtraFields!["num_nextn_predict_layers"]!);
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
        Assert.Equal(hf with { RopeScaling = null, ExtraFields = null }, official with { RopeScaling = null, ExtraFields = null });
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
}
