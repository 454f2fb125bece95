using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tests.Checkpoints;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Fidelity;

/// <summary>
/// The official V3.2 kernels' maths (e4m3 rounding, <c>act_quant</c>, Hadamard rotation, <c>fp8_index</c>) against the
/// reference's unit vectors (tests/fixtures/golden/v32/kernels_unit.safetensors): bitwise where the README says the
/// unit vectors are bitwise.
/// </summary>
public class V32KernelTests
{
    internal static string V32Dir => Path.Combine(Raw.RepoRoot(), "tests", "fixtures", "golden", "v32");

    internal static Tensor Read(string file, string name)
    {
        using var f = SafetensorsFile.Open(Path.Combine(V32Dir, file));
        var info = f.GetTensor(name);
        if (info.DType == SafetensorsDType.I64)
        {
            var bytes = new byte[info.ByteLength];
            f.ReadBytes(name, bytes);
            return tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray(), info.ToShapeArray());
        }
        return tensor(f.ReadAsFloat32(name), info.ToShapeArray());
    }

    private static Tensor Unit(string name) => Read("kernels_unit.safetensors", name);

    private static int Differing(Tensor a, Tensor b) => (a != b).sum().item<long>() is var n ? (int)n : 0;

    [Fact]
    public void E4m3_EveryValueIsFixed_AndEveryMidpointRoundsToTheEvenCode()
    {
        using var scope = NewDisposeScope();
        var table = Unit("e4m3_all_values").data<float>().ToArray();
        // Codes 0..127 are the non-negative values in increasing order (0x7f is NaN); 128..255 their negatives.
        var positive = table.Take(127).ToArray();
        Assert.Equal(0f, positive[0]);
        Assert.Equal(448f, positive[^1]);
        var values = tensor(positive.Concat(table.Skip(128).Take(127)).ToArray());
        Assert.Equal(0, Differing(Fp8Simulation.RoundToE4m3(values), values));

        // Midpoints between neighbours are exact in float32 and must go to the even code (the lower one when its code is even).
        var mids = new float[126];
        var expected = new float[126];
        for (int c = 0; c < 126; c++)
        {
            mids[c] = (positive[c] + positive[c + 1]) / 2;
            expected[c] = c % 2 == 0 ? positive[c] : positive[c + 1];
        }
        Assert.Equal(0, Differing(Fp8Simulation.RoundToE4m3(tensor(mids)), tensor(expected)));
        Assert.Equal(0, Differing(Fp8Simulation.RoundToE4m3(-tensor(mids)), -tensor(expected)));

        // Values just off a midpoint go to the nearer neighbour; the README's known values.
        var known = new (float In, float Out)[] { (1.0625f, 1f), (1.1875f, 1.25f), (248f, 256f), (MathF.Pow(2, -10), 0f), (1.5f * MathF.Pow(2, -10), MathF.Pow(2, -9)), (0.3f, 0.3125f) };
        var got = Fp8Simulation.RoundToE4m3(tensor(known.Select(k => k.In).ToArray())).data<float>().ToArray();
        Assert.Equal(known.Select(k => k.Out).ToArray(), got);
    }

    [Theory]
    [InlineData(ScaleFormat.Float, "none")]
    [InlineData(ScaleFormat.Ue8m0, "ue8m0")]
    public void ActQuant_MatchesTheKernel_Bitwise(ScaleFormat format, string name)
    {
        using var scope = NewDisposeScope();
        var (y, s) = Fp8Simulation.ActQuant(Unit("act_quant.x"), format);
        Assert.Equal(0, Differing(s, Unit($"act_quant.{name}.s")));
        Assert.Equal(0, Differing(y, Unit($"act_quant.{name}.y")));
    }

    [Fact]
    public void ActQuant_RejectsALastDimensionThatIsNotAMultipleOf128()
    {
        var e = Assert.Throws<ArgumentException>(() => Fp8Simulation.ActQuant(zeros(2, 96), ScaleFormat.Ue8m0, "indexer q"));
        Assert.Contains("indexer q", e.Message);
        Assert.Contains("multiple of 128", e.Message);
    }

    [Fact]
    public void Hadamard_MatchesTheKernel_Bitwise_AndIsTheScaledSylvesterMatrix()
    {
        using var scope = NewDisposeScope();
        var x = Unit("hadamard.x");
        var y = Fp8Simulation.Hadamard(x);
        Assert.Equal(0, Differing(y, Unit("hadamard.y")));
        // Independent expectation: the Sylvester matrix H[i,j] = (−1)^popcount(i & j), in float64.
        var h = new double[128 * 128];
        for (int i = 0; i < 128; i++)
            for (int j = 0; j < 128; j++)
                h[i * 128 + j] = System.Numerics.BitOperations.PopCount((uint)(i & j)) % 2 == 0 ? 1 : -1;
        var reference = x.to(float64).matmul(tensor(h).view(128, 128).t()) / Math.Sqrt(128);
        Assert.True((reference - y.to(float64)).abs().max().item<double>() < 1e-5);
    }

    [Fact]
    public void Fp8Index_MatchesTheKernel()
    {
        using var scope = NewDisposeScope();
        var o = Fp8Simulation.Fp8Index(Unit("fp8_index.q"), Unit("fp8_index.q_s").squeeze(-1), Unit("fp8_index.k"), Unit("fp8_index.k_s").squeeze(-1));
        var expected = Unit("fp8_index.o");
        Assert.Equal(expected.shape, o.shape);
        var rel = ((o.to(float64) - expected.to(float64)).abs().max() / expected.abs().max()).item<double>();
        Assert.True(rel < 1e-6, $"fp8_index differs by {rel} of the max |o|");
        Assert.Equal(0, Differing(o, expected)); // the same order of float32 operations as the reference emulation
    }
}
