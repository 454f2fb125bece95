using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// Manifold-constrained hyper-connections (mHC, DeepSeek-V4; <c>Block.hc_pre</c>/<c>hc_post</c> and
/// <c>Transformer.hc_head</c> of the official <c>inference/model.py</c>): n residual streams H [b, s, n, D]; a site's
/// mixing weights come from the RMS-scaled flattened streams, mix = (fn · v) · rsqrt(mean(v²) + eps), split by
/// <c>hc_split_sinkhorn</c> into read weights pre, write weights post and a doubly-stochastic stream mix comb.
/// </summary>
internal static class HyperConnections
{
    /// <summary>
    /// <c>hc_pre</c>: streams [b, s, n, D] → the collapsed sub-layer input x = Σ_j pre_j H_j [b, s, D], with post [b, s, n]
    /// and comb [b, s, n, n] for <see cref="Post"/>. Records/hooks pre, post, comb and x under the given names.
    /// </summary>
    internal static (Tensor X, Tensor Post, Tensor Comb) Pre(Tensor streams, Tensor fn, Tensor scale, Tensor @base, HyperConnectionConfig hc,
        double normEps, ForwardContext? ctx, string preName, string postName, string combName, string collapsedName)
    {
        using var scope = NewDisposeScope();
        var flat = streams.flatten(2).to(float32);
        var mixes = nn.functional.linear(flat, fn) * rsqrt(flat.square().mean(new long[] { -1 }, keepdim: true) + normEps);
        var (pre, post, comb) = V4Kernels.HcSplitSinkhorn(mixes, scale, @base, hc.Mult, hc.SinkhornIters, hc.Eps);
        if (ctx is not null)
        {
            pre = ctx.Point(preName, pre);
            post = ctx.Point(postName, post);
            comb = ctx.Point(combName, comb);
        }
        var x = (pre.unsqueeze(-1) * streams.to(float32)).sum(2);
        if (ctx is not null) x = ctx.Point(collapsedName, x);
        return (x.MoveToOuterDisposeScope(), post.MoveToOuterDisposeScope(), comb.MoveToOuterDisposeScope());
    }

    /// <summary><c>hc_post</c>: H'_k = post_k · f + Σ_j comb[j, k] · H_j → [b, s, n, D].</summary>
    internal static Tensor Post(Tensor f, Tensor streams, Tensor post, Tensor comb)
    {
        using var scope = NewDisposeScope();
        var y = post.unsqueeze(-1) * f.unsqueeze(-2) + (comb.unsqueeze(-1) * streams.unsqueeze(-2)).sum(2);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary><c>hc_head</c>: pre_j = σ(mix_j · scale + base_j) + eps (no Sinkhorn), h = Σ_j pre_j H_j [b, s, D].</summary>
    internal static Tensor Head(Tensor streams, Tensor fn, Tensor scale, Tensor @base, HyperConnectionConfig hc, double normEps, ForwardContext? ctx)
    {
        using var scope = NewDisposeScope();
        var flat = streams.flatten(2).to(float32);
        var mixes = nn.functional.linear(flat, fn) * rsqrt(flat.square().mean(new long[] { -1 }, keepdim: true) + normEps);
        var pre = (mixes * scale + @base).sigmoid() + (float)hc.Eps;
        if (ctx is not null) pre = ctx.Point(HookPoints.HcHeadPre, pre);
        var h = (pre.unsqueeze(-1) * streams.to(float32)).sum(2);
        if (ctx is not null) h = ctx.Point(HookPoints.HcHeadCollapsed, h);
        return h.MoveToOuterDisposeScope();
    }
}
