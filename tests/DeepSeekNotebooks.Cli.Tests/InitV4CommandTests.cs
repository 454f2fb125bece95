using System.Text.Json.Nodes;
using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// <c>init</c> on DeepSeek-V4 configurations: the golden fixture's config (every layer kind, hash routing, 4 streams) and
/// the real V4-Flash config.json (tests/fixtures/configs) cut to 2 layers. Checked against ArchitectureCost's table
/// (what <c>inspect</c> counts), the loader, and the formats' definitions (e2m1 grid, power-of-two ue8m0 scales).
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class InitV4CommandTests : IDisposable
{
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private static string GoldenConfig => Path.Combine(Root, "tests", "fixtures", "golden", "v4", "public.hf_config.json");
    private static string FlashConfig => Path.Combine(Root, "tests", "fixtures", "configs", "deepseek-v4-flash-hf-config.json");
    private readonly string _tmp = Directory.CreateTempSubdirectory("init-v4-tests").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_tmp, recursive: true); } catch (IOException) { }
    }

    private static Dictionary<string, (long[] Shape, SafetensorsDType DType)> Headers(string dir)
    {
        var all = new Dictionary<string, (long[], SafetensorsDType)>();
        foreach (var path in Directory.GetFiles(dir, "*.safetensors"))
        {
            using var f = SafetensorsFile.Open(path);
            foreach (var t in f.Tensors) all.Add(t.Name, (t.Shape.ToArray(), t.DType));
        }
        return all;
    }

    private int Init(string config, string outDir, string dtype, int? layers = null)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliSupport.Run(() => InitCommand.Run(config, outDir, dtype, layers, 3, o, e));
        Assert.True(code == 0, e.ToString());
        return code;
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("bf16")]
    public void Init_GoldenV4Config_LoadsBack_WithInspectsCounts_ValidHashTables_AndTheV4Tensors(string dtype)
    {
        var dir = Path.Combine(_tmp, dtype);
        Init(GoldenConfig, dir, dtype);
        var config = DeepSeekConfig.Load(Path.Combine(dir, "config.json"));
        var cost = ArchitectureCost.FromConfig(config);

        var headers = Headers(dir);
        // Every V4 tensor kind under transformers' names, in the dtype the release stores it in.
        Assert.Equal(SafetensorsDType.I32, headers["model.layers.0.mlp.gate.tid2eid"].DType);                      // layer 0: hash_moe
        Assert.Equal(new long[] { 512, 2 }, headers["model.layers.0.mlp.gate.tid2eid"].Shape);
        Assert.DoesNotContain("model.layers.1.mlp.gate.tid2eid", headers.Keys);
        Assert.Equal(SafetensorsDType.F32, headers["model.layers.1.mlp.gate.e_score_correction_bias"].DType);
        Assert.Equal(SafetensorsDType.F32, headers["model.layers.2.attn_hc.fn"].DType);
        Assert.Equal(SafetensorsDType.F32, headers["model.hc_head.hc_fn"].DType);
        Assert.Equal(SafetensorsDType.F32, headers["model.layers.1.self_attn.sinks"].DType);
        Assert.Contains("model.layers.1.self_attn.compressor.indexer.q_b_proj.weight", headers.Keys);              // CSA: indexer
        Assert.Contains("model.layers.2.self_attn.compressor.kv_proj.weight", headers.Keys);                       // HCA: compressor only
        Assert.DoesNotContain("model.layers.2.self_attn.compressor.indexer.q_b_proj.weight", headers.Keys);
        Assert.DoesNotContain("model.layers.0.self_attn.compressor.kv_proj.weight", headers.Keys);                 // sliding window
        var plain = dtype == "f32" ? SafetensorsDType.F32 : SafetensorsDType.BF16;
        Assert.Equal(plain, headers["model.layers.3.self_attn.o_b_proj.weight"].DType);

        using var ckpt = Checkpoint.Load(dir);
        var p = ckpt.Model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        // inspect's count (the golden fixture's README: 366,869) = the loaded model's parameters = the stored elements.
        Assert.Equal(366_869, cost.TotalParameters);
        Assert.Equal(cost.TotalParameters, p.Values.Sum(t => t.numel()));
        Assert.Equal(cost.TotalParameters, ArchitectureCost.FromCheckpoint(dir).StoredParameters);
        Assert.Equal(cost.BytesByDType.Values.Sum(), headers.Sum(h => h.Value.Shape.Aggregate(1L, (a, b) => a * b) * h.Value.DType.ElementSize()));

        // The hash table names k distinct experts in [0, E) for every token, and uses every expert.
        var table = p["layers.0.ffn.gate.tid2eid"].data<float>().ToArray();
        for (int t = 0; t < 512; t++)
        {
            int a = (int)table[2 * t], b = (int)table[2 * t + 1];
            Assert.InRange(a, 0, 7);
            Assert.InRange(b, 0, 7);
            Assert.NotEqual(a, b);
        }
        Assert.Equal(8, table.Distinct().Count());
        Assert.True(p["layers.1.hc_attn_scale"].eq(1).all().item<bool>(), "hc scales are 1");
        Assert.True(p["layers.1.hc_attn_base"].eq(0).all().item<bool>(), "hc bases are 0");
        Assert.True(p["layers.1.attn.attn_sink"].eq(0).all().item<bool>(), "sinks are 0");
        using (var w = p["layers.2.attn.compressor.wkv.weight"].detach()) Assert.InRange(w.std().item<float>(), 0.017f, 0.023f);

        // It runs: hash routing by token id, compressed entries, streams.
        using var scope = NewDisposeScope();
        var ids = arange(0, 40, dtype: int64).unsqueeze(0) * 7 % 512;
        var logits = ckpt.Model.forward(ids);
        Assert.Equal(new long[] { 1, 40, 512 }, logits.shape);
        Assert.True(logits.isfinite().all().item<bool>());
    }

    [Fact]
    public void Init_GoldenV4Config_Fp8_IsRefused_NamingTheFp4BlockConstraint()
    {
        // The golden config's experts have 16 inputs (moe_intermediate_size 16): FP4 packs blocks of 32 inputs.
        var e = Assert.Throws<ArgumentException>(() => RandomCheckpoint.Write(GoldenConfig, Path.Combine(_tmp, "fp8"),
            new RandomCheckpointOptions { DType = SafetensorsDType.F8_E4M3 }));
        Assert.Contains("moe_intermediate_size 16", e.Message);
        Assert.Contains("32", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "fp8")) && Directory.EnumerateFileSystemEntries(Path.Combine(_tmp, "fp8")).Any());
    }

    [Fact]
    public void Plan_V4FlashConfig_TwoLayers_Fp8_IsTheReleaseFormat_AndMatchesInspect()
    {
        // 2 layers of V4-Flash are 13 B parameters (6.6 GB in FP4/FP8): planned, not written.
        var (json, tensors) = RandomCheckpoint.PlanOnly(FlashConfig, new RandomCheckpointOptions { DType = SafetensorsDType.F8_E4M3, Layers = 2 });
        var o = JsonNode.Parse(json)!.AsObject();
        Assert.Equal(2, o["num_hidden_layers"]!.GetValue<int>());
        Assert.Equal(new[] { 0, 0, 0 }, o["compress_ratios"]!.AsArray().Select(x => x!.GetValue<int>()));   // 2 layers + the MTP entry
        Assert.Equal(2, o["num_hash_layers"]!.GetValue<int>());                                          // 3 in Flash, at most the layers kept
        Assert.Equal("ue8m0", o["quantization_config"]!["scale_fmt"]!.GetValue<string>());
        Assert.Equal("fp4", o["expert_dtype"]!.GetValue<string>());
        var config = DeepSeekConfig.FromJson(json);
        var cost = ArchitectureCost.FromConfig(config);
        var byName = tensors.ToDictionary(t => t.Name);

        // Routed experts: int8 [out, in/2] + ue8m0 [out, in/32]; projections FP8 + ue8m0 per 128x128; hash tables int32.
        var w1 = byName["model.layers.1.mlp.experts.255.gate_proj.weight"];
        Assert.Equal(SafetensorsDType.I8, w1.DType);
        Assert.Equal(new long[] { 2048, 2048 }, w1.Shape);   // [moe_intermediate_size, hidden_size / 2]
        var w1s = byName["model.layers.1.mlp.experts.255.gate_proj.weight_scale_inv"];
        Assert.Equal(SafetensorsDType.F8_E8M0, w1s.DType);
        Assert.Equal(new long[] { 2048, 128 }, w1s.Shape);   // one scale per 32 of the 4096 inputs
        var wq = byName["model.layers.0.self_attn.q_b_proj.weight"];
        Assert.Equal(SafetensorsDType.F8_E4M3, wq.DType);
        Assert.Equal(new long[] { 64 * 512, 1024 }, wq.Shape);
        var wqs = byName["model.layers.0.self_attn.q_b_proj.weight_scale_inv"];
        Assert.Equal(SafetensorsDType.F8_E8M0, wqs.DType);
        Assert.Equal(new long[] { 256, 8 }, wqs.Shape);   // 128x128 blocks
        Assert.Equal(SafetensorsDType.I32, byName["model.layers.1.mlp.gate.tid2eid"].DType);
        Assert.Equal(SafetensorsDType.F32, byName["model.layers.0.attn_hc.fn"].DType);
        Assert.Equal(SafetensorsDType.BF16, byName["model.embed_tokens.weight"].DType);

        // Parameters: stored elements (an FP4 byte holds two) = inspect's total; bytes = inspect's estimate for this config.
        long elements = tensors.Where(t => !t.Name.EndsWith("_scale_inv", StringComparison.Ordinal))
            .Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b) * (t.DType == SafetensorsDType.I8 ? 2 : 1));
        Assert.Equal(cost.TotalParameters, elements);
        Assert.Equal(cost.BytesByDType["fp4"], tensors.Where(t => t.DType == SafetensorsDType.I8).Sum(t => t.Bytes));
        Assert.Equal(cost.BytesByDType["e8m0"], tensors.Where(t => t.DType == SafetensorsDType.F8_E8M0).Sum(t => t.Bytes));
        Assert.Equal(cost.BytesByDType.Values.Sum(), tensors.Sum(t => t.Bytes));
    }

    /// <summary>V4-Flash's first 4 layers (sliding, sliding, CSA, HCA; 3 hash layers), narrowed so the fp8 release format can be written and loaded here.</summary>
    private string NarrowFlash()
    {
        var o = JsonNode.Parse(File.ReadAllText(FlashConfig))!.AsObject();
        o["vocab_size"] = 512; o["hidden_size"] = 256; o["moe_intermediate_size"] = 64; o["n_routed_experts"] = 8; o["num_experts_per_tok"] = 2;
        o["num_attention_heads"] = 4; o["head_dim"] = 128; o["q_lora_rank"] = 64; o["o_groups"] = 2; o["o_lora_rank"] = 64;
        o["index_n_heads"] = 4; o["index_head_dim"] = 128; o["index_topk"] = 4; o["sliding_window"] = 16;
        var path = Path.Combine(_tmp, "flash-narrow.json");
        File.WriteAllText(path, o.ToJsonString());
        return path;
    }

    [Fact]
    public void Init_NarrowedV4Flash_Fp8_LoadsBack_OnTheFp4AndFp8Grids_WithInspectsCounts()
    {
        var dir = Path.Combine(_tmp, "flash-fp8");
        Init(NarrowFlash(), dir, "fp8", layers: 4);
        var config = DeepSeekConfig.Load(Path.Combine(dir, "config.json"));
        Assert.Equal(new[] { AttentionKind.SlidingWindow, AttentionKind.SlidingWindow, AttentionKind.CompressedSparse, AttentionKind.HeavilyCompressed },
            Enumerable.Range(0, 4).Select(config.AttentionKindOf));
        Assert.Equal(3, config.NumHashLayers);
        var headers = Headers(dir);
        using var ckpt = Checkpoint.Load(dir);
        var p = ckpt.Model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        var cost = ArchitectureCost.FromConfig(config);
        Assert.Equal(cost.TotalParameters, p.Values.Sum(t => t.numel()));
        Assert.Equal(cost.TotalParameters, ArchitectureCost.FromCheckpoint(dir).StoredParameters);
        Assert.Equal(cost.BytesByDType.Values.Sum(), headers.Sum(h => h.Value.Shape.Aggregate(1L, (a, b) => a * b) * h.Value.DType.ElementSize()));

        // FP4 experts: within each row's block of 32 inputs, every value is an e2m1 value times one power of two s, and
        // the block's largest |value| is 3, 4 or 6 times s (s = 2^ceil(log2(amax/6)) puts amax/s in (3, 6] before rounding).
        var e2m1 = new HashSet<float> { 0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f };
        var w = p["layers.3.ffn.experts.5.w2.weight"].data<float>().ToArray();   // [256, 64]
        static bool PowerOfTwo(float x) => x > 0 && MathF.ScaleB(1f, Math.ILogB(x)) == x;
        for (int r = 0; r < 256; r++)
            for (int b = 0; b < 2; b++)
            {
                var block = w.Skip(r * 64 + b * 32).Take(32).ToArray();
                float amax = block.Max(Math.Abs);
                var scales = new[] { amax / 6, amax / 4, amax / 3 }.Where(PowerOfTwo).ToArray();
                Assert.True(scales.Any(s => block.All(v => e2m1.Contains(Math.Abs(v) / s))), $"row {r} block {b} is not e2m1 x 2^k");
            }
        using (var t = p["layers.3.ffn.experts.5.w2.weight"].detach()) Assert.InRange(t.std().item<float>(), 0.015f, 0.025f);
        // FP8 projections with ue8m0 block scales: values / 2^k are e4m3 numbers (3 mantissa bits).
        var wo = p["layers.2.attn.wo_b.weight"].data<float>().ToArray();
        Assert.All(wo.Take(2000), v =>
        {
            if (v == 0) return;
            int exp = Math.ILogB(Math.Abs(v));
            float m = Math.Abs(v) / MathF.ScaleB(1f, exp);   // in [1, 2)
            Assert.Equal(m * 8, MathF.Round(m * 8));       // 3 mantissa bits
        });
        Assert.Equal(SafetensorsDType.F8_E8M0, headers["model.layers.2.self_attn.o_b_proj.weight_scale_inv"].DType);

        using var scope = NewDisposeScope();
        var logits = ckpt.Model.forward(arange(0, 48, dtype: int64).unsqueeze(0));
        Assert.True(logits.isfinite().all().item<bool>());
    }
}
