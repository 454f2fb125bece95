using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tests.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Fidelity;

/// <summary>
/// The model against DeepSeek's official inference code (tests/fixtures/golden, copied from shared/golden): logits,
/// every block's hidden state and attention probabilities within 1e-4, experts exactly, routing weights within 1e-4,
/// loading the same weights from the Hugging Face and the official layout.
/// </summary>
public class GoldenReferenceTests
{
    internal static string GoldenDir => Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "golden");
    internal static string CheckpointDir(string layout) => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", $"golden-tiny-{layout}");

    internal static Tensor Golden(string name)
    {
        using var f = SafetensorsFile.Open(Path.Combine(GoldenDir, "public.outputs.safetensors"));
        var info = f.GetTensor(name);
        if (info.DType == SafetensorsDType.I64)
        {
            var bytes = new byte[info.ByteLength];
            f.ReadBytes(name, bytes);
            return tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray(), info.ToShapeArray());
        }
        return tensor(f.ReadAsFloat32(name), info.ToShapeArray());
    }

    private static double MaxAbs(Tensor a, Tensor b) => (a.to(float64) - b.to(float64)).abs().max().item<double>();

    [Theory]
    [InlineData("hf", CheckpointLayout.HuggingFace)]
    [InlineData("official", CheckpointLayout.Official)]
    public void TracedForward_MatchesOfficialInferenceCode(string dir, CheckpointLayout expectedLayout)
    {
        using var ckpt = DeepSeekNotebooks.Model.Checkpoints.Checkpoint.Load(CheckpointDir(dir));
        Assert.Equal(expectedLayout, ckpt.Layout);
        using var scope = NewDisposeScope();
        var ids = Golden("input_ids");
        using var trace = ckpt.Model.RunWithCache(ids);

        Assert.True(MaxAbs(trace.Logits, Golden("logits")) < 1e-4, $"logits differ by {MaxAbs(trace.Logits, Golden("logits"))}");
        for (int i = 0; i < 3; i++)
        {
            var h = MaxAbs(trace.Hidden(i), Golden($"hidden.{i}"));
            Assert.True(h < 1e-4, $"hidden.{i} differs by {h}");
            var a = MaxAbs(trace.AttentionPattern(i), Golden($"attn_probs.{i}"));
            Assert.True(a < 1e-4, $"attn_probs.{i} differs by {a}");
        }
        foreach (var layer in new[] { 1, 2 })
        {
            Assert.Equal(Golden($"moe.{layer}.indices").data<long>().ToArray(), trace.ExpertIndices(layer).data<long>().ToArray());
            var w = MaxAbs(trace.ExpertWeights(layer), Golden($"moe.{layer}.weights"));
            Assert.True(w < 1e-4, $"moe.{layer}.weights differ by {w}");
            var s = MaxAbs(trace.RouterScores(layer), Golden($"moe.{layer}.scores"));
            Assert.True(s < 1e-4, $"moe.{layer}.scores differ by {s}");
        }
    }

    [Fact]
    public void PlainForward_EqualsTracedForward()
    {
        using var ckpt = DeepSeekNotebooks.Model.Checkpoints.Checkpoint.Load(CheckpointDir("hf"));
        using var scope = NewDisposeScope();
        var ids = Golden("input_ids");
        var plain = ckpt.Model.forward(ids);
        using var trace = ckpt.Model.RunWithCache(ids);
        Assert.Equal(0.0, MaxAbs(plain, trace.Logits));
        Assert.True(MaxAbs(plain, Golden("logits")) < 1e-4);
    }
}
