using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// DeepSeek-V4's KV compressor (the <c>Compressor</c> of the official <c>inference/model.py</c>, prefill path): every
/// <c>m</c> = compress ratio consecutive tokens become one entry, a per-channel softmax-weighted sum of their
/// projections <c>wkv·x</c> with weights from <c>wgate·x</c> plus a learned positional bias <c>ape</c> [m, c·d'];
/// only complete windows (s div m of them) are compressed. At ratio 4 (CSA) windows overlap: entry e pools 2m slots,
/// the first half of the channels of window e−1 and the second half of window e (c = 2). Each entry is then
/// RMS-normalised and rotated (RoPE on its last rope dims) at position e·m. The main branch's entries are keys =
/// values; the indexer's own compressor (<see cref="Rotate"/>) applies the Hadamard rotation afterwards.
/// </summary>
public sealed class Compressor : nn.Module<Tensor, Tensor>
{
    private readonly int _ratio, _headDim, _ropeDim;
    private readonly bool _overlap;
    // DeepSeek's own parameter names (they become checkpoint names: attn.compressor.ape, .wkv, .wgate, .norm).
    private readonly Parameter ape;
    private readonly Linear wkv, wgate;
    private readonly RMSNorm norm;

    private readonly float[] _inverseFrequencies;

    internal Compressor(string name, DeepSeekConfig c, int ratio, int headDim, bool rotate, float[] inverseFrequencies, ParameterFactory? parameters = null) : base(name)
    {
        var p = parameters ?? ParameterFactory.Initialised;
        _inverseFrequencies = inverseFrequencies;
        _ratio = ratio;
        _headDim = headDim;
        _ropeDim = c.QkRopeHeadDim;
        _overlap = ratio == 4;
        Rotate = rotate;
        int coff = _overlap ? 2 : 1;
        ape = p.Zeros(new long[] { ratio, coff * headDim });
        wkv = p.Linear(c.HiddenSize, coff * headDim);
        wgate = p.Linear(c.HiddenSize, coff * headDim);
        norm = new RMSNorm("norm", headDim, c.RmsNormEps, p);
        RegisterComponents();
    }

    /// <summary>Tokens pooled per entry (the compress ratio m).</summary>
    public int Ratio => _ratio;
    /// <summary>Whether windows overlap (ratio 4, CSA: each entry also pools the window before).</summary>
    public bool Overlapping => _overlap;
    /// <summary>Whether this is the indexer's compressor (entries Hadamard-rotated after RoPE).</summary>
    internal bool Rotate { get; }

    /// <summary>x [batch, seq, dim] at positions 0 … seq−1 → entries [batch, seq div m, head_dim] (after norm and RoPE, before any QAT rounding).</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 3) throw new ArgumentException($"Compressor.forward needs x [batch, seq, dim], got [{string.Join(", ", x.shape)}]", nameof(x));
        using var scope = NewDisposeScope();
        var (cos, sin) = RotaryEmbedding.Tables(_inverseFrequencies, 0, x.shape[1], x.device);
        return Compress(x, cos, sin).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The softmax pooling weights of <see cref="Compress"/> for x [batch, seq, dim] (the layer's <c>attn_norm</c> output):
    /// [batch, seq div m, slots, head_dim], slots = m, or 2m at ratio 4 where slot j &lt; m is token (e−1)·m + j (weight 0
    /// for e = 0) and slot m + j is token e·m + j; otherwise slot j is token e·m + j. Per channel the weights over the
    /// slots sum to 1. For mapping attention on an entry back to the tokens it pools (analysis only; the forward does not use it).
    /// </summary>
    internal Tensor PoolingWeights(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], m = _ratio, d = _headDim;
        long entries = s / m;
        int slots = _overlap ? 2 * _ratio : _ratio;
        if (entries == 0) return zeros(b, 0, slots, d, dtype: float32, device: x.device).MoveToOuterDisposeScope();
        var score = wgate.forward(x.to(float32)).narrow(1, 0, entries * m).reshape(b, entries, m, -1) + ape;
        if (_overlap)
        {
            var scPrev = full(b, entries, m, d, float.NegativeInfinity, dtype: float32, device: x.device);
            if (entries > 1) scPrev = cat(new[] { scPrev.narrow(1, 0, 1), score.narrow(1, 0, entries - 1).narrow(-1, 0, d) }, 1);
            score = cat(new[] { scPrev, score.narrow(-1, d, d) }, 2);
        }
        return score.softmax(2).MoveToOuterDisposeScope();
    }

    /// <summary>Entries [batch, seq div m, head_dim] from x [batch, seq, dim]; <paramref name="cos"/>/<paramref name="sin"/> are the layer's tables for positions 0 … seq−1.</summary>
    internal Tensor Compress(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], m = _ratio, d = _headDim;
        long entries = s / m;
        if (entries == 0) return zeros(b, 0, d, dtype: float32, device: x.device).MoveToOuterDisposeScope();
        long cutoff = entries * m;
        var xf = x.to(float32);
        var kv = wkv.forward(xf).narrow(1, 0, cutoff).reshape(b, entries, m, -1);
        var score = wgate.forward(xf).narrow(1, 0, cutoff).reshape(b, entries, m, -1) + ape;
        if (_overlap)
        {
            // Slots 0..m-1: first half of the channels of window e-1 (none for e = 0: kv 0, score -inf); m..2m-1: second half of window e.
            var kvPrev = zeros(b, entries, m, d, dtype: float32, device: x.device);
            var scPrev = full(b, entries, m, d, float.NegativeInfinity, dtype: float32, device: x.device);
            if (entries > 1)
            {
                kvPrev = cat(new[] { kvPrev.narrow(1, 0, 1), kv.narrow(1, 0, entries - 1).narrow(-1, 0, d) }, 1);
                scPrev = cat(new[] { scPrev.narrow(1, 0, 1), score.narrow(1, 0, entries - 1).narrow(-1, 0, d) }, 1);
            }
            kv = cat(new[] { kvPrev, kv.narrow(-1, d, d) }, 2);
            score = cat(new[] { scPrev, score.narrow(-1, d, d) }, 2);
        }
        var pooled = (kv * score.softmax(2)).sum(2);                               // [b, entries, d]
        pooled = norm.forward(pooled);
        var positions = arange(0, cutoff, m, dtype: int64, device: x.device);
        var c = cos.index_select(0, positions);
        var sn = sin.index_select(0, positions);
        var parts = pooled.split(new long[] { d - _ropeDim, _ropeDim }, -1);
        var rotated = RotaryEmbedding.Apply(parts[1].unsqueeze(2), c, sn).squeeze(2);
        var result = cat(new[] { parts[0], rotated }, -1);
        if (Rotate) result = V4Kernels.Hadamard(result);
        return result.MoveToOuterDisposeScope();
    }
}
