using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// One pre-norm transformer block: h = x + MLA(attn_norm(x)); out = h + FFN(ffn_norm(h)), FFN dense or MoE by layer index.
/// Stand-alone, <see cref="forward"/> runs the block on a residual stream at positions 0 … seq−1 with the causal mask,
/// exactly as inside <see cref="DeepSeekModel"/> (so blocks.L.resid_pre → blocks.L.resid_post).
/// </summary>
public sealed class Block : nn.Module<Tensor, Tensor>
{
    private readonly int _layer;
    private readonly DeepSeekConfig _c;
    private readonly RMSNorm attn_norm, ffn_norm;
    private readonly MultiHeadLatentAttention attn;
    private readonly nn.Module<Tensor, Tensor> ffn;

    internal Block(string name, DeepSeekConfig c, int layer) : base(name)
    {
        _layer = layer;
        _c = c;
        attn_norm = new RMSNorm("attn_norm", c.HiddenSize, c.RmsNormEps);
        attn = new MultiHeadLatentAttention("attn", c, layer);
        ffn_norm = new RMSNorm("ffn_norm", c.HiddenSize, c.RmsNormEps);
        ffn = c.IsMoeLayer(layer) ? new MoE("ffn", c, layer) : new Mlp("ffn", c.HiddenSize, c.IntermediateSize);
        RegisterComponents();
    }

    /// <summary>Index of this block.</summary>
    public int Layer => _layer;
    /// <summary>The attention sub-layer.</summary>
    public MultiHeadLatentAttention Attention => attn;
    /// <summary>The RMSNorm before attention (<c>attn_norm</c>).</summary>
    public RMSNorm AttentionNorm => attn_norm;
    /// <summary>The RMSNorm before the FFN (<c>ffn_norm</c>).</summary>
    public RMSNorm FfnNorm => ffn_norm;
    /// <summary>The MoE sub-layer, or null for a dense block.</summary>
    public MoE? Moe => ffn as MoE;
    /// <summary>The dense MLP, or null for an MoE block.</summary>
    public Mlp? DenseMlp => ffn as Mlp;

    /// <summary>Residual stream x [batch, seq, dim] at positions 0 … seq−1 → the stream after this block [batch, seq, dim] (causal).</summary>
    /// <exception cref="ArgumentException">x is not [batch, seq, hidden_size] or seq exceeds <c>max_position_embeddings</c>.</exception>
    public override Tensor forward(Tensor x)
    {
        MultiHeadLatentAttention.CheckInput(x, _c, $"Block {_layer}.forward");
        using var scope = NewDisposeScope();
        var (cos, sin) = attn.PositionTables(x.shape[1], x.device);
        return Forward(x, cos, sin, MultiHeadLatentAttention.CausalMask(x.shape[1], x.device), null).MoveToOuterDisposeScope();
    }

    internal Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, ForwardContext? ctx)
    {
        using var scope = NewDisposeScope();
        if (ctx is not null) x = ctx.Point(HookPoints.ResidPre(_layer), x);
        var a = attn.Forward(attn_norm.forward(x), cos, sin, mask, ctx);
        if (ctx is not null) a = ctx.Point(HookPoints.AttnOut(_layer), a);
        var h = x + a;
        if (ctx is not null) h = ctx.Point(HookPoints.ResidMid(_layer), h);
        var normed = ffn_norm.forward(h);
        var f = ffn is MoE moe ? moe.Forward(normed, ctx) : ffn.forward(normed);
        if (ctx is not null) f = ctx.Point(HookPoints.MlpOut(_layer), f);
        var o = h + f;
        if (ctx is not null) o = ctx.Point(HookPoints.ResidPost(_layer), o);
        return o.MoveToOuterDisposeScope();
    }
}
