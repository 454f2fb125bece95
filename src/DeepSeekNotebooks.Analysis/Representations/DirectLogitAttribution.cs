#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Representations;

/// <summary>What a direct-logit-attribution component is.</summary>
public enum LogitComponentKind
{
    /// <summary>The token embedding (the residual stream before block 0).</summary>
    Embedding,
    /// <summary>A block's attention output (<c>attn.out</c>), the sum of its heads.</summary>
    Attention,
    /// <summary>One attention head: its slice of <c>attn.z</c> through its columns of <c>wo</c>.</summary>
    Head,
    /// <summary>A block's FFN output (<c>mlp.out</c>: the dense MLP, or an MoE block's routed + shared experts).</summary>
    Mlp,
    /// <summary>One routed expert selected for the token: routing weight × expert output.</summary>
    RoutedExpert,
    /// <summary>The shared experts of an MoE block (<c>moe.shared_out</c>).</summary>
    SharedExperts,
}

/// <summary>One component's direct contribution to the logit (difference).</summary>
/// <param name="Layer">Block index (−1 for the embedding).</param>
/// <param name="Index">Head or expert index; −1 for whole-block components, the embedding and the shared experts.</param>
/// <param name="Attribution">The component's output at the position · the logit direction through the frozen final norm (times <paramref name="StreamWeight"/>).</param>
/// <param name="StreamWeight">
/// With DeepSeek-V4 hyper-connections, the weight α with which the component's output reaches the collapsed final
/// residual (mHC pre/post/comb frozen at the position); 1 with a single residual stream.
/// </param>
public sealed record LogitComponent(LogitComponentKind Kind, int Layer, int Index, double Attribution, double StreamWeight = 1)
{
    /// <summary>A short label: "embed", "L1 attn", "L1 H0", "L2 mlp", "L2 E5", "L2 shared".</summary>
    public string Label => Kind switch
    {
        LogitComponentKind.Embedding => "embed",
        LogitComponentKind.Attention => $"L{Layer} attn",
        LogitComponentKind.Head => $"L{Layer} H{Index}",
        LogitComponentKind.Mlp => $"L{Layer} mlp",
        LogitComponentKind.RoutedExpert => $"L{Layer} E{Index}",
        _ => $"L{Layer} shared",
    };
}

/// <summary>
/// Direct logit attribution of one position (TransformerLens <c>ActivationCache.decompose_resid</c> /
/// <c>logit_attrs</c> with <c>apply_ln=True</c>): every component's output projected onto the logit direction through
/// the final RMSNorm with its scale frozen at the final residual.
/// </summary>
/// <param name="Foil">The second token of a logit difference (null: the logit of <paramref name="Target"/> alone).</param>
/// <param name="Logit">The model's own logit(target) − logit(foil) at the position.</param>
/// <param name="FrozenScale">The final norm's scale 1/√(mean(r²) + ε) at the final residual r, held fixed.</param>
/// <param name="Components">Embedding, per block attention and FFN; per head; per selected routed expert and the shared experts.</param>
/// <param name="HeadSumError">Largest |Σ heads − attention| over blocks (the per-head split is exact: float error only).</param>
/// <param name="ExpertSumError">Largest |Σ experts + shared − FFN| over MoE blocks (0 without MoE blocks).</param>
public sealed record DirectLogitAttributionResult(int Position, long Target, long? Foil, double Logit, double FrozenScale,
    IReadOnlyList<LogitComponent> Components, double HeadSumError, double ExpertSumError)
{
    /// <summary>Embedding + every block's attention and FFN: the decomposition of the final residual.</summary>
    public double SumOfParts => Components.Where(c => c.Kind is LogitComponentKind.Embedding or LogitComponentKind.Attention or LogitComponentKind.Mlp).Sum(c => c.Attribution);

    /// <summary>
    /// <see cref="SumOfParts"/> − <see cref="Logit"/>: with the scale frozen, RMSNorm is linear in the residual and the
    /// decomposition is exact, so this is float error (TransformerLens's LayerNorm also centres; RMSNorm does not).
    /// </summary>
    public double FrozenNormError => SumOfParts - Logit;

    /// <summary>The components of one kind, in layer (then head/expert) order.</summary>
    public IReadOnlyList<LogitComponent> Of(LogitComponentKind kind) => Components.Where(c => c.Kind == kind).ToList();
}

/// <summary>Direct logit attribution (Elhage et al. 2021 "A Mathematical Framework for Transformer Circuits"; TransformerLens <c>logit_attrs</c>).</summary>
public static class DirectLogitAttribution
{
    /// <summary>
    /// Decomposes the logit of <paramref name="target"/> (minus that of <paramref name="foil"/>) at <paramref name="position"/>
    /// (default: the last) into direct contributions: the residual stream after the last block is embed + Σ_L (attn_L + mlp_L),
    /// so with the final RMSNorm's scale s frozen, logit = Σ_parts part · s · (w_norm ⊙ (W_U[target] − W_U[foil])).
    /// Each attention output is further split into heads (z_h · wo_hᵀ, from <c>attn.z</c>), each MoE output into the
    /// selected routed experts (routing weight × expert(ffn_norm(resid_mid))) and the shared experts.
    /// DeepSeek-V4 (hyper-connections): the final residual is the <c>hc_head</c> collapse of the streams, and with the
    /// mHC weights frozen at the position it is Σ α_part · part (<see cref="LogitComponent.StreamWeight"/>), so the same
    /// decomposition holds with each part weighted by its α; V4 attention has no per-head output (grouped low-rank
    /// <c>wo_a</c>/<c>wo_b</c>, no <c>attn.z</c>), so its blocks give no Head components; experts read ffn_norm(hc_ffn.collapsed).
    /// </summary>
    /// <exception cref="ArgumentException">Empty ids, a position outside the input, a target or foil outside the vocabulary, or foil = target.</exception>
    public static DirectLogitAttributionResult Run(DeepSeekModel model, long[] ids, long target, long? foil = null, int? position = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(ids);
        var c = model.Config;
        if (ids.Length == 0) throw new ArgumentException("the token sequence is empty", nameof(ids));
        int pos = position ?? ids.Length - 1;
        if (pos < 0 || pos >= ids.Length) throw new ArgumentException($"position {pos} out of range [0, {ids.Length})", nameof(position));
        if (target < 0 || target >= c.VocabSize) throw new ArgumentException($"target {target} out of range [0, {c.VocabSize})", nameof(target));
        if (foil is { } f0 && (f0 < 0 || f0 >= c.VocabSize)) throw new ArgumentException($"foil {f0} out of range [0, {c.VocabSize})", nameof(foil));
        if (foil == target) throw new ArgumentException($"the foil equals the target ({target}): the logit difference would be 0; give another foil or none", nameof(foil));

        int L = c.NumHiddenLayers;
        var hc = c.HyperConnections;
        // With hyper-connections the final residual is the hc_head collapse, and the FFN reads hc_ffn.collapsed.
        var names = new List<string> { HookPoints.Embed, HookPoints.Logits, hc is null ? HookPoints.ResidPost(L - 1) : HookPoints.HcHeadCollapsed };
        if (hc is not null) names.Add(HookPoints.HcHeadPre);
        for (int l = 0; l < L; l++)
        {
            names.AddRange(new[] { HookPoints.AttnOut(l), HookPoints.MlpOut(l) });
            if (model.Layers[l].Attention is not null) names.Add(HookPoints.AttnZ(l));
            if (hc is not null) names.AddRange(new[] { HookPoints.HcAttnPost(l), HookPoints.HcAttnComb(l), HookPoints.HcFfnPost(l), HookPoints.HcFfnComb(l) });
            if (c.IsMoeLayer(l))
            {
                names.AddRange(new[] { hc is null ? HookPoints.ResidMid(l) : HookPoints.HcFfnCollapsed(l), HookPoints.ExpertIndices(l), HookPoints.ExpertWeights(l) });
                if (c.NSharedExperts > 0) names.Add(HookPoints.SharedExpertsOut(l));
            }
        }
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        using var trace = model.RunWithCache(tensor(ids, dtype: ScalarType.Int64).unsqueeze(0), new TraceOptions { Names = names.Distinct().ToArray() });

        // The logit direction through the frozen norm: s · (w ⊙ (W_U[t] − W_U[f])).
        var r = trace[hc is null ? HookPoints.ResidPost(L - 1) : HookPoints.HcHeadCollapsed][0, pos].to(float64);
        double scale = 1.0 / Math.Sqrt(r.pow(2).mean().item<double>() + c.RmsNormEps);
        var unembed = model.HeadWeight.to(float64);
        var d = unembed[target];
        if (foil is { } f) d = d - unembed[f];
        var direction = d * model.FinalNorm.Weight.to(float64) * scale;
        double Dot(Tensor x) => x.to(float64).dot(direction).item<double>();

        var last = trace.Logits[0, pos].to(float64);
        double logit = last[target].item<double>() - (foil is { } ff ? last[ff].item<double>() : 0);

        // Stream weights: with pre/post/comb frozen at this position, the collapsed final residual is Σ α_part · part.
        var alpha = hc is null ? null : StreamWeights(trace, L, hc.Mult, pos);
        int site = 0;
        double Weight() => alpha is null ? 1 : alpha[site];

        var parts = new List<LogitComponent> { new(LogitComponentKind.Embedding, -1, -1, Weight() * Dot(trace[HookPoints.Embed][0, pos]), Weight()) };
        double headError = 0, expertError = 0;
        for (int l = 0; l < L; l++)
        {
            site++;
            double wa = Weight();
            double attn = wa * Dot(trace[HookPoints.AttnOut(l)][0, pos]);
            parts.Add(new(LogitComponentKind.Attention, l, -1, attn, wa));
            if (model.Layers[l].Attention is { } mla)
            {
                var z = trace[HookPoints.AttnZ(l)][0, pos].to(float64);                                   // [heads, dv]
                var wo = mla.OutputWeight.to(float64);                                                   // [dim, heads·dv]
                double headSum = 0;
                for (int h = 0; h < c.NumAttentionHeads; h++)
                {
                    double a = wa * Dot(wo.narrow(1, (long)h * c.VHeadDim, c.VHeadDim).matmul(z[h]));
                    headSum += a;
                    parts.Add(new(LogitComponentKind.Head, l, h, a, wa));
                }
                headError = Math.Max(headError, Math.Abs(headSum - attn));
            }

            site++;
            double wf = Weight();
            double mlp = wf * Dot(trace[HookPoints.MlpOut(l)][0, pos]);
            parts.Add(new(LogitComponentKind.Mlp, l, -1, mlp, wf));
            if (model.Layers[l].Moe is not { } moe) continue;
            var ffnInput = trace[hc is null ? HookPoints.ResidMid(l) : HookPoints.HcFfnCollapsed(l)][0, pos].unsqueeze(0);
            var normed = model.Layers[l].FfnNorm.forward(ffnInput);                                                   // [1, dim]
            var indices = trace[HookPoints.ExpertIndices(l)][pos].data<long>().ToArray();                     // token pos of batch 0
            var weights = trace[HookPoints.ExpertWeights(l)][pos].to(float64).data<double>().ToArray();
            double expertSum = 0;
            foreach (var (e, w) in indices.Zip(weights).OrderBy(t => t.First))
            {
                double a = wf * w * Dot(moe.Experts[(int)e].forward(normed)[0]);
                expertSum += a;
                parts.Add(new(LogitComponentKind.RoutedExpert, l, (int)e, a, wf));
            }
            if (c.NSharedExperts > 0)
            {
                double sh = wf * Dot(trace[HookPoints.SharedExpertsOut(l)][pos]);
                expertSum += sh;
                parts.Add(new(LogitComponentKind.SharedExperts, l, -1, sh, wf));
            }
            expertError = Math.Max(expertError, Math.Abs(expertSum - mlp));
        }
        return new DirectLogitAttributionResult(pos, target, foil, logit, scale, parts, headError, expertError);
    }

    /// <summary>
    /// The weight α with which each part (embedding, then attention and FFN of every block) enters the collapsed final
    /// residual at <paramref name="pos"/> with mHC's pre/post/comb frozen: a part written with post weights p has stream
    /// coefficients v = p (the embedding: v = 1, it starts in every stream); each later site maps v_k ← Σ_j comb[j, k] v_j;
    /// the head reads α = Σ_k pre_k v_k (official V4 <c>hc_post</c> / <c>hc_head</c>).
    /// </summary>
    internal static double[] StreamWeights(ModelTrace trace, int layers, int n, int pos)
    {
        var vectors = new List<double[]> { Enumerable.Repeat(1.0, n).ToArray() };
        void Site(string post, string comb)
        {
            var cm = trace[comb][0, pos].to(float64).data<double>().ToArray();                          // [n, n] row-major, comb[j, k]
            for (int i = 0; i < vectors.Count; i++)
            {
                var v = vectors[i];
                var next = new double[n];
                for (int k = 0; k < n; k++) for (int j = 0; j < n; j++) next[k] += cm[j * n + k] * v[j];
                vectors[i] = next;
            }
            vectors.Add(trace[post][0, pos].to(float64).data<double>().ToArray());
        }
        for (int l = 0; l < layers; l++)
        {
            Site(HookPoints.HcAttnPost(l), HookPoints.HcAttnComb(l));
            Site(HookPoints.HcFfnPost(l), HookPoints.HcFfnComb(l));
        }
        var pre = trace[HookPoints.HcHeadPre][0, pos].to(float64).data<double>().ToArray();
        return vectors.Select(v => v.Zip(pre).Sum(t => t.First * t.Second)).ToArray();
    }

    /// <summary>Components as a DataFrame (kind, layer, index, label, attribution).</summary>
    public static DataFrame ToDataFrame(DirectLogitAttributionResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var rows = result.Components;
        return new(Frames.Str("kind", rows, r => r.Kind.ToString()), Frames.Int("layer", rows, r => r.Layer),
            Frames.Int("index", rows, r => r.Index), Frames.Str("label", rows, r => r.Label), Frames.Double("attribution", rows, r => r.Attribution));
    }
}
