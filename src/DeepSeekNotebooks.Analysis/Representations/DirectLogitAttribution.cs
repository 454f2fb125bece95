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
/// <param name="Attribution">The component's output at the position · the logit direction through the frozen final norm.</param>
public sealed record LogitComponent(LogitComponentKind Kind, int Layer, int Index, double Attribution)
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
        var names = new List<string> { HookPoints.Embed, HookPoints.Logits, HookPoints.ResidPost(L - 1) };
        for (int l = 0; l < L; l++)
        {
            names.AddRange(new[] { HookPoints.AttnZ(l), HookPoints.AttnOut(l), HookPoints.MlpOut(l) });
            if (c.IsMoeLayer(l))
            {
                names.AddRange(new[] { HookPoints.ResidMid(l), HookPoints.ExpertIndices(l), HookPoints.ExpertWeights(l) });
                if (c.NSharedExperts > 0) names.Add(HookPoints.SharedExpertsOut(l));
            }
        }
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        using var trace = model.RunWithCache(tensor(ids, dtype: ScalarType.Int64).unsqueeze(0), new TraceOptions { Names = names.ToArray() });

        // The logit direction through the frozen norm: s · (w ⊙ (W_U[t] − W_U[f])).
        var r = trace[HookPoints.ResidPost(L - 1)][0, pos].to(float64);
        double scale = 1.0 / Math.Sqrt(r.pow(2).mean().item<double>() + c.RmsNormEps);
        var unembed = model.HeadWeight.to(float64);
        var d = unembed[target];
        if (foil is { } f) d = d - unembed[f];
        var direction = d * model.FinalNorm.Weight.to(float64) * scale;
        double Dot(Tensor x) => x.to(float64).dot(direction).item<double>();

        var last = trace.Logits[0, pos].to(float64);
        double logit = last[target].item<double>() - (foil is { } ff ? last[ff].item<double>() : 0);

        var parts = new List<LogitComponent> { new(LogitComponentKind.Embedding, -1, -1, Dot(trace[HookPoints.Embed][0, pos])) };
        double headError = 0, expertError = 0;
        for (int l = 0; l < L; l++)
        {
            double attn = Dot(trace[HookPoints.AttnOut(l)][0, pos]);
            parts.Add(new(LogitComponentKind.Attention, l, -1, attn));
            var z = trace[HookPoints.AttnZ(l)][0, pos].to(float64);                                   // [heads, dv]
            var wo = model.Layers[l].Attention.OutputWeight.to(float64);                             // [dim, heads·dv]
            double headSum = 0;
            for (int h = 0; h < c.NumAttentionHeads; h++)
            {
                double a = Dot(wo.narrow(1, (long)h * c.VHeadDim, c.VHeadDim).matmul(z[h]));
                headSum += a;
                parts.Add(new(LogitComponentKind.Head, l, h, a));
            }
            headError = Math.Max(headError, Math.Abs(headSum - attn));

            double mlp = Dot(trace[HookPoints.MlpOut(l)][0, pos]);
            parts.Add(new(LogitComponentKind.Mlp, l, -1, mlp));
            if (model.Layers[l].Moe is not { } moe) continue;
            var normed = model.Layers[l].FfnNorm.forward(trace[HookPoints.ResidMid(l)][0, pos].unsqueeze(0));   // [1, dim]
            var indices = trace[HookPoints.ExpertIndices(l)][pos].data<long>().ToArray();                     // token pos of batch 0
            var weights = trace[HookPoints.ExpertWeights(l)][pos].to(float64).data<double>().ToArray();
            double expertSum = 0;
            foreach (var (e, w) in indices.Zip(weights).OrderBy(t => t.First))
            {
                double a = w * Dot(moe.Experts[(int)e].forward(normed)[0]);
                expertSum += a;
                parts.Add(new(LogitComponentKind.RoutedExpert, l, (int)e, a));
            }
            if (c.NSharedExperts > 0)
            {
                double s = Dot(trace[HookPoints.SharedExpertsOut(l)][pos]);
                expertSum += s;
                parts.Add(new(LogitComponentKind.SharedExperts, l, -1, s));
            }
            expertError = Math.Max(expertError, Math.Abs(expertSum - mlp));
        }
        return new DirectLogitAttributionResult(pos, target, foil, logit, scale, parts, headError, expertError);
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
