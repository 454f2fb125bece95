using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Tests.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Config;

/// <summary>
/// DeepSeek-V4 configurations: transformers' <c>DeepseekV4Config</c> serialisation (tests/fixtures/golden/v4,
/// public.hf_config.json: layer_types, compress_rates, mlp_layer_types, rope_parameters), the official ModelArgs of the
/// same model (public.model_args.json), and the real DeepSeek-V4-Flash files (tests/fixtures/configs: the config.json
/// shipped with the checkpoint, compress_ratios with an MTP entry, and the official inference/config.json).
/// Wrong or inconsistent fields fail naming the field.
/// </summary>
public class V4ConfigTests
{
    internal static string V4Dir => Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "golden", "v4");
    private static string HfJson => File.ReadAllText(Path.Combine(V4Dir, "public.hf_config.json"));
    private static string ArgsJson => File.ReadAllText(Path.Combine(V4Dir, "public.model_args.json"));
    private static string ConfigsDir => Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "configs");
    private static string FlashHf => File.ReadAllText(Path.Combine(ConfigsDir, "deepseek-v4-flash-hf-config.json"));
    private static string FlashArgs => File.ReadAllText(Path.Combine(ConfigsDir, "deepseek-v4-flash-inference-config.json"));

    private static string Edit(string json, Action<JsonObject> edit)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        edit(o);
        return o.ToJsonString();
    }

    [Fact]
    public void TransformersForm_ReadsEveryV4Field()
    {
        var c = DeepSeekConfig.FromJson(HfJson);
        // The README's layer table: sliding, CSA (4), HCA (8), sliding; layer 0 hash-routed.
        Assert.Equal(new[] { AttentionKind.SlidingWindow, AttentionKind.CompressedSparse, AttentionKind.HeavilyCompressed, AttentionKind.SlidingWindow },
            Enumerable.Range(0, 4).Select(c.AttentionKindOf));
        Assert.Equal(new[] { 0, 4, 8, 0 }, c.CompressedAttention!.CompressRatios);
        Assert.Equal(new[] { true, false, false, false }, Enumerable.Range(0, 4).Select(c.IsHashLayer));
        Assert.Equal(1, c.NumHashLayers);
        Assert.Equal(new HyperConnectionConfig { Mult = 4, SinkhornIters = 20, Eps = 1e-6 }, c.HyperConnections);
        var a = c.CompressedAttention;
        Assert.Equal((72, 2, 16, 8, 40000.0), (a.HeadDim, a.OGroups, a.OLoraRank, a.SlidingWindow, a.CompressRopeTheta));
        Assert.Equal((64, 8, 72), (c.QkNopeHeadDim, c.QkRopeHeadDim, c.QkHeadDim));
        Assert.Equal(10000.0, c.RopeTheta);
        Assert.Null(c.RopeScaling);
        Assert.Equal(ScoringFunc.SqrtSoftplus, c.ScoringFunc);
        Assert.Equal(0.25, c.SwigluLimit);
        Assert.Equal(1.5, c.RoutedScalingFactor);
        Assert.Equal(new LightningIndexerConfig { NHeads = 8, HeadDim = 32, Topk = 2 }, c.Indexer);
        Assert.True(Enumerable.Range(0, 4).All(c.IsMoeLayer));
        Assert.Equal("deepseek_v4", c.ModelType);
        Assert.Empty(c.UnknownFields);
    }

    [Fact]
    public void ModelArgs_DescribesTheSameModel()
    {
        var args = DeepSeekConfig.FromModelArgsJson(ArgsJson);
        var hf = DeepSeekConfig.FromJson(HfJson);
        Assert.Equal(ScaleFormat.Ue8m0, args.ScaleFmt);
        Assert.Equal(0, args.NumNextnPredictLayers);
        Assert.Equal(hf with { ExtraFields = null, TorchDtype = null, ScaleFmt = ScaleFormat.Ue8m0 }, args with { TorchDtype = null });
    }

    [Fact]
    public void RealFlashConfigs_ShippedConfigJsonAndOfficialModelArgs_Agree()
    {
        var hf = DeepSeekConfig.FromJson(FlashHf);
        Assert.Equal(43, hf.NumHiddenLayers);
        Assert.Equal(1, hf.NumNextnPredictLayers);
        Assert.Equal(44, hf.CompressedAttention!.CompressRatios.Count);       // one entry more than layers: the MTP layer
        Assert.Equal((AttentionKind.SlidingWindow, AttentionKind.CompressedSparse, AttentionKind.HeavilyCompressed, AttentionKind.CompressedSparse),
            (hf.AttentionKindOf(1), hf.AttentionKindOf(2), hf.AttentionKindOf(3), hf.AttentionKindOf(42)));
        Assert.Equal(3, hf.NumHashLayers);
        Assert.Equal(ScaleFormat.Ue8m0, hf.ScaleFmt);
        Assert.Equal("fp4", hf.ExpertDtype);
        Assert.Equal(new RopeScaling { Factor = 16, OriginalMaxPositionEmbeddings = 65536, BetaFast = 32, BetaSlow = 1 }, hf.RopeScaling);
        Assert.Equal(160000.0, hf.CompressedAttention.CompressRopeTheta);
        Assert.Equal(10.0, hf.SwigluLimit);
        Assert.Empty(hf.UnknownFields);

        var args = DeepSeekConfig.FromModelArgsJson(FlashArgs);
        Assert.Equal(1, args.NumNextnPredictLayers);   // 44 compress_ratios for 43 layers
        // Same architecture; the ModelArgs file has no max_seq_len (dataclass default) and no torch_dtype.
        Assert.Equal(hf with { ExtraFields = null, MaxPositionEmbeddings = 0, TorchDtype = null, Quantization = null },
                     args with { MaxPositionEmbeddings = 0, TorchDtype = null, Quantization = null });
    }

    [Fact]
    public void BothFormats_RoundTrip()
    {
        foreach (var json in new[] { HfJson, FlashHf })
        {
            var hf = DeepSeekConfig.FromJson(json);
            var back = DeepSeekConfig.FromJson(hf.ToJson());
            Assert.Equal(hf with { ExtraFields = null }, back with { ExtraFields = null });
        }
        foreach (var json in new[] { ArgsJson, FlashArgs })
        {
            var args = DeepSeekConfig.FromModelArgsJson(json);
            Assert.Equal(args, DeepSeekConfig.FromModelArgsJson(args.ToModelArgsJson()));
        }
        // V3 stays MLA without streams.
        Assert.Equal(AttentionKind.Mla, DeepSeekConfig.DeepSeekV3.AttentionKindOf(0));
        Assert.Null(DeepSeekConfig.DeepSeekV3.HyperConnections);
    }

    public static TheoryData<string, string> BadHfEdits => new()
    {
        { "compress_ratios", """{"compress_ratios": [0, 4, 8]}""" },                          // 3 entries for 4 layers
        { "compress_ratios", """{"compress_ratios": [0, 4, 4, 0]}""" },                       // disagrees with layer_types
        { "compress_ratios[1]", """{"compress_ratios": [0, 1, 8, 0], "layer_types": null}""" },
        { "layer_types[2]", """{"layer_types": ["sliding_attention", "compressed_sparse_attention", "full_attention", "sliding_attention"]}""" },
        { "compress_rates.compressed_sparse_attention", """{"compress_rates": {"compressed_sparse_attention": 8, "heavily_compressed_attention": 8}}""" },
        { "mlp_layer_types[2]", """{"mlp_layer_types": ["hash_moe", "moe", "hash_moe", "moe"]}""" },
        { "num_hash_layers", """{"num_hash_layers": 2}""" },
        { "partial_rotary_factor", """{"partial_rotary_factor": 0.25}""" },
        { "num_key_value_heads", """{"num_key_value_heads": 4}""" },
        { "index_n_heads", """{"index_n_heads": null, "index_head_dim": null, "index_topk": null}""" },
        { "index_topk", """{"index_topk": null}""" },
        { "head_dim", """{"head_dim": 40, "partial_rotary_factor": 0.2, "rope_parameters": {"main": {"rope_theta": 10000.0}, "compress": {"rope_theta": 40000.0}}}""" },            // nope part 32: not blocks of 64
        { "o_groups", """{"o_groups": 3}""" },
        { "rope_theta", """{"rope_theta": 20000.0}""" },                                     // vs rope_parameters.main
        { "rope_parameters.main.rope_type", """{"rope_parameters": {"main": {"rope_type": "yarn", "rope_theta": 10000.0}, "compress": {"rope_theta": 40000.0}}}""" },
        { "hc_mult", """{"hc_mult": 0}""" },
        { "swiglu_limit", """{"swiglu_limit": -1}""" },
        { "scoring_func", """{"scoring_func": "sqrt_softplus"}""" },
        { "topk_method", """{"topk_method": "greedy"}""" },
        { "sliding_window", """{"sliding_window": null}""" },
    };

    [Theory]
    [MemberData(nameof(BadHfEdits))]
    public void BadOrInconsistentField_NamesIt(string field, string patch)
    {
        var json = Edit(HfJson, o =>
        {
            foreach (var (k, v) in JsonNode.Parse(patch)!.AsObject())
                if (v is null) o.Remove(k); else o[k] = v.DeepClone();
        });
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(json));
        Assert.Equal(field, e.Field);
    }

    [Theory]
    [InlineData("compress_ratios", """{"compress_ratios": [0, 4, 8, 0, 0], "n_mtp_layers": 0}""")]   // 5 entries, 4 layers, no MTP
    [InlineData("n_heads", """{"n_heads": null}""")]
    [InlineData("window_size", """{"window_size": 0}""")]
    [InlineData("n_hash_layers", """{"n_hash_layers": 5}""")]
    [InlineData("index_n_heads", """{"index_n_heads": null, "index_head_dim": null, "index_topk": null}""")]
    public void BadModelArgsField_NamesIt(string field, string patch)
    {
        var json = Edit(ArgsJson, o =>
        {
            foreach (var (k, v) in JsonNode.Parse(patch)!.AsObject())
                if (v is null) o.Remove(k); else o[k] = v.DeepClone();
        });
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromModelArgsJson(json));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void ShippedConfig_CompressRatiosWithoutTheMtpEntry_Fails()
    {
        var e = Assert.Throws<ConfigException>(() => DeepSeekConfig.FromJson(Edit(FlashHf, o =>
            o["compress_ratios"] = new JsonArray(o["compress_ratios"]!.AsArray().Take(43).Select(n => n!.DeepClone()).ToArray()))));
        Assert.Equal("compress_ratios", e.Field);
        Assert.Contains("num_nextn_predict_layers", e.Message);
    }

    [Fact]
    public void ArchitectureCost_CountsTheRealV4Flash_AsPublished()
    {
        // DeepSeek-V4-Flash: 284B parameters, 13B activated per token (the model card; MTP not included). Measured here:
        // 284,334,567,511 total, 13,272,428,631 active, MTP 6,610,048,891 apart.
        var cost = ArchitectureCost.FromConfig(DeepSeekConfig.FromJson(FlashHf));
        Assert.InRange(cost.TotalParameters, 283.5e9, 284.5e9);
        Assert.InRange(cost.ActiveParametersPerToken, 12.5e9, 13.5e9);
        Assert.InRange(cost.MtpParameters, 1e9, 10e9);
        Assert.Equal(new[] { "sliding_window", "sliding_window", "compressed_sparse", "heavily_compressed" }, cost.Layers.Take(4).Select(l => l.Attention));
        // Bytes: FP4 experts + ue8m0 scales, FP8 projections. The published checkpoint holds 159,609,485,896 bytes
        // including its MTP layer (6.6B parameters, ~3.5 GB as FP4 experts); the main model must be just below that.
        long bytes = cost.BytesByDType.Values.Sum();
        Assert.InRange(bytes, 0.96 * 159_609_485_896, 0.99 * 159_609_485_896);
        Assert.True(cost.BytesByDType["fp4"] > 0.85 * bytes);
    }
}
