using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tests.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>Draws from libtorch's process-wide default generator, so its tests never run in parallel with other test classes.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalGeneratorCollection
{
    public const string Name = "global generator";
}

/// <summary>
/// Issue 12 §4, loading speed: <see cref="Checkpoint.Load"/> builds the model with uninitialised parameters in the compute
/// dtype (no kaiming-uniform / N(0, 1) initialisation that the loader then overwrites). Every random initialiser draws
/// from libtorch's default generator, so a load that initialised anything would move it: the probe is the next numbers
/// the generator gives, with and without a load in between. The probe is shown to detect draws on
/// <see cref="DeepSeekModel.Create"/> without a seed, which still initialises from that generator as it always did.
/// </summary>
[Collection(GlobalGeneratorCollection.Name)]
public sealed class LoadDrawsNoRandomNumbersTests
{
    private static string GoldenHf => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf");

    private static float[] NextNumbers(Action between)
    {
        manual_seed(20261201);
        between();
        using var r = rand(16);
        return r.data<float>().ToArray();
    }

    [Theory]
    [InlineData(Residency.Memory, ScalarType.Float32)]
    [InlineData(Residency.Memory, ScalarType.BFloat16)]
    [InlineData(Residency.Stream, ScalarType.Float32)]
    [InlineData(Residency.Stream, ScalarType.BFloat16)]
    public void Load_draws_nothing_from_the_global_generator(Residency residency, ScalarType dtype)
    {
        var untouched = NextNumbers(() => { });
        var afterLoad = NextNumbers(() =>
        {
            using var ckpt = Checkpoint.Load(GoldenHf, new CheckpointLoadOptions { Residency = residency, DType = dtype });
            // Stream residency reads blocks on demand: bring one in too.
            using (ckpt.Model.LoadBlockWeights(1)) { }
        });
        Assert.Equal(untouched, afterLoad);
    }

    [Fact]
    public void The_probe_sees_an_initialisation_Create_without_a_seed_initialises_from_the_global_generator()
    {
        var untouched = NextNumbers(() => { });
        var afterCreate = NextNumbers(() => { using var m = DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured); });
        Assert.NotEqual(untouched, afterCreate);
    }
}

/// <summary>
/// No parameter is left uninitialised by loading: a seeded model of each generation's block kinds (V3 MLA + MoE with
/// the selection bias; V3.2 with the lightning indexer and its LayerNorm; V4 compressed attention, compressors, sinks,
/// hyper-connections and hash routing) saved and loaded back has every parameter bitwise equal to the saved model's (in
/// bf16: the saved float32 values rounded to bf16), in the requested dtype, in memory and streamed (each block brought in).
/// A checkpoint missing a tensor is refused naming it in every residency and dtype.
/// </summary>
public sealed class LoadWithoutInitialisationTests
{
    private static string GoldenHf => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf");

    private static DeepSeekConfig ConfigOf(string generation) => generation switch
    {
        "v3" => DeepSeekConfig.TinyFullFeatured,
        "v3.2" => DeepSeekConfig.Load(Path.Combine(V32ConfigTests.V32Dir, "public.hf_config.json")),
        "v4" => DeepSeekConfig.Load(Path.Combine(V4ConfigTests.V4Dir, "public.hf_config.json")),
        _ => throw new ArgumentException(generation),
    };

    [Theory]
    [InlineData("v3", Residency.Memory, ScalarType.Float32)]
    [InlineData("v3", Residency.Memory, ScalarType.BFloat16)]
    [InlineData("v3", Residency.Stream, ScalarType.Float32)]
    [InlineData("v3", Residency.Stream, ScalarType.BFloat16)]
    [InlineData("v3.2", Residency.Memory, ScalarType.Float32)]
    [InlineData("v3.2", Residency.Stream, ScalarType.BFloat16)]
    [InlineData("v4", Residency.Memory, ScalarType.Float32)]
    [InlineData("v4", Residency.Memory, ScalarType.BFloat16)]
    [InlineData("v4", Residency.Stream, ScalarType.Float32)]
    public void Every_loaded_parameter_is_the_saved_value_in_the_compute_dtype(string generation, Residency residency, ScalarType dtype)
    {
        var config = ConfigOf(generation);
        using var dir = new TempDir();
        using var original = DeepSeekModel.Create(config, seed: 17);
        Checkpoint.Save(original, dir.Path);
        var expected = original.named_parameters().ToDictionary(p => p.name, p => p.parameter);

        using var ckpt = Checkpoint.Load(dir.Path, new CheckpointLoadOptions { Residency = residency, DType = dtype });
        var model = ckpt.Model;
        var loaded = model.named_parameters().ToList();
        Assert.Equal(expected.Keys.Order(), loaded.Select(p => p.name).Order());

        void Compare(string name, Tensor actual)
        {
            Assert.True(actual.dtype == dtype, $"{name} is {actual.dtype}, not the compute dtype {dtype}");
            Assert.Equal(expected[name].shape, actual.shape);
            using var want = expected[name].detach().to(dtype);
            Assert.True(want.eq(actual).all().item<bool>(), $"{name} differs from the saved value after loading ({residency}, {dtype})");
        }

        foreach (var (name, p) in loaded.Where(p => !BlockStreamer.TryLayer(p.name, out _))) Compare(name, p);
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
            using (model.LoadBlockWeights(layer))
                foreach (var (name, p) in model.named_parameters().Where(p => BlockStreamer.TryLayer(p.name, out int l) && l == layer))
                    Compare(name, p);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void In_memory_every_MLP_keeps_its_gate_and_up_projections_in_one_storage(ScalarType dtype)
    {
        // The loader writes w1 and w3 in place into the fused [2·inter, dim] storage the loading constructor made.
        using var ckpt = Checkpoint.Load(GoldenHf, new CheckpointLoadOptions { Residency = Residency.Memory, DType = dtype });
        var mlps = ckpt.Model.Layers.SelectMany(b => b.Moe is { } moe ? moe.Experts.Concat(moe.SharedExperts is { } s ? new[] { s } : []) : new[] { b.DenseMlp! }).ToList();
        Assert.NotEmpty(mlps);
        foreach (var mlp in mlps)
        {
            using var fused = mlp.FusedGateUp();
            Assert.NotNull(fused);
            Assert.Equal(new[] { 2 * mlp.InterDim, ckpt.Config.HiddenSize }, fused!.shape);
        }
    }

    [Theory]
    [InlineData("model.layers.1.mlp.experts.3.up_proj.weight", Residency.Stream, ScalarType.Float32)]
    [InlineData("model.layers.1.mlp.experts.3.up_proj.weight", Residency.Memory, ScalarType.BFloat16)]
    [InlineData("model.layers.1.mlp.experts.3.up_proj.weight", Residency.Stream, ScalarType.BFloat16)]
    [InlineData("model.layers.0.self_attn.kv_a_layernorm.weight", Residency.Stream, ScalarType.BFloat16)]
    [InlineData("model.norm.weight", Residency.Memory, ScalarType.Float32)]
    [InlineData("model.norm.weight", Residency.Stream, ScalarType.BFloat16)]
    [InlineData("lm_head.weight", Residency.Memory, ScalarType.BFloat16)]
    public void A_missing_tensor_is_refused_naming_it(string victim, Residency residency, ScalarType dtype)
    {
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(GoldenHf)) File.Copy(f, dir.File(Path.GetFileName(f)));
        var path = dir.File("model.safetensors");
        List<(string Name, long[] Shape, float[] Data)> kept;
        using (var f = SafetensorsFile.Open(path))
        {
            Assert.Contains(f.Tensors, t => t.Name == victim);
            kept = f.Tensors.Where(t => t.Name != victim).Select(t => (t.Name, t.ToShapeArray(), f.ReadAsFloat32(t.Name))).ToList();
        }
        var w = new SafetensorsWriter();
        foreach (var (name, shape, data) in kept) w.AddFloat32(name, shape, data);
        w.WriteTo(path);

        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path, new CheckpointLoadOptions { Residency = residency, DType = dtype }));
        Assert.Contains("missing 1 tensor(s)", e.Message);
        Assert.Contains(victim, e.Message);
    }
}
