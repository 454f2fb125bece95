#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>
/// What routing did to the balance of one MoE layer on a dataset, next to what a hash would do with the same tokens
/// (<see cref="HashRouting.Balance"/>).
/// </summary>
/// <param name="HashRouted">Whether the layer routes by token id (DeepSeek-V4 <c>tid2eid</c>) rather than by score.</param>
/// <param name="Tokens">Tokens observed at the layer.</param>
/// <param name="MaxVio">Observed MaxVio of the expert counts (max load / mean load − 1; DeepSeek-V3 §2.1.2's balance measure).</param>
/// <param name="ImpliedMaxVio">Hash layers: MaxVio of the counts the table implies for the dataset's token-id counts, Σ_t n_t·[e ∈ tid2eid[t]] (equal to <paramref name="MaxVio"/>: the hash is deterministic); NaN for learned layers.</param>
/// <param name="RandomHashMaxVio">Mean MaxVio over random hash tables (k distinct uniform experts per token id) applied to the same token-id counts: the imbalance the token frequencies alone force on a hash.</param>
/// <param name="RandomHashMaxVioStd">Standard deviation of that MaxVio over the random tables.</param>
/// <param name="TableIdsPerExpert">Hash layers: how many vocabulary ids the table sends to each expert (the balance under uniform token frequencies); empty for learned layers.</param>
public sealed record HashLayerBalance(int Layer, bool HashRouted, long Tokens, double MaxVio, double ImpliedMaxVio, double RandomHashMaxVio,
    double RandomHashMaxVioStd, long[] TableIdsPerExpert);

/// <summary>
/// Hash-routed MoE layers (DeepSeek-V4, the first <c>num_hash_layers</c> MoE layers; Roller et al. 2021 "Hash Layers For
/// Large Sparse Models"): experts = tid2eid[token id], so usage by token id is a table lookup and the load on a dataset is
/// fixed by its token frequencies. The gate still scores every expert (the routing weights are the chosen experts'
/// scores), so a routing entropy on such a layer measures the spread of scores that did not choose — the selection's
/// entropy given the token id is 0.
/// </summary>
public static class HashRouting
{
    /// <summary>The hash table tid2eid [vocab, k] of MoE block <paramref name="layer"/>.</summary>
    /// <exception cref="ArgumentException">The layer is not hash-routed (the message names the hash layers).</exception>
    public static long[,] Table(DeepSeekModel model, int layer)
    {
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        if (layer < 0 || layer >= c.NumHiddenLayers || !c.IsHashLayer(layer))
            throw new ArgumentException($"block {layer} is not hash-routed: this model's hash-routed blocks are " +
                (c.NumHashLayers == 0 ? "none (num_hash_layers = 0)" : string.Join(", ", Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsHashLayer))), nameof(layer));
        using var scope = NewDisposeScope();
        var t = model.Layers[layer].Moe!.Gate.HashTable!.to(ScalarType.Int64).cpu().contiguous();
        int v = (int)t.shape[0], k = (int)t.shape[1];
        var flat = t.data<long>().ToArray();
        var table = new long[v, k];
        Buffer.BlockCopy(flat, 0, table, 0, flat.Length * sizeof(long));
        return table;
    }

    /// <summary>
    /// Usage by token id: the expert counts a hash table implies for token-id counts, count[e] = Σ_t n_t · [e ∈ table[t]]
    /// (each occurrence of t uses each of its k experts once).
    /// </summary>
    /// <exception cref="ArgumentException">A token id outside the table, a negative count, or a table entry outside [0, experts).</exception>
    public static long[] ExpertCounts(long[,] table, IReadOnlyDictionary<long, long> tokenCounts, int experts)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(tokenCounts);
        int v = table.GetLength(0), k = table.GetLength(1);
        var counts = new long[experts];
        foreach (var (id, n) in tokenCounts)
        {
            if (id < 0 || id >= v) throw new ArgumentException($"token id {id} is outside the hash table's {v} rows", nameof(tokenCounts));
            if (n < 0) throw new ArgumentException($"token id {id} has a negative count {n}", nameof(tokenCounts));
            for (int j = 0; j < k; j++)
            {
                long e = table[id, j];
                if (e < 0 || e >= experts) throw new ArgumentException($"table[{id}, {j}] = {e} is not an expert id in [0, {experts})", nameof(table));
                counts[e] += n;
            }
        }
        return counts;
    }

    /// <summary>
    /// Balance of every MoE layer the accumulator saw (it must track the vocabulary): observed MaxVio; for hash layers
    /// the MaxVio the table implies from the token-id counts and the table's ids per expert; for every layer the
    /// MaxVio <paramref name="randomTables"/> random hash tables (seeded) would reach on the same tokens.
    /// </summary>
    /// <exception cref="ArgumentException">The accumulator keeps no token-id counts, or randomTables &lt; 1.</exception>
    public static IReadOnlyList<HashLayerBalance> Balance(DeepSeekModel model, ExpertRoutingAccumulator accumulator, int randomTables = 200, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(accumulator);
        if (!accumulator.TrackVocabulary)
            throw new ArgumentException("the accumulator keeps no token-id counts: create it with trackVocabulary: true", nameof(accumulator));
        if (randomTables < 1) throw new ArgumentException($"randomTables must be at least 1, got {randomTables}", nameof(randomTables));
        var c = model.Config;
        var rows = new List<HashLayerBalance>();
        foreach (int layer in accumulator.Layers)
        {
            var tokens = accumulator.TokenOccurrences(layer);
            var observed = accumulator.ExpertLoads(layer).Select(l => l.Count).ToArray();
            double implied = double.NaN;
            long[] perExpert = Array.Empty<long>();
            bool hash = c.IsHashLayer(layer);
            if (hash)
            {
                var table = Table(model, layer);
                implied = Statistics.Balance.MaxVio(ExpertCounts(table, tokens, accumulator.Experts));
                perExpert = new long[accumulator.Experts];
                for (int t = 0; t < table.GetLength(0); t++) for (int j = 0; j < table.GetLength(1); j++) perExpert[table[t, j]]++;
            }
            var (mean, std) = RandomHashMaxVio(tokens, accumulator.Experts, accumulator.TopK, randomTables, seed + layer);
            rows.Add(new HashLayerBalance(layer, hash, accumulator.Tokens(layer), Statistics.Balance.MaxVio(observed), implied, mean, std, perExpert));
        }
        return rows;
    }

    /// <summary>Mean and standard deviation of MaxVio over random hash tables (k distinct experts per id, uniform) on token-id counts.</summary>
    internal static (double Mean, double Std) RandomHashMaxVio(IReadOnlyDictionary<long, long> tokenCounts, int experts, int k, int tables, int seed)
    {
        var rng = new Random(seed);
        var moments = new RunningMoments();
        var ids = tokenCounts.OrderBy(p => p.Key).ToArray();                     // a fixed order: the result depends on the seed only
        var pick = Enumerable.Range(0, experts).ToArray();
        for (int r = 0; r < tables; r++)
        {
            var counts = new long[experts];
            foreach (var (_, n) in ids)
            {
                for (int j = 0; j < k; j++) { int s = j + rng.Next(experts - j); (pick[j], pick[s]) = (pick[s], pick[j]); }   // partial Fisher–Yates
                for (int j = 0; j < k; j++) counts[pick[j]] += n;
            }
            moments.Add(Statistics.Balance.MaxVio(counts));
        }
        return (moments.Mean, moments.Count > 1 ? moments.StandardDeviation : 0);
    }

    /// <summary>The balance rows as a DataFrame (layer, hash_routed, tokens, max_vio, implied_max_vio, random_hash_max_vio, random_hash_max_vio_std).</summary>
    public static DataFrame ToDataFrame(IReadOnlyList<HashLayerBalance> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Bool("hash_routed", rows, r => r.HashRouted), Frames.Long("tokens", rows, r => r.Tokens),
        Frames.Double("max_vio", rows, r => r.MaxVio), Frames.Double("implied_max_vio", rows, r => r.ImpliedMaxVio),
        Frames.Double("random_hash_max_vio", rows, r => r.RandomHashMaxVio), Frames.Double("random_hash_max_vio_std", rows, r => r.RandomHashMaxVioStd));
}
