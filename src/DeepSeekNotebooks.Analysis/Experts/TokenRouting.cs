#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>The routing decision for one token at one MoE layer.</summary>
/// <param name="Batch">Batch row of the token.</param>
/// <param name="Experts">Selected experts in top-k order.</param>
/// <param name="Weights">Their routing weights.</param>
/// <param name="Entropy">Entropy of the gate scores / log E (1 = indifferent router).</param>
/// <param name="Top1Margin">Highest − second-highest gate score.</param>
public sealed record TokenRoutingDecision(int Layer, int Batch, int Position, long TokenId, int[] Experts, double[] Weights, double Entropy, double Top1Margin);

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
        using var scope = NewDisposeScope();
        var idx = trace.ExpertIndices(layer).contiguous().data<long>().ToArray();
        var w = trace.ExpertWeights(layer).contiguous().to(ScalarType.Float32).data<float>().ToArray();
        var s = trace.RouterScores(layer).contiguous().to(ScalarType.Float32).data<float>().ToArray();
        int k = (int)trace.ExpertIndices(layer).shape[1], e = (int)trace.RouterScores(layer).shape[1];
        int n = idx.Length / k;
        if (ids.Count == 0 || ids.Sum(r => r.Length) != n || ids.Any(r => r.Length != ids[0].Length))
            throw new ArgumentException($"ids must be [batch][seq] with batch·seq = {n} routed tokens", nameof(ids));
        int seq = ids[0].Length;
        var rows = new TokenRoutingDecision[n];
        for (int t = 0; t < n; t++)
        {
            var row = s.AsSpan(t * e, e);
            float a = float.NegativeInfinity, b = float.NegativeInfinity;
            foreach (var v in row) { if (v > a) { b = a; a = v; } else if (v > b) b = v; }
            rows[t] = new TokenRoutingDecision(layer, t / seq, t % seq, ids[t / seq][t % seq], idx.AsSpan(t * k, k).ToArray().Select(x => (int)x).ToArray(),
                w.AsSpan(t * k, k).ToArray().Select(x => (double)x).ToArray(), ExpertMetrics.Entropy(row), e > 1 ? a - b : 0);
        }
        return rows;
    }

    /// <summary>Per-token decisions as a DataFrame (layer, batch, position, token_id, experts, weights, entropy, top1_margin).</summary>
    public static DataFrame ToDataFrame(IReadOnlyList<TokenRoutingDecision> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Int("batch", rows, r => r.Batch), Frames.Int("position", rows, r => r.Position),
        Frames.Long("token_id", rows, r => r.TokenId), Frames.Str("experts", rows, r => string.Join(" ", r.Experts)),
        Frames.Str("weights", rows, r => string.Join(" ", r.Weights.Select(x => x.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)))),
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
