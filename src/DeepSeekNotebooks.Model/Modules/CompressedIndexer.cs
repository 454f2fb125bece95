using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// DeepSeek-V4's lightning indexer over compressed entries (the <c>Indexer</c> of the official V4 <c>inference/model.py</c>,
/// CSA layers only): <c>index_n_heads</c> query heads from the query latent (<c>wq_b</c>, RoPE on the last dims, Hadamard
/// rotation, FP4 rounding under QAT) score the indexer's own compressed keys (a ratio-4 <see cref="Compressor"/> of width
/// <c>index_head_dim</c>, Hadamard-rotated, FP4 under QAT): score[t, e] = Σ_h w[t, h]·ReLU(q[t, h]·k[e]) with
/// w = <c>weights_proj</c>(x)·d^−½·h^−½; entries not yet complete for query t (e ≥ (t+1) div m) are −∞, and each query
/// keeps the top min(index_topk, s div m); picks that are still masked become −1.
/// </summary>
/// <remarks>
/// The top-k is piecewise constant: gradients reach the indexer only through what the selection lets through (the
/// selected entries' keys in the attention); the scores themselves get no gradient from the model output.
/// </remarks>
public sealed class CompressedIndexer : nn.Module<Tensor, Tensor>
{
    private readonly int _layer, _heads, _headDim, _topk, _ropeDim;
    private readonly Linear wq_b, weights_proj;
    private readonly Compressor compressor;

    internal CompressedIndexer(string name, DeepSeekConfig c, int layer, float[] inverseFrequencies, ParameterFactory? parameters = null) : base(name)
    {
        var p = parameters ?? ParameterFactory.Initialised;
        var ix = c.Indexer!;
        _layer = layer;
        _heads = ix.NHeads;
        _headDim = ix.HeadDim;
        _topk = ix.Topk;
        _ropeDim = c.QkRopeHeadDim;
        wq_b = p.Linear(c.QLoraRank!.Value, (long)ix.NHeads * ix.HeadDim);
        weights_proj = p.Linear(c.HiddenSize, ix.NHeads);
        compressor = new Compressor("compressor", c, c.CompressRatio(layer), ix.HeadDim, rotate: true, inverseFrequencies, p);
        RegisterComponents();
    }

    /// <summary>The indexer's own compressor (its keys).</summary>
    public Compressor Compressor => compressor;

    /// <summary>Not a stand-alone module: it needs the query latent; <see cref="CompressedAttention"/> runs it.</summary>
    public override Tensor forward(Tensor x) =>
        throw new InvalidOperationException("CompressedIndexer runs inside its CompressedAttention (it needs the query latent qr); run the attention module");

    /// <summary>
    /// x [b, s, dim] (normalised block input), qr [b, s, q_lora_rank] → selected entry numbers [b, s, k] (int64, −1 = none),
    /// k = min(index_topk, s div m).
    /// </summary>
    internal Tensor Select(Tensor x, Tensor qr, Tensor cos, Tensor sin, QuantisationSimulation quantisation, ForwardContext? ctx)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], m = compressor.Ratio;
        var q = wq_b.forward(qr).view(b, s, _heads, _headDim);
        var qParts = q.split(new long[] { _headDim - _ropeDim, _ropeDim }, -1);
        q = V4Kernels.Hadamard(cat(new[] { qParts[0], RotaryEmbedding.Apply(qParts[1], cos, sin) }, -1));
        var k = compressor.Compress(x, cos, sin);                                        // [b, C, d], rotated
        if (quantisation == QuantisationSimulation.Official)
        {
            // Straight-through rounding (as the golden gradients): the value is the rounded one, ∂/∂x = 1.
            q = StraightThrough(q, V4Kernels.Fp4FakeQuant(q, "indexer queries"));
            k = StraightThrough(k, V4Kernels.Fp4FakeQuant(k, "indexer keys"));
        }
        if (ctx is not null) k = ctx.Point(HookPoints.IndexerCompressedK(_layer), k);
        long entries = k.shape[1];
        var w = weights_proj.forward(x.to(float32)) * (float)(Math.Pow(_headDim, -0.5) * Math.Pow(_heads, -0.5));   // [b, s, h]
        var logits = q.matmul(k.transpose(1, 2).unsqueeze(1)).relu();                  // [b, s, h, C]
        var score = (logits * w.unsqueeze(-1)).sum(2);                                 // [b, s, C]
        var visible = VisibleEntries(s, entries, m, x.device);                          // [s, C] bool
        score = score.masked_fill(visible.logical_not(), float.NegativeInfinity);
        if (ctx is not null) score = ctx.Point(HookPoints.IndexerScores(_layer), score);
        long kk = Math.Min(_topk, entries);
        if (kk == 0) return zeros(b, s, 0, dtype: int64, device: x.device).MoveToOuterDisposeScope();
        var picks = score.detach().topk((int)kk, dim: -1).indexes;                          // [b, s, kk]
        var limit = CompletedEntries(s, m, x.device).view(1, s, 1);
        picks = picks.masked_fill(picks.ge(limit), -1);
        if (ctx is not null) picks = ctx.Point(HookPoints.IndexerTopk(_layer), picks);
        return picks.MoveToOuterDisposeScope();
    }

    /// <summary>(t + 1) div m for t = 0 … s−1: the compressed entries complete at query t [s] (int64).</summary>
    internal static Tensor CompletedEntries(long s, long m, Device device) => arange(1, s + 1, dtype: int64, device: device).div(m, rounding_mode: RoundingMode.floor);

    /// <summary>[s, C] true where entry e is complete for query t (e &lt; (t+1) div m).</summary>
    internal static Tensor VisibleEntries(long s, long entries, long m, Device device) =>
        arange(entries, dtype: int64, device: device).unsqueeze(0).lt(CompletedEntries(s, m, device).unsqueeze(1));

    internal static Tensor StraightThrough(Tensor x, Tensor rounded) => rounded.detach() + (x - x.detach());
}
