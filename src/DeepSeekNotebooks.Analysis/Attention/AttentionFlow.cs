using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attention;

/// <summary>
/// Attention flow (Abnar &amp; Zuidema 2020, "Quantifying Attention Flow in Transformers"): the attention graph is a
/// layered DAG with one node per (layer boundary, token); the edge from token i after layer l to token j before it has
/// capacity A'_l[i, j], the residual-augmented, row-normalised head-fused attention (<see cref="AttentionRollout.Augment"/>).
/// The flow of input token k into position q is the maximum flow from (top, q) to (bottom, k); as in the authors' code
/// (<c>compute_flows</c>, networkx <c>maximum_flow_value</c> with <c>edmonds_karp</c>) each row is then normalised to sum 1.
/// </summary>
public static class AttentionFlow
{
    /// <summary>Default limit on (included layers) × (tokens), above which <see cref="Compute(IReadOnlyList{float[,,]}, HeadFusion, int, int?, int)"/> refuses.</summary>
    public const int DefaultMaxLayerTokens = 256;

    /// <summary>
    /// Attention flow of per-layer attention [heads, q, k] (Abnar &amp; Zuidema 2020), heads fused by
    /// <paramref name="headFusion"/>, layers <paramref name="startLayer"/>..<paramref name="endLayer"/> (inclusive).
    /// Max flow is Edmonds–Karp (BFS augmenting paths) per (query, input token) pair: with L layers and n tokens the graph
    /// has V = (L+1)·n nodes and E ≤ L·n(n+1)/2 edges (causal), each pair costs O(V·E²) in the worst case, so the whole
    /// matrix is O(n²·V·E²) = O(L³·n⁷) worst case (far less in practice). Inputs with L·n above
    /// <paramref name="maxLayerTokens"/> are refused; use <see cref="AttentionRollout"/> for those.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid matrices or layer range, or L·n &gt; maxLayerTokens.</exception>
    public static RolloutResult Compute(IReadOnlyList<float[,,]> attentions, HeadFusion headFusion = HeadFusion.Mean,
        int startLayer = 0, int? endLayer = null, int maxLayerTokens = DefaultMaxLayerTokens)
    {
        ArgumentNullException.ThrowIfNull(attentions);
        var fused = attentions.Select(a => AttentionRollout.Fuse(a, headFusion)).ToArray();
        var (s, e, n) = AttentionRollout.CheckLayers(fused, startLayer, endLayer);
        int layers = e - s + 1;
        if ((long)layers * n > maxLayerTokens)
            throw new ArgumentException(
                $"attention flow over {layers} layers × {n} tokens = {(long)layers * n} exceeds the limit of {maxLayerTokens} (cost grows like layers³·tokens⁷); " +
                "use AttentionRollout, fewer layers (startLayer/endLayer), a shorter input, or raise maxLayerTokens", nameof(attentions));
        var augmented = Enumerable.Range(s, layers).Select(l => AttentionRollout.Augment(fused[l])).ToArray();
        var graph = new FlowGraph((layers + 1) * n);
        for (int l = 0; l < layers; l++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    if (augmented[l][i, j] > 0) graph.AddEdge((l + 1) * n + i, l * n + j, augmented[l][i, j]);
        var matrix = new float[n, n];
        for (int q = 0; q < n; q++)
        {
            var row = new double[n];
            double total = 0;
            for (int k = 0; k < n; k++) { row[k] = graph.MaxFlow(layers * n + q, k); total += row[k]; }
            for (int k = 0; k < n; k++) matrix[q, k] = (float)(total > 0 ? row[k] / total : 0);
        }
        var parameters = AttentionRollout.Params(headFusion, 0, s, e);
        parameters.Remove("discard_ratio");
        parameters["max_layer_tokens"] = maxLayerTokens.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new RolloutResult(RolloutMethod.AttentionFlow, matrix, parameters);
    }

    /// <summary>Attention flow (Abnar &amp; Zuidema 2020) of attention tensors [heads, q, k] or [1, heads, q, k] per layer.</summary>
    public static RolloutResult Compute(IReadOnlyList<Tensor> attentions, HeadFusion headFusion = HeadFusion.Mean,
        int startLayer = 0, int? endLayer = null, int maxLayerTokens = DefaultMaxLayerTokens)
    {
        ArgumentNullException.ThrowIfNull(attentions);
        return Compute(attentions.Select(AttentionRollout.ToArray3).ToArray(), headFusion, startLayer, endLayer, maxLayerTokens);
    }

    /// <summary>Attention flow (Abnar &amp; Zuidema 2020) of sequence <paramref name="batchIndex"/> of a trace with attention patterns.</summary>
    public static RolloutResult Compute(ModelTrace trace, int batchIndex = 0, HeadFusion headFusion = HeadFusion.Mean,
        int startLayer = 0, int? endLayer = null, int maxLayerTokens = DefaultMaxLayerTokens)
    {
        ArgumentNullException.ThrowIfNull(trace);
        return Compute(AttentionRollout.TraceLayers(trace, batchIndex), headFusion, startLayer, endLayer, maxLayerTokens);
    }

    /// <summary>Runs the model on one sequence and returns its attention flow (Abnar &amp; Zuidema 2020).</summary>
    public static RolloutResult Compute(DeepSeekModel model, Tensor inputIds, HeadFusion headFusion = HeadFusion.Mean,
        int startLayer = 0, int? endLayer = null, int maxLayerTokens = DefaultMaxLayerTokens)
    {
        var (layers, ids) = AttentionRollout.RunLayers(model, inputIds);
        var r = Compute(layers, headFusion, startLayer, endLayer, maxLayerTokens);
        return new RolloutResult(r.Method, r.Matrix, r.Parameters, ids);
    }

    /// <summary>Edmonds–Karp max flow on a small directed graph with real capacities (residual edges paired as e, e^1).</summary>
    internal sealed class FlowGraph
    {
        private const double Eps = 1e-12;
        private readonly int _nodes;
        private readonly List<int> _to = new(), _next = new();
        private readonly List<double> _cap = new();
        private readonly int[] _head;

        internal FlowGraph(int nodes) { _nodes = nodes; _head = Enumerable.Repeat(-1, nodes).ToArray(); }

        internal void AddEdge(int u, int v, double capacity)
        {
            _to.Add(v); _cap.Add(capacity); _next.Add(_head[u]); _head[u] = _to.Count - 1;
            _to.Add(u); _cap.Add(0); _next.Add(_head[v]); _head[v] = _to.Count - 1;
        }

        internal double MaxFlow(int source, int sink)
        {
            if (source == sink) return double.PositiveInfinity;
            var cap = _cap.ToArray();
            var to = _to; var next = _next;
            var parentEdge = new int[_nodes];
            var queue = new int[_nodes];
            double flow = 0;
            while (true)
            {
                Array.Fill(parentEdge, -1);
                int qh = 0, qt = 0;
                queue[qt++] = source;
                bool found = false;
                while (qh < qt && !found)
                {
                    int u = queue[qh++];
                    for (int e = _head[u]; e != -1; e = next[e])
                    {
                        int v = to[e];
                        if (cap[e] > Eps && parentEdge[v] == -1 && v != source)
                        {
                            parentEdge[v] = e;
                            if (v == sink) { found = true; break; }
                            queue[qt++] = v;
                        }
                    }
                }
                if (!found) return flow;
                double push = double.PositiveInfinity;
                for (int v = sink; v != source; v = to[parentEdge[v] ^ 1]) push = Math.Min(push, cap[parentEdge[v]]);
                for (int v = sink; v != source; v = to[parentEdge[v] ^ 1]) { cap[parentEdge[v]] -= push; cap[parentEdge[v] ^ 1] += push; }
                flow += push;
            }
        }
    }
}
