#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>One token's routing at one MoE layer with its position and the router's confidence.</summary>
/// <param name="Batch">Batch row of the token.</param>
/// <param name="Routing">The decision: selected experts in top-k order, their weights and the gate scores.</param>
/// <param name="Entropy">Entropy of the gate scores / log E (1 = indifferent router).</param>
/// <param name="Top1Margin">Highest − second-highest gate score.</param>
public sealed record TokenRoutingDecision(int Layer, int Batch, int Position, long TokenId, RoutingDecision Routing, double Entropy, double Top1Margin);

/// <summary>Per-token routing views of a single trace.</summary>
public static class TokenRouting
{
    /// <summary>
    /// Per-token routing at a MoE layer of a trace: selected experts, weights, normalised gate-score entropy and the
    /// top-1/top-2 gate-score margin (the per-token routing confidence behind DeepSeek-V3 arXiv:2412.19437 §2.1.2's gate).
    /// </summary>
    /// <param name="ids">The traced token ids [batch][seq] (or one row for batch 1).</param>
    /// <exception cref="ArgumentException">The layer's routing was not recorded (dense or unknown layer), or ids do not match.</exception>
    public static IReadOnlyList<TokenRoutingDecision> Decisions(ModelTrace trace, int layer, IReadOnlyList<long[]> ids)
    {
        ArgumentNullException.ThrowIfNull(trace);
        ArgumentNullException.ThrowIfNull(ids);
        if (!trace.Contains(HookPoints.ExpertIndices(layer)))
            throw new ArgumentException($"no routing recorded for layer {layer}; MoE layers: [{string.Join(", ", trace.MoeLayers)}]", nameof(layer));
        int n = (int)trace.ExpertIndices(layer).shape[0];
        if (ids.Count == 0 || ids.Sum(r => r.Length) != n || ids.Any(r => r.Length != ids[0].Length))
            throw new ArgumentException($"ids must be [batch][seq] with batch·seq = {n} routed tokens", nameof(ids));
        int seq = ids[0].Length;
        var rows = new List<TokenRoutingDecision>(n);
        for (int b = 0; b < ids.Count; b++)
        {
            var routing = LayerRouting.FromTrace(trace, layer, seq, b);
            for (int t = 0; t < seq; t++)
            {
                var d = routing.Tokens[t];
                var scores = d.Scores!;
                float first = float.NegativeInfinity, second = float.NegativeInfinity;
                foreach (var v in scores) { if (v > first) { second = first; first = v; } else if (v > second) second = v; }
                rows.Add(new TokenRoutingDecision(layer, b, t, ids[b][t], d, ExpertMetrics.Entropy(scores), scores.Length > 1 ? first - second : 0));
            }
        }
        return rows;
    }

    /// <summary>Per-token decisions as a DataFrame (layer, batch, position, token_id, experts, weights, entropy, top1_margin).</summary>
    public static DataFrame ToDataFrame(IReadOnlyList<TokenRoutingDecision> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Int("batch", rows, r => r.Batch), Frames.Int("position", rows, r => r.Position),
        Frames.Long("token_id", rows, r => r.TokenId), Frames.Str("experts", rows, r => string.Join(" ", r.Routing.Experts)),
        Frames.Str("weights", rows, r => string.Join(" ", r.Routing.Weights.Select(x => x.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)))),
        Frames.Double("entropy", rows, r => r.Entropy), Frames.Double("top1_margin", rows, r => r.Top1Margin));

    /// <summary>An E×E co-activation matrix (<see cref="ExpertRoutingAccumulator.CoActivation"/>) as a long-form DataFrame (expert_a, expert_b, count), upper triangle with diagonal.</summary>
    public static DataFrame CoActivationFrame(long[,] coActivation)
    {
        ArgumentNullException.ThrowIfNull(coActivation);
        int e = coActivation.GetLength(0);
        var pairs = (from i in Enumerable.Range(0, e) from j in Enumerable.Range(i, e - i) select (i, j, c: coActivation[i, j])).ToArray();
        return new DataFrame(Frames.Int("expert_a", pairs, p => p.i), Frames.Int("expert_b", pairs, p => p.j), Frames.Long("count", pairs, p => p.c));
    }
}
