using System.Text.Json;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tracing;

/// <summary>
/// One sequence's observations copied out of a <see cref="ModelTrace"/> into plain arrays (attention patterns, routing,
/// next-token predictions), so they can be charted, saved as JSON and reloaded without the model.
/// </summary>
public sealed record TraceSnapshot
{
    /// <summary>Token ids of the sequence.</summary>
    public required long[] TokenIds { get; init; }
    /// <summary>Display strings of the tokens (the ids as text when no tokenizer is available).</summary>
    public required string[] Tokens { get; init; }
    /// <summary>Attention probabilities [layer][head], each [query, key].</summary>
    public required AttentionMatrix[][] Attention { get; init; }
    /// <summary>Routing of every MoE block, in block order (each token's experts, weights and gate scores).</summary>
    public required LayerRouting[] Routing { get; init; }
    /// <summary>Argmax next-token id at every position.</summary>
    public required long[] Predictions { get; init; }
    /// <summary>Number of routed experts per MoE block.</summary>
    public required int RoutedExperts { get; init; }

    /// <summary>Copies sequence <paramref name="batchIndex"/> of a trace (which must hold attention patterns, routing and logits).</summary>
    public static TraceSnapshot FromTrace(ModelTrace trace, long[] tokenIds, IReadOnlyList<string>? tokens = null, int batchIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(trace);
        var c = trace.Config;
        int seq = tokenIds.Length;
        if (tokens is not null && tokens.Count != seq)
            throw new ArgumentException($"got {tokens.Count} token strings for {seq} token ids", nameof(tokens));
        if (Enumerable.Range(0, c.NumHiddenLayers).Any(l => IsCompressedKind(c.AttentionKindOf(l))))
            throw new ArgumentException("this is a DeepSeek-V4 trace: its attn.pattern is over window slots and compressed entries, not tokens; " +
                "use TraceSnapshot.FromTrace(model, trace, tokenIds) with the traced model (TokenAttention maps the entries back to tokens)", nameof(trace));
        using var scope = NewDisposeScope();
        var attention = new AttentionMatrix[c.NumHiddenLayers][];
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            var p = trace.AttentionPattern(l)[batchIndex].to(float32).cpu().contiguous();
            if (p.shape[1] != seq) throw new ArgumentException($"the trace has {p.shape[1]} positions but {seq} token ids were given", nameof(tokenIds));
            var data = p.data<float>().ToArray();
            attention[l] = new AttentionMatrix[c.NumAttentionHeads];
            for (int h = 0; h < c.NumAttentionHeads; h++)
                attention[l][h] = AttentionMatrix.FromRowMajor(seq, seq, data.AsSpan(h * seq * seq, seq * seq));
        }
        return Assemble(trace, tokenIds, tokens, attention, batchIndex);
    }

    /// <summary>
    /// As <see cref="FromTrace(ModelTrace, long[], IReadOnlyList{string}?, int)"/> for any generation: the attention is
    /// <see cref="TokenAttention.FromTrace"/>'s token-to-token matrices [query, key token] (MLA and V3.2: <c>attn.pattern</c>
    /// as is; DeepSeek-V4: window plus compressed entries mapped back to the tokens they pool, rows summing to 1 − sink
    /// share; docs/generations-analyses.md). <paramref name="model"/> must be the traced model; a trace without
    /// <see cref="TokenAttention.TraceNames"/> costs one more forward of <paramref name="tokenIds"/>. The trace must hold routing and logits.
    /// </summary>
    /// <exception cref="ArgumentException">Token strings or ids that do not match the trace, or a trace lacking a needed point.</exception>
    public static TraceSnapshot FromTrace(DeepSeekNotebooks.Model.DeepSeekModel model, ModelTrace trace, long[] tokenIds, IReadOnlyList<string>? tokens = null, int batchIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trace);
        ArgumentNullException.ThrowIfNull(tokenIds);
        int seq = tokenIds.Length;
        if (tokens is not null && tokens.Count != seq)
            throw new ArgumentException($"got {tokens.Count} token strings for {seq} token ids", nameof(tokens));
        IReadOnlyList<TokenAttentionLayer> layers;
        if (TokenAttention.TraceNames(model.Config).All(trace.Contains)) layers = TokenAttention.FromTrace(model, trace, batchIndex);
        else using (var ids = tensor(tokenIds, new long[] { 1, seq })) layers = TokenAttention.Compute(model, ids);   // a trace without the mapping's points: one more forward
        var attention = new AttentionMatrix[layers.Count][];
        foreach (var layer in layers)
        {
            if (layer.SequenceLength != seq) throw new ArgumentException($"the trace has {layer.SequenceLength} positions but {seq} token ids were given", nameof(tokenIds));
            attention[layer.Layer] = new AttentionMatrix[layer.Heads];
            var data = new float[seq * seq];
            for (int h = 0; h < layer.Heads; h++)
            {
                for (int q = 0; q < seq; q++)
                    for (int k = 0; k < seq; k++) data[q * seq + k] = layer.Pattern[h, q, k];
                attention[layer.Layer][h] = AttentionMatrix.FromRowMajor(seq, seq, data);
            }
        }
        using var scope = NewDisposeScope();
        return Assemble(trace, tokenIds, tokens, attention, batchIndex);
    }

    private static bool IsCompressedKind(DeepSeekNotebooks.Model.AttentionKind kind) =>
        kind is DeepSeekNotebooks.Model.AttentionKind.SlidingWindow or DeepSeekNotebooks.Model.AttentionKind.CompressedSparse or DeepSeekNotebooks.Model.AttentionKind.HeavilyCompressed;

    private static TraceSnapshot Assemble(ModelTrace trace, long[] tokenIds, IReadOnlyList<string>? tokens, AttentionMatrix[][] attention, int batchIndex)
    {
        var c = trace.Config;
        int seq = tokenIds.Length;
        var routing = trace.MoeLayers.Select(l => LayerRouting.FromTrace(trace, l, seq, batchIndex)).ToArray();
        var predictions = trace.Logits[batchIndex].argmax(-1).cpu().data<long>().ToArray();
        return new TraceSnapshot
        {
            TokenIds = tokenIds,
            Tokens = tokens?.ToArray() ?? tokenIds.Select(i => i.ToString()).ToArray(),
            Attention = attention,
            Routing = routing,
            Predictions = predictions,
            RoutedExperts = c.NRoutedExperts,
        };
    }

    /// <summary>Fraction of this sequence's routed (token, slot) choices that went to each expert: [MoE block, expert].</summary>
    public double[,] ExpertUsage()
    {
        var usage = new double[Routing.Length, RoutedExperts];
        for (int i = 0; i < Routing.Length; i++)
        {
            int total = 0;
            foreach (var token in Routing[i].Tokens)
                foreach (var e in token.Experts) { usage[i, e]++; total++; }
            for (int e = 0; e < RoutedExperts; e++) usage[i, e] /= Math.Max(1, total);
        }
        return usage;
    }

    /// <summary>Serialises to JSON (2-D arrays as nested arrays; routing per block as <c>{Layer, Experts[token][k], Weights[token][k], Scores[token][E]}</c>).</summary>
    public string ToJson() => JsonSerializer.Serialize(new Dto(TokenIds, Tokens,
        Attention.Select(l => l.Select(m => m.ToRows()).ToArray()).ToArray(), Routing.Select(RoutingDto.From).ToArray(), Predictions, RoutedExperts));

    /// <summary>Reads what <see cref="ToJson"/> wrote.</summary>
    public static TraceSnapshot FromJson(string json)
    {
        var d = JsonSerializer.Deserialize<Dto>(json) ?? throw new ArgumentException("empty trace snapshot JSON", nameof(json));
        return new TraceSnapshot
        {
            TokenIds = d.TokenIds, Tokens = d.Tokens, Routing = d.Routing.Select(r => r.ToLayerRouting()).ToArray(), Predictions = d.Predictions, RoutedExperts = d.RoutedExperts,
            Attention = d.Attention.Select(l => l.Select(AttentionMatrix.FromRows).ToArray()).ToArray(),
        };
    }

    private sealed record Dto(long[] TokenIds, string[] Tokens, float[][][][] Attention, RoutingDto[] Routing, long[] Predictions, int RoutedExperts);

    /// <summary>The saved form of one block's routing (unchanged since snapshots first had routing, so older files reload).</summary>
    private sealed record RoutingDto(int Layer, int[][] Experts, float[][] Weights, float[][]? Scores)
    {
        public static RoutingDto From(LayerRouting r) => new(r.Layer, r.Tokens.Select(t => t.Experts).ToArray(), r.Tokens.Select(t => t.Weights).ToArray(),
            r.Tokens.All(t => t.Scores is not null) ? r.Tokens.Select(t => t.Scores!).ToArray() : null);

        public LayerRouting ToLayerRouting()
        {
            if (Experts.Length != Weights.Length || (Scores is not null && Scores.Length != Experts.Length))
                throw new ArgumentException($"trace snapshot JSON: routing of block {Layer} has {Experts.Length} expert rows, {Weights.Length} weight rows and {Scores?.Length} score rows; they must match");
            return new LayerRouting(Layer, Experts.Select((e, t) => new RoutingDecision(e, Weights[t], Scores?[t])).ToArray());
        }
    }
}
