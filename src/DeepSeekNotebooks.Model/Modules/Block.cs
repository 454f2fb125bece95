using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using TorchSharp.Modules;
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
    // The attention kind: MLA (with or without a lightning indexer) or DeepSeek-V4's window/CSA/HCA attention.
    private readonly nn.Module<Tensor, Tensor> attn;
    private readonly nn.Module<Tensor, Tensor> ffn;
    // The residual kind: null = one stream; DeepSeek-V4 mHC streams (official names hc_attn_fn, …, flat on the block).
    private readonly Parameter? hc_attn_fn, hc_attn_base, hc_attn_scale, hc_ffn_fn, hc_ffn_base, hc_ffn_scale;

    // parameters: how parameters are made (null: initialised; the loader passes ParameterFactory.ForLoading).
    internal Block(string name, DeepSeekConfig c, int layer, ParameterFactory? parameters = null) : base(name)
    {
        var p = parameters ?? ParameterFactory.Initialised;
        _layer = layer;
        _c = c;
        attn_norm = new RMSNorm("attn_norm", c.HiddenSize, c.RmsNormEps, p);
        attn = c.CompressedAttention is null ? new MultiHeadLatentAttention("attn", c, layer, p) : new CompressedAttention("attn", c, layer, p);
        ffn_norm = new RMSNorm("ffn_norm", c.HiddenSize, c.RmsNormEps, p);
        ffn = c.IsMoeLayer(layer) ? new MoE("ffn", c, layer, p) : new Mlp("ffn", c.HiddenSize, c.IntermediateSize, c.SwigluLimit, p);
        if (c.HyperConnections is { } hc)
        {
            long mix = (2 + hc.Mult) * hc.Mult, dim = (long)hc.Mult * c.HiddenSize;
            hc_attn_fn = p.Zeros(new[] { mix, dim });
            hc_attn_base = p.Zeros(new[] { mix });
            hc_attn_scale = p.Ones(3);
            hc_ffn_fn = p.Zeros(new[] { mix, dim });
            hc_ffn_base = p.Zeros(new[] { mix });
            hc_ffn_scale = p.Ones(3);
        }
        RegisterComponents();
    }

    /// <summary>Index of this block.</summary>
    public int Layer => _layer;
    /// <summary>The attention sub-layer when it is MLA (V2/V3/V3.2); null for DeepSeek-V4 attention (<see cref="CompressedAttention"/>).</summary>
    public MultiHeadLatentAttention? Attention => attn as MultiHeadLatentAttention;
    /// <summary>The DeepSeek-V4 attention sub-layer (window / CSA / HCA); null for MLA.</summary>
    public CompressedAttention? CompressedAttention => attn as CompressedAttention;
    /// <summary>Sets the QAT/FP8 rounding simulation of whichever attention kind this block has.</summary>
    internal void SetQuantisation(QuantisationSimulation value)
    {
        if (attn is MultiHeadLatentAttention mla) mla.Quantisation = value;
        else if (attn is CompressedAttention ca) ca.Quantisation = value;
    }
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
    /// <remarks>
    /// With hyper-connections x is the streams [batch, seq, hc_mult, dim] and so is the result. A hash-routed block
    /// (DeepSeek-V4) routes by token id, which a residual stream alone does not carry: run it through the model.
    /// </remarks>
    public override Tensor forward(Tensor x)
    {
        if (_c.HyperConnections is not null)
        {
            if (x.dim() != 4) throw new ArgumentException($"Block {_layer}.forward: with hyper-connections x must be the streams [batch, seq, {_c.HyperConnections.Mult}, {_c.HiddenSize}], got [{string.Join(", ", x.shape)}]", nameof(x));
            MultiHeadLatentAttention.CheckInput(x.select(2, 0), _c, $"Block {_layer}.forward");
        }
        else MultiHeadLatentAttention.CheckInput(x, _c, $"Block {_layer}.forward");
        if (_c.IsHashLayer(_layer))
            throw new InvalidOperationException($"block {_layer} is hash-routed (tid2eid): it needs the token ids; run the model (DeepSeekModel.forward / RunWithCache) instead");
        using var scope = NewDisposeScope();
        if (attn is MultiHeadLatentAttention mla)
        {
            var (cos, sin) = mla.PositionTables(x.shape[1], x.device);
            return Forward(x, cos, sin, MultiHeadLatentAttention.CausalMask(x.shape[1], x.device), null).MoveToOuterDisposeScope();
        }
        return Forward(x, empty(0), empty(0), null, null).MoveToOuterDisposeScope();
    }

    internal Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, ForwardContext? ctx, Tensor? inputIds = null)
    {
        if (hc_attn_fn is not null) return ForwardStreams(x, cos, sin, mask, ctx, inputIds);
        using var scope = NewDisposeScope();
        if (ctx is not null) x = ctx.Point(HookPoints.ResidPre(_layer), x);
        var a = Attend(attn_norm.forward(x), cos, sin, mask, ctx);
        if (ctx is not null) a = ctx.Point(HookPoints.AttnOut(_layer), a);
        var h = x + a;
        if (ctx is not null) h = ctx.Point(HookPoints.ResidMid(_layer), h);
        var normed = ffn_norm.forward(h);
        var f = ffn is MoE moe ? moe.Forward(normed, ctx, inputIds) : ffn.forward(normed);
        if (ctx is not null) f = ctx.Point(HookPoints.MlpOut(_layer), f);
        var o = h + f;
        if (ctx is not null) o = ctx.Point(HookPoints.ResidPost(_layer), o);
        return o.MoveToOuterDisposeScope();
    }

    private Tensor Attend(Tensor x, Tensor cos, Tensor sin, Tensor? mask, ForwardContext? ctx) =>
        attn is MultiHeadLatentAttention mla ? mla.Forward(x, cos, sin, mask, ctx) : ((CompressedAttention)attn).Forward(x, ctx);

    /// <summary>
    /// The mHC block (official V4 <c>Block.forward</c>): at each site, x = Σ_j pre_j H_j; H'_k = post_k · f(norm(x)) + Σ_j comb_jk H_j.
    /// </summary>
    private Tensor ForwardStreams(Tensor streams, Tensor cos, Tensor sin, Tensor? mask, ForwardContext? ctx, Tensor? inputIds)
    {
        using var scope = NewDisposeScope();
        var hc = _c.HyperConnections!;
        if (ctx is not null) streams = ctx.Point(HookPoints.ResidPre(_layer), streams);
        var (x, post, comb) = HyperConnections.Pre(streams, hc_attn_fn!, hc_attn_scale!, hc_attn_base!, hc, _c.RmsNormEps, ctx,
            HookPoints.HcAttnPre(_layer), HookPoints.HcAttnPost(_layer), HookPoints.HcAttnComb(_layer), HookPoints.HcAttnCollapsed(_layer));
        var a = Attend(attn_norm.forward(x), cos, sin, mask, ctx);
        if (ctx is not null) a = ctx.Point(HookPoints.AttnOut(_layer), a);
        streams = HyperConnections.Post(a, streams, post, comb);
        if (ctx is not null) streams = ctx.Point(HookPoints.ResidMid(_layer), streams);

        (x, post, comb) = HyperConnections.Pre(streams, hc_ffn_fn!, hc_ffn_scale!, hc_ffn_base!, hc, _c.RmsNormEps, ctx,
            HookPoints.HcFfnPre(_layer), HookPoints.HcFfnPost(_layer), HookPoints.HcFfnComb(_layer), HookPoints.HcFfnCollapsed(_layer));
        var normed = ffn_norm.forward(x);
        var f = ffn is MoE moe ? moe.Forward(normed, ctx, inputIds) : ffn.forward(normed);
        if (ctx is not null) f = ctx.Point(HookPoints.MlpOut(_layer), f);
        streams = HyperConnections.Post(f, streams, post, comb);
        if (ctx is not null) streams = ctx.Point(HookPoints.ResidPost(_layer), streams);
        return streams.MoveToOuterDisposeScope();
    }
}
