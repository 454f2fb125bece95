using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// Multi-head Latent Attention (DeepSeek-V2, arXiv:2405.04434 §2.1), as the <c>MLA</c> module of DeepSeek-V3's official
/// <c>inference/model.py</c> (the "naive" path, which materialises per-head keys and values):
/// queries from <c>wq</c> or the low-rank <c>wq_a → q_norm → wq_b</c>; keys and values from the compressed latent
/// <c>wkv_a → kv_norm → wkv_b</c>; a decoupled RoPE part of <c>qk_rope_head_dim</c> per head for queries and one shared
/// rope key; causal softmax with the (YaRN-corrected) scale <see cref="DeepSeekConfig.SoftmaxScale"/>.
/// Stand-alone, <see cref="forward"/> attends causally over positions 0 … seq−1, exactly as inside <see cref="DeepSeekModel"/>.
/// With a lightning indexer in the configuration (DeepSeek-V3.2, attention kind "MLA + lightning indexer", the
/// <c>MLA</c> of the official V3.2-Exp code), each query attends only to the keys its <see cref="Indexer"/> selects, and
/// under <see cref="QuantisationSimulation.Official"/> the key/value latent is rounded through FP8 as the official code does.
/// In a traced forward every intermediate is a hook point (TransformerLens <c>hook_q/k/v/z</c> with MLA's nope/rope split):
/// <c>attn.q_nope</c>, <c>attn.q_rope</c> (after RoPE), the shared <c>attn.k_rope</c>, the latent <c>attn.kv_latent</c>,
/// <c>attn.k_nope</c>, <c>attn.v</c>, <c>attn.pattern</c> and the per-head output <c>attn.z</c> before <c>wo</c>; without
/// hooks the forward computes exactly what it computed before they existed.
/// </summary>
public sealed class MultiHeadLatentAttention : nn.Module<Tensor, Tensor>
{
    private readonly DeepSeekConfig _c;
    private readonly int _layer;
    private readonly Linear? wq, wq_a, wq_b;
    private readonly RMSNorm? q_norm;
    private readonly Linear wkv_a, wkv_b, wo;
    private readonly RMSNorm kv_norm;
    private readonly LightningIndexer? indexer;
    private readonly float[] _inverseFrequencies;
    private QuantisationSimulation _quantisation = QuantisationSimulation.Official;

    internal MultiHeadLatentAttention(string name, DeepSeekConfig c, int layer, ParameterFactory? parameters = null) : base(name)
    {
        var p = parameters ?? ParameterFactory.Initialised;
        _c = c;
        _layer = layer;
        long h = c.NumAttentionHeads;
        if (c.QLoraRank is { } rank)
        {
            wq_a = p.Linear(c.HiddenSize, rank);
            q_norm = new RMSNorm("q_norm", rank, c.RmsNormEps, p);
            wq_b = p.Linear(rank, h * c.QkHeadDim);
        }
        else
        {
            wq = p.Linear(c.HiddenSize, h * c.QkHeadDim);
        }
        wkv_a = p.Linear(c.HiddenSize, c.KvLoraRank + c.QkRopeHeadDim);
        kv_norm = new RMSNorm("kv_norm", c.KvLoraRank, c.RmsNormEps, p);
        wkv_b = p.Linear(c.KvLoraRank, h * (c.QkNopeHeadDim + c.VHeadDim));
        wo = p.Linear(h * c.VHeadDim, c.HiddenSize);
        if (c.Indexer is not null) indexer = new LightningIndexer("indexer", c, layer, p);
        _inverseFrequencies = RotaryEmbedding.InverseFrequencies(c);
        RegisterComponents();
    }

    /// <summary>
    /// The output projection <c>wo</c> [hidden_size, heads · v_head_dim]: head h's columns h·v_head_dim … (h+1)·v_head_dim−1
    /// map its slice of <c>attn.z</c> into the residual stream (TransformerLens's <c>W_O[h]</c>, transposed).
    /// </summary>
    public Tensor OutputWeight => wo.weight!;

    /// <summary>The lightning indexer (DeepSeek-V3.2), or null for plain MLA (V2/V3).</summary>
    public LightningIndexer? Indexer => indexer;

    /// <summary>
    /// Whether FP8 activation rounding is simulated as the official code does (V3.2: KV latent here, queries and keys in
    /// the <see cref="Indexer"/>, which this setting also sets). Plain MLA (V2/V3) rounds nothing either way.
    /// </summary>
    public QuantisationSimulation Quantisation
    {
        get => _quantisation;
        set
        {
            _quantisation = value;
            if (indexer is not null) indexer.Quantisation = value;
        }
    }

    /// <summary>
    /// x [batch, seq, dim] (already normalised, as after the block's <c>attn_norm</c>) → attention output [batch, seq, dim],
    /// with the tokens at positions 0 … seq−1 and the causal mask.
    /// </summary>
    /// <exception cref="ArgumentException">x is not [batch, seq, hidden_size] or seq exceeds <c>max_position_embeddings</c>.</exception>
    public override Tensor forward(Tensor x)
    {
        CheckInput(x, _c, "MultiHeadLatentAttention.forward");
        using var scope = NewDisposeScope();
        var (cos, sin) = PositionTables(x.shape[1], x.device);
        return Forward(x, cos, sin, CausalMask(x.shape[1], x.device), null).MoveToOuterDisposeScope();
    }

    /// <summary>The query latent qr = q_norm(wq_a(x)) [batch, seq, q_lora_rank] the indexer reads; null with full-rank queries.</summary>
    internal Tensor? QueryLatent(Tensor x) => wq is not null ? null : q_norm!.forward(wq_a!.forward(x));

    /// <summary>RoPE cos/sin tables for positions 0 … seq−1.</summary>
    internal (Tensor Cos, Tensor Sin) PositionTables(long seq, Device device) => RotaryEmbedding.Tables(_inverseFrequencies, 0, seq, device);

    /// <summary>The additive causal mask [seq, seq] (−∞ above the diagonal), or null for a single token.</summary>
    internal static Tensor? CausalMask(long seq, Device device) =>
        seq > 1 ? full(seq, seq, float.NegativeInfinity, device: device).triu(1) : null;

    /// <summary>Checks that a stand-alone module input is [batch, seq, hidden_size] with 1 ≤ seq ≤ max_position_embeddings.</summary>
    internal static void CheckInput(Tensor x, DeepSeekConfig c, string what)
    {
        if (x.dim() != 3 || x.shape[2] != c.HiddenSize || x.shape[1] == 0)
            throw new ArgumentException($"{what} needs x of shape [batch, seq, {c.HiddenSize}] (hidden_size) with seq >= 1, got [{string.Join(", ", x.shape)}]", nameof(x));
        if (x.shape[1] > c.MaxPositionEmbeddings)
            throw new ArgumentException($"{what}: the sequence has {x.shape[1]} positions but the model supports at most max_position_embeddings = {c.MaxPositionEmbeddings}", nameof(x));
    }

    /// <summary>x [batch, seq, dim] → attention output [batch, seq, dim].</summary>
    internal Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, ForwardContext? ctx)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], h = _c.NumAttentionHeads;
        var qr = wq is not null ? null : q_norm!.forward(wq_a!.forward(x));
        var q = wq is not null ? wq.forward(x) : wq_b!.forward(qr!);
        q = q.view(b, s, h, _c.QkHeadDim);
        var qParts = q.split(new long[] { _c.QkNopeHeadDim, _c.QkRopeHeadDim }, dim: -1);
        var qNope = qParts[0];                                                                         // [b, s, h, nope]
        var qPe = RotaryEmbedding.Apply(qParts[1], cos, sin);                                          // [b, s, h, rope]
        if (ctx is not null)
        {
            qNope = ctx.Point(HookPoints.AttnQNope(_layer), qNope);
            qPe = ctx.Point(HookPoints.AttnQRope(_layer), qPe);
        }

        var kv = wkv_a.forward(x);
        var kvParts = kv.split(new long[] { _c.KvLoraRank, _c.QkRopeHeadDim }, dim: -1);
        var kPe = RotaryEmbedding.Apply(kvParts[1].unsqueeze(2), cos, sin);            // [b, s, 1, rope]
        if (ctx is not null) kPe = ctx.Point(HookPoints.AttnKRope(_layer), kPe.squeeze(2)).unsqueeze(2);  // the one shared rope key
        var latent = kv_norm.forward(kvParts[0]);
        if (indexer is not null && _quantisation == QuantisationSimulation.Official)
        {
            // The official V3.2 code rounds the latent through FP8 (act_quant, one scale per 128 elements). Gradients pass
            // straight through: deq + (c − c) keeps deq's bits and gives ∂/∂c = 1.
            var (fp8, scale) = Fp8Simulation.ActQuant(latent, _c.ScaleFmt, "the KV latent (kv_lora_rank)");
            latent = Fp8Simulation.Dequantise(fp8, scale).detach() + (latent - latent.detach());
        }
        if (ctx is not null) latent = ctx.Point(HookPoints.AttnKvLatent(_layer), latent);            // [b, s, kv_lora_rank]
        var kvb = wkv_b.forward(latent).view(b, s, h, _c.QkNopeHeadDim + _c.VHeadDim);
        var kvbParts = kvb.split(new long[] { _c.QkNopeHeadDim, _c.VHeadDim }, dim: -1);
        var kNope = kvbParts[0];                                                                       // [b, s, h, nope]
        var vHeads = kvbParts[1];                                                                      // [b, s, h, dv]
        if (ctx is not null)
        {
            kNope = ctx.Point(HookPoints.AttnKNope(_layer), kNope);
            vHeads = ctx.Point(HookPoints.AttnV(_layer), vHeads);
        }

        var qFull = cat(new[] { qNope, qPe }, -1).transpose(1, 2);                                     // [b, h, s, d]
        var kFull = cat(new[] { kNope, kPe.expand(b, s, h, _c.QkRopeHeadDim) }, -1).transpose(1, 2);
        var v = vHeads.transpose(1, 2);                                                                // [b, h, s, dv]

        var scores = qFull.matmul(kFull.transpose(-2, -1)) * _c.SoftmaxScale;                         // [b, h, q, k]
        if (indexer is not null) scores = scores + indexer.Mask(x, qr!, cos, sin, mask, ctx);   // selected keys only (causal)
        else if (mask is not null) scores = scores + mask;
        var probs = scores.softmax(-1);
        if (ctx is not null) probs = ctx.Point(HookPoints.AttnPattern(_layer), probs);
        // The float32 mask promotes scores and probabilities to float32; like the official code (softmax in float32, then
        // `.type_as(x)`) they are cast to the compute dtype for the product with v (a no-op in float32).
        var z = probs.to(v.dtype).matmul(v).transpose(1, 2);                                           // [b, s, h, dv]
        if (ctx is not null) z = ctx.Point(HookPoints.AttnZ(_layer), z);
        var o = z.reshape(b, s, h * _c.VHeadDim);
        return wo.forward(o).MoveToOuterDisposeScope();
    }
}
