using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// The maths of the custom kernels DeepSeek-V3.2-Exp's official <c>inference/model.py</c> calls, in float32 TorchSharp
/// ops with the kernels' rounding: <c>act_quant</c> (FP8 e4m3 activation quantisation with one scale per 128-element
/// block, <c>kernel.py</c>), <c>rotate_activation</c> (<c>fast_hadamard_transform</c>'s scaled Walsh–Hadamard rotation)
/// and <c>fp8_index</c> (the lightning indexer's score kernel). Values stay float32 tensors: an "e4m3 tensor" here holds
/// float32 numbers that are exactly e4m3 values (what the reference stores as <c>float8_e4m3fn</c>).
/// </summary>
internal static class Fp8Simulation
{
    /// <summary>The official kernel's quantisation block (<c>block_size = 128</c> in <c>model.py</c>).</summary>
    internal const int BlockSize = 128;
    /// <summary>Largest finite e4m3fn value.</summary>
    internal const float E4m3Max = 448f;
    /// <summary><c>fp8_max_inv = 1 / 448</c> as the float32 kernel holds it.</summary>
    private const float E4m3MaxInv = 1f / 448f;
    /// <summary>The kernel's floor on a block's absolute maximum (<c>T.max(amax, 1e-4)</c>).</summary>
    private const float AmaxFloor = 1e-4f;

    /// <summary>
    /// Rounds float32 values with |v| ≤ 448 to the nearest e4m3fn value, ties to even (3 mantissa bits, normal
    /// exponents −6 … 8, subnormals k·2⁻⁹). Exact: the spacing 2^(e−3) of v's binade is a power of two, v / spacing is
    /// exact, and <c>round</c> rounds half to even (an even multiple of the spacing is an even mantissa code).
    /// </summary>
    internal static Tensor RoundToE4m3(Tensor v)
    {
        using var scope = NewDisposeScope();
        var a = v.abs();
        var (_, exponent) = frexp(a);                                   // a = m · 2^exponent, m ∈ [0.5, 1)
        var binade = (exponent.to(float32) - 1).clamp_min(-6);          // floor(log2 a), at least the smallest normal exponent
        var spacing = pow(2.0f, binade - 3);
        var rounded = (a / spacing).round() * spacing;
        return (rounded * v.sign()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>act_quant(x, 128, scale_fmt)</c>: per block of 128 elements of the last dimension, amax = max(max|x|, 1e-4);
    /// scale s = amax · (1/448) (<see cref="ScaleFormat.Float"/>) or 2^ceil(log2(amax · (1/448))) (<see cref="ScaleFormat.Ue8m0"/>);
    /// values e4m3(clamp(x / s, −448, 448)). Returns the e4m3 values (x's shape) and the scales [..., last/128].
    /// </summary>
    /// <exception cref="ArgumentException">The last dimension is not a multiple of 128 (the official kernel's requirement).</exception>
    internal static (Tensor Values, Tensor Scales) ActQuant(Tensor x, ScaleFormat format, string what = "act_quant input")
    {
        long last = x.shape[^1];
        if (last % BlockSize != 0)
            throw new ArgumentException($"{what}: FP8 activation quantisation works on blocks of {BlockSize} elements, so the last dimension must be a multiple of {BlockSize}, got {last}", nameof(x));
        using var scope = NewDisposeScope();
        var lead = x.shape[..^1];
        var blocks = x.to(float32).reshape(lead.Append(last / BlockSize).Append(BlockSize).ToArray());
        var amax = blocks.abs().amax(new long[] { -1 }, keepdim: true).clamp_min(AmaxFloor);
        var s = amax * E4m3MaxInv;
        if (format == ScaleFormat.Ue8m0)
        {
            // 2^ceil(log2 s) from s's bits: s = m · 2^e with m ∈ [0.5, 1); a power of two (m = 0.5) is kept.
            var (m, e) = frexp(s);
            var exponent = e.to(float32) - (m == 0.5f).to(float32);
            s = pow(2.0f, exponent);
        }
        var values = RoundToE4m3((blocks / s).clamp(-E4m3Max, E4m3Max)).reshape(x.shape);
        return (values.MoveToOuterDisposeScope(), s.squeeze(-1).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <c>rotate_activation</c>: the Walsh–Hadamard rotation H·v / sqrt(d) of the last dimension (d a power of two,
    /// H the Sylvester matrix), computed as the CUDA kernel does: float32 butterflies (a + b, a − b) with strides
    /// 1, 2, 4, …, d/2, then one multiplication by float32(d^−1/2).
    /// </summary>
    internal static Tensor Hadamard(Tensor x)
    {
        long d = x.shape[^1];
        if (d <= 0 || (d & (d - 1)) != 0)
            throw new ArgumentException($"the Hadamard rotation needs a power-of-two last dimension, got {d}", nameof(x));
        using var scope = NewDisposeScope();
        var lead = x.shape[..^1];
        var y = x.to(float32);
        for (long h = 1; h < d; h *= 2)
        {
            var pairs = y.reshape(lead.Append(d / (2 * h)).Append(2).Append(h).ToArray());
            var a = pairs.select(-2, 0);
            var b = pairs.select(-2, 1);
            y = stack(new[] { a + b, a - b }, -2).reshape(x.shape);
        }
        y = y * (float)Math.Pow(d, -0.5);
        return y.to(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>fp8_index(q, weights, k, k_s)</c>: I[b,s,t] = k_s[b,t] · Σ_h relu(q[b,s,h]·k[b,t]) · weights[b,s,h].
    /// The dot products of e4m3 values are exact (float64 sums of exact products, rounded once to float32), the head
    /// sum runs in order h = 0, 1, … in float32, then the key scale multiplies. q [b, s, h, d], weights [b, s, h],
    /// k [b, t, d], kScale [b, t] → [b, s, t].
    /// </summary>
    internal static Tensor Fp8Index(Tensor q, Tensor weights, Tensor k, Tensor kScale)
    {
        using var scope = NewDisposeScope();
        // [b, s, h, d] x [b, 1, d, t] → [b, s, h, t]: exact in float64 (e4m3 products need 8 bits, their sums < 53).
        var logits = q.to(float64).matmul(k.to(float64).transpose(-2, -1).unsqueeze(1)).to(float32).relu();
        var w = weights.to(float32);
        Tensor? sum = null;
        for (long h = 0; h < q.shape[2]; h++)
        {
            var term = logits.select(2, h) * w.select(2, h).unsqueeze(-1);
            sum = sum is null ? term : sum + term;
        }
        return (sum! * kScale.to(float32).unsqueeze(1)).MoveToOuterDisposeScope();
    }

    /// <summary>Dequantised values: e4m3 values times their block scales (the shape of <paramref name="values"/>).</summary>
    internal static Tensor Dequantise(Tensor values, Tensor scales)
    {
        using var scope = NewDisposeScope();
        long last = values.shape[^1];
        var lead = values.shape[..^1];
        var blocks = values.reshape(lead.Append(last / BlockSize).Append(BlockSize).ToArray());
        return (blocks * scales.unsqueeze(-1)).reshape(values.shape).MoveToOuterDisposeScope();
    }
}
