using DeepSeekNotebooks.Analysis.Indexer;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// Indexer diagnostics on the golden tiny DeepSeek-V3.2 (index_topk 6, every block) and V4 (CSA block 1, top-2 of the
/// compressed entries) models, against independent expectations: a copy of the model whose indexer keeps every key (the
/// dense reference), direct counts over the trace's index_topk, and hand-computed KL / recall / Jaccard values.
/// </summary>
public class IndexerDiagnosticsTests
{
    [Fact]
    public void KlToSoftmax_IsZeroForEqualDistributions_AndLn2ForAPointMassAgainstUniform()
    {
        var scores = new[] { 0.3, -1.2, 2.0 };
        double z = scores.Sum(Math.Exp);
        var p = scores.Select(s => Math.Exp(s) / z).ToArray();
        Assert.Equal(0, IndexerDiagnostics.KlToSoftmax(p, scores), 12);
        Assert.Equal(Math.Log(2), IndexerDiagnostics.KlToSoftmax(new[] { 1.0, 0.0 }, new[] { 5.0, 5.0 }), 12);
        // KL(p‖q) for p = (½, ½), q = softmax(0, ln 3) = (¼, ¾): ½ ln 2 + ½ ln(2/3).
        Assert.Equal(0.5 * Math.Log(2) + 0.5 * Math.Log(2.0 / 3), IndexerDiagnostics.KlToSoftmax(new[] { 0.5, 0.5 }, new[] { 0, Math.Log(3) }), 12);
    }

    [Fact]
    public void RecallAndJaccard_HandCases()
    {
        var p = new[] { 0.1, 0.2, 0.3, 0.4 };
        Assert.Equal(1.0, IndexerDiagnostics.Recall(p, new[] { 0, 1, 2, 3 }), 12);
        Assert.Equal(0.7, IndexerDiagnostics.Recall(p, new[] { 2, 3 }), 12);
        Assert.Equal(1.0 / 3, IndexerDiagnostics.Jaccard(new HashSet<int> { 1, 2 }, new HashSet<int> { 2, 3 }), 12);
        Assert.Equal(1.0, IndexerDiagnostics.Jaccard(new HashSet<int> { 4 }, new HashSet<int> { 4 }), 12);
    }

    [Fact]
    public void V32_ShortPrompts_EveryKeyFits_RecallIsOneAndSaysSo()
    {
        using var ckpt = GenerationFixtures.V32();
        var r = IndexerDiagnostics.Measure(ckpt, new[] { GenerationFixtures.Prompt(6, 1), GenerationFixtures.Prompt(4, 2) });
        Assert.True(r.EveryKeyFits);
        Assert.Contains("recall is 1 trivially", r.Note);
        Assert.Equal(new[] { 0, 1, 2 }, r.IndexerLayers);
        Assert.All(r.Queries, q => Assert.Equal(1.0, q.Recall, 6));
        Assert.All(r.Layers, l => Assert.True(double.IsNaN(l.MeanRecallWhereSparse)));
        Assert.All(r.Overlaps, o => Assert.Equal(0, o.Queries));
    }

    [Fact]
    public void V32_Recall_AndDenseKl_MatchAModelWhoseIndexerKeepsEverything()
    {
        using var ckpt = GenerationFixtures.V32();
        var ids = GenerationFixtures.Prompt(24, 7);
        var r = IndexerDiagnostics.Measure(ckpt, new[] { ids });
        Assert.False(r.EveryKeyFits);
        using var wide = GenerationFixtures.WithTopk(ckpt.Model, 64);
        using var scope = NewDisposeScope();
        using var sparse = ckpt.Model.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Exact(HookPoints.IndexerTopk(0), HookPoints.IndexerScores(0)) });
        using var dense = wide.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Exact(HookPoints.AttnPattern(0)) });
        // Block 0 sees the same input in both models: its dense attention is the wide model's pattern.
        var p = dense[HookPoints.AttnPattern(0)][0].sum(dim: 0).to(float64);                   // [n, n] head-summed
        p = p / p.sum(-1, keepdim: true);
        var kept = sparse[HookPoints.IndexerTopk(0)][0];
        var scores = sparse[HookPoints.IndexerScores(0)][0].to(float64);
        int sparseQueries = 0;
        foreach (var q in r.Queries.Where(q => q.Layer == 0))
        {
            double recall = (p[q.Query] * kept[q.Query].to(float64)).sum().item<double>();
            Assert.Equal(recall, q.Recall, 5);
            var row = p[q.Query].narrow(0, 0, q.Query + 1);
            var logq = scores[q.Query].narrow(0, 0, q.Query + 1).log_softmax(0);
            double kl = (row * (row.clamp_min(1e-300).log() - logq)).sum().item<double>();
            Assert.Equal(kl, q.DenseKl, 4);
            Assert.Equal(Math.Min(q.Query + 1, 6), q.Selected);
            if (!q.AllSelected) { sparseQueries++; Assert.True(q.Recall < 1 - 1e-6, $"query {q.Query} dropped keys but recall is {q.Recall}"); }
        }
        Assert.Equal(24 - 6, sparseQueries);
        Assert.All(r.Queries, q => Assert.InRange(q.Recall, 0, 1 + 1e-9));
    }

    [Fact]
    public void V32_ALaterBlocksDenseReference_IsTheWideModelWithTheSparseMasksOfTheBlocksBefore()
    {
        using var ckpt = GenerationFixtures.V32();
        var ids = GenerationFixtures.Prompt(20, 9);
        var r = IndexerDiagnostics.Measure(ckpt, new[] { ids });
        using var wide = GenerationFixtures.WithTopk(ckpt.Model, 64);
        using var scope = NewDisposeScope();
        using var sparse = ckpt.Model.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = "blocks.*.attn.indexer.topk" });
        // The wide model keeps every key; give blocks 0 and 1 the sparse model's masks, so block 2 sees the analysed input.
        var hooks = new Dictionary<string, HookFunction>
        {
            [HookPoints.IndexerTopk(0)] = (_, _) => sparse[HookPoints.IndexerTopk(0)],
            [HookPoints.IndexerTopk(1)] = (_, _) => sparse[HookPoints.IndexerTopk(1)],
        };
        using var dense = wide.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Exact(HookPoints.AttnPattern(2)), Hooks = hooks });
        var p = dense[HookPoints.AttnPattern(2)][0].sum(dim: 0).to(float64);
        p = p / p.sum(-1, keepdim: true);
        var kept = sparse[HookPoints.IndexerTopk(2)][0].to(float64);
        foreach (var q in r.Queries.Where(q => q.Layer == 2))
            Assert.Equal((p[q.Query] * kept[q.Query]).sum().item<double>(), q.Recall, 5);
        // The control: without the masks before it (every block dense), block 2's recall differs, so the match above is not automatic.
        using var allDense = wide.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Exact(HookPoints.AttnPattern(2)) });
        var pAll = allDense[HookPoints.AttnPattern(2)][0].sum(dim: 0).to(float64);
        pAll = pAll / pAll.sum(-1, keepdim: true);
        Assert.Contains(r.Queries.Where(q => q.Layer == 2), q => Math.Abs((pAll[q.Query] * kept[q.Query]).sum().item<double>() - q.Recall) > 1e-4);
    }

    [Fact]
    public void V32_Counts_EqualADirectCountOverTheTracesIndexTopk_AndOverlapsAreJaccardOfThoseSets()
    {
        using var ckpt = GenerationFixtures.V32();
        var prompts = new[] { GenerationFixtures.Prompt(20, 3), GenerationFixtures.Prompt(13, 4) };
        var r = IndexerDiagnostics.Measure(ckpt, prompts);
        using var scope = NewDisposeScope();
        var selectedAt = new Dictionary<(int Layer, int Pos), long>();
        var visibleAt = new Dictionary<(int Layer, int Dist), long>();
        var selectedDist = new Dictionary<(int Layer, int Dist), long>();
        var sets = new Dictionary<(int P, int L, int Q), HashSet<int>>();
        for (int pi = 0; pi < prompts.Length; pi++)
        {
            using var trace = ckpt.Model.RunWithCache(tensor(prompts[pi]).unsqueeze(0), new TraceOptions { Names = "blocks.*.attn.indexer.topk" });
            int n = prompts[pi].Length;
            for (int l = 0; l < 3; l++)
            {
                var m = trace[HookPoints.IndexerTopk(l)][0].contiguous().data<bool>().ToArray();
                for (int q = 0; q < n; q++)
                {
                    sets[(pi, l, q)] = Enumerable.Range(0, n).Where(k => m[q * n + k]).ToHashSet();
                    for (int k = 0; k < n; k++)
                    {
                        Assert.False(k > q && m[q * n + k], "a future key is selected");
                        if (k > q) continue;
                        visibleAt[(l, q - k)] = visibleAt.GetValueOrDefault((l, q - k)) + 1;
                        if (!m[q * n + k]) continue;
                        selectedAt[(l, k)] = selectedAt.GetValueOrDefault((l, k)) + 1;
                        selectedDist[(l, q - k)] = selectedDist.GetValueOrDefault((l, q - k)) + 1;
                    }
                }
            }
        }
        foreach (var row in r.ByPosition) Assert.Equal(selectedAt.GetValueOrDefault((row.Layer, row.Key)), row.Selected);
        foreach (var row in r.ByDistance)
        {
            Assert.Equal(selectedDist.GetValueOrDefault((row.Layer, row.Key)), row.Selected);
            Assert.Equal(visibleAt[(row.Layer, row.Key)], row.Visible);
        }
        Assert.Equal(selectedAt.Values.Sum(), r.ByPosition.Sum(x => x.Selected));
        // Distance 0 (the query itself): visible once per query per layer.
        Assert.Equal(33, r.ByDistance.Single(x => x.Layer == 1 && x.Key == 0).Visible);
        // Tokens: the same total selected as positions, per layer.
        for (int l = 0; l < 3; l++) Assert.Equal(r.ByPosition.Where(x => x.Layer == l).Sum(x => x.Selected), r.ByToken.Where(x => x.Layer == l).Sum(x => x.Selected));
        // Overlap of layers 0 and 2: mean Jaccard over queries with more than 6 visible keys.
        var js = sets.Keys.Where(k => k.L == 0 && k.Q + 1 > 6).Select(k => IndexerDiagnostics.Jaccard(sets[k], sets[(k.P, 2, k.Q)])).ToArray();
        var o = r.Overlaps.Single(x => x.LayerA == 0 && x.LayerB == 2);
        Assert.Equal(js.Length, o.Queries);
        Assert.Equal(js.Average(), o.MeanJaccard, 12);
    }

    [Fact]
    public void V4_DenseRecall_MatchesAModelWhoseIndexerKeepsEveryEntry()
    {
        using var ckpt = GenerationFixtures.V4();
        var ids = GenerationFixtures.Prompt(40, 11);
        var r = IndexerDiagnostics.Measure(ckpt, new[] { ids });
        Assert.Equal(IndexerKeyAxis.CompressedEntries, r.Axis);
        Assert.Equal(new[] { 1 }, r.IndexerLayers);
        Assert.Equal(2, r.Topk);
        // Queries 0, 1, 2 see no complete entry yet: no decision.
        Assert.Equal(40 - 3, r.Queries.Length);
        using var wide = GenerationFixtures.WithTopk(ckpt.Model, 64);
        using var scope = NewDisposeScope();
        using var sparse = ckpt.Model.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Exact(HookPoints.IndexerTopk(1)) });
        using var dense = wide.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Exact(HookPoints.AttnPattern(1)) });
        var pattern = dense[HookPoints.AttnPattern(1)][0].to(float64);                  // [h, n, n + C], block 0 (sliding) identical in both
        var picks = sparse[HookPoints.IndexerTopk(1)][0].contiguous().data<long>().ToArray();
        int n = ids.Length, entries = n / 4;
        foreach (var q in r.Queries)
        {
            var onEntries = pattern.select(1, q.Query).narrow(1, n, q.Visible).sum(dim: 0);   // head-summed mass on the visible entries
            var p = (onEntries / onEntries.sum()).data<double>().ToArray();
            double recall = Enumerable.Range(0, 2).Select(j => picks[q.Query * 2 + j]).Where(e => e >= 0).Sum(e => p[e]);
            Assert.Equal(recall, q.Recall, 5);
            Assert.Equal(Math.Min(2, (q.Query + 1) / 4), q.Selected);
        }
        Assert.Contains(r.Queries, q => !q.AllSelected && q.Recall < 1 - 1e-4);
        Assert.Equal(entries, r.ByPosition.Max(x => x.Key) + 1);
        // Counts per entry: a direct count over the trace's picks (entries visible from query 4e + 3 on).
        for (int e = 0; e < entries; e++)
        {
            long kept = Enumerable.Range(0, n).Count(t => picks[t * 2] == e || picks[t * 2 + 1] == e);
            var row = r.ByPosition.Single(x => x.Layer == 1 && x.Key == e);
            Assert.Equal(kept, row.Selected);
            Assert.Equal(n - (4 * e + 3), row.Visible);
        }
    }

    [Fact]
    public void Result_RoundTripsThroughJson_AndItsFramesHaveOneRowPerRecord()
    {
        using var ckpt = GenerationFixtures.V32();
        var r = IndexerDiagnostics.Measure(ckpt, new[] { GenerationFixtures.Prompt(10, 5) });
        var back = IndexerDiagnosticsResult.FromJson(r.ToJson());
        Assert.Equal(r.ToJson(), back.ToJson());
        Assert.Equal(r.Queries, back.Queries);
        Assert.Equal(r.Layers.Length, r.ToDataFrame().Rows.Count);
        Assert.Equal(r.Queries.Length, r.QueriesFrame().Rows.Count);
        Assert.Equal(r.ByDistance.Length, r.SelectionFrame().Rows.Count);
        Assert.Equal(r.ByToken.Length, r.TokenFrame().Rows.Count);
    }

    [Fact]
    public void BadInput_NamesWhatIsWrong()
    {
        using var ckpt = GenerationFixtures.V32();
        Assert.Contains("at least one prompt", Assert.Throws<ArgumentException>(() => IndexerDiagnostics.Measure(ckpt, Array.Empty<long[]>())).Message);
        Assert.Contains("prompt 1 is empty", Assert.Throws<ArgumentException>(() => IndexerDiagnostics.Measure(ckpt, new[] { new long[] { 1 }, Array.Empty<long>() })).Message);
        Assert.Contains("prompt 0", Assert.Throws<ArgumentException>(() => IndexerDiagnostics.Measure(ckpt, new[] { new long[] { 1, 9999 } })).Message);
        using var v3 = Model.Checkpoints.Checkpoint.Load(Path.Combine(GoldenFixture.RepoRoot(), "data", "checkpoints", "golden-tiny-hf"));
        Assert.Contains("the model has no indexer", Assert.Throws<ArgumentException>(() => IndexerDiagnostics.Measure(v3, new[] { new long[] { 1, 2 } })).Message);
    }
}
