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
    // DeepSeek-V4 hash layers: token id → its k experts [vocab, k]. Held as float32 (exact for ids < 2^24) so it loads and
    // moves like any parameter; the checkpoint stores it as I32 (official) or I64 (Hugging Face).
    private readonly Parameter? tid2eid;

    internal Gate(string name, DeepSeekConfig c, int layer, ParameterFactory? parameters = null) : base(name)
    {
        var p = parameters ?? ParameterFactory.Initialised;
        _c = c;
        _layer = layer;
        weight = p.Empty(c.NRoutedExperts, c.HiddenSize);
        if (c.IsHashLayer(layer))
            tid2eid = p.Zeros(new long[] { c.VocabSize, c.NumExpertsPerTok }, float32, requiresGrad: false);
        else if (c.HasGateBias) bias = p.Zeros(new long[] { c.NRoutedExperts }, float32, requiresGrad: false);
        RegisterComponents();
    }

    /// <summary>The hash table tid2eid [vocab, k] of a hash-routed layer (expert ids as float32), or null.</summary>
    public Parameter? HashTable => tid2eid;

    /// <summary>The router matrix Wg [experts, dim].</summary>
    public Parameter Weight => weight;
    /// <summary>The selection bias b [experts] (null unless <c>topk_method</c> is <c>noaux_tc</c>).</summary>
    public Parameter? SelectionBias => bias;

    public override Tensor forward(Tensor x) => Route(x, null).Weights;

    /// <summary>x [tokens, dim] → routing decision; hash-routed layers need the tokens' ids (any shape, tokens in order).</summary>
    internal Routing Route(Tensor x, ForwardContext? ctx, Tensor? inputIds = null)
    {
        using var scope = NewDisposeScope();
        // bf16 on a CPU without native bf16: the GEMM in float32, rounded to bf16 (Mlp.GemmsInFloat32; ~240x faster here).
        var logits = Mlp.Linear(x, weight, Mlp.GemmsInFloat32(x, weight));
        var scores = _c.ScoringFunc switch
        {
            ScoringFunc.Softmax => logits.softmax(-1, float32),
            ScoringFunc.SqrtSoftplus => nn.functional.softplus(logits.to(float32)).sqrt(),
            _ => logits.sigmoid(),
        };
        if (ctx is not null) scores = ctx.Point(HookPoints.RouterScores(_layer), scores);
        if (tid2eid is not null) return HashRoute(x, scores, inputIds, ctx);
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
        if (_c.ScoringFunc != ScoringFunc.Softmax || _c.NormTopkProb) weights = weights / weights.sum(-1, keepdim: true);
        weights = weights * _c.RoutedScalingFactor;
        if (ctx is not null)
        {
            indices = ctx.Point(HookPoints.ExpertIndices(_layer), indices);
            weights = ctx.Point(HookPoints.ExpertWeights(_layer), weights);
        }
        return new Routing(weights.to(x.dtype).MoveToOuterDisposeScope(), indices.MoveToOuterDisposeScope(), original.MoveToOuterDisposeScope());
    }

    /// <summary>DeepSeek-V4 hash routing: experts = tid2eid[token id]; weights = their scores, renormalised, times route_scale.</summary>
    private Routing HashRoute(Tensor x, Tensor scores, Tensor? inputIds, ForwardContext? ctx)
    {
        if (inputIds is null)
            throw new InvalidOperationException($"MoE block {_layer} is hash-routed (tid2eid, num_hash_layers = {_c.NumHashLayers}): routing needs the token ids, which this call did not give");
        var ids = inputIds.reshape(-1).to(int64);
        if (ids.shape[0] != x.shape[0])
            throw new ArgumentException($"MoE block {_layer}: {ids.shape[0]} token ids for {x.shape[0]} tokens");
        var indices = tid2eid!.index_select(0, ids).to(int64);
        if (ctx is not null) indices = ctx.Point(HookPoints.HashIds(_layer), indices);
        var weights = scores.gather(1, indices);
        if (_c.ScoringFunc != ScoringFunc.Softmax || _c.NormTopkProb) weights = weights / weights.sum(-1, keepdim: true);
        weights = weights * _c.RoutedScalingFactor;
        if (ctx is not null)
        {
            indices = ctx.Point(HookPoints.ExpertIndices(_layer), indices);
            weights = ctx.Point(HookPoints.ExpertWeights(_layer), weights);
        }
        return new Routing(weights.to(x.dtype).MoveToOuterDisposeScope(), indices.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope());
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
