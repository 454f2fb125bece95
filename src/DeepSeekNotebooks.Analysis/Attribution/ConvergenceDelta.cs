using System.Diagnostics;
using System.Globalization;
using DeepSeekNotebooks.Model;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>Captum's convergence delta Σ attr − (F(input) − F(baseline)) and the kit's warning when it is large.</summary>
internal static class ConvergenceDelta
{
    /// <summary>
    /// Adds a warning to <paramref name="warnings"/> (and traces it) when |<paramref name="delta"/>| exceeds
    /// <see cref="IntegratedGradients.DeltaWarningFraction"/> of |F(input) − F(baseline)|, as <see cref="IntegratedGradients"/> does.
    /// On a model with discrete selections on the path (<see cref="DiscreteSelections"/>; <paramref name="config"/> given,
    /// <paramref name="selectionsFrozen"/> false) the advice is not "increase nSteps": F jumps wherever a top-k changes
    /// along the path, IG integrates only the gradient, so the delta tends to −Σ jumps rather than to 0 as the steps grow
    /// (tests/fixtures/golden/captum2/README.md; docs/generations-analyses.md) — the message says so and points to
    /// <see cref="RoutingSwitches"/> and routing-frozen IG (<see cref="MoeIntegratedGradients"/>, <c>--routing frozen</c>).
    /// </summary>
    internal static void Check(string what, double delta, double fInput, double fBaseline, Baseline baseline, List<string> warnings,
        DeepSeekConfig? config = null, bool selectionsFrozen = false)
    {
        double scale = Math.Abs(fInput - fBaseline);
        if (!(Math.Abs(delta) > IntegratedGradients.DeltaWarningFraction * scale)) return;
        var msg = Message(what, delta, scale, baseline, selectionsFrozen ? null : DiscreteSelections(config));
        warnings.Add(msg);
        Trace.TraceWarning(msg);
    }

    internal static string Message(string what, double delta, double scale, Baseline baseline, string? selections)
    {
        var msg = string.Create(CultureInfo.InvariantCulture,
            $"{what} convergence delta {delta:G4} exceeds {IntegratedGradients.DeltaWarningFraction:P0} of |F(input) - F(baseline)| = {scale:G4}: ");
        if (selections is null)
            msg += "increase nSteps or use a better-behaved baseline";
        else
            msg += $"this model makes discrete selections along the path ({selections}); F jumps wherever one changes and IG integrates only the gradient, " +
                   "so the delta comes from those jumps and does not shrink with more nSteps. Measure the jumps with RoutingSwitches " +
                   "(the 'sanity' verb's routing report), or attribute with every selection held at the input's: --routing frozen " +
                   "(MoeIntegratedGradients, IgRouting.Frozen)";
        if (baseline == Baseline.Zeros) msg += " (a zero baseline is degenerate for RMSNorm models: try a token baseline)";
        return msg;
    }

    /// <summary>
    /// The discrete selections a forward from embeddings makes that can change along an IG path, as a phrase
    /// ("top-k experts in 3 MoE layers, the indexer's top-k in 2 layers"), or null when there are none. Hash-routed MoE
    /// layers (routing by token id) are constant along any path in embedding space and do not count.
    /// </summary>
    internal static string? DiscreteSelections(DeepSeekConfig? c)
    {
        if (c is null) return null;
        int moe = 0, indexer = 0;
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            if (c.IsMoeLayer(l) && !c.IsHashLayer(l)) moe++;
            if (c.AttentionKindOf(l) is AttentionKind.MlaWithIndexer or AttentionKind.CompressedSparse) indexer++;
        }
        var parts = new List<string>();
        if (moe > 0) parts.Add($"top-k experts in {moe} score-routed MoE layer{(moe == 1 ? "" : "s")}");
        if (indexer > 0) parts.Add($"the indexer's top-k keys in {indexer} layer{(indexer == 1 ? "" : "s")}");
        return parts.Count == 0 ? null : string.Join(", ", parts);
    }
}
