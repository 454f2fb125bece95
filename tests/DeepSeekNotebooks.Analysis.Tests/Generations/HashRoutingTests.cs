using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests.Generations;

/// <summary>Expert diagnostics on DeepSeek-V4 hash-routed layers (golden V4 model: block 0 routes by tid2eid, blocks 1–3 by score).</summary>
public class HashRoutingTests
{
    // A skewed dataset: token 45 is a quarter of all tokens, so a hash must overload its two experts.
    private static IReadOnlyList<long[]> Dataset()
    {
        var rng = new Random(11);
        return Enumerable.Range(0, 6).Select(_ => Enumerable.Range(0, 20).Select(i => i % 4 == 0 ? 45L : rng.Next(0, 512)).ToArray()).ToArray();
    }

    [Fact]
    public void HashLayerUsage_EqualsADirectCountOverTid2eidOfTheIds()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        var data = Dataset();
        var acc = new ExpertRoutingAccumulator(model.Config);
        DatasetRunner.Run(model, data, new IDatasetAccumulator[] { acc });
        Assert.Equal(new[] { 0, 1, 2, 3 }, acc.Layers);

        // Independent count: read the table from the checkpoint tensor and count tid2eid[id] over every token.
        using var scope = NewDisposeScope();
        var tid2eid = model.Layers[0].Moe!.Gate.HashTable!.to(int64);
        var direct = new long[8];
        foreach (var seq in data) foreach (var id in seq) for (int j = 0; j < 2; j++) direct[tid2eid[id, j].item<long>()]++;
        Assert.Equal(direct, acc.ExpertLoads(0).Select(l => l.Count).ToArray());
        Assert.Equal(direct, HashRouting.ExpertCounts(HashRouting.Table(model, 0), acc.TokenOccurrences(0), 8));

        // Token 45 always goes to its two table experts at the hash layer (usage by token id is the table row).
        var spec = acc.VocabularySpecialisation(0, topTokens: 50).Where(v => v.TokenId == 45).ToArray();
        Assert.Equal(new[] { tid2eid[45, 0].item<long>(), tid2eid[45, 1].item<long>() }.Order(), spec.Where(v => v.Fraction == 1).Select(v => (long)v.Expert).Order());
    }

    [Fact]
    public void Balance_HashLayer_ImpliedEqualsObserved_AndSkewedTokensForceImbalanceOnAnyHash()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        var acc = new ExpertRoutingAccumulator(model.Config);
        DatasetRunner.Run(model, Dataset(), new IDatasetAccumulator[] { acc });
        var rows = HashRouting.Balance(model, acc, randomTables: 300, seed: 1);
        Assert.Equal(new[] { true, false, false, false }, rows.Select(r => r.HashRouted));
        var hash = rows[0];
        Assert.Equal(hash.MaxVio, hash.ImpliedMaxVio, 12);
        Assert.Equal(512 * 2, hash.TableIdsPerExpert.Sum());
        Assert.All(rows.Skip(1), r => { Assert.True(double.IsNaN(r.ImpliedMaxVio)); Assert.Empty(r.TableIdsPerExpert); });
        // A quarter of the 120 tokens are id 45: its two experts get its 30 occurrences plus about 90·2/8 ≈ 22 of the rest,
        // ≈ 52 against a mean load of 240/8 = 30, so a uniform random hash has MaxVio ≈ 0.75 on this data (the golden table, any table: ≥ 0).
        Assert.True(hash.MaxVio >= 0);
        Assert.True(hash.RandomHashMaxVio > 0.3, $"random-hash MaxVio {hash.RandomHashMaxVio}");
        Assert.True(hash.RandomHashMaxVioStd > 0);
        // Same tokens at every layer: the random-hash reference depends on the token counts only (and the seed).
        Assert.Equal(120, rows[1].Tokens);
        var again = HashRouting.Balance(model, acc, randomTables: 300, seed: 1);
        Assert.Equal(rows.Select(r => r.RandomHashMaxVio), again.Select(r => r.RandomHashMaxVio));
        Assert.Equal(4, HashRouting.ToDataFrame(rows).Rows.Count);
    }

    [Fact]
    public void RandomHashMaxVio_OfOneTokenId_IsTheHandComputedValue()
    {
        // One id, n occurrences, E = 8, k = 2: two experts get n, six get 0 → mean n/4, MaxVio = n / (n/4) − 1 = 3 for every table.
        var (mean, std) = HashRouting.RandomHashMaxVio(new Dictionary<long, long> { [7] = 10 }, 8, 2, 50, 0);
        Assert.Equal(3.0, mean, 12);
        Assert.Equal(0.0, std, 12);
    }

    [Fact]
    public void Table_OfALearnedLayer_NamesTheHashLayers()
    {
        using var ckpt = GenerationModels.LoadV4();
        var e = Assert.Throws<ArgumentException>(() => HashRouting.Table(ckpt.Model, 2));
        Assert.Contains("hash-routed blocks are 0", e.Message);
        var bad = Assert.Throws<ArgumentException>(() => HashRouting.ExpertCounts(new long[,] { { 0, 9 } }, new Dictionary<long, long> { [0] = 1 }, 8));
        Assert.Contains("table[0, 1] = 9", bad.Message);
    }

    [Fact]
    public void HashLayer_StillHasGateScores_SoRoutingEntropyIsDefined()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        var acc = new ExpertRoutingAccumulator(model.Config);
        DatasetRunner.Run(model, Dataset().Take(2), new IDatasetAccumulator[] { acc });
        var s = acc.Summary(0);
        Assert.InRange(s.MeanRoutingEntropy, 0.5, 1.0);               // sqrt(softplus) scores of a random gate: spread, not chosen
        using var scope = NewDisposeScope();
        using var trace = model.RunWithCache(tensor(Dataset()[0], dtype: int64).unsqueeze(0), new TraceOptions { Names = new[] { HookPoints.HashIds(0), HookPoints.ExpertIndices(0) } });
        Assert.True(trace[HookPoints.HashIds(0)].to(int64).eq(trace[HookPoints.ExpertIndices(0)].to(int64)).all().item<bool>());
    }
}
