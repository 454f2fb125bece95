using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Attention × gradient: for each layer l and head h, the attention probabilities of the target's query row P times
/// their gradient, A[l,h,P,k]·∂F/∂A[l,h,P,k], a gradient-weighted attention score per key token k (in the spirit of
/// attention-gradient methods such as Chefer, Gur &amp; Wolf 2021 and Barkan et al. 2021, and of Captum's
/// <c>LayerGradientXActivation</c> applied at the attention probabilities). The probabilities are the variables the
/// attention output is linear in (o = Σ_j A_j·v_j), so ∂F/∂A_j is the gradient of F with the other probabilities held.
/// What A is, per attention kind (docs/generations-analyses.md, "Attention × gradient"):
/// <list type="bullet">
/// <item>MLA (V2/V3): <c>attn.pattern</c> over the tokens.</item>
/// <item>MLA + lightning indexer (V3.2): <c>attn.pattern</c> too; the keys the indexer did not select have A = 0
/// exactly (the top-k mask is −∞ before the softmax), so their attribution is 0 by definition, whatever the gradient.</item>
/// <item>DeepSeek-V4 (sliding window / CSA / HCA): the slot probabilities <c>attn.probs</c>, the ones the output is
/// computed from, over the key rows each query attends (<c>attn.topk_idxs</c>: its window of raw tokens, then the
/// compressed entries it sees). Each slot's A·∂F/∂A goes to its token (window slots) or, for a compressed entry, is
/// spread over the tokens the entry pools in proportion to the compressor's pooling weights — the same linear map
/// <see cref="Attention.TokenAttention"/> applies to the probabilities (<c>Compressor.PoolingWeights</c>, channel mean),
/// so the attribution of an entry is conserved over its tokens. The sink has probability but no value: ∂o/∂A_sink = 0,
/// so its term A_sink·∂F/∂A_sink is 0 and maps to no token. <c>attn.pattern</c> is not used on V4 layers: it is
/// the slot probabilities scattered for observation, and the output is not computed from it (its gradient is none).</item>
/// </list>
/// </summary>
public static class AttentionTimesGradient
{
    /// <summary>
    /// Records every layer's attention probabilities on the autograd graph (<c>TraceOptions { KeepGraph = true }</c>;
    /// V4 layers: the slot probabilities and their key rows), differentiates the target with <c>torch.autograd.grad</c>,
    /// and returns an <see cref="AttributionResult"/> whose attributions are [seq, layers·heads]: element (k, l·heads + h)
    /// = A[l,h,P,k]·∂F/∂A[l,h,P,k], on V4 layers summed over the slots that reach token k (see the type's summary).
    /// <c>TokenSums</c> are the sums over all layers and heads. Use <see cref="PerLayerHead"/> for the [layer, head, token] view.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids or target out of range.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null)
    {
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var c = model.Config;
        int layers = c.NumHiddenLayers, heads = c.NumAttentionHeads, seq = p.Ids.Length, pos = p.Target.Position;
        var kinds = Enumerable.Range(0, layers).Select(c.AttentionKindOf).ToArray();
        bool anyV4 = kinds.Any(IsV4);
        var scores = new float[seq * layers * heads];
        using (var _ = enable_grad())
        {
            var names = new List<string>();
            for (int l = 0; l < layers; l++)
            {
                if (!IsV4(kinds[l])) { names.Add(HookPoints.AttnPattern(l)); continue; }
                names.Add(HookPoints.AttnSlotProbs(l));
                names.Add(HookPoints.AttnTopkIdxs(l));
                if (kinds[l] != AttentionKind.SlidingWindow) names.Add(TokenAttention.AttentionInputPoint(c, l));
            }
            var hooks = new Dictionary<string, HookFunction> { [HookPoints.Embed] = (v, _) => v.detach().requires_grad_(true) };
            // V4 computes its output from the attention kernel's own probabilities; attn.probs is a re-laid-out copy. Handing
            // the point a new handle of the same tensor makes the layer recompute the output from it (CompressedAttention:
            // a replaced attn.probs is applied to the key rows), so the recorded slot probabilities are on F's graph. Same
            // values; the output differs from the plain forward only by float rounding of the recomputation.
            for (int l = 0; l < layers; l++)
                if (IsV4(kinds[l])) hooks[HookPoints.AttnSlotProbs(l)] = (v, _) => v.alias();
            var options = new TraceOptions
            {
                AttentionPatterns = false, Routing = false, HiddenStates = false, Logits = true, Extra = names, KeepGraph = true, Hooks = hooks,
            };
            using var trace = model.RunWithCache(p.Ids2D, options);
            var y = p.Target.Evaluate(trace.Logits).sum();
            var probabilities = Enumerable.Range(0, layers)
                .Select(l => trace[IsV4(kinds[l]) ? HookPoints.AttnSlotProbs(l) : HookPoints.AttnPattern(l)]).ToArray();
            var grads = torch.autograd.grad(new[] { y }, probabilities, allow_unused: true);
            using var noGrad = no_grad();
            for (int l = 0; l < layers; l++)
            {
                if (grads[l] is null || grads[l].IsInvalid || grads[l].numel() == 0) continue;
                var row = (probabilities[l][0, TensorIndex.Colon, pos] * grads[l][0, TensorIndex.Colon, pos]).detach().to(float64);   // [heads, keys or slots]
                if (IsV4(kinds[l])) row = SlotsToTokens(model, trace, l, pos, seq, row);
                var data = row.to(float32).cpu().contiguous().data<float>().ToArray();                                               // [heads, seq]
                for (int h = 0; h < heads; h++)
                    for (int k = 0; k < seq; k++)
                        scores[k * layers * heads + l * heads + h] = data[h * seq + k];
            }
        }
        var attr = tensor(scores).view(seq, layers * heads);
        var parameters = new Dictionary<string, string>
        {
            ["layers"] = layers.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["heads"] = heads.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["columns"] = "layer*heads+head",
            ["query_position"] = pos.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (anyV4) parameters["v4_attention"] = "attn.probs slots to tokens; compressed entries by pooling weights; sink to no token";
        return AttributionCore.Result(AttributionMethod.AttentionXGradient, p, attr, parameters);
    }

    private static bool IsV4(AttentionKind kind) => kind is AttentionKind.SlidingWindow or AttentionKind.CompressedSparse or AttentionKind.HeavilyCompressed;

    /// <summary>
    /// One V4 layer's slot scores [heads, slots] of query <paramref name="pos"/> → [heads, seq]: window slots to their
    /// tokens, compressed-entry slots (key rows seq + e) through <see cref="TokenAttention.EntryTokenMap"/>; empty slots (−1) dropped.
    /// </summary>
    private static Tensor SlotsToTokens(DeepSeekModel model, ModelTrace trace, int layer, int pos, int seq, Tensor slotScores)
    {
        var slots = trace[HookPoints.AttnTopkIdxs(layer)][0, pos].to(int64);                                  // [slots]
        var map = model.Config.AttentionKindOf(layer) == AttentionKind.SlidingWindow ? null : TokenAttention.EntryTokenMap(model, trace, layer, 0);   // [C, seq]
        long entries = map?.shape[0] ?? 0, heads = slotScores.shape[0];
        var valid = slots.ge(0);
        // Scatter onto the key axis [heads, seq + C] (+1 spare column for the empty slots, dropped).
        var dense = zeros(heads, seq + entries + 1, dtype: float64, device: slotScores.device);
        var idx = slots.masked_fill(valid.logical_not(), seq + entries).to(slotScores.device).unsqueeze(0).expand(heads, -1);
        dense = dense.scatter_add(1, idx, slotScores.masked_fill(valid.logical_not().to(slotScores.device).unsqueeze(0), 0));
        var tokens = dense.narrow(1, 0, seq);
        if (map is not null && entries > 0) tokens = tokens + dense.narrow(1, seq, entries).matmul(map.to(slotScores.device));
        return tokens;
    }

    /// <summary>The scores of an attention×gradient result as [layer, head, token].</summary>
    public static float[,,] PerLayerHead(AttributionResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Method != AttributionMethod.AttentionXGradient) throw new ArgumentException($"not an attention×gradient result: {result.Method.Name()} (give the result of AttentionTimesGradient.Attribute)", nameof(result));
        int layers = int.Parse(result.Parameters["layers"], System.Globalization.CultureInfo.InvariantCulture);
        int heads = int.Parse(result.Parameters["heads"], System.Globalization.CultureInfo.InvariantCulture);
        int seq = result.SequenceLength;
        var r = new float[layers, heads, seq];
        for (int k = 0; k < seq; k++)
            for (int l = 0; l < layers; l++)
                for (int h = 0; h < heads; h++)
                    r[l, h, k] = result.Attributions[k * layers * heads + l * heads + h];
        return r;
    }
}
