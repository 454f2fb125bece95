using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tests.Checkpoints;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Fidelity;

/// <summary>
/// The official DeepSeek-V4 kernels' maths against the reference's unit vectors (tests/fixtures/golden/v4/kernels.safetensors):
/// the FP8 and FP4 fake-quantisers bitwise (the README: exact emulation of the current kernel.py), the Hadamard rotation,
/// the mHC Sinkhorn split and the sparse attention with sink to float32 rounding.
/// </summary>
public class V4KernelTests
{
    internal static string V4Dir => Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "golden", "v4");

    internal static Tensor Read(string file, string name)
    {
        using var f = SafetensorsFile.Open(Path.Combine(V4Dir, file));
        var info = f.GetTensor(name);
        if (info.DType is SafetensorsDType.I64 or SafetensorsDType.I32)
        {
            var bytes = new byte[info.ByteLength];
            f.ReadBytes(name, bytes);
            long[] values = info.DType == SafetensorsDType.I64
                ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray()
                : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(bytes).ToArray().Select(v => (long)v).ToArray();
            return tensor(values, info.ToShapeArray());
        }
        return tensor(f.ReadAsFloat32(name), info.ToShapeArray());
    }

    private static Tensor K(string name) => Read("kernels.safetensors", name);
    private static long Differing(Tensor a, Tensor b) => (a != b).sum().item<long>();
    private static double MaxAbs(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Fact]
    public void Fp8FakeQuant_Blocks64_MatchesTheKernel_Bitwise()
    {
        using var scope = NewDisposeScope();
        var y = V4Kernels.Fp8FakeQuant(K("act_quant.input"));
        Assert.Equal(0, Differing(y, K("act_quant.output")));
        // Not the identity: the vector exercises real rounding.
        Assert.True(Differing(y, K("act_quant.input")) > 1000);
    }

    [Fact]
    public void Fp4FakeQuant_Blocks32_MatchesTheKernel_Bitwise()
    {
        using var scope = NewDisposeScope();
        var y = V4Kernels.Fp4FakeQuant(K("fp4_act_quant.input"));
        Assert.Equal(0, Differing(y, K("fp4_act_quant.output")));
        Assert.True(Differing(y, K("fp4_act_quant.input")) > 1000);
    }

    [Fact]
    public void E2m1_EveryValueIsFixed_AndMidpointsGoToTheEvenCode()
    {
        using var scope = NewDisposeScope();
        // The 8 non-negative e2m1 values, codes 0..7.
        float[] values = { 0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f };
        Assert.Equal(values, V4Kernels.RoundToE2m1(tensor(values)).data<float>().ToArray());
        // Midpoints round to the neighbour with the even code: 0.25→0, 0.75→1, 1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4.
        float[] mids = { 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5f };
        float[] even = { 0f, 1f, 1f, 2f, 2f, 4f, 4f };
        Assert.Equal(even, V4Kernels.RoundToE2m1(tensor(mids)).data<float>().ToArray());
        Assert.Equal(even.Select(v => -v).ToArray(), V4Kernels.RoundToE2m1(-tensor(mids)).data<float>().ToArray());
        // Just off a midpoint: the nearer value.
        Assert.Equal(new[] { 0.5f, 4f, 6f }, V4Kernels.RoundToE2m1(tensor(new[] { 0.2500001f, 4.99f, 5.01f })).data<float>().ToArray());
    }

    [Fact]
    public void FakeQuant_RejectsALastDimensionOffTheBlock()
    {
        var e = Assert.Throws<ArgumentException>(() => V4Kernels.Fp8FakeQuant(zeros(2, 72), what: "the window KV"));
        Assert.Contains("the window KV", e.Message);
        Assert.Contains("multiple of 64", e.Message);
        Assert.Contains("multiple of 32", Assert.Throws<ArgumentException>(() => V4Kernels.Fp4FakeQuant(zeros(2, 48))).Message);
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void Hadamard_MatchesTheReference_AndIsOrthonormal(int n)
    {
        using var scope = NewDisposeScope();
        var x = K($"hadamard_{n}.input");
        var y = V4Kernels.Hadamard(x);
        Assert.True(MaxAbs(y, K($"hadamard_{n}.output")) <= 1e-6, $"max |Δ| {MaxAbs(y, K($"hadamard_{n}.output"))}");
        // Orthonormal: norms are kept (an independent identity, not the reference's numbers).
        Assert.True(MaxAbs(y.norm(1), x.norm(1)) <= 1e-5);
    }

    [Fact]
    public void HcSplitSinkhorn_MatchesTheKernel()
    {
        using var scope = NewDisposeScope();
        var (pre, post, comb) = V4Kernels.HcSplitSinkhorn(K("hc_split_sinkhorn.mixes"), K("hc_split_sinkhorn.scale"), K("hc_split_sinkhorn.base"), 4, 20, 1e-6);
        Assert.True(MaxAbs(pre, K("hc_split_sinkhorn.pre")) <= 1e-7, $"pre {MaxAbs(pre, K("hc_split_sinkhorn.pre"))}");
        Assert.True(MaxAbs(post, K("hc_split_sinkhorn.post")) <= 1e-7, $"post {MaxAbs(post, K("hc_split_sinkhorn.post"))}");
        Assert.True(MaxAbs(comb, K("hc_split_sinkhorn.comb")) <= 1e-6, $"comb {MaxAbs(comb, K("hc_split_sinkhorn.comb"))}");
        // Doubly stochastic after 20 iterations (the golden report: row/column sums within ~1e-6 of 1).
        Assert.True((comb.sum(-1) - 1).abs().max().item<float>() < 5e-6);
        Assert.True((comb.sum(-2) - 1).abs().max().item<float>() < 5e-6);
        Assert.True(post.min().item<float>() >= 0 && post.max().item<float>() <= 2);
    }

    [Fact]
    public void SparseAttention_WithSink_MatchesTheKernel_AndLeavesTheSinkShare()
    {
        using var scope = NewDisposeScope();
        var q = K("sparse_attn.q");
        var kv = K("sparse_attn.kv");
        var sink = K("sparse_attn.attn_sink");
        var idx = K("sparse_attn.topk_idxs");
        double scale = K("sparse_attn.softmax_scale").item<float>();
        var (o, probs, sinkProb) = V4Kernels.SparseAttention(q, kv, sink, idx, scale);
        Assert.True(MaxAbs(o, K("sparse_attn.output")) <= 1e-6, $"max |Δ| {MaxAbs(o, K("sparse_attn.output"))}");
        // probs + sink share = 1 per (head, query); empty slots (−1) carry nothing.
        Assert.True((probs.sum(-1) + sinkProb - 1).abs().max().item<float>() < 1e-6);
        var empty = idx.lt(0).unsqueeze(1).expand_as(probs);
        Assert.Equal(0f, probs.masked_select(empty).abs().sum().item<float>());
        Assert.True(idx.lt(0).any().item<bool>(), "the unit vector has empty slots");
    }
}
