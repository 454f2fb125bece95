using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>
/// One token's routing decision at one MoE block — the kit's one routing type, used by trace snapshots, per-token
/// diagnostics (<see cref="TokenRoutingDecision"/>), the routing charts, the 3D model view and the dashboard.
/// </summary>
/// <param name="Experts">Selected routed experts in top-k order (the gate's <c>topk</c> order: best first).</param>
/// <param name="Weights">Their routing weights, same length and order (after normalisation and <c>routed_scaling_factor</c>, as the block applies them).</param>
/// <param name="Scores">The gate's affinity score of every routed expert [E] (before the selection bias), when recorded.</param>
public sealed record RoutingDecision(int[] Experts, float[] Weights, float[]? Scores = null);

/// <summary>The routing of every token of one sequence at one MoE block.</summary>
/// <param name="Layer">The block index (0-based, as in <c>blocks.{L}</c>).</param>
/// <param name="Tokens">One decision per token, in input order.</param>
public sealed record LayerRouting(int Layer, RoutingDecision[] Tokens)
{
    /// <summary>
    /// The routing at block <paramref name="layer"/> of sequence <paramref name="batchIndex"/> of a trace that recorded
    /// routing (<c>blocks.{L}.moe.indices</c>, <c>.weights</c>, <c>.scores</c>; rows are batch-major, <paramref name="sequenceLength"/>
    /// tokens per sequence).
    /// </summary>
    /// <exception cref="ArgumentException">The block's routing was not recorded (dense or unknown block), the routed token
    /// count is not a multiple of sequenceLength, or batchIndex is out of range.</exception>
    public static LayerRouting FromTrace(ModelTrace trace, int layer, int sequenceLength, int batchIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(trace);
        if (!trace.Contains(HookPoints.ExpertIndices(layer)))
            throw new ArgumentException($"no routing recorded for block {layer}; MoE blocks with routing in this trace: [{string.Join(", ", trace.MoeLayers)}]", nameof(layer));
        using var scope = NewDisposeScope();
        var indices = trace.ExpertIndices(layer);
        long rows = indices.shape[0];
        if (sequenceLength < 1 || rows % sequenceLength != 0)
            throw new ArgumentException($"block {layer} routed {rows} tokens, which is not a whole number of sequences of {sequenceLength} tokens", nameof(sequenceLength));
        long batch = rows / sequenceLength;
        if (batchIndex < 0 || batchIndex >= batch)
            throw new ArgumentException($"batchIndex {batchIndex} is out of range for a batch of {batch} sequences", nameof(batchIndex));
        int seq = sequenceLength, k = (int)indices.shape[1];
        var idx = indices.to(int64).contiguous().cpu().data<long>().ToArray();
        var w = trace.ExpertWeights(layer).to(float32).contiguous().cpu().data<float>().ToArray();
        var scores = trace.RouterScores(layer);
        int e = (int)scores.shape[1];
        var s = scores.to(float32).contiguous().cpu().data<float>().ToArray();
        var tokens = new RoutingDecision[seq];
        for (int t = 0; t < seq; t++)
        {
            int r = batchIndex * seq + t;
            tokens[t] = new RoutingDecision(
                Enumerable.Range(0, k).Select(j => (int)idx[r * k + j]).ToArray(),
                w.AsSpan(r * k, k).ToArray(),
                s.AsSpan(r * e, e).ToArray());
        }
        return new LayerRouting(layer, tokens);
    }
}
