using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Checkpoints;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>Checkpoint loading of defective directories, save/load round trips, bf16 and FP8 block-scaled weights.</summary>
public class CheckpointLoadTests
{
    private static string GoldenHf => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf");
    private static readonly long[] Ids = { 5, 100, 511, 0, 42, 42, 7, 300 };

    private sealed record Stored(string Name, long[] Shape, float[] Data);

    private static TempDir CopyOf(string source)
    {
        var t = new TempDir();
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, t.File(Path.GetFileName(f)));
        return t;
    }

    private static List<Stored> ReadAll(string path)
    {
        using var f = SafetensorsFile.Open(path);
        return f.Tensors.Select(t => new Stored(t.Name, t.ToShapeArray(), f.ReadAsFloat32(t.Name))).ToList();
    }

    private static void WriteAll(string path, IEnumerable<Stored> tensors)
    {
        var w = new SafetensorsWriter();
        foreach (var t in tensors) w.AddFloat32(t.Name, t.Shape, t.Data);
        w.WriteTo(path);
    }

    private static void Rewrite(string dir, Func<List<Stored>, List<Stored>> edit)
    {
        var path = Path.Combine(dir, "model.safetensors");
        WriteAll(path, edit(ReadAll(path)));
    }

    private static Tensor Logits(DeepSeekModel m) => m.forward(tensor(Ids.Select(i => i % m.Config.VocabSize).ToArray()));

    private static double MaxAbs(Tensor a, Tensor b) => (a.to(float64) - b.to(float64)).abs().max().item<double>();

    [Fact]
    public void MissingTensor_IsNamed()
    {
        using var dir = CopyOf(GoldenHf);
        const string victim = "model.layers.1.mlp.experts.3.up_proj.weight";
        Rewrite(dir.Path, ts => ts.Where(t => t.Name != victim).ToList());
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("missing", e.Message);
        Assert.Contains(victim, e.Message);
    }

    [Theory]
    [InlineData("model.layers.0.self_attn.q_a_proj.weight")]   // a DeepSeek name this config (no query LoRA) does not use
    [InlineData("model.some_adapter.lora_A")]                  // not a DeepSeek name at all
    public void UnexpectedTensor_IsNamed(string extra)
    {
        using var dir = CopyOf(GoldenHf);
        Rewrite(dir.Path, ts => ts.Append(new Stored(extra, new long[] { 2, 2 }, new float[4])).ToList());
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains(extra, e.Message);
    }

    [Fact]
    public void WrongShape_NamesTheTensorAndBothShapes()
    {
        using var dir = CopyOf(GoldenHf);
        const string victim = "model.layers.2.self_attn.kv_b_proj.weight";
        long[] original = null!;
        Rewrite(dir.Path, ts => ts.Select(t =>
        {
            if (t.Name != victim) return t;
            original = t.Shape;
            return new Stored(t.Name, new[] { t.Shape[1], t.Shape[0] }, t.Data); // transposed
        }).ToList());
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains(victim, e.Message);
        Assert.Contains($"[{original[1]}, {original[0]}]", e.Message);
        Assert.Contains($"[{original[0]}, {original[1]}]", e.Message);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void NonFiniteWeight_IsNamed(float bad)
    {
        using var dir = CopyOf(GoldenHf);
        const string victim = "model.layers.1.mlp.gate.weight";
        Rewrite(dir.Path, ts => ts.Select(t =>
        {
            if (t.Name != victim) return t;
            var d = (float[])t.Data.Clone();
            d[d.Length / 2] = bad;
            return t with { Data = d };
        }).ToList());
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains(victim, e.Message);
        Assert.Contains("NaN", e.Message);
    }

    [Fact]
    public void TruncatedSafetensors_IsAFormatException()
    {
        using var dir = CopyOf(GoldenHf);
        var path = dir.File("model.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length - 1000).ToArray());
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void PickleOnly_IsRefusedUnlessAllowed()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(GoldenHf, "config.json"), dir.File("config.json"));
        File.WriteAllBytes(dir.File("pytorch_model.bin"), new byte[] { 0x80, 0x02, (byte)'c', (byte)'o', (byte)'s', 0x2e });
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("pickle", e.Message);
        Assert.Contains("arbitrary code", e.Message);
        Assert.Contains("pytorch_model.bin", e.Message);
        // Opting in gets past the refusal (this version still cannot unpickle, and says so).
        var allowed = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path, new CheckpointLoadOptions { AllowPickle = true }));
        Assert.DoesNotContain("arbitrary code", allowed.Message);
    }

    [Fact]
    public void EmptyDirectory_AndMissingDirectory_AreRefused()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("no checkpoint", e.Message);
        Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.File("does-not-exist")));
    }

    [Fact]
    public void MissingConfigJson_IsAConfigExceptionNamingIt()
    {
        using var dir = CopyOf(GoldenHf);
        File.Delete(dir.File("config.json"));
        var e = Assert.Throws<ConfigException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("config.json", e.Message);
    }

    [Theory]
    [InlineData(CheckpointLayout.HuggingFace)]
    [InlineData(CheckpointLayout.Official)]
    public void SaveThenLoad_GivesIdenticalLogits_GoldenModel(CheckpointLayout layout)
    {
        using var golden = Checkpoint.Load(GoldenHf);
        using var dir = new TempDir();
        Checkpoint.Save(golden.Model, dir.Path, layout);
        using var back = Checkpoint.Load(dir.Path);
        Assert.Equal(layout, back.Layout);
        using var scope = NewDisposeScope();
        Assert.Equal(0.0, MaxAbs(Logits(golden.Model), Logits(back.Model)));
    }

    [Theory]
    [InlineData(CheckpointLayout.HuggingFace)]
    [InlineData(CheckpointLayout.Official)]
    public void SaveThenLoad_GivesIdenticalLogits_FullFeaturedModel(CheckpointLayout layout)
    {
        var c = DeepSeekConfig.TinyFullFeatured;
        using var model = DeepSeekModel.Create(c, seed: 8);
        using (no_grad())
            foreach (var block in model.Layers)
                block.Moe?.Gate.SelectionBias!.copy_(randn(c.NRoutedExperts, generator: new Generator((ulong)block.Layer)) * 0.1);
        using var dir = new TempDir();
        Checkpoint.Save(model, dir.Path, layout);
        using var back = Checkpoint.Load(dir.Path);
        Assert.Equal(c, back.Config with { ExtraFields = null });
        using var scope = NewDisposeScope();
        Assert.Equal(0.0, MaxAbs(Logits(model), Logits(back.Model)));
        var names = layout == CheckpointLayout.HuggingFace ? ReadAll(dir.File("model.safetensors")).Select(t => t.Name).ToList() : null;
        if (names is not null)
        {
            Assert.Contains("model.layers.1.mlp.gate.e_score_correction_bias", names);
            Assert.Contains("model.layers.0.self_attn.q_a_layernorm.weight", names);
        }
    }

    private static ushort ToBf16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16); // round to nearest even (finite inputs)
    }

    [Fact]
    public void Bf16Checkpoint_LoadsExactlyRoundedWeights_AndCloseLogits()
    {
        using var golden = Checkpoint.Load(GoldenHf);
        using var dir = CopyOf(GoldenHf);
        var path = dir.File("model.safetensors");
        var tensors = ReadAll(path);
        var w = new SafetensorsWriter();
        foreach (var t in tensors)
        {
            var bytes = new byte[t.Data.Length * 2];
            for (int i = 0; i < t.Data.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), ToBf16(t.Data[i]));
            w.Add(t.Name, SafetensorsDType.BF16, t.Shape, bytes);
        }
        w.WriteTo(path);

        using var bf = Checkpoint.Load(dir.Path);
        var loaded = bf.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var t in tensors)
        {
            var name = WeightNames.FromHuggingFace(t.Name, out _)!;
            var want = t.Data.Select(v => BitConverter.UInt32BitsToSingle((uint)ToBf16(v) << 16)).ToArray();
            Assert.Equal(want, loaded[name].data<float>().ToArray());
        }
        using var scope = NewDisposeScope();
        // bf16 keeps 8 significant bits (relative error ≤ 2^-9 per weight); on this 3-layer model the logits
        // move by 7.1e-3 at most (measured). Tolerance: 2e-2 absolute.
        var diff = MaxAbs(Logits(golden.Model), Logits(bf.Model));
        Assert.True(diff > 0 && diff < 2e-2, $"bf16 logits differ by {diff}");
    }

    [Fact]
    public void Fp8BlockScaledWeights_AreDequantisedPer128x128Block()
    {
        // hidden 144 and intermediate 200 are not multiples of 128: w1 [200, 144] and w2 [144, 200] have 2×2 partial blocks.
        var c = new DeepSeekConfig
        {
            VocabSize = 16, HiddenSize = 144, IntermediateSize = 200, NumHiddenLayers = 1, FirstKDenseReplace = 1, NRoutedExperts = 0,
            NumAttentionHeads = 2, QLoraRank = null, KvLoraRank = 8, QkNopeHeadDim = 4, QkRopeHeadDim = 4, VHeadDim = 4,
            RopeScaling = null, MaxPositionEmbeddings = 16, MoeIntermediateSize = 8, NGroup = 1, TopkGroup = 1, NumExpertsPerTok = 1,
        }.Validate();
        using var model = DeepSeekModel.Create(c, seed: 1);
        using var dir = new TempDir();
        Checkpoint.Save(model, dir.Path);
        var path = dir.File("model.safetensors");
        var tensors = ReadAll(path);
        var quantised = new[] { "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.down_proj.weight" };
        var rng = new Random(17);
        var expected = new Dictionary<string, float[]>();
        var w = new SafetensorsWriter();
        foreach (var t in tensors)
        {
            if (!quantised.Contains(t.Name)) { w.AddFloat32(t.Name, t.Shape, t.Data); continue; }
            long m = t.Shape[0], n = t.Shape[1];
            long sm = (m + 127) / 128, sn = (n + 127) / 128;
            Assert.Equal(2, sm); Assert.Equal(2, sn);
            var q = new byte[m * n];
            for (int i = 0; i < q.Length; i++) { byte b; do b = (byte)rng.Next(256); while ((b & 0x7F) == 0x7F); q[i] = b; } // no NaN
            var scale = Enumerable.Range(0, (int)(sm * sn)).Select(i => (float)(0.001 * (i + 1) + rng.NextDouble() * 1e-3)).ToArray();
            var want = new float[m * n];
            for (long i = 0; i < m; i++)
                for (long j = 0; j < n; j++)
                    want[i * n + j] = Fp8.E4M3ToSingle(q[i * n + j]) * scale[(i / 128) * sn + j / 128];
            expected[WeightNames.FromHuggingFace(t.Name, out _)!] = want;
            w.Add(t.Name, SafetensorsDType.F8_E4M3, t.Shape, q);
            w.AddFloat32(t.Name + "_scale_inv", new[] { sm, sn }, scale);
        }
        w.WriteTo(path);

        using var loaded = Checkpoint.Load(dir.Path);
        var parameters = loaded.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, want) in expected)
            Assert.Equal(want, parameters[name].data<float>().ToArray());

        // A scale of the wrong shape, and a missing scale, are refused naming the tensor.
        var bad = ReadAllRaw(path);
        RewriteRaw(path, bad.Select(t => t.Name == quantised[0] + "_scale_inv" ? t with { Shape = new long[] { 1, 4 } } : t));
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains(quantised[0] + "_scale_inv", e.Message);
        RewriteRaw(path, bad.Where(t => t.Name != quantised[1] + "_scale_inv"));
        e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains(quantised[1], e.Message);
    }

    private sealed record RawTensor(string Name, SafetensorsDType DType, long[] Shape, byte[] Bytes);

    private static List<RawTensor> ReadAllRaw(string path)
    {
        using var f = SafetensorsFile.Open(path);
        return f.Tensors.Select(t => { var b = new byte[t.ByteLength]; f.ReadBytes(t.Name, b); return new RawTensor(t.Name, t.DType, t.ToShapeArray(), b); }).ToList();
    }

    private static void RewriteRaw(string path, IEnumerable<RawTensor> tensors)
    {
        var w = new SafetensorsWriter();
        foreach (var t in tensors) w.Add(t.Name, t.DType, t.Shape, t.Bytes);
        w.WriteTo(path);
    }
}
