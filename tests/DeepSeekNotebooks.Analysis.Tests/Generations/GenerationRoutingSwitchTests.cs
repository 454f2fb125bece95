using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests.Generations;

/// <summary>
/// <see cref="RoutingSwitches"/> on DeepSeek-V3.2 and V4 counts the lightning indexers' selection switches along IG's
/// path next to the experts': checked against a recount done here, one forward per grid point with the indexer's
/// <c>attn.indexer.topk</c> read in a hook (V3.2: the key mask per query; V4 CSA: the picked entries as a set).
/// </summary>
public class GenerationRoutingSwitchTests
{
    private static readonly long[] Ids = GenerationModels.Ids24.Take(16).ToArray();
    private const int GridPoints = 17;
    private readonly ITestOutputHelper _out;
    public GenerationRoutingSwitchTests(ITestOutputHelper output) { _out = output; }

    [Fact]
    public void V32_IndexerSwitches_EqualAnIndependentRecountAtThePathPoints() => Check("v32", new[] { 0, 1, 2 });

    [Fact]
    public void V4_IndexerSwitches_EqualAnIndependentRecountAtThePathPoints() => Check("v4", new[] { 1 });

    private void Check(string generation, int[] indexerLayers)
    {
        using var ckpt = generation == "v32" ? GenerationModels.LoadV32() : GenerationModels.LoadV4();
        var model = ckpt.Model;
        var target = AttributionTarget.Logit(-1, 7);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var r = RoutingSwitches.Analyse(model, Ids, target, Baseline.Zeros, gridPoints: GridPoints, tolerance: 1e-3, igNSteps: 16);
        _out.WriteLine($"{r.Summary()} ({watch.Elapsed.TotalSeconds:F1} s)");
        Assert.Equal(indexerLayers, r.IndexerLayers);
        Assert.Equal(indexerLayers, r.IndexerSwitches.Select(s => s.Layer).ToArray());

        // The recount: α_i = i/(points − 1) in float32 times the embeddings (zero baseline), each point on its own.
        using var scope = NewDisposeScope();
        var ids = tensor(Ids, dtype: int64).unsqueeze(0);
        var e = model.Embed(ids).detach();
        int seq = Ids.Length;
        var selections = new List<long[]>[indexerLayers.Length];
        var isMask = new bool[indexerLayers.Length];
        for (int li = 0; li < indexerLayers.Length; li++) selections[li] = new List<long[]>();
        for (int i = 0; i < GridPoints; i++)
        {
            float alpha = (float)((double)i / (GridPoints - 1));
            var at = new long[indexerLayers.Length][];
            var hooks = new Dictionary<string, HookFunction>();
            for (int li = 0; li < indexerLayers.Length; li++)
            {
                int j = li;
                hooks[HookPoints.IndexerTopk(indexerLayers[li])] = (v, _) =>
                {
                    isMask[j] = v.dtype == ScalarType.Bool;
                    at[j] = isMask[j]
                        ? v[0].cpu().data<bool>().Select(b => b ? 1L : 0L).ToArray()
                        : v[0].to(int64).cpu().data<long>().ToArray();
                    return null;
                };
            }
            using (no_grad()) model.ForwardFromEmbeddings(e * alpha, hooks, model.Config.NumHashLayers > 0 ? ids : null);
            for (int li = 0; li < indexerLayers.Length; li++) selections[li].Add(at[li]);
        }
        int totalSwitches = 0;
        for (int li = 0; li < indexerLayers.Length; li++)
        {
            int intervals = 0, tokenSwitches = 0;
            var positions = new SortedSet<int>();
            for (int i = 0; i + 1 < GridPoints; i++)
            {
                var changed = Enumerable.Range(0, seq).Where(t => !QuerySet(selections[li][i], t, seq, isMask[li]).SetEquals(QuerySet(selections[li][i + 1], t, seq, isMask[li]))).ToList();
                if (changed.Count == 0) continue;
                intervals++; tokenSwitches += changed.Count; positions.UnionWith(changed);
            }
            var got = r.IndexerSwitches[li];
            _out.WriteLine($"block {indexerLayers[li]}: recount {intervals} intervals, {tokenSwitches} token switches; report {got.GridIntervals}, {got.TokenSwitches}");
            Assert.Equal(intervals, got.GridIntervals);
            Assert.Equal(tokenSwitches, got.TokenSwitches);
            Assert.Equal(positions.ToArray(), got.Positions);
            totalSwitches += tokenSwitches;
        }
        Assert.True(totalSwitches > 0, $"{generation}: no indexer switch on the path (the recount would compare nothing)");
        // Every indexer switch on the grid is bracketed and measured; the brackets name the block.
        var located = r.Jumps.Where(j => j.IndexerLayers.Length > 0).ToList();
        Assert.NotEmpty(located);
        Assert.All(located, j => Assert.True(j.AlphaRight - j.AlphaLeft <= r.Tolerance * 1.0001 && j.IndexerLayers.All(indexerLayers.Contains)));
        Assert.True(r.GridIntervalsWithSwitch >= r.IndexerSwitches.Max(s => s.GridIntervals));
        // Plain data: the new fields survive JSON.
        var back = RoutingSwitchReport.FromJson(r.ToJson());
        Assert.Equal(r.IndexerLayers, back.IndexerLayers);
        Assert.Equal(r.IndexerSwitches.Select(s => (s.Layer, s.GridIntervals, s.TokenSwitches)), back.IndexerSwitches.Select(s => (s.Layer, s.GridIntervals, s.TokenSwitches)));
        Assert.Equal(located.Count, back.Jumps.Count(j => j.IndexerLayers.Length > 0));
    }

    /// <summary>Query t's selection as a set: V3.2's mask row (the keys with 1), V4's picks (entry numbers, −1 = none dropped).</summary>
    private static HashSet<long> QuerySet(long[] selection, int t, int seq, bool mask)
    {
        int k = selection.Length / seq;
        var row = selection.Skip(t * k).Take(k);
        return mask
            ? row.Select((v, key) => (v, key)).Where(p => p.v == 1).Select(p => (long)p.key).ToHashSet()
            : row.Where(v => v >= 0).ToHashSet();
    }
}
