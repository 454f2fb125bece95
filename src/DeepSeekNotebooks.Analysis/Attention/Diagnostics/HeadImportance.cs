#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attention.Diagnostics;

/// <summary>Importance of one head as the loss increase when it is ablated.</summary>
/// <param name="LossChange">Ablated − baseline mean next-token cross-entropy (nats); larger = more important.</param>
public sealed record HeadImportanceResult(int Layer, int Head, double BaselineLoss, double AblatedLoss, double LossChange, long Tokens);

/// <summary>Head importance by ablation.</summary>
public static class HeadImportance
{
    /// <summary>
    /// Zero-ablates each head in turn (its attention probabilities replaced by zeros through the
    /// <see cref="HookPoints.AttnPattern"/> hook, so the head writes nothing to the residual stream) and reports the change
    /// of the mean next-token loss on <paramref name="sequences"/> — the head-importance-by-pruning measurement of
    /// Voita et al. 2019 ("Analyzing Multi-Head Self-Attention", §6) and Michel et al. 2019. Voita et al.'s other importance
    /// signal, head confidence (mean maximum attention weight), is <see cref="HeadDiagnostics.MeanMaxAttention"/>.
    /// </summary>
    /// <param name="layers">Layers to sweep (all when null).</param>
    /// <exception cref="ArgumentException">Unknown layer, or no sequence with at least two tokens.</exception>
    public static IReadOnlyList<HeadImportanceResult> ByAblation(DeepSeekModel model, IReadOnlyList<long[]> sequences, IReadOnlyCollection<int>? layers = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        var c = model.Config;
        var chosen = (layers ?? Enumerable.Range(0, c.NumHiddenLayers).ToArray()).Distinct().Order().ToArray();
        foreach (var l in chosen)
            if (l < 0 || l >= c.NumHiddenLayers) throw new ArgumentException($"layer {l} out of range [0, {c.NumHiddenLayers})", nameof(layers));
        double baseline = ExpertAblation.MeanNextTokenLoss(model, sequences);
        long tokens = sequences.Where(s => s is { Length: > 1 }).Sum(s => (long)s.Length - 1);
        var rows = new List<HeadImportanceResult>();
        foreach (var layer in chosen)
            for (int head = 0; head < c.NumAttentionHeads; head++)
            {
                int h = head;
                HookFunction hook = (value, _) => value.index_fill(1, tensor(new long[] { h }, device: value.device), 0);
                double ablated = ExpertAblation.MeanNextTokenLoss(model, sequences, new Dictionary<string, HookFunction> { [HookPoints.AttnPattern(layer)] = hook });
                rows.Add(new HeadImportanceResult(layer, head, baseline, ablated, ablated - baseline, tokens));
            }
        return rows;
    }

    /// <summary>Head importances as a DataFrame (layer, head, baseline_loss, ablated_loss, loss_change).</summary>
    public static DataFrame ToDataFrame(IReadOnlyList<HeadImportanceResult> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Int("head", rows, r => r.Head), Frames.Double("baseline_loss", rows, r => r.BaselineLoss),
        Frames.Double("ablated_loss", rows, r => r.AblatedLoss), Frames.Double("loss_change", rows, r => r.LossChange));
}
