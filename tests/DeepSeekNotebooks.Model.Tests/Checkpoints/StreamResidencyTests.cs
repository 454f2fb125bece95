using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tests.Fidelity;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>
/// Residency.Stream (issue 12 §1) against Residency.Memory on the same files: the golden fixtures of every generation
/// (V3 in the Hugging Face and official layouts, V3.2 with its lightning indexer, V4 with compressed attention,
/// hyper-connections and hash routing), an FP8 checkpoint, and (slow) a dimension-true DeepSeek-V2-Lite checkpoint.
/// Memory mode is itself checked against DeepSeek's official code (GoldenReferenceTests, V32/V4FidelityTests), so
/// "stream equals memory" ties streaming to the reference.
/// </summary>
public class StreamResidencyTests
{
    private static readonly CheckpointLoadOptions Memory = new() { Residency = Residency.Memory };
    private static readonly CheckpointLoadOptions Stream = new() { Residency = Residency.Stream };

    /// <summary>max |a − b| / max |b| over the whole tensor (0 when both are identical, including ±∞ at the same places).</summary>
    internal static double Relative(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var x = a.to(float64);
        var y = b.to(float64);
        var finite = y.isfinite();
        Assert.True(x.isfinite().eq(finite).all().item<bool>(), "non-finite entries differ");
        if (!finite.any().item<bool>()) return 0;
        Assert.True(x.masked_select(finite.logical_not()).eq(y.masked_select(finite.logical_not())).all().item<bool>(), "infinite entries differ");
        var d = (x - y).masked_select(finite).abs().max().item<double>();
        var m = y.masked_select(finite).abs().max().item<double>();
        return m == 0 ? d : d / m;
    }

    private static Tensor GoldenIds() => GoldenReferenceTests.Golden("input_ids");

    /// <summary>Every tensor of a full trace (all hook points) agrees; integer ones (expert indices) exactly.</summary>
    internal static void AssertSameTrace(Checkpoint memory, Checkpoint stream, Tensor ids)
    {
        var everything = new TraceOptions { Names = NamesFilter.All };
        using var a = memory.Model.RunWithCache(ids, everything);
        using var b = stream.Model.RunWithCache(ids, everything);
        Assert.Equal(a.Names.OrderBy(n => n), b.Names.OrderBy(n => n));
        Assert.Contains(a.Names, n => n.EndsWith("moe.indices", StringComparison.Ordinal));
        foreach (var name in a.Names)
        {
            var x = a[name];
            var y = b[name];
            Assert.Equal(x.shape, y.shape);
            if (!x.is_floating_point())
                Assert.True(x.eq(y).all().item<bool>(), $"{name} differs between memory and stream residency");
            else
                Assert.True(Relative(y, x) <= 1e-6, $"{name} differs by {Relative(y, x):E2} (relative) between memory and stream residency");
        }
        Assert.True(Relative(b.Logits, a.Logits) <= 1e-6);
    }

    [Theory]
    [InlineData("hf")]
    [InlineData("official")]
    public void GoldenV3_StreamedTrace_EqualsMemory(string layout)
    {
        using var memory = Checkpoint.Load(GoldenReferenceTests.CheckpointDir(layout), Memory);
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir(layout), Stream);
        Assert.Equal(Residency.Memory, memory.Residency);
        Assert.Equal(Residency.Stream, stream.Residency);
        Assert.True(stream.Model.IsStreamed);
        Assert.StartsWith("residency: stream (as requested", stream.ResidencyReason);
        using var scope = NewDisposeScope();
        AssertSameTrace(memory, stream, GoldenIds());
        // and plain forward, which the CLI verbs and Generate use
        Assert.True(Relative(stream.Model.forward(GoldenIds()), memory.Model.forward(GoldenIds())) <= 1e-6);
    }

    [Theory]
    [InlineData(CheckpointLayout.HuggingFace)]
    [InlineData(CheckpointLayout.Official)]
    public void GoldenV32_StreamedTrace_EqualsMemory(CheckpointLayout layout)
    {
        using var dir = new V32FidelityTests.FixtureCheckpoint(layout);
        using var memory = Checkpoint.Load(dir.Directory, Memory);
        using var stream = Checkpoint.Load(dir.Directory, Stream);
        Assert.NotNull(stream.Config.Indexer);
        using var scope = NewDisposeScope();
        AssertSameTrace(memory, stream, V4KernelTestsIds(stream.Config.VocabSize, 2, 20, seed: 3));
    }

    [Theory]
    [InlineData(CheckpointLayout.HuggingFace)]
    [InlineData(CheckpointLayout.Official)]
    public void GoldenV4_StreamedTrace_EqualsMemory(CheckpointLayout layout)
    {
        using var dir = new V4FidelityTests.FixtureCheckpoint(layout);
        using var memory = Checkpoint.Load(dir.Directory, Memory);
        using var stream = Checkpoint.Load(dir.Directory, Stream);
        Assert.NotNull(stream.Config.HyperConnections);
        Assert.True(stream.Config.NumHashLayers > 0);
        using var scope = NewDisposeScope();
        AssertSameTrace(memory, stream, V4KernelTestsIds(stream.Config.VocabSize, 2, 24, seed: 5));
    }

    internal static Tensor V4KernelTestsIds(long vocab, int batch, int seq, int seed)
    {
        var g = new Random(seed);
        return tensor(Enumerable.Range(0, batch * seq).Select(_ => (long)g.Next((int)vocab)).ToArray(), batch, seq);
    }

    /// <summary>∂ Σ_p logits[p, target_p] / ∂ embeddings, the quantity IG/Saliency/Input×Gradient differentiate.</summary>
    internal static Tensor EmbeddingGradient(DeepSeekModel model, Tensor ids, IReadOnlyDictionary<string, HookFunction>? hooks = null)
    {
        using var _ = enable_grad();
        var e = model.Embed(ids).detach().requires_grad_(true);
        var logits = model.ForwardFromEmbeddings(e, hooks, ids);
        var target = ids.remainder(7);
        var y = logits.log_softmax(-1).gather(2, target.unsqueeze(2)).sum();
        return autograd.grad(new[] { y }, new[] { e })[0];
    }

    [Fact]
    public void GoldenV3_StreamedGradients_EqualMemory_WithinTolerance()
    {
        using var memory = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Memory);
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Stream);
        using var scope = NewDisposeScope();
        var ids = GoldenIds();
        var gm = EmbeddingGradient(memory.Model, ids);
        var gs = EmbeddingGradient(stream.Model, ids);
        Assert.True(gm.abs().max().item<float>() > 0, "the gradient must not vanish");
        Assert.True(Relative(gs, gm) <= 1e-5, $"embedding gradient differs by {Relative(gs, gm):E2}");
        // backward() works too (what the attribution methods call), reaching the embeddings only
        using (enable_grad())
        {
            var e = stream.Model.Embed(ids).detach().requires_grad_(true);
            stream.Model.ForwardFromEmbeddings(e).log_softmax(-1).gather(2, ids.remainder(7).unsqueeze(2)).sum().backward();
            Assert.True(Relative(e.grad!, gm) <= 1e-5);
        }
    }

    [Fact]
    public void GoldenV3_StreamedGradients_WithAReplacementHookInsideABlock_EqualMemory()
    {
        // A hook that replaces a block-internal tensor runs in the forward and again in the backward's recomputation.
        var hooks = new Dictionary<string, HookFunction> { [HookPoints.AttnOut(1)] = (v, _) => v * 0.5 };
        using var memory = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Memory);
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Stream);
        using var scope = NewDisposeScope();
        var ids = GoldenIds();
        var gm = EmbeddingGradient(memory.Model, ids, hooks);
        var plain = EmbeddingGradient(memory.Model, ids);
        Assert.True(Relative(gm, plain) > 1e-3, "the hook must change the gradient for this test to mean anything");
        Assert.True(Relative(EmbeddingGradient(stream.Model, ids, hooks), gm) <= 1e-5);
    }

    /// <summary>Layer attribution's gradient (LayerActivations.Gradient): the activation at a hook point made a leaf, ∂F/∂leaf.</summary>
    private static Tensor LayerGradient(DeepSeekModel model, Tensor ids, string point)
    {
        using var _ = enable_grad();
        Tensor? leaf = null;
        var hooks = new Dictionary<string, HookFunction> { [point] = (v, _) => leaf = v.detach().requires_grad_(true).DetachFromDisposeScope() };
        var y = model.ForwardFromEmbeddings(model.Embed(ids).detach(), hooks).log_softmax(-1)[.., -1, 5].sum();
        return autograd.grad(new[] { y }, new[] { leaf! })[0];
    }

    [Theory]
    [InlineData("blocks.1.resid_mid")]    // mid-block: the MoE after it uses block 1's weights in the backward
    [InlineData("blocks.0.resid_post")]
    [InlineData("blocks.2.attn.out")]
    public void GoldenV3_LayerGradientAtABlockHookPoint_Streamed_EqualsMemory(string point)
    {
        using var memory = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Memory);
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Stream);
        using var scope = NewDisposeScope();
        var gm = LayerGradient(memory.Model, GoldenIds(), point);
        Assert.True(gm.abs().max().item<float>() > 0);
        Assert.True(Relative(LayerGradient(stream.Model, GoldenIds(), point), gm) <= 1e-5);
        // the block kept for that graph is released by the next forward: one block at most in use between calls
        stream.Model.forward(GoldenIds());
        Assert.Equal(0, stream.Model.Streamer!.LiveBytes);
    }

    [Fact]
    public void GoldenV4_StreamedGradients_EqualMemory_WithinTolerance()
    {
        using var dir = new V4FidelityTests.FixtureCheckpoint(CheckpointLayout.HuggingFace);
        using var memory = Checkpoint.Load(dir.Directory, Memory);
        using var stream = Checkpoint.Load(dir.Directory, Stream);
        using var scope = NewDisposeScope();
        var ids = V4KernelTestsIds(stream.Config.VocabSize, 1, 16, seed: 9);
        var gm = EmbeddingGradient(memory.Model, ids);
        Assert.True(Relative(EmbeddingGradient(stream.Model, ids), gm) <= 1e-5);
    }

    [Fact]
    public void Stream_HoldsAtMostOneBlock_AndReadsEachBlockOncePerForwardAndOncePerBackward()
    {
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Stream);
        var streamer = stream.Model.Streamer!;
        int layers = stream.Config.NumHiddenLayers;
        long largestBlock = Enumerable.Range(0, layers).Max(streamer.BlockBytes);
        long allBlocks = Enumerable.Range(0, layers).Sum(streamer.BlockBytes);
        var loaded = new List<(int Layer, long Live)>();
        streamer.BlockLoaded = (l, live) => loaded.Add((l, live));
        using var scope = NewDisposeScope();

        // Between calls no block parameter holds storage: resident bytes = the non-block parameters.
        long resident = stream.Model.parameters().Sum(p => p.numel() * 4);
        long nonBlock = stream.Model.named_parameters().Where(p => !p.name.StartsWith("layers.", StringComparison.Ordinal)).Sum(p => p.parameter.numel() * 4);
        Assert.Equal(nonBlock, resident);

        streamer.ResetPeak();
        stream.Model.forward(GoldenIds());          // batch of 2: one pass over the weights
        Assert.Equal(Enumerable.Range(0, layers), loaded.Select(x => x.Layer));
        Assert.All(loaded, x => Assert.Equal(streamer.BlockBytes(x.Layer), x.Live));
        Assert.True(streamer.PeakLiveBytes <= largestBlock && largestBlock < allBlocks);
        Assert.Equal(0, streamer.LiveBytes);
        // the one reused read buffer is one block (plus 64-element alignment per parameter), not the model
        int mostParameters = stream.Model.Layers.Max(b => b.parameters().Count());
        Assert.InRange(streamer.ArenaBytes, largestBlock, largestBlock + mostParameters * 64L * 4);

        loaded.Clear();
        streamer.ResetPeak();
        EmbeddingGradient(stream.Model, GoldenIds());
        // forward 0,1,2 then the backward's recomputation 2,1,0 — one block at a time
        Assert.Equal(Enumerable.Range(0, layers).Concat(Enumerable.Range(0, layers).Reverse()), loaded.Select(x => x.Layer));
        Assert.True(streamer.PeakLiveBytes <= largestBlock);
        Assert.Equal(0, streamer.LiveBytes);
        Assert.Equal(nonBlock, stream.Model.parameters().Sum(p => p.numel() * 4));
    }

    [Fact]
    public void Stream_ParameterCountsAndBlockWeights_AreThoseOfMemory()
    {
        using var memory = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Memory);
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Stream);
        Assert.Equal(memory.Model.ParameterCounts(), stream.Model.ParameterCounts());
        var wo = stream.Model.Layers[1].Attention!.OutputWeight;
        Assert.Equal(new long[] { 0 }, wo.shape);
        using (stream.Model.LoadBlockWeights(1))
            Assert.True(stream.Model.Layers[1].Attention!.OutputWeight.eq(memory.Model.Layers[1].Attention!.OutputWeight).all().item<bool>());
        Assert.Equal(new long[] { 0 }, stream.Model.Layers[1].Attention!.OutputWeight.shape);
        Assert.Throws<ArgumentOutOfRangeException>(() => stream.Model.LoadBlockWeights(3));
    }

    [Fact]
    public void Stream_GenerateAndHookedRuns_EqualMemory()
    {
        using var memory = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Memory);
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Stream);
        using var scope = NewDisposeScope();
        var prompt = new long[] { 303, 211, 294, 53 };
        var opts = new GenerationOptions { DoSample = true, Temperature = 0.8, Seed = 11 };
        Assert.Equal(memory.Model.Generate(prompt, 6, opts).NewIds, stream.Model.Generate(prompt, 6, opts).NewIds);
        var hooks = new Dictionary<string, HookFunction> { [HookPoints.MlpOut(2)] = (v, _) => zeros_like(v) };
        var a = memory.Model.RunWithHooks(GoldenIds(), hooks);
        Assert.True(Relative(a, memory.Model.forward(GoldenIds())) > 1e-3, "the hook must change the logits");
        Assert.True(Relative(stream.Model.RunWithHooks(GoldenIds(), hooks), a) <= 1e-6);
    }

    [Fact]
    public void Stream_RefusesDifferentiatingBlockInternalHookPoints_NamingTheAlternative()
    {
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Stream);
        var options = new TraceOptions { AttentionPatterns = true, Routing = false, HiddenStates = false, Logits = true, KeepGraph = true };
        var e = Assert.Throws<NotSupportedException>(() => stream.Model.RunWithCache(GoldenIds(), options));
        Assert.Contains("Residency.Memory", e.Message);
        Assert.Contains("attention×gradient", e.Message);
        // KeepGraph on the logits alone is fine
        using var scope = NewDisposeScope();
        using var trace = stream.Model.RunWithCache(GoldenIds(), new TraceOptions { Names = "logits", KeepGraph = true });
        Assert.Equal(new long[] { 2, 12, stream.Config.VocabSize }, trace.Logits.shape);
    }

    [Fact]
    public void Fp8Checkpoint_Streamed_EqualsMemory()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"stream-fp8-{Guid.NewGuid():N}");
        try
        {
            RandomCheckpoint.Write(Path.Combine(GoldenReferenceTests.CheckpointDir("hf"), "config.json"), dir,
                new RandomCheckpointOptions { DType = SafetensorsDType.F8_E4M3, Seed = 4, MaxShardBytes = 200_000 });
            Assert.True(Directory.GetFiles(dir, "model-*.safetensors").Length > 1, "the FP8 checkpoint should be sharded for this test");
            Assert.Contains(Directory.GetFiles(dir, "model-*.safetensors"), p => { using var f = SafetensorsFile.Open(p); return f.Tensors.Any(t => t.DType == SafetensorsDType.F8_E4M3); });
            using var memory = Checkpoint.Load(dir, Memory);
            using var stream = Checkpoint.Load(dir, Stream);
            using var scope = NewDisposeScope();
            AssertSameTrace(memory, stream, GoldenIds());
            Assert.True(Relative(EmbeddingGradient(stream.Model, GoldenIds()), EmbeddingGradient(memory.Model, GoldenIds())) <= 1e-5);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Bf16ComputeDtype_LoadsEveryParameterInBf16_TheFloat32WeightsRoundedOnce_InBothResidencies()
    {
        var bf16 = new CheckpointLoadOptions { DType = ScalarType.BFloat16 };
        using var memory = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), bf16 with { Residency = Residency.Memory });
        using var stream = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), bf16 with { Residency = Residency.Stream });
        using var f32 = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"), Memory);
        Assert.All(memory.Model.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        Assert.All(stream.Model.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        Assert.True(f32.Model.HeadWeight.to(ScalarType.BFloat16).eq(memory.Model.HeadWeight).all().item<bool>());
        var reference = f32.Model.Layers[2].Attention!.OutputWeight.to(ScalarType.BFloat16);
        Assert.True(reference.eq(memory.Model.Layers[2].Attention!.OutputWeight).all().item<bool>());
        using (stream.Model.LoadBlockWeights(2))
            Assert.True(reference.eq(stream.Model.Layers[2].Attention!.OutputWeight).all().item<bool>());
        Assert.Contains("in bf16", stream.ResidencyReason);
    }

    [Fact]
    public void Stream_ValidatesEveryBlockAtLoad_AndChecksValuesWhenABlockIsRead()
    {
        var dir = CopyGolden();
        try
        {
            var file = Path.Combine(dir, "model.safetensors");
            long offset;
            using (var f = SafetensorsFile.Open(file)) offset = f.GetTensor("model.layers.2.self_attn.o_proj.weight").DataBegin;
            using (var fs = new FileStream(file, FileMode.Open, FileAccess.Write))
            {
                fs.Position = offset + 8;
                fs.Write(BitConverter.GetBytes(float.NaN));
            }
            // memory residency finds it at load time
            var m = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir, Memory));
            Assert.Contains("model.layers.2.self_attn.o_proj.weight", m.Message);
            // stream residency loads (data is not read), then the forward reaching block 2 names the tensor
            using var stream = Checkpoint.Load(dir, Stream);
            var e = Assert.Throws<CheckpointException>(() => stream.Model.forward(GoldenIds()));
            Assert.Contains("model.layers.2.self_attn.o_proj.weight", e.Message);
            Assert.Contains("NaN", e.Message);
            Assert.Equal(0, stream.Model.Streamer!.LiveBytes);
        }
        finally { Directory.Delete(dir, true); }

        // a wrong shape in a block is found at load time, without reading data
        var cfgDir = CopyGolden();
        try
        {
            var cfg = Path.Combine(cfgDir, "config.json");
            File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"moe_intermediate_size\": 32", "\"moe_intermediate_size\": 48"));
            Assert.Contains("48", File.ReadAllText(cfg));
            var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(cfgDir, Stream));
            Assert.Contains("experts", e.Message);
            Assert.Contains("shape", e.Message);
        }
        finally { Directory.Delete(cfgDir, true); }
    }

    [Fact]
    public void Stream_TruncatedShard_NamesTheFile_AtLoadAndWhenTheFileShrinksLater()
    {
        var dir = CopyGolden();
        try
        {
            var file = Path.Combine(dir, "model.safetensors");
            using (var stream = Checkpoint.Load(dir, Stream))
            {
                using (var fs = new FileStream(file, FileMode.Open, FileAccess.Write)) fs.SetLength(fs.Length / 2);   // blocks' tensors lie past the middle
                var later = Assert.Throws<CheckpointFormatException>(() => stream.Model.forward(GoldenIds()));
                Assert.Contains(file, later.Message);
            }
            var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir, Stream));
            Assert.Contains(file, e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    private static string CopyGolden()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"stream-golden-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(GoldenReferenceTests.CheckpointDir("hf")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    [Theory]
    [InlineData(6_000_000_000L, 10_000_000_000L, Residency.Stream)]   // 60 % of what is available
    [InlineData(5_000_000_000L, 10_000_000_000L, Residency.Memory)]   // exactly half: fits
    [InlineData(4_000_000_000L, 10_000_000_000L, Residency.Memory)]
    public void AutoResidency_StreamsAboveHalfTheAvailableMemory(long weights, long available, Residency expected)
    {
        var (chosen, reason) = Checkpoint.ChooseResidency(Residency.Auto, weights, available, ScalarType.Float32);
        Assert.Equal(expected, chosen);
        Assert.StartsWith($"residency: {expected.ToString().ToLowerInvariant()} (auto", reason);
        Assert.Contains($"{weights / 1e9:F2} GB", reason);
        Assert.Contains($"{available / 1e9:F2} GB", reason);
        Assert.DoesNotContain('\n', reason);
        // explicit requests are kept whatever the memory
        Assert.Equal(Residency.Memory, Checkpoint.ChooseResidency(Residency.Memory, weights, 1, ScalarType.Float32).Residency);
        Assert.Equal(Residency.Stream, Checkpoint.ChooseResidency(Residency.Stream, 1, available, ScalarType.Float32).Residency);
    }

    [Fact]
    public void AutoResidency_OnTheTinyModel_ChoosesMemory_AndSaysWhyWithTheNumbers()
    {
        using var ckpt = Checkpoint.Load(GoldenReferenceTests.CheckpointDir("hf"));
        Assert.Equal(Residency.Memory, ckpt.Residency);
        Assert.False(ckpt.Model.IsStreamed);
        long bytes = ckpt.Model.parameters().Sum(p => p.numel() * 4);
        Assert.Contains($"{bytes / 1e9:F2} GB in f32", ckpt.ResidencyReason);
        Assert.Contains("available", ckpt.ResidencyReason);
        Assert.True(Checkpoint.AvailableMemoryBytes() > 0);
    }
}

/// <summary>
/// Stream vs memory on a dimension-true DeepSeek-V2-Lite checkpoint (the official 16B ModelArgs: hidden 2048, 64 experts
/// of width 1408, vocab 102400), truncated to 2 layers (one dense, one MoE), bf16 on disk as released, written by
/// <see cref="RandomCheckpoint"/> into a temporary directory and deleted afterwards (~2.1 GB; minutes to write here).
/// </summary>
public class StreamResidencyV2LiteTests
{
    [Fact]
    [Trait("Category", "Slow")]
    public void V2LiteTwoLayers_Bf16OnDisk_StreamEqualsMemory_LogitsRoutingAndGradients()
    {
        var config = Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "configs", "deepseek-v3-inference-config_16B.json");
        var dir = Path.Combine(Path.GetTempPath(), $"stream-v2lite-{Guid.NewGuid():N}");
        try
        {
            RandomCheckpoint.Write(config, dir, new RandomCheckpointOptions { DType = SafetensorsDType.BF16, Layers = 2, Seed = 7 });
            var ids = tensor(new long[] { 100, 2048, 77, 90000, 5 }, 1, 5);
            var options = new TraceOptions { Names = NamesFilter.Routing | NamesFilter.Logits };
            Tensor logits, indices, grad;
            using (var memory = Checkpoint.Load(dir, new CheckpointLoadOptions { Residency = Residency.Memory }))
            {
                Assert.Equal(2048, memory.Config.HiddenSize);
                Assert.Equal(64, memory.Config.NRoutedExperts);
                using var trace = memory.Model.RunWithCache(ids, options);
                logits = trace.Logits.clone().DetachFromDisposeScope();
                indices = trace.ExpertIndices(1).clone().DetachFromDisposeScope();
                grad = Gradient(memory.Model, ids).DetachFromDisposeScope();
            }
            using (var stream = Checkpoint.Load(dir, new CheckpointLoadOptions { Residency = Residency.Stream }))
            {
                var streamer = stream.Model.Streamer!;
                using var trace = stream.Model.RunWithCache(ids, options);
                Assert.True(StreamResidencyTests.Relative(trace.Logits, logits) <= 1e-6);
                Assert.True(trace.ExpertIndices(1).eq(indices).all().item<bool>(), "routing differs");
                var g = Gradient(stream.Model, ids);
                Assert.True(g.abs().max().item<float>() > 0);
                Assert.True(StreamResidencyTests.Relative(g, grad) <= 1e-5, $"gradient differs by {StreamResidencyTests.Relative(g, grad):E2}");
                // the MoE block (≈ 2.2 GB in float32) is never held together with the dense one
                Assert.True(streamer.PeakLiveBytes <= Math.Max(streamer.BlockBytes(0), streamer.BlockBytes(1)));
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    private static Tensor Gradient(DeepSeekModel model, Tensor ids)
    {
        using var _ = enable_grad();
        var e = model.Embed(ids).detach().requires_grad_(true);
        var y = model.ForwardFromEmbeddings(e).log_softmax(-1)[0, -1, 1234];
        return autograd.grad(new[] { y }, new[] { e })[0];
    }
}
