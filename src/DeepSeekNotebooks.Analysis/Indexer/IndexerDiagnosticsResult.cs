using System.Text.Json;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Analysis.Statistics;
using Microsoft.Data.Analysis;

namespace DeepSeekNotebooks.Analysis.Indexer;

/// <summary>What an indexer chooses among: raw keys (DeepSeek-V3.2's lightning indexer) or compressed entries (DeepSeek-V4's CSA indexer).</summary>
public enum IndexerKeyAxis
{
    /// <summary>Raw tokens: key t of query s is visible when t ≤ s (DeepSeek-V3.2 DSA).</summary>
    Tokens,
    /// <summary>Compressed entries (ratio 4): entry e of query t is visible once complete, e &lt; (t+1) div 4 (DeepSeek-V4 CSA).</summary>
    CompressedEntries,
}

/// <summary>One query's indexer decision in one layer of one prompt.</summary>
/// <param name="Prompt">Index of the prompt in <see cref="IndexerDiagnosticsResult.Prompts"/>.</param>
/// <param name="Layer">Block index.</param>
/// <param name="Query">Query position.</param>
/// <param name="Visible">Keys (or entries) the query may see.</param>
/// <param name="Selected">Keys the indexer kept (min(top-k, visible)).</param>
/// <param name="Recall">Share of the dense attention's head-summed, L1-normalised mass on the kept keys (1 when all are kept).</param>
/// <param name="DenseKl">KL(p ‖ softmax(I)) over the visible keys: DSA's dense warm-up indexer loss for this query (nats).</param>
/// <param name="SelectedKl">KL(p_S ‖ softmax(I_S)) over the kept keys, p_S from the sparse (analysed) attention: DSA's sparse-stage loss (nats).</param>
public sealed record IndexerQuery(int Prompt, int Layer, int Query, int Visible, int Selected, double Recall, double DenseKl, double SelectedKl)
{
    /// <summary>Every visible key fits in the top-k: the selection is no choice and recall is 1 trivially.</summary>
    public bool AllSelected => Selected >= Visible;
}

/// <summary>How often keys at one absolute position or one query–key distance were kept, over all queries that could see them.</summary>
/// <param name="Layer">Block index.</param>
/// <param name="Key">Absolute key position (token or entry number) or query–key distance, by the table it is in.</param>
/// <param name="Selected">(query, key) pairs where the indexer kept the key.</param>
/// <param name="Visible">(query, key) pairs where the key was visible.</param>
public sealed record IndexerSelectionCount(int Layer, int Key, long Selected, long Visible)
{
    /// <summary>Selected / Visible (NaN when never visible).</summary>
    public double Rate => Visible == 0 ? double.NaN : (double)Selected / Visible;
}

/// <summary>How often keys holding one token id were kept (V4: tokens an entry pools, counted once per entry).</summary>
public sealed record IndexerTokenSelection(int Layer, long TokenId, long Selected, long Visible)
{
    /// <summary>Selected / Visible (NaN when never visible).</summary>
    public double Rate => Visible == 0 ? double.NaN : (double)Selected / Visible;
}

/// <summary>Selection stability between two indexer layers: mean Jaccard |S_a ∩ S_b| / |S_a ∪ S_b| over queries where a choice was made.</summary>
/// <param name="Queries">Queries counted: those with more visible keys than the top-k (elsewhere both sets are everything).</param>
/// <param name="MeanJaccard">Mean Jaccard overlap (NaN when no query made a choice).</param>
public sealed record IndexerLayerOverlap(int LayerA, int LayerB, long Queries, double MeanJaccard);

/// <summary>One indexer layer's summary over all prompts.</summary>
/// <param name="Layer">Block index.</param>
/// <param name="Queries">Queries with at least one visible key.</param>
/// <param name="AllSelectedQueries">Of those, queries whose visible keys all fit in the top-k (recall 1 trivially).</param>
/// <param name="MeanRecall">Mean recall over all queries.</param>
/// <param name="MeanRecallWhereSparse">Mean recall over queries that had to drop keys (NaN when none did): the informative number.</param>
/// <param name="MeanDenseKl">Mean KL(p ‖ softmax(I)) over all queries (nats).</param>
/// <param name="MeanSelectedKl">Mean KL(p_S ‖ softmax(I_S)) over all queries (nats).</param>
public sealed record IndexerLayerSummary(int Layer, long Queries, long AllSelectedQueries, double MeanRecall, double MeanRecallWhereSparse, double MeanDenseKl, double MeanSelectedKl);

/// <summary>
/// Indexer diagnostics (<see cref="IndexerDiagnostics.Measure(Model.DeepSeekModel, IReadOnlyList{long[]})"/>) of a set of
/// prompts: per-query recall and KL against the dense attention, selection frequency by position, distance and token id,
/// and the selection overlap between layers. Plain data; JSON round-trips; definitions in docs/generations-diagnostics.md.
/// </summary>
public sealed record IndexerDiagnosticsResult
{
    /// <summary>What the indexer chooses among.</summary>
    public required IndexerKeyAxis Axis { get; init; }
    /// <summary>The configured top-k (<c>index_topk</c>).</summary>
    public required int Topk { get; init; }
    /// <summary>Tokens per compressed entry (1 for raw keys).</summary>
    public required int Ratio { get; init; }
    /// <summary>The prompts, as token ids.</summary>
    public required long[][] Prompts { get; init; }
    /// <summary>The blocks that have an indexer, ascending.</summary>
    public required int[] IndexerLayers { get; init; }
    /// <summary>One summary per indexer layer.</summary>
    public required IndexerLayerSummary[] Layers { get; init; }
    /// <summary>Every (prompt, layer, query) decision.</summary>
    public required IndexerQuery[] Queries { get; init; }
    /// <summary>Selection counts by absolute key position (token position, or entry number for compressed entries).</summary>
    public required IndexerSelectionCount[] ByPosition { get; init; }
    /// <summary>Selection counts by query–key distance (for entries: query − the entry's last pooled token).</summary>
    public required IndexerSelectionCount[] ByDistance { get; init; }
    /// <summary>Selection counts by token id.</summary>
    public required IndexerTokenSelection[] ByToken { get; init; }
    /// <summary>Selection overlap for every pair of indexer layers.</summary>
    public required IndexerLayerOverlap[] Overlaps { get; init; }

    /// <summary>True when no query had to drop a key (short prompts): every recall is 1 and the selection shows nothing.</summary>
    [JsonIgnore] public bool EveryKeyFits => Queries.All(q => q.AllSelected);

    /// <summary>One line saying what the numbers can show for these prompts.</summary>
    [JsonIgnore]
    public string Note => EveryKeyFits
        ? $"every visible {(Axis == IndexerKeyAxis.Tokens ? "key" : "compressed entry")} fits in the indexer's top-{Topk} for these prompts: the selection drops nothing and recall is 1 trivially; use prompts longer than {(Axis == IndexerKeyAxis.Tokens ? Topk : Topk * Ratio + Ratio - 1)} tokens"
        : $"{Queries.Count(q => !q.AllSelected)} of {Queries.Length} (layer, query) decisions dropped keys";

    /// <summary>The per-layer summary as a DataFrame (layer, queries, all_selected, recall, recall_where_sparse, dense_kl, selected_kl).</summary>
    public DataFrame ToDataFrame() => new(
        Frames.Int("layer", Layers, r => r.Layer), Frames.Long("queries", Layers, r => r.Queries),
        Frames.Long("all_selected", Layers, r => r.AllSelectedQueries), Frames.Double("recall", Layers, r => r.MeanRecall),
        Frames.Double("recall_where_sparse", Layers, r => r.MeanRecallWhereSparse), Frames.Double("dense_kl", Layers, r => r.MeanDenseKl),
        Frames.Double("selected_kl", Layers, r => r.MeanSelectedKl));

    /// <summary>Every decision as a DataFrame.</summary>
    public DataFrame QueriesFrame() => new(
        Frames.Int("prompt", Queries, r => r.Prompt), Frames.Int("layer", Queries, r => r.Layer), Frames.Int("query", Queries, r => r.Query),
        Frames.Int("visible", Queries, r => r.Visible), Frames.Int("selected", Queries, r => r.Selected), Frames.Double("recall", Queries, r => r.Recall),
        Frames.Double("dense_kl", Queries, r => r.DenseKl), Frames.Double("selected_kl", Queries, r => r.SelectedKl));

    /// <summary>Selection counts by distance (<paramref name="byPosition"/> false) or absolute position as a DataFrame.</summary>
    public DataFrame SelectionFrame(bool byPosition = false)
    {
        var rows = byPosition ? ByPosition : ByDistance;
        return new DataFrame(Frames.Int("layer", rows, r => r.Layer), Frames.Int(byPosition ? "position" : "distance", rows, r => r.Key),
            Frames.Long("selected", rows, r => r.Selected), Frames.Long("visible", rows, r => r.Visible), Frames.Double("rate", rows, r => r.Rate));
    }

    /// <summary>Selection counts by token id as a DataFrame.</summary>
    public DataFrame TokenFrame() => new(
        Frames.Int("layer", ByToken, r => r.Layer), Frames.Long("token_id", ByToken, r => r.TokenId),
        Frames.Long("selected", ByToken, r => r.Selected), Frames.Long("visible", ByToken, r => r.Visible), Frames.Double("rate", ByToken, r => r.Rate));

    /// <summary>Layer-pair overlaps as a DataFrame.</summary>
    public DataFrame OverlapFrame() => new(
        Frames.Int("layer_a", Overlaps, r => r.LayerA), Frames.Int("layer_b", Overlaps, r => r.LayerB),
        Frames.Long("queries", Overlaps, r => r.Queries), Frames.Double("mean_jaccard", Overlaps, r => r.MeanJaccard));

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>JSON (System.Text.Json; enums by name, NaN as a literal).</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(this, new JsonSerializerOptions(JsonOptions) { WriteIndented = indented });

    /// <summary>Reads <see cref="ToJson"/>'s output.</summary>
    public static IndexerDiagnosticsResult FromJson(string json) =>
        JsonSerializer.Deserialize<IndexerDiagnosticsResult>(json, JsonOptions) ?? throw new JsonException("the JSON holds no indexer diagnostics");
}
