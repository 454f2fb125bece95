using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// DeepSeek-V4 attention (the <c>Attention</c> of the official V4 <c>inference/model.py</c>, prefill from position 0):
/// low-rank queries <c>wq_a → q_norm → wq_b</c>, each head RMS-normalised without weight; one shared key = value head
/// <c>kv_norm(wkv·x)</c>; RoPE on the last <c>qk_rope_head_dim</c> dims (interleaved pairs) of queries, keys and
/// compressed entries; each query attends its sliding window of <c>sliding_window</c> raw tokens plus, by layer kind,
/// nothing (sliding), the indexer-selected compressed entries (CSA, ratio 4) or every completed entry (HCA); softmax
/// with a learnable per-head sink (<c>attn_sink</c>: mass that goes to no token); inverse RoPE on the output's rope dims;
/// grouped low-rank output projection <c>wo_b · concat_g(wo_a[g] · o_g)</c>. Under
/// <see cref="QuantisationSimulation.Official"/> the non-rope part of the key rows and of the compressed entries is
/// rounded through FP8 (blocks of 64) as the official QAT kernels do. Pure sliding layers use <c>rope_theta</c>;
/// compressed layers <c>compress_rope_theta</c> and YaRN (when configured); no attention-scale correction.
/// </summary>
public sealed class CompressedAttention : nn.Module<Tensor, Tensor>
{
    private readonly DeepSeekConfig _c;
    private readonly int _layer, _heads, _headDim, _ropeDim, _window, _groups, _oRank, _ratio;
    private readonly float[] _inverseFrequencies;
    // DeepSeek's own parameter names (they become checkpoint names: layers.{i}.attn.attn_sink, .wq_a, …).
    private readonly Parameter attn_sink;
    private readonly Linear wq_a, wq_b, wkv, wo_a, wo_b;
    private readonly RMSNorm q_norm, kv_norm;
    private readonly Compressor? compressor;
    private readonly CompressedIndexer? indexer;

    internal CompressedAttention(string name, DeepSeekConfig c, int layer, ParameterFactory? parameters = null) : base(name)
    {
        var p = parameters ?? ParameterFactory.Initialised;
        var a = c.CompressedAttention!;
        _c = c;
        _layer = layer;
        _heads = c.NumAttentionHeads;
        _headDim = a.HeadDim;
        _ropeDim = c.QkRopeHeadDim;
        _window = a.SlidingWindow;
        _groups = a.OGroups;
        _oRank = a.OLoraRank;
        _ratio = c.CompressRatio(layer);
        int rank = c.QLoraRank!.Value;
        attn_sink = p.Zeros(new long[] { _heads });
        wq_a = p.Linear(c.HiddenSize, rank);
        q_norm = new RMSNorm("q_norm", rank, c.RmsNormEps, p);
        wq_b = p.Linear(rank, (long)_heads * _headDim);
        wkv = p.Linear(c.HiddenSize, _headDim);
        kv_norm = new RMSNorm("kv_norm", _headDim, c.RmsNormEps, p);
        wo_a = p.Linear((long)_heads * _headDim / _groups, (long)_groups * _oRank);
        wo_b = p.Linear((long)_groups * _oRank, c.HiddenSize);
        _inverseFrequencies = _ratio == 0
            ? RotaryEmbedding.InverseFrequencies(_ropeDim, c.RopeTheta, null)
            : RotaryEmbedding.InverseFrequencies(_ropeDim, a.CompressRopeTheta, c.RopeScaling);
        if (_ratio > 0)
        {
            compressor = new Compressor("compressor", c, _ratio, _headDim, rotate: false, _inverseFrequencies, p);
            if (_ratio == 4) indexer = new CompressedIndexer("indexer", c, layer, _inverseFrequencies, p);
        }
        RegisterComponents();
    }

    /// <summary>The attention kind of this layer (sliding window, CSA or HCA).</summary>
    public AttentionKind Kind => _c.AttentionKindOf(_layer);
    /// <summary>The main compressor (null for a sliding-window layer).</summary>
    public Compressor? Compressor => compressor;
    /// <summary>The lightning indexer over compressed entries (CSA layers only).</summary>
    public CompressedIndexer? Indexer => indexer;
    /// <summary>The learnable sink logit per head [heads].</summary>
    public Parameter Sink => attn_sink;

    /// <summary>
    /// The tokens compressed entry <paramref name="entry"/> pools at compress ratio <paramref name="ratio"/>, inclusive:
    /// e·m … e·m+m−1, and at ratio 4 (CSA, overlapping windows) also the window before, from max(0, (e−1)·m). The entry
    /// becomes visible to queries from e·m+m−1 on. For mapping attention on compressed entries back to tokens.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">ratio &lt; 2 or entry &lt; 0.</exception>
    public static (int First, int Last) EntryTokens(int ratio, int entry)
    {
        if (ratio < 2) throw new ArgumentOutOfRangeException(nameof(ratio), ratio, "a compress ratio is at least 2 (0 means the layer compresses nothing)");
        if (entry < 0) throw new ArgumentOutOfRangeException(nameof(entry), entry, "entry numbers start at 0");
        int first = ratio == 4 ? Math.Max(0, (entry - 1) * ratio) : entry * ratio;
        return (first, entry * ratio + ratio - 1);
    }

    /// <summary>Whether the official code's FP8/FP4 QAT rounding is simulated (default) or not.</summary>
    public QuantisationSimulation Quantisation { get; set; } = QuantisationSimulation.Official;

    /// <summary>x [batch, seq, dim] (after <c>attn_norm</c>) at positions 0 … seq−1 → attention output [batch, seq, dim].</summary>
    public override Tensor forward(Tensor x)
    {
        MultiHeadLatentAttention.CheckInput(x, _c, "CompressedAttention.forward");
        using var scope = NewDisposeScope();
        return Forward(x, null).MoveToOuterDisposeScope();
    }

    internal Tensor Forward(Tensor x, ForwardContext? ctx)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], h = _heads, d = _headDim, r = _ropeDim;
        var (cos, sin) = RotaryEmbedding.Tables(_inverseFrequencies, 0, s, x.device);
        bool qat = Quantisation == QuantisationSimulation.Official;

        var qr = q_norm.forward(wq_a.forward(x));
        var q = wq_b.forward(qr).view(b, s, h, d);
        q = q * rsqrt(q.square().mean(new long[] { -1 }, keepdim: true) + _c.RmsNormEps);
        q = RopeLast(q, cos, sin);

        var kv = kv_norm.forward(wkv.forward(x));
        kv = RopeLast(kv.unsqueeze(2), cos, sin).squeeze(2);                                   // [b, s, d]
        if (qat) kv = QuantiseNope(kv, "the window KV");

        var slots = WindowSlots(s, _window, x.device).unsqueeze(0).expand(b, -1, -1);          // [b, s, w']
        var keys = kv;
        if (compressor is not null)
        {
            Tensor entriesIdx;
            if (indexer is not null)
            {
                var picks = indexer.Select(x, qr, cos, sin, Quantisation, ctx);                 // entry numbers, -1 = none
                entriesIdx = picks.masked_fill(picks.lt(0), -1 - s) + s;
            }
            else entriesIdx = CompressedSlots(s, _ratio, x.device).unsqueeze(0).expand(b, -1, -1);
            var compressed = compressor.Compress(x, cos, sin);
            if (qat) compressed = QuantiseNope(compressed, "the compressed KV entries");
            if (ctx is not null) compressed = ctx.Point(HookPoints.AttnCompressedKv(_layer), compressed);
            keys = cat(new[] { kv, compressed }, 1);
            slots = cat(new[] { slots, entriesIdx }, -1);
        }
        if (ctx is not null)
        {
            keys = ctx.Point(HookPoints.AttnKv(_layer), keys);
            slots = ctx.Point(HookPoints.AttnTopkIdxs(_layer), slots);
        }
        var (o, probs, sinkShare) = V4Kernels.SparseAttention(q, keys, attn_sink, slots, Math.Pow(d, -0.5));
        if (ctx is not null)
        {
            // A hook that replaces the slot probabilities or the dense pattern changes the output: o is recomputed from
            // the replacement (values = the key rows), as a replaced attn.pattern does in MLA.
            var hooked = ctx.Point(HookPoints.AttnSlotProbs(_layer), probs);
            if (!ReferenceEquals(hooked, probs)) o = ApplySlots(hooked, keys, slots);
            ctx.Point(HookPoints.AttnSinkShare(_layer), sinkShare);
            var dense = DenseProbabilities(hooked, slots, keys.shape[1]);
            var hookedDense = ctx.Point(HookPoints.AttnPattern(_layer), dense);
            if (!ReferenceEquals(hookedDense, dense)) o = hookedDense.matmul(keys.unsqueeze(1)).transpose(1, 2);   // [b, s, h, d]
        }
        o = RopeLast(o, cos, sin, inverse: true);
        var grouped = o.reshape(b, s, _groups, h / _groups * d);
        var woA = wo_a.weight!.view(_groups, _oRank, -1);
        var low = einsum("bsgd,grd->bsgr", grouped, woA);
        return wo_b.forward(low.flatten(2)).MoveToOuterDisposeScope();
    }

    private Tensor RopeLast(Tensor x, Tensor cos, Tensor sin, bool inverse = false)
    {
        var parts = x.split(new long[] { _headDim - _ropeDim, _ropeDim }, -1);
        var rotated = inverse ? RotaryEmbedding.ApplyInverse(parts[1], cos, sin) : RotaryEmbedding.Apply(parts[1], cos, sin);
        return cat(new[] { parts[0], rotated }, -1);
    }

    /// <summary>FP8 rounding (blocks of 64) of the non-rope part, straight-through for gradients.</summary>
    private Tensor QuantiseNope(Tensor kv, string what)
    {
        var parts = kv.split(new long[] { _headDim - _ropeDim, _ropeDim }, -1);
        var rounded = CompressedIndexer.StraightThrough(parts[0], V4Kernels.Fp8FakeQuant(parts[0], ScaleFormat.Ue8m0, what));
        return cat(new[] { rounded, parts[1] }, -1);
    }

    /// <summary>
    /// The window slots of the official <c>get_window_topk_idxs</c> (prefill): for query t the positions
    /// max(0, t−w+1) + j, j &lt; min(s, w), −1 where beyond t [s, min(s, w)].
    /// </summary>
    internal static Tensor WindowSlots(long s, long w, Device device)
    {
        var t = arange(s, dtype: int64, device: device).unsqueeze(1);
        var m = (t - w + 1).clamp_min(0) + arange(Math.Min(s, w), dtype: int64, device: device).unsqueeze(0);
        return m.masked_fill(m.gt(t), -1);
    }

    /// <summary>HCA slots (official <c>get_compress_topk_idxs</c>): every entry e &lt; (t+1) div m as kv row s + e, else −1 [s, s div m].</summary>
    internal static Tensor CompressedSlots(long s, long m, Device device)
    {
        var e = arange(s / m, dtype: int64, device: device).unsqueeze(0).expand(s, -1);
        var visible = CompressedIndexer.VisibleEntries(s, s / m, m, device);
        return (e + s).masked_fill(visible.logical_not(), -1);
    }

    /// <summary>o [b, s, h, d] = Σ_j probs[b, h, s, j] · keys[b, slot j] (empty slots contribute nothing).</summary>
    internal static Tensor ApplySlots(Tensor probs, Tensor keys, Tensor slots)
    {
        using var scope = NewDisposeScope();
        long b = slots.shape[0], s = slots.shape[1], k = slots.shape[2], d = keys.shape[2];
        var safe = slots.clamp_min(0);
        var gathered = keys.unsqueeze(1).expand(b, s, keys.shape[1], d).gather(2, safe.unsqueeze(-1).expand(b, s, k, d));   // [b, s, k, d]
        var p = probs.permute(0, 2, 1, 3).masked_fill(slots.lt(0).unsqueeze(2), 0);                                          // [b, s, h, k]
        return p.matmul(gathered).MoveToOuterDisposeScope();
    }

    /// <summary>Slot probabilities [b, h, s, k] scattered onto the key axis [b, h, s, n] (empty slots dropped).</summary>
    internal static Tensor DenseProbabilities(Tensor probs, Tensor slots, long keys)
    {
        using var scope = NewDisposeScope();
        long b = probs.shape[0], h = probs.shape[1], s = probs.shape[2], k = probs.shape[3];
        var idx = slots.unsqueeze(1).expand(b, h, s, k);
        var valid = idx.ge(0);
        var dense = zeros(b, h, s, keys + 1, dtype: probs.dtype, device: probs.device);
        // Empty slots go to a spare last column, dropped afterwards.
        dense = dense.scatter_add(3, idx.masked_fill(valid.logical_not(), keys), probs.masked_fill(valid.logical_not(), 0));
        return dense.narrow(3, 0, keys).MoveToOuterDisposeScope();
    }
}
