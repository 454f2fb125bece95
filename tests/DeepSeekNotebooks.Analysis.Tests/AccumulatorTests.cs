using DeepSeekNotebooks.Analysis.Attention.Diagnostics;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>The golden tiny checkpoint (vocab 512, 3 layers, layers 1–2 MoE with 8 experts, top-2), loaded once per test class.</summary>
public sealed class GoldenModel : IDisposable
{
    public static readonly long[] Seq0 = { 303, 211, 294, 53, 204, 372, 152, 505, 143, 177, 279, 233 };
    public static readonly long[] Seq1 = { 154, 30, 171, 158, 236, 380, 282, 374, 442, 120, 368, 476 };

    public GoldenModel() => Checkpoint = Checkpoint.Load(Path.Combine(RepoRoot(), "data", "checkpoints", "golden-tiny-hf"));

    public Checkpoint Checkpoint { get; }
    public Model.DeepSeekModel Model => Checkpoint.Model;

    /// <summary>Deterministic pseudo-random sequences of the given lengths.</summary>
    public static long[][] Random(int count, int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => (long)rng.Next(512)).ToArray()).ToArray();
    }

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DeepSeekNotebooks.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException($"No DeepSeekNotebooks.sln above {AppContext.BaseDirectory}.");
    }

    public void Dispose() => Checkpoint.Dispose();
}

public sealed class AccumulatorTests(GoldenModel golden) : IClassFixture<GoldenModel>
{
    [Fact]
    public void RunningMomentsMergedEqualsSinglePass()
    {
        var rng = new Random(1);
        var values = Enumerable.Range(0, 1000).Select(_ => rng.NextDouble() * 100 - 30).ToArray();
        var single = new RunningMoments();
        foreach (var v in values) single.Add(v);
        var a = new RunningMoments(); var b = new RunningMoments(); var c = new RunningMoments();
        foreach (var v in values[..10]) a.Add(v);
        foreach (var v in values[10..700]) b.Add(v);
        foreach (var v in values[700..]) c.Add(v);
        a.Merge(b); a.Merge(c); a.Merge(new RunningMoments());
        Assert.Equal(single.Count, a.Count);
        Assert.Equal(single.Mean, a.Mean, 1e-9);
        Assert.Equal(single.Variance, a.Variance, 1e-9);
        Assert.Equal(single.Min, a.Min);
        Assert.Equal(single.Max, a.Max);
        double mean = values.Average();
        Assert.Equal(mean, single.Mean, 1e-9);
        Assert.Equal(values.Sum(v => (v - mean) * (v - mean)) / values.Length, single.Variance, 1e-7);
    }

    [Fact]
    public void MergedRunsEqualSinglePassOnTheGoldenModel()
    {
        var model = golden.Model;
        var data = GoldenModel.Random(6, 10, 7).Select((s, i) => (s, (string?)(i % 2 == 0 ? "code" : "prose"))).ToArray();
        var allE = new ExpertRoutingAccumulator(model.Config);
        var allA = new AttentionHeadAccumulator(tokenText: id => id % 3 == 0 ? "." : id % 3 == 1 ? "7" : "ab");
        DatasetRunner.Run(model, data, new IDatasetAccumulator[] { allE, allA });
        var e1 = new ExpertRoutingAccumulator(model.Config); var a1 = new AttentionHeadAccumulator(tokenText: id => id % 3 == 0 ? "." : id % 3 == 1 ? "7" : "ab");
        var e2 = new ExpertRoutingAccumulator(model.Config); var a2 = new AttentionHeadAccumulator(tokenText: id => id % 3 == 0 ? "." : id % 3 == 1 ? "7" : "ab");
        DatasetRunner.Run(model, data[..2], new IDatasetAccumulator[] { e1, a1 });
        DatasetRunner.Run(model, data[2..], new IDatasetAccumulator[] { e2, a2 });
        e1.Merge(e2); a1.Merge(a2);
        foreach (var layer in allE.Layers)
        {
            Assert.Equal(allE.ExpertLoads(layer).Select(l => l.Count), e1.ExpertLoads(layer).Select(l => l.Count));
            Assert.Equal(allE.ExpertLoads(layer).Select(l => l.Top1Count), e1.ExpertLoads(layer).Select(l => l.Top1Count));
            Assert.Equal(allE.CoActivation(layer), e1.CoActivation(layer));
            Assert.Equal(allE.Repetition(layer), e1.Repetition(layer));
            Assert.Equal(allE.DomainLoads(layer).Select(d => d.Count), e1.DomainLoads(layer).Select(d => d.Count));
            Assert.Equal(allE.VocabularySpecialisation(layer, 3), e1.VocabularySpecialisation(layer, 3));
            var s = allE.Summary(layer); var m = e1.Summary(layer);
            Assert.Equal(s.MeanRoutingEntropy, m.MeanRoutingEntropy, 1e-9);
            Assert.Equal(s.StdRoutingEntropy, m.StdRoutingEntropy, 1e-9);
            Assert.Equal(s.MeanTop1Margin, m.MeanTop1Margin, 1e-9);
            foreach (var (x, y) in allE.ExpertLoads(layer).Zip(e1.ExpertLoads(layer))) Assert.Equal(x.WeightSum, y.WeightSum, 1e-9);
        }
        foreach (var (x, y) in allA.Heads().Zip(a1.Heads()))
        {
            Assert.Equal(x.Queries, y.Queries);
            Assert.Equal(x.MeanEntropy, y.MeanEntropy, 1e-9);
            Assert.Equal(x.SinkScore, y.SinkScore, 1e-9);
            Assert.Equal(x.SinkQueryRate, y.SinkQueryRate);
            Assert.Equal(x.BoundaryMass, y.BoundaryMass, 1e-9);
            for (int b = 0; b < x.DistanceProfile.Length; b++) Assert.Equal(x.DistanceProfile[b], y.DistanceProfile[b], 1e-9);
        }
        Assert.Equal(allA.ClassProfile().Count, a1.ClassProfile().Count);
        foreach (var (x, y) in allA.ClassProfile().Zip(a1.ClassProfile())) Assert.Equal(x.Mass, y.Mass, 1e-9);
    }

    [Fact]
    public void RunnerReportsProgressAndHonoursCancellation()
    {
        var model = golden.Model;
        var seqs = GoldenModel.Random(3, 5, 3);
        var reports = new List<DatasetProgress>();
        var acc = new ExpertRoutingAccumulator(model.Config);
        int n = DatasetRunner.Run(model, seqs, new IDatasetAccumulator[] { acc }, new SyncProgress<DatasetProgress>(reports.Add));
        Assert.Equal(3, n);
        Assert.Equal(new[] { 1, 2, 3 }, reports.Select(r => r.SequencesDone));
        Assert.Equal(15, reports[^1].TokensDone);
        Assert.Equal(3, reports[^1].TotalSequences);

        using var cts = new CancellationTokenSource();
        var partial = new ExpertRoutingAccumulator(model.Config);
        Assert.Throws<OperationCanceledException>(() => DatasetRunner.Run(model, seqs, new IDatasetAccumulator[] { partial },
            new SyncProgress<DatasetProgress>(p => { if (p.SequencesDone == 1) cts.Cancel(); }), cts.Token));
        Assert.Equal(5, partial.Tokens(model.Config.FirstKDenseReplace));
    }

    [Fact]
    public void BadDatasetInputsThrowArgumentException()
    {
        var model = golden.Model;
        var acc = new ExpertRoutingAccumulator(model.Config);
        Assert.Throws<ArgumentException>(() => DatasetRunner.Run(model, new[] { Array.Empty<long>() }, new IDatasetAccumulator[] { acc }));
        Assert.Throws<ArgumentException>(() => DatasetRunner.Run(model, new[] { new long[] { 1, 2 } }, Array.Empty<IDatasetAccumulator>()));
        var empty = Assert.Throws<ArgumentException>(() => DatasetRunner.Run(model, Array.Empty<long[]>(), new IDatasetAccumulator[] { acc }));
        Assert.Contains("dataset is empty", empty.Message);
        Assert.Throws<ArgumentException>(() => DatasetRunner.Run(model, new[] { new long[] { 1, 600 } }, new IDatasetAccumulator[] { acc })); // id ≥ vocab
        // Nothing observed: asking for a layer's statistics says so.
        var ex = Assert.Throws<ArgumentException>(() => acc.Summary(1));
        Assert.Contains("no routing observed", ex.Message);
        Assert.Throws<InvalidOperationException>(() => new AttentionHeadAccumulator().Heads());
        Assert.Throws<ArgumentException>(() => new RunningMoments().Add(double.NaN));
        Assert.Throws<ArgumentException>(() => acc.Merge(new ExpertRoutingAccumulator(4, 2)));
    }

    /// <summary>IProgress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
