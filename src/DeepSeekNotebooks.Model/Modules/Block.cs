using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>One pre-norm transformer block: h = x + MLA(attn_norm(x)); out = h + FFN(ffn_norm(h)), FFN dense or MoE by layer index.</summary>
public sealed class Block : nn.Module<Tensor, Tensor>
{
    private readonly int _layer;
    private readonly RMSNorm attn_norm, ffn_norm;
    private readonly MultiHeadLatentAttention attn;
    private readonly nn.Module<Tensor, Tensor> ffn;

    internal Block(string name, DeepSeekConfig c, int layer) : base(name)
    {
        _layer = layer;
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
    /// <summary>The MoE sub-layer, or null for a dense block.</summary>
    public MoE? Moe => ffn as MoE;
    /// <summary>The dense MLP, or null for an MoE block.</summary>
    public Mlp? DenseMlp => ffn as Mlp;

    public override Tensor forward(Tensor x) => throw new NotSupportedException("A block needs positions and a mask; call it through DeepSeekModel.");

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
