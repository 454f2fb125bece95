using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// Rotary position embedding (Su et al. 2021) with DeepSeek's YaRN frequency correction (Peng et al. 2023), as
/// <c>precompute_freqs_cis</c> / <c>apply_rotary_emb</c> in DeepSeek-V3's <c>inference/model.py</c>: the rope part of a
/// head is rotated in adjacent pairs (x₀,x₁),(x₂,x₃),… viewed as complex numbers.
/// </summary>
internal static class RotaryEmbedding
{
    /// <summary>Per-pair inverse frequencies [rope_dim/2], YaRN-corrected when the config's context exceeds the original length.</summary>
    internal static float[] InverseFrequencies(DeepSeekConfig c) =>
        InverseFrequencies(c.QkRopeHeadDim, c.RopeTheta, c.YarnActive ? c.RopeScaling : null);

    /// <summary>
    /// Per-pair inverse frequencies [dim/2] for RoPE base <paramref name="theta"/>, YaRN-corrected with <paramref name="yarn"/>
    /// when given (DeepSeek-V4 calls this per layer kind: <c>rope_theta</c> for sliding layers, <c>compress_rope_theta</c>
    /// and YaRN for compressed ones).
    /// </summary>
    internal static float[] InverseFrequencies(int dim, double theta, RopeScaling? yarn)
    {
        var freqs = new float[dim / 2];
        for (int i = 0; i < freqs.Length; i++)
            freqs[i] = 1.0f / MathF.Pow((float)theta, (2 * i) / (float)dim);
        if (yarn is null) return freqs;

        var r = yarn;
        double CorrectionDim(double rotations) =>
            dim * Math.Log(r.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = Math.Max(Math.Floor(CorrectionDim(r.BetaFast)), 0);
        double high = Math.Min(Math.Ceiling(CorrectionDim(r.BetaSlow)), dim - 1);
        if (low == high) high += 0.001;
        for (int i = 0; i < freqs.Length; i++)
        {
            float ramp = Math.Clamp((float)((i - low) / (high - low)), 0f, 1f);
            float smooth = 1 - ramp;
            freqs[i] = freqs[i] / (float)r.Factor * (1 - smooth) + freqs[i] * smooth;
        }
        return freqs;
    }

    /// <summary>cos and sin tables [seq, rope_dim/2] for positions start … start+seq−1.</summary>
    internal static (Tensor Cos, Tensor Sin) Tables(float[] inverseFrequencies, long start, long seq, Device device)
    {
        using var scope = NewDisposeScope();
        var t = arange(start, start + seq, dtype: float32, device: device);
        var f = tensor(inverseFrequencies, device: device);
        var angles = outer(t, f);
        return (angles.cos().MoveToOuterDisposeScope(), angles.sin().MoveToOuterDisposeScope());
    }

    /// <summary>Rotates x [batch, seq, heads, rope_dim] by the tables [seq, rope_dim/2].</summary>
    internal static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var shape = x.shape;
        var pairs = x.to(float32).reshape(shape[0], shape[1], shape[2], shape[3] / 2, 2);
        var x0 = pairs.select(-1, 0);
        var x1 = pairs.select(-1, 1);
        var c = cos.view(1, shape[1], 1, shape[3] / 2);
        var s = sin.view(1, shape[1], 1, shape[3] / 2);
        var y = stack(new[] { x0 * c - x1 * s, x0 * s + x1 * c }, -1).flatten(3);
        return y.to(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The inverse rotation of <see cref="Apply"/> (conjugate: angle −θ), DeepSeek-V4's <c>apply_rotary_emb(o, freqs, inverse=True)</c>.</summary>
    internal static Tensor ApplyInverse(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        return Apply(x, cos, sin.neg()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rotates x [batch, seq, heads, rope_dim] by the tables [seq, rope_dim/2] non-interleaved (half split, like
    /// <c>rotate_half</c>): dimension j pairs with j + rope_dim/2. DeepSeek-V3.2's lightning indexer uses this form
    /// (official code after its "fix indexer rope" commit); MLA keeps the interleaved <see cref="Apply"/>.
    /// </summary>
    internal static Tensor ApplyHalfSplit(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var shape = x.shape;
        long half = shape[3] / 2;
        var parts = x.to(float32).split(new[] { half, half }, dim: -1);
        var c = cos.view(1, shape[1], 1, half);
        var s = sin.view(1, shape[1], 1, half);
        var y = cat(new[] { parts[0] * c - parts[1] * s, parts[0] * s + parts[1] * c }, -1);
        return y.to(x.dtype).MoveToOuterDisposeScope();
    }
}
