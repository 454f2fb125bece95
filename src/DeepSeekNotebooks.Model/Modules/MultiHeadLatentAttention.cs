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
/// </summary>
public sealed class MultiHeadLatentAttention : nn.Module<Tensor, Tensor>
{
    private readonly DeepSeekConfig _c;
    private readonly int _layer;
    private readonly Linear? wq, wq_a, wq_b;
    private readonly RMSNorm? q_norm;
    private readonly Linear wkv_a, wkv_b, wo;
    private readonly RMSNorm kv_norm;

    internal MultiHeadLatentAttention(string name, DeepSeekConfig c, int layer) : base(name)
    {
        _c = c;
        _layer = layer;
        long h = c.NumAttentionHeads;
        if (c.QLoraRank is { } rank)
        {
            wq_a = nn.Linear(c.HiddenSize, rank, hasBias: false);
            q_norm = new RMSNorm("q_norm", rank, c.RmsNormEps);
            wq_b = nn.Linear(rank, h * c.QkHeadDim, hasBias: false);
        }
        else
        {
            wq = nn.Linear(c.HiddenSize, h * c.QkHeadDim, hasBias: false);
        }
        wkv_a = nn.Linear(c.HiddenSize, c.KvLoraRank + c.QkRopeHeadDim, hasBias: false);
        kv_norm = new RMSNorm("kv_norm", c.KvLoraRank, c.RmsNormEps);
        wkv_b = nn.Linear(c.KvLoraRank, h * (c.QkNopeHeadDim + c.VHeadDim), hasBias: false);
        wo = nn.Linear(h * c.VHeadDim, c.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException("MLA needs positions and a mask; call it through DeepSeekModel.");

    /// <summary>x [batch, seq, dim] → attention output [batch, seq, dim].</summary>
    internal Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, ForwardContext? ctx)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], h = _c.NumAttentionHeads;
        var q = wq is not null ? wq.forward(x) : wq_b!.forward(q_norm!.forward(wq_a!.forward(x)));
        q = q.view(b, s, h, _c.QkHeadDim);
        var qParts = q.split(new long[] { _c.QkNopeHeadDim, _c.QkRopeHeadDim }, dim: -1);
        var qPe = RotaryEmbedding.Apply(qParts[1], cos, sin);

        var kv = wkv_a.forward(x);
        var kvParts = kv.split(new long[] { _c.KvLoraRank, _c.QkRopeHeadDim }, dim: -1);
        var kPe = RotaryEmbedding.Apply(kvParts[1].unsqueeze(2), cos, sin);            // [b, s, 1, rope]
        var kvb = wkv_b.forward(kv_norm.forward(kvParts[0])).view(b, s, h, _c.QkNopeHeadDim + _c.VHeadDim);
        var kvbParts = kvb.split(new long[] { _c.QkNopeHeadDim, _c.VHeadDim }, dim: -1);

        var qFull = cat(new[] { qParts[0], qPe }, -1).transpose(1, 2);                               // [b, h, s, d]
        var kFull = cat(new[] { kvbParts[0], kPe.expand(b, s, h, _c.QkRopeHeadDim) }, -1).transpose(1, 2);
        var v = kvbParts[1].transpose(1, 2);                                                           // [b, h, s, dv]

        var scores = qFull.matmul(kFull.transpose(-2, -1)) * _c.SoftmaxScale;                         // [b, h, q, k]
        if (mask is not null) scores = scores + mask;
        var probs = scores.softmax(-1);
        if (ctx is not null) probs = ctx.Point(HookPoints.AttnPattern(_layer), probs);
        var o = probs.matmul(v).transpose(1, 2).reshape(b, s, h * _c.VHeadDim);
        return wo.forward(o).MoveToOuterDisposeScope();
    }
}
