using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tests.Fidelity;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>
/// Stream residency of bf16 files computed in float32 (issue 12 §1/§4): the embedding table and the head stay resident in
/// bf16 (half the bytes of float32), the rows gathered and the head's chunks converted per use. Against memory mode on the
/// same files (every weight converted to float32 at load): traces, logits, embeddings and gradients with respect to the
/// input embeddings (what the attribution methods differentiate, through ForwardFromEmbeddings) on the golden V3 and V4
/// architectures written in bf16 by RandomCheckpoint. bf16 → float32 is exact, so the converted weights are memory mode's
/// weights bit for bit; only the summation order of the chunked head differs.
/// </summary>
public class StreamResidencyNarrowStorageTests
{
    private static readonly CheckpointLoadOptions Memory = new() { Residency = Residency.Memory };
    private static readonly CheckpointLoadOptions Stream = new() { Residency = Residency.Stream };

    private sealed class Bf16Checkpoint : IDisposable
    {
        public string Directory { get; }
        public Bf16Checkpoint(string configFile, ulong seed)
        {
            Directory = Path.Combine(Path.GetTempPath(), $"stream-bf16-{Guid.NewGuid():N}");
            RandomCheckpoint.Write(configFile, Directory, new RandomCheckpointOptions { DType = SafetensorsDType.BF16, Seed = seed });
        }
        public void Dispose() { if (System.IO.Directory.Exists(Directory)) System.IO.Directory.Delete(Directory, true); }
    }

    private static double Relative(Tensor a, Tensor b) => StreamResidencyTests.Relative(a, b);

    [Fact]
    public void V3Bf16Files_Float32Compute_StreamHoldsEmbeddingAndHeadInBf16_AndEqualsMemory()
    {
        using var dir = new Bf16Checkpoint(Path.Combine(GoldenReferenceTests.CheckpointDir("hf"), "config.json"), seed: 21);
        using var memory = Checkpoint.Load(dir.Directory, Memory);
        using var stream = Checkpoint.Load(dir.Directory, Stream);
        using var scope = NewDisposeScope();
        var c = stream.Config;

        // Resident in stream mode: embedding and head in bf16 (the files' dtype), everything else in float32.
        Assert.Equal(ScalarType.Float32, memory.Model.HeadWeight.dtype);
        Assert.Equal(ScalarType.BFloat16, stream.Model.EmbeddingWeight.dtype);
        Assert.Equal(ScalarType.BFloat16, stream.Model.HeadWeight.dtype);
        Assert.True(memory.Model.EmbeddingWeight.eq(stream.Model.EmbeddingWeight.to(float32)).all().item<bool>(), "the bf16 table widened must be memory mode's table");
        Assert.True(memory.Model.HeadWeight.eq(stream.Model.HeadWeight.to(float32)).all().item<bool>(), "the bf16 head widened must be memory mode's head");
        long nonBlockMemory = memory.Model.named_parameters().Where(p => !p.name.StartsWith("layers.", StringComparison.Ordinal)).Sum(p => p.parameter.numel() * p.parameter.ElementSize);
        long nonBlockStream = stream.Model.named_parameters().Where(p => !p.name.StartsWith("layers.", StringComparison.Ordinal)).Sum(p => p.parameter.numel() * p.parameter.ElementSize);
        Assert.Equal(2L * c.VocabSize * c.HiddenSize * 2, nonBlockMemory - nonBlockStream);   // embedding + head: 4 → 2 bytes each

        var ids = GoldenReferenceTests.Golden("input_ids");
        var e = stream.Model.Embed(ids);
        Assert.Equal(ScalarType.Float32, e.dtype);
        Assert.True(e.eq(memory.Model.Embed(ids)).all().item<bool>(), "embeddings differ");
        StreamResidencyTests.AssertSameTrace(memory, stream, ids);
        Assert.True(Relative(stream.Model.forward(ids), memory.Model.forward(ids)) <= 1e-6);

        // ∂ log p / ∂ embeddings through ForwardFromEmbeddings (autograd.grad and backward())
        var gm = StreamResidencyTests.EmbeddingGradient(memory.Model, ids);
        Assert.True(gm.abs().max().item<float>() > 0, "the gradient must not vanish");
        Assert.True(Relative(StreamResidencyTests.EmbeddingGradient(stream.Model, ids), gm) <= 1e-5);
        using (enable_grad())
        {
            var x = stream.Model.Embed(ids).detach().requires_grad_(true);
            stream.Model.ForwardFromEmbeddings(x).log_softmax(-1).gather(2, ids.remainder(7).unsqueeze(2)).sum().backward();
            Assert.True(Relative(x.grad!, gm) <= 1e-5, $"backward() gradient differs by {Relative(x.grad!, gm):E2}");
        }
        // the head's weight gets no gradient and stays bf16
        Assert.Null(stream.Model.HeadWeight.grad);
        Assert.Equal(ScalarType.BFloat16, stream.Model.HeadWeight.dtype);
    }

    [Fact]
    public void V4Bf16Files_Float32Compute_StreamEqualsMemory_LogitsAndGradients()
    {
        using var v4 = new V4FidelityTests.FixtureCheckpoint(CheckpointLayout.HuggingFace);
        using var dir = new Bf16Checkpoint(Path.Combine(v4.Directory, "config.json"), seed: 22);
        using var memory = Checkpoint.Load(dir.Directory, Memory);
        using var stream = Checkpoint.Load(dir.Directory, Stream);
        Assert.NotNull(stream.Config.HyperConnections);
        Assert.Equal(ScalarType.BFloat16, stream.Model.HeadWeight.dtype);
        using var scope = NewDisposeScope();
        var ids = StreamResidencyTests.V4KernelTestsIds(stream.Config.VocabSize, 2, 16, seed: 13);
        StreamResidencyTests.AssertSameTrace(memory, stream, ids);
        var gm = StreamResidencyTests.EmbeddingGradient(memory.Model, ids);
        Assert.True(gm.abs().max().item<float>() > 0);
        Assert.True(Relative(StreamResidencyTests.EmbeddingGradient(stream.Model, ids), gm) <= 1e-5);
    }

    [Fact]
    public void Bf16Files_Bf16Compute_KeepEveryParameterInBf16_NoConversionPath()
    {
        using var dir = new Bf16Checkpoint(Path.Combine(GoldenReferenceTests.CheckpointDir("hf"), "config.json"), seed: 23);
        var bf16 = new CheckpointLoadOptions { DType = ScalarType.BFloat16 };
        using var memory = Checkpoint.Load(dir.Directory, bf16 with { Residency = Residency.Memory });
        using var stream = Checkpoint.Load(dir.Directory, bf16 with { Residency = Residency.Stream });
        using var scope = NewDisposeScope();
        Assert.All(stream.Model.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        var ids = GoldenReferenceTests.Golden("input_ids");
        Assert.Equal(ScalarType.BFloat16, stream.Model.Embed(ids).dtype);
        Assert.True(Relative(stream.Model.forward(ids), memory.Model.forward(ids)) <= 1e-6);
    }

    [Fact]
    public void ChunkedHead_OverManyChunks_EqualsLinearWithTheWidenedWeight_ForwardAndBackward()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(5);
        var w = randn(new long[] { 1000, 24 }, generator: g).to(ScalarType.BFloat16);   // 1000 rows in chunks of 7: a last partial chunk of 6
        var h0 = randn(new long[] { 2, 3, 24 }, generator: g);
        var upstream = randn(new long[] { 2, 3, 1000 }, generator: g);
        Tensor reference, referenceGrad, chunked, chunkedGrad;
        using (enable_grad())
        {
            var h = h0.clone().requires_grad_(true);
            reference = nn.functional.linear(h, w.to(float32));
            referenceGrad = autograd.grad(new[] { reference }, new[] { h }, new[] { upstream })[0];
            var h2 = h0.clone().requires_grad_(true);
            chunked = ChunkedHeadFunction.apply(h2, new ChunkedHeadCall(w, RowsPerChunk: 7));
            chunkedGrad = autograd.grad(new[] { chunked }, new[] { h2 }, new[] { upstream })[0];
        }
        Assert.Equal(new long[] { 2, 3, 1000 }, chunked.shape);
        Assert.True(Relative(chunked, reference) <= 1e-6, $"logits differ by {Relative(chunked, reference):E2}");
        Assert.True(Relative(chunkedGrad, referenceGrad) <= 1e-5, $"gradient differs by {Relative(chunkedGrad, referenceGrad):E2}");
        // a 64 MiB chunk of float32 rows of width 2048 is 8192 rows (V2-Lite's head: 13 chunks of its 102400 rows)
        Assert.Equal(8192, ChunkedHeadFunction.RowsPerChunk(2048, ScalarType.Float32));
    }
}
