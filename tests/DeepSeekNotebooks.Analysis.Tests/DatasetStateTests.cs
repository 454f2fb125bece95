using DeepSeekNotebooks.Analysis.Attention.Diagnostics;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// Saved accumulator states (<see cref="DatasetState"/>): three shards (line k → shard k mod 3) collected, saved, loaded and
/// merged equal one pass over everything (counts exactly, moments ≤ 1e-9 relative); save/load round-trips; states of
/// different models, datasets, analyses or splits are refused naming the difference.
/// </summary>
public sealed class DatasetStateTests(GoldenModel golden) : IClassFixture<GoldenModel>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dsn-state-").FullName;
    private static readonly StateProvenance Prov = new(new string('a', 64), "golden-tiny-hf", new string('b', 64), 3);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (long[] Ids, string? Domain)[] Dataset()
    {
        var seqs = GoldenModel.Random(10, 9, seed: 12);
        // Lengths vary (1-token sequences included: no attention query, no consecutive pair); some lines unlabelled.
        return seqs.Select((s, i) => (s[..(1 + i % 9)], i % 4 == 3 ? null : (string?)(i % 2 == 0 ? "code" : "math"))).ToArray();
    }

    private static string TokenText(long id) => id % 7 == 0 ? "." : id % 3 == 0 ? " 12" : " word";

    private DatasetState Collect(IEnumerable<(long[] Ids, string? Domain)> data, IEnumerable<int> shards)
    {
        var routing = new ExpertRoutingAccumulator(golden.Model.Config);
        var heads = new AttentionHeadAccumulator(tokenText: TokenText);
        DatasetRunner.Run(golden.Model, data, [routing, heads]);
        return new DatasetState(Prov, shards, routing, heads);
    }

    private static void AssertRel(double expected, double actual, string what)
    {
        if (double.IsNaN(expected)) { Assert.True(double.IsNaN(actual), $"{what}: expected NaN, got {actual}"); return; }
        double tol = 1e-9 * Math.Max(Math.Abs(expected), 1e-300);
        Assert.True(Math.Abs(expected - actual) <= tol || expected == actual, $"{what}: expected {expected:R}, got {actual:R}");
    }

    /// <summary>Every statistic the two states report, compared: integer counts exactly, moments 1e-9 relative.</summary>
    internal static void AssertSameStatistics(DatasetState expected, DatasetState actual)
    {
        var (er, ar) = (expected.Routing!, actual.Routing!);
        Assert.Equal(er.Layers, ar.Layers);
        foreach (int l in er.Layers)
        {
            Assert.Equal(er.Tokens(l), ar.Tokens(l));
            Assert.Equal(er.ExpertLoads(l).Select(x => (x.Count, x.Top1Count)), ar.ExpertLoads(l).Select(x => (x.Count, x.Top1Count)));
            foreach (var (x, y) in er.ExpertLoads(l).Zip(ar.ExpertLoads(l))) AssertRel(x.WeightSum, y.WeightSum, $"layer {l} expert {x.Expert} weight sum");
            Assert.Equal(er.CoActivation(l), ar.CoActivation(l));
            var (ed, ec) = er.DomainTop1Counts(l); var (ad, ac) = ar.DomainTop1Counts(l);
            Assert.Equal(ed, ad); Assert.Equal(ec, ac);
            Assert.Equal(er.DomainLoads(l).Select(x => (x.Domain, x.Count, x.DomainTokens)), ar.DomainLoads(l).Select(x => (x.Domain, x.Count, x.DomainTokens)));
            Assert.Equal(er.VocabularySpecialisation(l, 1000), ar.VocabularySpecialisation(l, 1000));
            var (es, @as) = (er.Summary(l), ar.Summary(l));
            Assert.Equal((es.Repetition.Pairs, es.DeadExperts), (@as.Repetition.Pairs, @as.DeadExperts));
            AssertRel(es.Repetition.Top1Repeat, @as.Repetition.Top1Repeat, "top-1 repeat");
            AssertRel(es.MeanRoutingEntropy, @as.MeanRoutingEntropy, $"layer {l} mean routing entropy");
            AssertRel(es.StdRoutingEntropy, @as.StdRoutingEntropy, $"layer {l} std routing entropy");
            AssertRel(es.MeanTop1Margin, @as.MeanTop1Margin, $"layer {l} mean margin");
            AssertRel(es.StdTop1Margin, @as.StdTop1Margin, $"layer {l} std margin");
        }
        var (eh, ah) = (expected.Heads!.Heads(), actual.Heads!.Heads());
        Assert.Equal(eh.Select(h => (h.Layer, h.Head, h.Queries, h.IsSink)), ah.Select(h => (h.Layer, h.Head, h.Queries, h.IsSink)));
        foreach (var (x, y) in eh.Zip(ah))
        {
            string at = $"layer {x.Layer} head {x.Head}";
            AssertRel(x.MeanEntropy, y.MeanEntropy, at + " entropy"); AssertRel(x.StdEntropy, y.StdEntropy, at + " entropy std");
            AssertRel(x.SinkScore, y.SinkScore, at + " sink"); AssertRel(x.SinkQueryRate, y.SinkQueryRate, at + " sink rate");
            AssertRel(x.MeanMaxAttention, y.MeanMaxAttention, at + " max attention");
            AssertRel(x.BoundaryMass, y.BoundaryMass, at + " boundary"); AssertRel(x.BoundaryBaseline, y.BoundaryBaseline, at + " boundary baseline");
            for (int b = 0; b < x.DistanceProfile.Length; b++) AssertRel(x.DistanceProfile[b], y.DistanceProfile[b], $"{at} distance bin {b}");
        }
        var (ecp, acp) = (expected.Heads.ClassProfile(), actual.Heads.ClassProfile());
        Assert.Equal(ecp.Select(c => (c.Layer, c.Head, c.QueryClass, c.KeyClass, c.Queries)), acp.Select(c => (c.Layer, c.Head, c.QueryClass, c.KeyClass, c.Queries)));
        foreach (var (x, y) in ecp.Zip(acp)) { AssertRel(x.Mass, y.Mass, "class mass"); AssertRel(x.Baseline, y.Baseline, "class baseline"); }
    }

    [Fact]
    public void ThreeSavedShardsMergedEqualOnePass()
    {
        var data = Dataset();
        var whole = Collect(data, [0, 1, 2]);
        var paths = Enumerable.Range(0, 3).Select(i =>
        {
            var path = Path.Combine(_dir, $"shard{i}.safetensors");
            Collect(data.Where((_, k) => k % 3 == i), [i]).Save(path);
            return path;
        }).ToArray();
        var merged = DatasetState.Load(paths[2]);
        Assert.False(merged.IsComplete);
        merged.Merge(DatasetState.Load(paths[0]));
        merged.Merge(DatasetState.Load(paths[1]));
        Assert.True(merged.IsComplete);
        Assert.Equal([0, 1, 2], merged.Shards);
        AssertSameStatistics(whole, merged);
        // Independent check of one count: layer 1 routes top-2 of every token of the dataset.
        Assert.Equal(data.Sum(d => d.Ids.Length), merged.Routing!.Tokens(1));
        Assert.Equal(2L * data.Sum(d => d.Ids.Length), merged.Routing.ExpertLoads(1).Sum(x => x.Count));
    }

    [Fact]
    public void SaveLoadRoundTripsEveryStatistic()
    {
        var state = Collect(Dataset(), [0, 1, 2]);
        var path = Path.Combine(_dir, "all.safetensors");
        state.Save(path);
        var back = DatasetState.Load(path);
        Assert.Equal(state.Provenance, back.Provenance);
        Assert.Equal(state.Shards, back.Shards);
        Assert.Equal(state.Routing!.TrackVocabulary, back.Routing!.TrackVocabulary);
        Assert.Equal(state.Heads!.DistanceBinStarts, back.Heads!.DistanceBinStarts);
        AssertSameStatistics(state, back);
        // Saving the loaded state reproduces the file byte for byte.
        var again = Path.Combine(_dir, "again.safetensors");
        back.Save(again);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(again));
    }

    private static DatasetState Tiny(StateProvenance prov, int shard, bool heads = true, bool routing = true)
    {
        ExpertRoutingAccumulator? r = routing ? new ExpertRoutingAccumulator(4, 2) : null;
        r?.ObserveRouting(1, [5, 6], [0, 1, 2, 3], [0.5f, 0.5f, 0.6f, 0.4f], []);
        AttentionHeadAccumulator? h = heads ? new AttentionHeadAccumulator() : null;
        h?.ObservePattern(0, 1, [5, 6], [1, 0, 0.5f, 0.5f]);
        return new DatasetState(prov, [shard], r, h);
    }

    [Fact]
    public void MergeRefusesDifferentModelDatasetAnalysisSplitOrRepeatedShard()
    {
        var mine = Tiny(Prov, 0);
        string Refusal(DatasetState other) => Assert.Throws<ArgumentException>(() => mine.Merge(other)).Message;
        Assert.Contains("different models", Refusal(Tiny(Prov with { ConfigHash = new string('c', 64) }, 1)));
        Assert.Contains("different checkpoints: 'golden-tiny-hf' vs 'other'", Refusal(Tiny(Prov with { Checkpoint = "other" }, 1)));
        Assert.Contains("different datasets", Refusal(Tiny(Prov with { DatasetHash = new string('d', 64) }, 1)));
        Assert.Contains("different analyses: [expert_routing,attention_heads] vs [expert_routing]", Refusal(Tiny(Prov, 1, heads: false)));
        Assert.Contains("3 shards vs 4 shards", Refusal(Tiny(Prov with { ShardCount = 4 }, 1)));
        Assert.Contains("shard 0/3 is in both states", Refusal(Tiny(Prov, 0)));
        // Nothing was folded in by the refused merges.
        Assert.Equal(2, mine.Routing!.Tokens(1));
        Assert.Equal([0], mine.Shards);
        mine.Merge(Tiny(Prov, 2));
        Assert.Equal(4, mine.Routing.Tokens(1));
    }

    [Fact]
    public void LoadRefusesAFileThatIsNotAState()
    {
        var path = Path.Combine(_dir, "weights.safetensors");
        new Model.Checkpoints.SafetensorsWriter().AddFloat32("w", [2], new float[] { 1, 2 }).WriteTo(path);
        var e = Assert.Throws<InvalidDataException>(() => DatasetState.Load(path));
        Assert.Contains("is not a dataset state", e.Message);
        Assert.Contains("collect", e.Message);
    }
}
