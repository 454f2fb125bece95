using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// Whether the model simulates the FP8 activation quantisation DeepSeek's official inference code performs
/// (DeepSeek-V3.2: the lightning indexer's queries and keys, and the MLA key/value latent, go through e4m3 with
/// per-128-block scales). Weights are never affected.
/// </summary>
public enum QuantisationSimulation
{
    /// <summary>As the official code: FP8 rounding where it rounds (the default).</summary>
    Official,
    /// <summary>Plain float32 throughout, for analysis without quantisation noise (not the official behaviour).</summary>
    Off,
}

/// <summary>
/// DeepSeek-V3.2's lightning indexer (DeepSeek Sparse Attention), as the <c>Indexer</c> of the official V3.2-Exp
/// <c>inference/model.py</c> (after its "fix indexer rope" commit): from the attention input x and MLA's query latent
/// qr, <c>index_n_heads</c> small heads score every visible key, I[s,t] = Σ_h relu(q_h,s · k_t) · w_h,s, and each query
/// keeps its <c>index_topk</c> best keys. The indexer's RoPE is non-interleaved (half split) on the first
/// <c>qk_rope_head_dim</c> dimensions; its key goes through a LayerNorm; queries and keys are rotated by a Hadamard
/// matrix and, with <see cref="QuantisationSimulation.Official"/>, quantised to FP8 e4m3 before the scores (the
/// <c>fp8_index</c> kernel). Parameter names are the official ones: <c>wq_b</c>, <c>wk</c>, <c>k_norm</c>, <c>weights_proj</c>.
/// </summary>
public sealed class LightningIndexer : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly DeepSeekConfig _c;
    private readonly LightningIndexerConfig _ix;
    private readonly int _layer;
    private readonly Linear wq_b, wk, weights_proj;
    private readonly LayerNorm k_norm;
    private readonly float[] _inverseFrequencies;

    internal LightningIndexer(string name, DeepSeekConfig c, int layer, ParameterFactory? parameters = null) : base(name)
    {
        var p = parameters ?? ParameterFactory.Initialised;
        _c = c;
        _ix = c.Indexer ?? throw new ArgumentException("the configuration has no lightning indexer (index_n_heads, index_head_dim, index_topk)", nameof(c));
        _layer = layer;
        wq_b = p.Linear(c.QLoraRank!.Value, _ix.NHeads * _ix.HeadDim);
        wk = p.Linear(c.HiddenSize, _ix.HeadDim);
        k_norm = p.LayerNorm(_ix.HeadDim, eps: 1e-6);
        weights_proj = p.Linear(c.HiddenSize, _ix.NHeads);
        _inverseFrequencies = RotaryEmbedding.InverseFrequencies(c);
        RegisterComponents();
    }

    /// <summary>Whether queries and keys are quantised to FP8 as the official code does (<see cref="QuantisationSimulation.Official"/>, the default).</summary>
    public QuantisationSimulation Quantisation { get; set; } = QuantisationSimulation.Official;

    /// <summary>
    /// x [batch, seq, dim] (the attention input, after <c>attn_norm</c>) and MLA's query latent qr [batch, seq, q_lora_rank]
    /// (after <c>q_norm</c>) at positions 0 … seq−1 → index scores I [batch, seq, seq], −∞ for future keys (t &gt; s).
    /// </summary>
    /// <exception cref="ArgumentException">x or qr has the wrong shape, or seq exceeds <c>max_position_embeddings</c>.</exception>
    public override Tensor forward(Tensor x, Tensor qr)
    {
        MultiHeadLatentAttention.CheckInput(x, _c, "LightningIndexer.forward");
        if (qr.dim() != 3 || qr.shape[0] != x.shape[0] || qr.shape[1] != x.shape[1] || qr.shape[2] != _c.QLoraRank)
            throw new ArgumentException($"LightningIndexer.forward needs qr of shape [{x.shape[0]}, {x.shape[1]}, {_c.QLoraRank}] (batch, seq, q_lora_rank), got [{string.Join(", ", qr.shape)}]", nameof(qr));
        using var scope = NewDisposeScope();
        var (cos, sin) = RotaryEmbedding.Tables(_inverseFrequencies, 0, x.shape[1], x.device);
        return Scores(x, qr, cos, sin, MultiHeadLatentAttention.CausalMask(x.shape[1], x.device)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The keys each query keeps: true at the <c>min(index_topk, seq)</c> highest-scoring visible keys of each row of
    /// <paramref name="scores"/> [batch, seq, seq] (all visible keys when a row has fewer), false elsewhere.
    /// </summary>
    public Tensor SelectTopk(Tensor scores)
    {
        using var scope = NewDisposeScope();
        long t = scores.shape[^1];
        var k = (int)Math.Min(_ix.Topk, t);
        var (_, indices) = scores.topk(k, dim: -1);
        var picked = zeros_like(scores, dtype: ScalarType.Bool).scatter_(-1, indices, ones_like(indices, dtype: ScalarType.Bool));
        // topk of a row with fewer visible keys also returns −∞ (future) positions: they stay unselected.
        var selected = picked.logical_and(scores > float.NegativeInfinity);
        return selected.MoveToOuterDisposeScope();
    }

    /// <summary>Index scores [batch, seq, seq] with the additive causal mask applied (null mask: one position).</summary>
    internal Tensor Scores(Tensor x, Tensor qr, Tensor cos, Tensor sin, Tensor? causalMask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], h = _ix.NHeads, d = _ix.HeadDim, rope = _c.QkRopeHeadDim;
        var q = wq_b.forward(qr).view(b, s, h, d);
        var qParts = q.split(new long[] { rope, d - rope }, dim: -1);                     // rope part first
        q = cat(new[] { RotaryEmbedding.ApplyHalfSplit(qParts[0], cos, sin), qParts[1] }, -1);
        var k = k_norm.forward(wk.forward(x));
        var kParts = k.split(new long[] { rope, d - rope }, dim: -1);
        k = cat(new[] { RotaryEmbedding.ApplyHalfSplit(kParts[0].unsqueeze(2), cos, sin).squeeze(2), kParts[1] }, -1);
        q = Fp8Simulation.Hadamard(q);
        k = Fp8Simulation.Hadamard(k);
        // weights = weights_proj(x) · n_heads^-1/2, then (· q_scale) · head_dim^-1/2, left to right as the official code.
        var weights = weights_proj.forward(x) * Math.Pow(h, -0.5);
        Tensor index;
        if (Quantisation == QuantisationSimulation.Official)
        {
            if (d != Fp8Simulation.BlockSize)
                throw new InvalidOperationException($"the official FP8 indexer kernel takes one scale per head vector, so index_head_dim must be {Fp8Simulation.BlockSize}, got {d}; use QuantisationSimulation.Off for other sizes");
            var (qFp8, qScale) = Fp8Simulation.ActQuant(q, _c.ScaleFmt, "indexer queries");       // qScale [b, s, h, 1]
            var (kFp8, kScale) = Fp8Simulation.ActQuant(k, _c.ScaleFmt, "indexer keys");          // kScale [b, s, 1]
            weights = weights * qScale.squeeze(-1) * Math.Pow(d, -0.5);
            index = Fp8Simulation.Fp8Index(qFp8, weights, kFp8, kScale.squeeze(-1));
        }
        else
        {
            weights = weights * Math.Pow(d, -0.5);
            var logits = q.matmul(k.transpose(-2, -1).unsqueeze(1)).relu();                 // [b, s, h, t]
            index = (logits * weights.unsqueeze(-1)).sum(2);
        }
        if (causalMask is not null) index = index + causalMask;
        return index.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The additive index mask for MLA's scores [batch, 1, seq, seq]: 0 at the selected keys, −∞ elsewhere (future keys
    /// included), with the <c>indexer.scores</c> and <c>indexer.topk</c> hook points.
    /// </summary>
    internal Tensor Mask(Tensor x, Tensor qr, Tensor cos, Tensor sin, Tensor? causalMask, ForwardContext? ctx)
    {
        using var scope = NewDisposeScope();
        // The selection is piecewise constant: no gradient flows through it (the official kernels have no backward).
        var scores = Scores(x, qr, cos, sin, causalMask);
        if (ctx is not null) scores = ctx.Point(HookPoints.IndexerScores(_layer), scores);
        var selected = SelectTopk(scores);
        if (ctx is not null) selected = ctx.Point(HookPoints.IndexerTopk(_layer), selected);
        var mask = zeros(selected.shape, dtype: float32, device: x.device).masked_fill(selected.logical_not(), float.NegativeInfinity);
        return mask.unsqueeze(1).MoveToOuterDisposeScope();
    }
}
