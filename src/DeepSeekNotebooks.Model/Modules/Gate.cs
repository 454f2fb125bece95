using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>The experts chosen for each token and their weights.</summary>
/// <param name="Weights">Routing weights [tokens, k] in top-k order.</param>
/// <param name="Indices">Expert indices [tokens, k] (int64).</param>
/// <param name="Scores">Gate scores before bias [tokens, experts] (softmax or sigmoid of x·Wgᵀ).</param>
internal readonly record struct Routing(Tensor Weights, Tensor Indices, Tensor Scores);

/// <summary>
/// DeepSeekMoE router, as the <c>Gate</c> of DeepSeek-V3's official <c>inference/model.py</c>:
/// scores = softmax or sigmoid of x·Wgᵀ; the selection bias (<c>e_score_correction_bias</c>, DeepSeek-V3 §2.1.2
/// auxiliary-loss-free balancing) is added for selection only; with groups, a group's score is its max (no bias) or the
/// sum of its top-2 (bias) and experts outside the top <c>topk_group</c> groups are masked with −∞; the top-k experts'
/// weights are gathered from the un-biased scores, renormalised for sigmoid scoring, and multiplied by
/// <c>routed_scaling_factor</c>.
/// </summary>
/// <remarks>
/// Differences from Hugging Face's <c>modeling_deepseek.py</c>, where this follows the official code: masked groups are
/// filled with −∞ (HF: 0.0, which can select a masked expert when biased scores are negative); the scaling factor is
/// always applied (HF DeepSeek-V2 applies it only when <c>norm_topk_prob</c> is false); weights are renormalised when the
/// scoring is sigmoid (official) or <c>norm_topk_prob</c> is set (HF).
/// A hook on the selection scores that excludes experts (−∞) is honoured or refused: if a token's kept groups end up with
/// fewer than k finite scores, the traced forward throws instead of letting top-k pick an excluded expert.
/// </remarks>
public sealed class Gate : nn.Module<Tensor, Tensor>
{
    private readonly DeepSeekConfig _c;
    private readonly int _layer;
    private readonly Parameter weight;
    private readonly Parameter? bias;

    internal Gate(string name, DeepSeekConfig c, int layer) : base(name)
    {
        _c = c;
        _layer = layer;
        weight = new Parameter(empty(c.NRoutedExperts, c.HiddenSize));
        if (c.HasGateBias) bias = new Parameter(zeros(c.NRoutedExperts, dtype: float32), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>The router matrix Wg [experts, dim].</summary>
    public Parameter Weight => weight;
    /// <summary>The selection bias b [experts] (null unless <c>topk_method</c> is <c>noaux_tc</c>).</summary>
    public Parameter? SelectionBias => bias;

    public override Tensor forward(Tensor x) => Route(x, null).Weights;

    /// <summary>x [tokens, dim] → routing decision.</summary>
    internal Routing Route(Tensor x, ForwardContext? ctx)
    {
        using var scope = NewDisposeScope();
        var logits = nn.functional.linear(x, weight);
        var scores = _c.ScoringFunc == ScoringFunc.Softmax ? logits.softmax(-1, float32) : logits.sigmoid();
        if (ctx is not null) scores = ctx.Point(HookPoints.RouterScores(_layer), scores);
        var original = scores;
        var selection = bias is null ? scores : scores + bias;
        if (ctx is not null) selection = ctx.Point(HookPoints.SelectionScores(_layer), selection);
        long n = x.shape[0];
        if (_c.NGroup > 1)
        {
            var grouped = selection.view(n, _c.NGroup, -1);
            var groupScores = bias is null ? grouped.amax(new long[] { -1 }) : grouped.topk(2, dim: -1).values.sum(-1);
            var keep = groupScores.topk(_c.TopkGroup, dim: -1).indexes;
            var keepMask = zeros(n, _c.NGroup, dtype: float32, device: x.device).scatter(1, keep, ones(keep.shape, dtype: float32, device: x.device)).gt(0);
            selection = grouped.masked_fill(keepMask.logical_not().unsqueeze(-1), float.NegativeInfinity).flatten(1);
        }
        var (chosen, indices) = selection.topk(_c.NumExpertsPerTok, dim: -1);
        if (ctx is not null) CheckNothingExcludedChosen(chosen);
        var weights = original.gather(1, indices);
        if (_c.ScoringFunc == ScoringFunc.Sigmoid || _c.NormTopkProb) weights = weights / weights.sum(-1, keepdim: true);
        weights = weights * _c.RoutedScalingFactor;
        if (ctx is not null)
        {
            indices = ctx.Point(HookPoints.ExpertIndices(_layer), indices);
            weights = ctx.Point(HookPoints.ExpertWeights(_layer), weights);
        }
        return new Routing(weights.to(x.dtype).MoveToOuterDisposeScope(), indices.MoveToOuterDisposeScope(), original.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// A selection-score hook excludes experts by setting their scores to −∞. The official top-k then silently fills a slot
    /// with an excluded expert (or one from a dropped group) when the kept groups hold fewer than k finite scores; refuse that.
    /// </summary>
    private void CheckNothingExcludedChosen(Tensor chosen)
    {
        using var excluded = chosen.eq(float.NegativeInfinity).any(-1);
        long tokens = excluded.sum().item<long>();
        if (tokens == 0) return;
        throw new InvalidOperationException(
            $"{HookPoints.SelectionScores(_layer)}: after the hook, {tokens} token(s) have fewer than k = {_c.NumExpertsPerTok} experts with a finite " +
            $"selection score in the group(s) the gate keeps (n_group = {_c.NGroup}, topk_group = {_c.TopkGroup}), so routing would use an excluded expert. " +
            "Exclude fewer experts (ExpertAblation.MaxMaskableTop gives the top-r masking each configuration can honour).");
    }
}
