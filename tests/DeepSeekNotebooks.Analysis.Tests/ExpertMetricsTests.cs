using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

public sealed class ExpertMetricsTests(GoldenModel golden) : IClassFixture<GoldenModel>
{
    [Fact]
    public void FrequenciesSumToTopKTimesTokensOnTheGoldenModel()
    {
        var model = golden.Model;
        var acc = new ExpertRoutingAccumulator(model.Config);
        DatasetRunner.Run(model, new[] { (GoldenModel.Seq0, (string?)"a"), (GoldenModel.Seq1, "b") }, new IDatasetAccumulator[] { acc });
        Assert.Equal(new[] { 1, 2 }, acc.Layers);
        foreach (var layer in acc.Layers)
        {
            var loads = acc.ExpertLoads(layer);
            Assert.Equal(2 * 24, loads.Sum(l => l.Count));
            Assert.Equal(2.0, loads.Sum(l => l.Frequency), 1e-12);
            Assert.Equal(24, loads.Sum(l => l.Top1Count));
            Assert.Equal(24, acc.Tokens(layer));
            Assert.Equal(loads.Count(l => l.Dead), acc.DeadExperts(layer).Count);
            Assert.Equal(8.0, loads.Sum(l => l.RelativeLoad), 1e-9);
            var co = acc.CoActivation(layer);
            for (int e = 0; e < 8; e++)
            {
                Assert.Equal(loads[e].Count, co[e, e]);
                // top-2: each selection of e pairs with exactly one other expert.
                Assert.Equal(loads[e].Count, Enumerable.Range(0, 8).Where(f => f != e).Sum(f => co[e, f]));
            }
            var domains = acc.DomainLoads(layer);
            Assert.Equal(16, domains.Count);
            Assert.All(domains.GroupBy(d => d.Domain), g => Assert.Equal(8.0, g.Sum(d => d.RelativeLoad), 1e-9));
            var s = acc.Summary(layer);
            Assert.Equal(22, s.Repetition.Pairs);
            Assert.InRange(s.MeanRoutingEntropy, 0, 1);
            Assert.InRange(s.Repetition.AnySharedBaseline, s.Repetition.Top1Baseline, 1);
            var vocab = acc.VocabularySpecialisation(layer, topTokens: 2);
            Assert.All(vocab, v => Assert.InRange(v.Fraction, 0, 1));
        }
        Assert.Equal(9, acc.ToDataFrame().Columns.Count);
        Assert.Equal(16, acc.ToDataFrame().Rows.Count);
    }

    [Fact]
    public void PerTokenDecisionsMatchTheTrace()
    {
        var model = golden.Model;
        using var trace = model.RunWithCache(tensor(GoldenModel.Seq0.Concat(GoldenModel.Seq1).ToArray()).reshape(2, 12));
        var rows = TokenRouting.Decisions(trace, 1, new[] { GoldenModel.Seq0, GoldenModel.Seq1 });
        Assert.Equal(24, rows.Count);
        Assert.Equal(GoldenModel.Seq1[3], rows[15].TokenId);
        Assert.Equal((1, 3), (rows[15].Batch, rows[15].Position));
        Assert.Equal(trace.ExpertIndices(1)[15].data<long>().ToArray().Select(x => (int)x), rows[15].Routing.Experts);
        Assert.All(rows, r => { Assert.InRange(r.Entropy, 0, 1); Assert.True(r.Top1Margin >= 0); });
        Assert.Equal(24, TokenRouting.ToDataFrame(rows).Rows.Count);
        Assert.Equal(36, TokenRouting.CoActivationFrame(new long[8, 8]).Rows.Count);
        Assert.Throws<ArgumentException>(() => TokenRouting.Decisions(trace, 0, new[] { GoldenModel.Seq0, GoldenModel.Seq1 }));
        Assert.Throws<ArgumentException>(() => TokenRouting.Decisions(trace, 1, new[] { GoldenModel.Seq0 }));
    }

    [Fact]
    public void LoadBalanceMetricsOnAHandExample()
    {
        var m = ExpertMetrics.LoadBalance(new long[] { 4, 0, 2, 2 });
        Assert.Equal(2, m.MeanLoad);
        Assert.Equal(Math.Sqrt(2) / 2, m.CoefficientOfVariation, 1e-12);
        Assert.Equal(1.0, m.MaxVio, 1e-12);
        Assert.Equal(0.75, m.NormalisedEntropy, 1e-12); // H = 1.5 ln 2, / ln 4
        var balanced = ExpertMetrics.LoadBalance(new long[] { 3, 3, 3 });
        Assert.Equal(0, balanced.CoefficientOfVariation);
        Assert.Equal(0, balanced.MaxVio);
        Assert.Equal(1, balanced.NormalisedEntropy, 12);
        Assert.Throws<ArgumentException>(() => ExpertMetrics.LoadBalance(Array.Empty<long>()));
    }

    [Fact]
    public void RepetitionAndItsBaselineOnAHandExample()
    {
        // 4 experts, top-1; sequence routes to 0,0,1,0,2 → pairs (0,0),(0,1),(1,0),(0,2): 1 of 4 repeat.
        var acc = new ExpertRoutingAccumulator(4, 1, trackVocabulary: false);
        acc.ObserveRouting(1, new long[] { 5, 6, 7, 8, 9 }, new long[] { 0, 0, 1, 0, 2 }, new float[] { 1, 1, 1, 1, 1 }, Array.Empty<float>());
        var r = acc.Repetition(1);
        Assert.Equal(4, r.Pairs);
        Assert.Equal(0.25, r.Top1Repeat);
        Assert.Equal(0.6 * 0.6 + 0.2 * 0.2 + 0.2 * 0.2, r.Top1Baseline, 12);
        Assert.Equal(r.Top1Baseline, r.AnySharedBaseline, 12); // k = 1: sharing one = same top-1

        // Uniform top-2 of 8 (Mixtral Table 5's random baseline): 1 − C(6,2)/C(8,2) = 13/28.
        var co = new long[8, 8];
        for (int e = 0; e < 8; e++) for (int f = 0; f < 8; f++) co[e, f] = e == f ? 7 : 1; // 28 tokens, one per pair
        Assert.Equal(13.0 / 28, ExpertMetrics.AnySharedRepetitionBaseline(co, 28), 12);
        Assert.Equal(0.125, ExpertMetrics.Top1RepetitionBaseline(Enumerable.Repeat(1.0, 8).ToArray()), 12);

        // Top-2 hand sequence: {0,1},{1,2},{2,3} → both pairs share one expert; top-1 0,1,2 never repeats.
        var k2 = new ExpertRoutingAccumulator(4, 2);
        k2.ObserveRouting(1, new long[] { 1, 2, 3 }, new long[] { 0, 1, 1, 2, 2, 3 }, new float[] { .6f, .4f, .6f, .4f, .6f, .4f }, Array.Empty<float>());
        var r2 = k2.Repetition(1);
        Assert.Equal(1.0, r2.AnySharedRepeat);
        Assert.Equal(0.0, r2.Top1Repeat);
        // π = (1/3, 2/3, 2/3, 1/3); pairs {0,1},{1,2},{2,3} each 1/3: Σπ² − Σπ_ef² = 10/9 − 3/9.
        Assert.Equal(7.0 / 9, r2.AnySharedBaseline, 12);
        Assert.Throws<ArgumentException>(() => k2.ObserveRouting(1, new long[] { 1 }, new long[] { 0, 9 }, new float[] { 1, 1 }, Array.Empty<float>()));
    }

    [Fact]
    public void DisablingAnExpertRemovesItAndChangesTheLoss()
    {
        var model = golden.Model;
        const int layer = 1;
        using var plain = model.RunWithCache(tensor(GoldenModel.Seq0).unsqueeze(0));
        int victim = (int)plain.ExpertIndices(layer)[0, 0].item<long>();
        var hooks = new Dictionary<string, HookFunction> { [HookPoints.SelectionScores(layer)] = ExpertAblation.DisableExpertsHook(new[] { victim }) };
        using var ablated = model.RunWithCache(tensor(GoldenModel.Seq0).unsqueeze(0), new TraceOptions { Hooks = hooks });
        Assert.False(ablated.ExpertIndices(layer).eq(victim).any().item<bool>());
        Assert.True(plain.ExpertIndices(layer).eq(victim).any().item<bool>());

        var seqs = new[] { GoldenModel.Seq0, GoldenModel.Seq1 };
        var result = ExpertAblation.DisableExperts(model, seqs, layer, new[] { victim });
        Assert.Equal(22, result.Tokens);
        Assert.NotEqual(0, result.LossChange);
        Assert.Equal(result.AblatedLoss - result.BaselineLoss, result.LossChange, 12);
        Assert.Equal(result.BaselineLoss, ExpertAblation.MeanNextTokenLoss(model, seqs), 9);

        var masked = ExpertAblation.MaskTopRouted(model, seqs, 1);
        Assert.Equal(new[] { 1, 2 }, masked.Layers);
        Assert.NotEqual(0, masked.LossChange);
        using var maskedTrace = model.RunWithCache(tensor(GoldenModel.Seq0).unsqueeze(0),
            new TraceOptions { Hooks = new Dictionary<string, HookFunction> { [HookPoints.SelectionScores(layer)] = ExpertAblation.MaskTopRoutedHook(1) } });
        // The top-1 expert is gone; the former second choice is now first.
        Assert.Equal(plain.ExpertIndices(layer)[.., 1].data<long>().ToArray(), maskedTrace.ExpertIndices(layer)[.., 0].data<long>().ToArray());

        Assert.Equal(8, ExpertFrames.Ablations(ExpertAblation.DisableEachExpert(model, new[] { GoldenModel.Seq0 }, 2)).Rows.Count);
    }

    [Fact]
    public void AblationAndDecodingRejectBadInputs()
    {
        var model = golden.Model;
        var seqs = new[] { GoldenModel.Seq0 };
        Assert.Throws<ArgumentException>(() => ExpertAblation.DisableExperts(model, seqs, 0, new[] { 1 })); // dense layer
        Assert.Throws<ArgumentException>(() => ExpertAblation.DisableExperts(model, seqs, 7, new[] { 1 })); // unknown layer
        Assert.Throws<ArgumentException>(() => ExpertAblation.DisableExperts(model, seqs, 1, new[] { 8 }));
        Assert.Throws<ArgumentException>(() => ExpertAblation.DisableExperts(model, seqs, 1, Enumerable.Range(0, 7).ToArray()));
        Assert.Throws<ArgumentException>(() => ExpertAblation.MaskTopRouted(model, seqs, 7));
        Assert.Throws<ArgumentException>(() => ExpertAblation.MeanNextTokenLoss(model, Array.Empty<long[]>()));
        Assert.Throws<ArgumentException>(() => ExpertOutputDecoding.Compute(model, seqs, 5));
    }

    [Fact]
    public void ExpertOutputEntropyCoversRoutedTokens()
    {
        var model = golden.Model;
        var rows = ExpertOutputDecoding.Compute(model, new[] { GoldenModel.Seq0, GoldenModel.Seq1 }, 1, topTokens: 3);
        Assert.Equal(8, rows.Count);
        Assert.Equal(48, rows.Sum(r => r.Tokens));
        Assert.All(rows.Where(r => r.Tokens > 0), r =>
        {
            Assert.InRange(r.NormalisedEntropy, 0, 1);
            Assert.Equal(3, r.TopPromotedTokens.Length);
        });
        Assert.Equal(8, ExpertFrames.OutputEntropies(rows).Rows.Count);
    }
}
