using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// The maths of the custom kernels DeepSeek-V4's official <c>inference/model.py</c> calls (<c>kernel.py</c>), in float32
/// TorchSharp ops: the QAT fake-quantisers <c>act_quant</c> (FP8 e4m3, blocks of 64, ue8m0 scales) and
/// <c>fp4_act_quant</c> (FP4 e2m1, blocks of 32, ue8m0 scales), the Hadamard rotation (<c>rotate_activation</c>),
/// <c>hc_split_sinkhorn</c> (the mHC pre/post/comb split with Sinkhorn normalisation) and <c>sparse_attn</c>
/// (attention over gathered key rows with a per-head sink). Rounding is exact (round to nearest, ties to even).
/// </summary>
internal static class V4Kernels
{
    /// <summary>FP8 activation block of the V4 QAT simulation (the non-rope part of the KV is a multiple of it).</summary>
    internal const int Fp8Block = 64;
    /// <summary>FP4 activation block of the V4 QAT simulation (indexer queries and keys).</summary>
    internal const int Fp4Block = 32;
    private const float E2m1Max = 6f;

    /// <summary>
    /// FP8 fake-quantisation (<c>act_quant(x, 64, "ue8m0")</c>, in place in the official code): per block of 64 of the last
    /// dimension a = max(max|x|, 1e-4), s = 2^ceil(log2(a · fl32(1/448))), x ← e4m3(clamp(x/s, ±448)) · s.
    /// </summary>
    internal static Tensor Fp8FakeQuant(Tensor x, ScaleFormat format = ScaleFormat.Ue8m0, string what = "act_quant input")
    {
        using var scope = NewDisposeScope();
        var blocks = Blocks(x, Fp8Block, what);
        var amax = blocks.abs().amax(new long[] { -1 }, keepdim: true).clamp_min(1e-4f);
        var s = amax * (1f / 448f);
        if (format == ScaleFormat.Ue8m0) s = PowerOfTwoCeil(s);
        var q = Fp8Simulation.RoundToE4m3((blocks / s).clamp(-448f, 448f)) * s;
        return q.reshape(x.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// FP4 fake-quantisation (<c>fp4_act_quant(x, 32)</c>): per block of 32, a = max(max|x|, 6·2⁻¹²⁶),
    /// s = 2^ceil(log2(a · fl32(1/6))), x ← e2m1(clamp(x/s, ±6)) · s (e2m1 values 0, .5, 1, 1.5, 2, 3, 4, 6).
    /// </summary>
    internal static Tensor Fp4FakeQuant(Tensor x, string what = "fp4_act_quant input")
    {
        using var scope = NewDisposeScope();
        var blocks = Blocks(x, Fp4Block, what);
        var amax = blocks.abs().amax(new long[] { -1 }, keepdim: true).clamp_min(6f * MathF.Pow(2f, -126));
        var s = PowerOfTwoCeil(amax * (1f / 6f));
        var q = RoundToE2m1((blocks / s).clamp(-E2m1Max, E2m1Max)) * s;
        return q.reshape(x.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rounds float32 values with |v| ≤ 6 to the nearest e2m1 value, ties to even (1 mantissa bit, exponents 0 … 2,
    /// subnormal 0.5): the spacing 2^(max(floor(log2|v|), 0) − 1) is a power of two, so v / spacing is exact and
    /// <c>round</c> (half to even) picks the even code.
    /// </summary>
    internal static Tensor RoundToE2m1(Tensor v)
    {
        using var scope = NewDisposeScope();
        var a = v.abs();
        var (_, exponent) = frexp(a);
        var binade = (exponent.to(float32) - 1).clamp_min(0);
        var spacing = pow(2.0f, binade - 1);
        return ((a / spacing).round() * spacing * v.sign()).MoveToOuterDisposeScope();
    }

    /// <summary>2^ceil(log2 s) for positive float32 s, from its bits (a power of two stays).</summary>
    private static Tensor PowerOfTwoCeil(Tensor s)
    {
        var (m, e) = frexp(s);
        return pow(2.0f, e.to(float32) - (m == 0.5f).to(float32));
    }

    private static Tensor Blocks(Tensor x, int block, string what)
    {
        long last = x.shape[^1];
        if (last % block != 0)
            throw new ArgumentException($"{what}: the fake-quantisation works on blocks of {block} elements, so the last dimension must be a multiple of {block}, got {last}", nameof(x));
        return x.to(float32).reshape(x.shape[..^1].Append(last / block).Append(block).ToArray());
    }

    /// <summary>
    /// <c>rotate_activation</c> as the golden reference computes it: x · H_n · n^−½ with H_n the Sylvester Hadamard matrix
    /// (natural order), one float32 matrix product (orthonormal: it changes no dot product, only what FP4 rounds).
    /// </summary>
    internal static Tensor Hadamard(Tensor x)
    {
        long n = x.shape[^1];
        if (n <= 0 || (n & (n - 1)) != 0)
            throw new ArgumentException($"the Hadamard rotation needs a power-of-two last dimension, got {n}", nameof(x));
        using var scope = NewDisposeScope();
        var h = ones(1, 1, dtype: float32, device: x.device);
        while (h.shape[0] < n) h = cat(new[] { cat(new[] { h, h }, 1), cat(new[] { h, -h }, 1) }, 0);
        return (x.to(float32).matmul(h) * (float)Math.Pow(n, -0.5)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>hc_split_sinkhorn</c>: mixes [..., (2+n)·n] → pre [..., n] = σ(m·scale₀ + base) + eps, post [..., n] =
    /// 2σ(m·scale₁ + base), comb [..., n, n] = softmax over the last axis of (m·scale₂ + base) + eps, divided by its column
    /// sums (+eps), then <paramref name="iters"/> − 1 times by row sums and column sums (+eps each).
    /// </summary>
    internal static (Tensor Pre, Tensor Post, Tensor Comb) HcSplitSinkhorn(Tensor mixes, Tensor scale, Tensor @base, int n, int iters, double eps)
    {
        using var scope = NewDisposeScope();
        long mix = mixes.shape[^1];
        if (mix != (2 + n) * n)
            throw new ArgumentException($"hc_split_sinkhorn: mixes must have (2 + hc_mult)·hc_mult = {(2 + n) * n} entries in the last dimension, got {mix}", nameof(mixes));
        float e = (float)eps;
        var pre = (mixes.narrow(-1, 0, n) * scale[0] + @base.narrow(0, 0, n)).sigmoid() + e;
        var post = (mixes.narrow(-1, n, n) * scale[1] + @base.narrow(0, n, n)).sigmoid() * 2f;
        var lead = mixes.shape[..^1];
        var comb = (mixes.narrow(-1, 2 * n, n * n) * scale[2] + @base.narrow(0, 2 * n, n * n)).reshape(lead.Append(n).Append(n).ToArray());
        comb = comb.softmax(-1) + e;
        comb = comb / (comb.sum(-2, keepdim: true) + e);
        for (int i = 1; i < iters; i++)
        {
            comb = comb / (comb.sum(-1, keepdim: true) + e);
            comb = comb / (comb.sum(-2, keepdim: true) + e);
        }
        return (pre.MoveToOuterDisposeScope(), post.MoveToOuterDisposeScope(), comb.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <c>sparse_attn(q, kv, attn_sink, topk_idxs, softmax_scale)</c>: for query t and head h, the rows
    /// <paramref name="topk"/>[b, t, :] of <paramref name="kv"/> (−1 = empty slot), z_j = q·kv_j · scale,
    /// p_j = exp(z_j) / (Σ exp(z_j') + exp(sink_h)), o = Σ p_j kv_j (the key is also the value).
    /// q [b, s, h, d], kv [b, n, d], sink [h], topk [b, s, k] → o [b, s, h, d], probs [b, h, s, k] (0 on empty slots),
    /// sink share [b, h, s].
    /// </summary>
    internal static (Tensor Output, Tensor Probs, Tensor SinkProb) SparseAttention(Tensor q, Tensor kv, Tensor sink, Tensor topk, double softmaxScale)
    {
        using var scope = NewDisposeScope();
        long b = q.shape[0], s = q.shape[1], h = q.shape[2], d = q.shape[3], k = topk.shape[2];
        var idx = topk.to(int64);
        var valid = idx.ge(0);                                                      // [b, s, k]
        var safe = idx.clamp_min(0);
        var gathered = kv.unsqueeze(1).expand(b, s, kv.shape[1], d)
            .gather(2, safe.unsqueeze(-1).expand(b, s, k, d));                      // [b, s, k, d]
        var z = q.matmul(gathered.transpose(-1, -2)) * (float)softmaxScale;         // [b, s, h, k]
        z = z.masked_fill(valid.logical_not().unsqueeze(2), float.NegativeInfinity);
        var sinkCol = sink.to(float32).view(1, 1, h, 1).expand(b, s, h, 1);
        var all = cat(new[] { z, sinkCol }, -1).softmax(-1);                        // [b, s, h, k + 1]
        var probs = all.narrow(-1, 0, k);
        var o = probs.matmul(gathered);                                             // [b, s, h, d]
        var sinkProb = all.select(-1, k);                                           // [b, s, h]
        return (o.MoveToOuterDisposeScope(), probs.permute(0, 2, 1, 3).contiguous().MoveToOuterDisposeScope(),
                sinkProb.permute(0, 2, 1).contiguous().MoveToOuterDisposeScope());
    }
}
