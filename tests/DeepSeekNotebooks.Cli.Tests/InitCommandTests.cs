using System.Security.Cryptography;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary><c>init</c>: random checkpoints of a configuration's exact architecture, checked by loading them back and against ArchitectureCost's table.</summary>
[Collection(ConsoleCaptureCollection.Name)]   // swaps the Console: not in parallel with the other classes that do
public class InitCommandTests : IDisposable
{
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private static string TinyConfig => Path.Combine(Root, "data", "checkpoints", "deepseek-tiny-moe", "config.json");
    private readonly string _tmp = Directory.CreateTempSubdirectory("init-tests").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_tmp, recursive: true); } catch (IOException) { }
    }

    private (int Code, string Out, string Err) Init(string outDir, string dtype = "bf16", int? layers = 2, ulong seed = 0, string? config = null)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var saved = Console.Error;
        Console.SetError(e);
        try { return (CliSupport.Run(() => InitCommand.Run(config ?? TinyConfig, outDir, dtype, layers, seed, o, e)), o.ToString(), e.ToString()); }
        finally { Console.SetError(saved); }
    }

    private static Dictionary<string, (string File, long[] Shape, SafetensorsDType DType)> Headers(string dir)
    {
        var all = new Dictionary<string, (string, long[], SafetensorsDType)>();
        foreach (var path in Directory.GetFiles(dir, "*.safetensors"))
        {
            using var f = SafetensorsFile.Open(path);
            foreach (var t in f.Tensors) all.Add(t.Name, (Path.GetFileName(path), t.Shape.ToArray(), t.DType)); // Add throws on a duplicate
        }
        return all;
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("bf16")]
    [InlineData("fp8")]
    public void Init_LoadsBack_WithTheTableNamesShapesAndTheConfiguredLayerPattern(string dtype)
    {
        var dir = Path.Combine(_tmp, dtype);
        var (code, _, err) = Init(dir, dtype, layers: 3);
        Assert.True(code == 0, err);

        var config = DeepSeekConfig.Load(Path.Combine(dir, "config.json"));
        Assert.Equal(3, config.NumHiddenLayers);
        Assert.Equal(1, config.FirstKDenseReplace);
        var source = DeepSeekConfig.Load(TinyConfig);
        Assert.Equal(source with { NumHiddenLayers = 3, TorchDtype = config.TorchDtype, Quantization = config.Quantization, ExtraFields = config.ExtraFields }, config);

        // Names and shapes: exactly the table ArchitectureCost counts (official names mapped to HF), FP8 scales apart.
        var headers = Headers(dir);
        var expected = ArchitectureCost.ParameterShapes(config).ToDictionary(p => WeightNames.ToHuggingFace(p.Name), p => p.Shape);
        var weights = headers.Where(h => !h.Key.EndsWith("_scale_inv", StringComparison.Ordinal)).ToDictionary(h => h.Key, h => h.Value.Shape);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), weights.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in expected) Assert.Equal(shape, weights[name]);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", weights.Keys);                     // layer 0 dense
        Assert.Contains("model.layers.2.mlp.experts.7.down_proj.weight", weights.Keys);           // layers 1-2 MoE
        Assert.DoesNotContain(weights.Keys, k => k.StartsWith("model.layers.3.", StringComparison.Ordinal));

        var scales = headers.Where(h => h.Key.EndsWith("_scale_inv", StringComparison.Ordinal)).ToList();
        if (dtype == "fp8")
        {
            Assert.Equal("fp8", config.Quantization!.QuantMethod);
            var wqb = headers["model.layers.1.self_attn.q_b_proj.weight"];
            Assert.Equal(SafetensorsDType.F8_E4M3, wqb.DType);
            Assert.Equal(new long[] { 2, 1 }, headers["model.layers.1.self_attn.q_b_proj.weight_scale_inv"].Shape); // [ceil(192/128), ceil(64/128)]
            Assert.Equal(new long[] { 1, 3 }, headers["model.layers.0.mlp.down_proj.weight_scale_inv"].Shape);      // [ceil(128/128), ceil(384/128)]
            Assert.Equal(SafetensorsDType.BF16, headers["model.embed_tokens.weight"].DType);
            Assert.Equal(SafetensorsDType.BF16, headers["model.layers.1.mlp.gate.weight"].DType);
            foreach (var (name, h) in scales)
            {
                var w = headers[name[..^"_scale_inv".Length]];
                Assert.Equal(SafetensorsDType.F8_E4M3, w.DType);
                Assert.Equal(new[] { (w.Shape[0] + 127) / 128, (w.Shape[1] + 127) / 128 }, h.Shape);
            }
        }
        else Assert.Empty(scales);
        Assert.Equal(SafetensorsDType.F32, headers["model.layers.1.mlp.gate.e_score_correction_bias"].DType);

        // Bytes by dtype from the headers equal what ArchitectureCost estimates for the written config (an independent sum).
        Assert.Equal(ArchitectureCost.FromConfig(config).BytesByDType, ArchitectureCost.FromCheckpoint(dir).BytesByDType);

        using var ckpt = Checkpoint.Load(dir);
        Assert.Equal(3, ckpt.Config.NumHiddenLayers);
        var p = ckpt.Model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        Assert.True(p["layers.1.attn_norm.weight"].eq(1).all().item<bool>(), "RMSNorm weights are 1");
        Assert.True(p["layers.1.ffn.gate.bias"].eq(0).all().item<bool>(), "the router's selection bias is 0");
        using var emb = p["embed.weight"].detach();
        Assert.InRange(emb.std().item<float>(), 0.019f, 0.021f);
        Assert.InRange(emb.mean().item<float>(), -0.001f, 0.001f);
        using var w1 = p["layers.2.ffn.experts.3.w1.weight"].detach();
        Assert.InRange(w1.std().item<float>(), 0.018f, 0.022f);
    }

    [Fact]
    public void Init_SameSeed_SameValuesInEveryDType_WithinTheStorageRounding()
    {
        Assert.Equal(0, Init(Path.Combine(_tmp, "a"), "f32").Code);
        Assert.Equal(0, Init(Path.Combine(_tmp, "b"), "bf16").Code);
        Assert.Equal(0, Init(Path.Combine(_tmp, "c"), "fp8").Code);
        using var f32 = Checkpoint.Load(Path.Combine(_tmp, "a"));
        using var bf16 = Checkpoint.Load(Path.Combine(_tmp, "b"));
        using var fp8 = Checkpoint.Load(Path.Combine(_tmp, "c"));
        var reference = f32.Model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        var b = bf16.Model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        var q = fp8.Model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        foreach (var (name, r) in reference)
        {
            using var scope = NewDisposeScope();
            // bf16 stores 7 mantissa bits: rounding to nearest errs by at most half an ulp, 2^-8 relative, per element.
            Assert.True((b[name] - r).abs().le(r.abs() * (1.0 / 256) + 1e-30).all().item<bool>(), $"bf16 {name}");
            // FP8 E4M3 (3 mantissa bits) with a per-block scale: relative Frobenius error a few percent, never 0 for a random matrix.
            double rel = ((q[name] - r).norm() / r.norm().clamp_min(1e-30)).item<float>();
            if (name.EndsWith("norm.weight") || name.EndsWith(".gate.bias")) Assert.True(rel == 0, $"{name} is exact");
            else if (name.Contains(".w") && !name.Contains("gate")) Assert.InRange(rel, 1e-3, 0.05);
            else Assert.True(rel <= 1.0 / 256, $"bf16-stored {name} in the fp8 checkpoint: {rel}");
        }
    }

    [Fact]
    public void Init_SameSeed_IdenticalBytes_DifferentSeed_DifferentWeights()
    {
        Assert.Equal(0, Init(Path.Combine(_tmp, "s1"), "fp8", seed: 7).Code);
        Assert.Equal(0, Init(Path.Combine(_tmp, "s2"), "fp8", seed: 7).Code);
        Assert.Equal(0, Init(Path.Combine(_tmp, "s3"), "fp8", seed: 8).Code);
        string Hash(string d, string f) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(_tmp, d, f))));
        foreach (var f in new[] { "model-00001-of-00001.safetensors", "model.safetensors.index.json", "config.json" })
            Assert.Equal(Hash("s1", f), Hash("s2", f));
        Assert.NotEqual(Hash("s1", "model-00001-of-00001.safetensors"), Hash("s3", "model-00001-of-00001.safetensors"));
    }

    /// <summary>
    /// The bytes of a seed's checkpoint are pinned: SHA-256 of the shard written by <c>init</c> at commit 969fd47, before
    /// the weights were generated on several threads and the normal samples in pairs. A change of generator, of the order
    /// in which samples are drawn, of a rounding or of the layout changes these hashes (and every user's "same seed,
    /// same checkpoint" promise). The V4 golden config covers the int32 hash tables and float32 hyper-connection tensors.
    /// </summary>
    [Theory]
    [InlineData("f32", "tiny", "E389CF1EF947396E60A91A979EE50B43E95331BB0E28BE0D969535BBF30B5DAA")]
    [InlineData("bf16", "tiny", "1541F49940312785A372B263A4C1526494D2EFEA2BA71C124107DE226C648AD2")]
    [InlineData("fp8", "tiny", "38D1D42E945A798C68FF1708E2D4E2FDEC254285E33D551EA23C023C88111BCA")]
    [InlineData("bf16", "v4", "BA15D28204E1F649D1499B2C5F68EEE7D6245A7715EFFB990EE170ADF73D9873")]
    public void Init_Seed7_WritesThePinnedBytes(string dtype, string which, string sha256)
    {
        var config = which == "v4" ? Path.Combine(Root, "tests", "fixtures", "golden", "v4", "public.hf_config.json") : TinyConfig;
        var dir = Path.Combine(_tmp, $"{which}-{dtype}");
        var (code, _, err) = Init(dir, dtype, layers: which == "v4" ? null : 2, seed: 7, config: config);
        Assert.True(code == 0, err);
        Assert.Equal(sha256, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(dir, "model-00001-of-00001.safetensors")))));
    }

    /// <summary>
    /// Large bands draw the accepted pairs first and transform them on several threads; the values must be bit for bit
    /// those of drawing one sample after another with <c>Next()</c> (the original per-element path), across band
    /// boundaries that split a pair (odd band lengths) and on both sides of the parallel threshold.
    /// </summary>
    [Fact]
    public void NormalFill_LargeAndOddBands_EqualsSampleBySample()
    {
        const float std = 0.02f;
        int big = 2 * RandomCheckpoint.Normal.ParallelPairs + 3;           // parallel path, odd: leaves a spare
        int[] bands = [3, big, 1, big + 1, RandomCheckpoint.Normal.ParallelPairs - 1, 7];
        var bulk = new RandomCheckpoint.Normal(12345);
        var single = new RandomCheckpoint.Normal(12345);
        foreach (int n in bands)
        {
            var got = new float[n + 5];
            bulk.Fill(got, n, std);
            for (int i = 0; i < n; i++)
            {
                float want = std * single.Next();
                if (BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(want))
                    Assert.Fail($"band of {n}: value {i} is {got[i]:R}, sample-by-sample {want:R}");
            }
            Assert.All(got[n..], v => Assert.Equal(0f, v));   // nothing written past count
        }
    }

    [Fact]
    public void Write_SmallShardLimit_SeveralShards_WithinTheLimit_IndexCoversEveryTensorOnce()
    {
        var dir = Path.Combine(_tmp, "sharded");
        const long limit = 100_000;
        var result = RandomCheckpoint.Write(TinyConfig, dir, new RandomCheckpointOptions { DType = SafetensorsDType.F8_E4M3, Layers = 2, MaxShardBytes = limit });
        int n = result.Shards.Count;
        Assert.True(n >= 5, $"{n} shards");
        var files = Directory.GetFiles(dir, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(Enumerable.Range(1, n).Select(k => $"model-{k:D5}-of-{n:D5}.safetensors"), files);

        var headers = Headers(dir); // throws if a tensor is stored in two shards
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "model.safetensors.index.json")))!.AsObject();
        var map = index["weight_map"]!.AsObject().ToDictionary(kv => kv.Key, kv => (string)kv.Value!);
        Assert.Equal(headers.Keys.Order(StringComparer.Ordinal), map.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, h) in headers) Assert.Equal(h.File, map[name]);

        long total = 0;
        foreach (var f in files)
        {
            using var sf = SafetensorsFile.Open(Path.Combine(dir, f!));
            long bytes = sf.Tensors.Sum(t => t.ByteLength);
            total += bytes;
            // A shard exceeds the limit only when it holds a single tensor (with its FP8 scale) that is itself larger.
            Assert.True(bytes <= limit || sf.Tensors.Count(t => !t.Name.EndsWith("_scale_inv")) == 1, $"{f}: {bytes} bytes");
            foreach (var s in sf.Tensors.Where(t => t.Name.EndsWith("_scale_inv")))
                Assert.Contains(s.Name[..^"_scale_inv".Length], sf.TensorsByName.Keys); // a weight and its scale share a shard
        }
        Assert.Equal(total, (long)index["metadata"]!["total_size"]!);
        Assert.Equal(total, result.TotalBytes);

        using var ckpt = Checkpoint.Load(dir);
        Assert.Equal(2, ckpt.Config.NumHiddenLayers);
    }

    [Fact]
    public void Write_FailingMidway_LeavesNoOutputAndNoTemporaryFiles()
    {
        var dir = Path.Combine(_tmp, "partial");
        int reports = 0;
        var failing = new ThrowingProgress(() => { if (++reports == 40) throw new IOException("disk full (simulated)"); });
        var e = Assert.Throws<IOException>(() => RandomCheckpoint.Write(TinyConfig, dir,
            new RandomCheckpointOptions { DType = SafetensorsDType.BF16, MaxShardBytes = 50_000, Progress = failing }));
        Assert.Equal("disk full (simulated)", e.Message);
        Assert.True(reports == 40, $"{reports} tensors reported: the failure must come after some shards were complete");
        Assert.Empty(Directory.GetFileSystemEntries(_tmp));
    }

    private sealed class ThrowingProgress(Action onReport) : IProgress<(long Done, long Total)>
    {
        public void Report((long Done, long Total) value) => onReport();
    }

    [Fact]
    public void Encoders_RoundToNearestEven_AsTheFormatsDefine()
    {
        // Every finite E4M3FN bit pattern encodes back to itself, through the loader's decode table.
        for (int b = 0; b < 256; b++)
        {
            if ((b & 0x7F) == 0x7F) continue; // NaN
            var bytes = new[] { (byte)b };
            var f = new float[1];
            SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.F8_E4M3, bytes, f);
            Assert.Equal((byte)b, RandomCheckpoint.ToE4M3(f[0]));
        }
        Assert.Equal(0x7E, RandomCheckpoint.ToE4M3(1000f));          // saturates at 448 (0.1111.110)
        Assert.Equal(0x38, RandomCheckpoint.ToE4M3(1.0625f));        // 1 + 1/16 lies halfway between 1 (0x38) and 1.125 (0x39): even wins
        Assert.Equal(0x3A, RandomCheckpoint.ToE4M3(1.1875f));        // halfway between 1.125 (0x39) and 1.25 (0x3A): even wins
        Assert.Equal(0x01, RandomCheckpoint.ToE4M3(0.002f));         // nearest is the smallest subnormal 2^-9 ≈ 0.00195
        Assert.Equal((ushort)0x3F80, RandomCheckpoint.ToBFloat16(1f + 1f / 256));  // tie → even (1.0)
        Assert.Equal((ushort)0x3F82, RandomCheckpoint.ToBFloat16(1f + 3f / 256));  // tie → even (1 + 2/128)
        Assert.Equal((ushort)0x3F81, RandomCheckpoint.ToBFloat16(1f + 1f / 128));  // exact
        Assert.Equal((ushort)0xC000, RandomCheckpoint.ToBFloat16(-2f));
    }

    [Fact]
    public void RootCommand_HasInit() => Assert.Contains(Program.BuildRootCommand().Subcommands, c => c.Name == "init");

    [Fact]
    public void Init_BadInput_FailsNamingIt_AndLeavesNothingBehind()
    {
        var dir = Path.Combine(_tmp, "out");
        var (code, _, err) = Init(dir, layers: 5);
        Assert.Equal(1, code);
        Assert.Contains("--layers must be between 1 and the configuration's num_hidden_layers (4), got 5", err);

        (code, _, err) = Init(dir, dtype: "int4");
        Assert.Equal(2, code);
        Assert.Contains("--dtype: unknown dtype 'int4': use bf16, f32 or fp8", err);

        (code, _, err) = Init(dir, config: Path.Combine(_tmp, "missing.json"));
        Assert.Equal(1, code);
        Assert.Contains("missing.json", err);

        var bad = Path.Combine(_tmp, "bad.json");
        File.WriteAllText(bad, """{"vocab_size": "many", "hidden_size": 8}""");
        (code, _, err) = Init(dir, config: bad);
        Assert.Equal(1, code);
        Assert.Contains("bad.json", err);

        Assert.Equal(new[] { bad }, Directory.GetFileSystemEntries(_tmp)); // no output, no temporary directory

        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "x");
        (code, _, err) = Init(dir);
        Assert.Equal(1, code);
        Assert.Contains("exists and is not empty", err);
        Assert.Equal(new[] { Path.Combine(dir, "keep.txt") }, Directory.GetFileSystemEntries(dir));
    }
}
