using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests.Generations;

/// <summary>
/// Token-to-token attention on DeepSeek-V3.2 (indexer-selected keys) and V4 (window + compressed entries mapped back to
/// the tokens they pool, the sink as mass that goes nowhere), and rollout/flow on them.
/// </summary>
public class GenerationAttentionTests
{
    [Fact]
    public void V4_RowsSumToOneMinusTheSinkShare_OfTheProbsHook_AndMassStaysCausal()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var ids = tensor(GenerationModels.Ids24, dtype: int64).unsqueeze(0);
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = TokenAttention.TraceNames(model.Config).Concat(
            Enumerable.Range(0, 4).Select(HookPoints.AttnSlotProbs)).ToArray() });
        var layers = TokenAttention.FromTrace(model, trace);
        Assert.Equal(new[] { AttentionKind.SlidingWindow, AttentionKind.CompressedSparse, AttentionKind.HeavilyCompressed, AttentionKind.SlidingWindow },
            layers.Select(l => l.Kind));
        foreach (var layer in layers)
        {
            // The sink share independently: 1 − Σ slot probabilities of attn.probs.
            var slotSum = trace[HookPoints.AttnSlotProbs(layer.Layer)][0].to(float64).sum(-1);            // [h, s]
            for (int h = 0; h < layer.Heads; h++)
                for (int q = 0; q < 24; q++)
                {
                    double row = 0;
                    for (int k = 0; k < 24; k++)
                    {
                        row += layer.Pattern[h, q, k];
                        if (k > q) Assert.Equal(0f, layer.Pattern[h, q, k]);                                 // no mass on future tokens
                        Assert.True(layer.Pattern[h, q, k] >= 0);
                    }
                    double sink = 1 - slotSum[h, q].item<double>();
                    Assert.True(sink > 1e-4, $"layer {layer.Layer}: the golden sinks take mass ({sink})");
                    Assert.True(Math.Abs(sink - layer.SinkShare[h, q]) < 1e-6, $"layer {layer.Layer} head {h} query {q}: sink {layer.SinkShare[h, q]} vs 1 − Σ attn.probs = {sink}");
                    Assert.True(Math.Abs(1 - sink - row) < 1e-5, $"layer {layer.Layer} head {h} query {q}: row sums to {row}, 1 − sink = {1 - sink}");
                }
        }
        // The compressed part is a real share where entries are visible (CSA from query 3 on, HCA from query 7 on) and 0 before.
        Assert.Equal(0f, layers[1].CompressedShare[0, 2]);
        Assert.True(layers[1].CompressedShare[0, 23] > 1e-3);
        Assert.Equal(0f, layers[2].CompressedShare[0, 6]);
        Assert.True(layers[2].CompressedShare[0, 23] > 1e-3);
        Assert.All(new[] { 0, 3 }, l => Assert.Equal(0f, layers[l].CompressedShare[1, 23]));
    }

    [Fact]
    public void V4_SlidingLayers_AreThePatternHookAsIs()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var ids = tensor(GenerationModels.Ids24, dtype: int64).unsqueeze(0);
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = TokenAttention.TraceNames(model.Config).ToArray() });
        var layers = TokenAttention.FromTrace(model, trace);
        foreach (int l in new[] { 0, 3 })
        {
            var p = trace[HookPoints.AttnPattern(l)][0];
            Assert.Equal(24, p.shape[2]);                                                                     // no compressed entries
            var raw = p.data<float>().ToArray();
            var mapped = layers[l].Pattern;
            for (int i = 0; i < raw.Length; i++) Assert.Equal(raw[i], mapped[i / (24 * 24), i / 24 % 24, i % 24]);
            // the window of 8: nothing before q − 7
            Assert.Equal(0f, mapped[0, 23, 15]);
            Assert.True(mapped[0, 23, 16] > 0);
        }
    }

    [Fact]
    public void V4_EntryMass_WithUniformPooling_SpreadsEvenlyOverTheCoveredTokens()
    {
        // Zero wgate and ape: the compressor's softmax pools uniformly, so entry e of the HCA layer (ratio 8) gives 1/8 of
        // its probability to each of tokens 8e … 8e+7, and a CSA entry e ≥ 1 (ratio 4, overlapping) 1/8 to each of
        // tokens 4(e−1) … 4e+3, entry 0 1/4 to each of tokens 0 … 3 — hand-computed from the attn.pattern hook.
        using var model = DeepSeekModel.Create(GenerationModels.V4Config, seed: 5);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.Contains("attn.compressor.wgate") || name.EndsWith("attn.compressor.ape", StringComparison.Ordinal)) p.zero_();
        using var scope = NewDisposeScope();
        var ids = tensor(GenerationModels.Ids24, dtype: int64).unsqueeze(0);
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = TokenAttention.TraceNames(model.Config).ToArray() });
        var layers = TokenAttention.FromTrace(model, trace);
        foreach (var (l, ratio) in new[] { (1, 4), (2, 8) })
        {
            var p = trace[HookPoints.AttnPattern(l)][0].to(float64);                                              // [h, 24, 24 + C]
            int entries = 24 / ratio;
            for (int h = 0; h < 4; h++)
                for (int q = 0; q < 24; q++)
                    for (int k = 0; k <= q; k++)
                    {
                        double expected = p[h, q, k].item<double>();
                        for (int e = 0; e < entries; e++)
                        {
                            var (first, last) = ratio == 4 ? (Math.Max(0, 4 * (e - 1)), 4 * e + 3) : (8 * e, 8 * e + 7);
                            if (k >= first && k <= last) expected += p[h, q, 24 + e].item<double>() / (last - first + 1);
                        }
                        Assert.Equal(expected, layers[l].Pattern[h, q, k], 6);
                    }
        }
    }

    [Fact]
    public void V4_EntryTokenWeights_AreADistribution_OnExactlyTheTokensEntryTokensNames()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = tensor(GenerationModels.Ids24, dtype: int64).unsqueeze(0);
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = new[] { HookPoints.HcAttnCollapsed(1), HookPoints.HcAttnCollapsed(2) } });
        foreach (var (l, ratio) in new[] { (1, 4), (2, 8) })
        {
            var block = model.Layers[l];
            var x = block.AttentionNorm.forward(trace[HookPoints.HcAttnCollapsed(l)]);
            var w = TokenAttention.EntryTokenWeights(block.CompressedAttention!.Compressor!, x)[0].to(float64);   // [C, 24]
            Assert.Equal(24 / ratio, (int)w.shape[0]);
            for (int e = 0; e < w.shape[0]; e++)
            {
                var (first, last) = CompressedAttention.EntryTokens(ratio, e);
                Assert.Equal(1.0, w[e].sum().item<double>(), 6);
                for (int t = 0; t < 24; t++)
                    if (t < first || t > last) Assert.Equal(0.0, w[e, t].item<double>());
                    else Assert.True(w[e, t].item<double>() > 0, $"entry {e} gives token {t} no weight");
            }
        }
    }

    [Fact]
    public void V32_Pattern_IsADistributionOverTheIndexerSelectedKeysOnly()
    {
        using var ckpt = GenerationModels.LoadV32();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var ids = tensor(GenerationModels.Ids24, dtype: int64).unsqueeze(0);
        var names = TokenAttention.TraceNames(model.Config).Concat(Enumerable.Range(0, 3).Select(HookPoints.IndexerTopk)).ToArray();
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = names });
        var layers = TokenAttention.FromTrace(model, trace);
        Assert.All(layers, l => Assert.Equal(AttentionKind.MlaWithIndexer, l.Kind));
        foreach (var layer in layers)
        {
            var selected = trace[HookPoints.IndexerTopk(layer.Layer)][0].to(int64).data<long>().ToArray();       // [24, 24] bool
            for (int q = 0; q < 24; q++)
            {
                int count = 0;
                for (int k = 0; k < 24; k++) count += (int)selected[q * 24 + k];
                Assert.Equal(Math.Min(6, q + 1), count);                                                      // index_topk 6
                for (int h = 0; h < layer.Heads; h++)
                {
                    double row = 0;
                    for (int k = 0; k < 24; k++)
                    {
                        row += layer.Pattern[h, q, k];
                        if (selected[q * 24 + k] == 0) Assert.Equal(0f, layer.Pattern[h, q, k]);
                        else Assert.True(layer.Pattern[h, q, k] > 0);
                    }
                    Assert.Equal(1.0, row, 5);
                    Assert.Equal(0f, layer.SinkShare[h, q]);
                }
            }
        }
    }

    [Fact]
    public void Rollout_OnV4_RenormalisesTheSinkLeak_AndMatchesTheMappedLayers()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var ids = tensor(GenerationModels.Ids24, dtype: int64).unsqueeze(0);
        var rollout = AttentionRollout.Compute(model, ids);
        var layers = TokenAttention.Compute(model, ids);
        var expected = AttentionRollout.Compute(TokenAttention.Patterns(layers));
        Assert.Equal(expected.Matrix.ToRowMajor(), rollout.Matrix.ToRowMajor());
        Assert.Equal(GenerationModels.Ids24, rollout.TokenIds);
        for (int q = 0; q < 24; q++)
        {
            Assert.Equal(1.0, rollout.Row(q).Sum(), 4);
            for (int k = q + 1; k < 24; k++) Assert.Equal(0f, rollout.Matrix[q, k]);
        }
        // Token 0 reaches query 23 only through the compressed entries (the window of 8 ends at 16) and the residual.
        Assert.True(rollout.Matrix[23, 0] > 0);
        var flow = AttentionFlow.Compute(TokenAttention.Patterns(layers).Take(2).ToArray());
        for (int q = 0; q < 24; q++) Assert.Equal(1.0, flow.Row(q).Sum(), 4);
    }

    [Fact]
    public void Augment_OfARowWithASinkShare_IsHalfAttentionHalfResidual_OverOneMinusHalfTheSink()
    {
        // Row 1 has sink share σ = 0.4: A = [0.2, 0.4] → (0.5·A + 0.5·I) / (1 − σ/2) = [0.1, 0.7] / 0.8.
        var a = AttentionRollout.Augment(new AttentionMatrix(new float[,] { { 1f, 0f }, { 0.2f, 0.4f } }));
        Assert.Equal(1.0, a[0, 0], 12);
        Assert.Equal(0.1 / 0.8, a[1, 0], 6);
        Assert.Equal(0.7 / 0.8, a[1, 1], 6);
    }

    [Fact]
    public void HeadAccumulator_OnV4_UsesTheMappedTokens_SoItsDistanceMassIsOneMinusTheSink()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        var acc = new Attention.Diagnostics.AttentionHeadAccumulator(model: model);
        Statistics.DatasetRunner.Run(model, new[] { GenerationModels.Ids24 }, new Statistics.IDatasetAccumulator[] { acc });
        using var scope = NewDisposeScope();
        var layers = TokenAttention.Compute(model, tensor(GenerationModels.Ids24, dtype: int64));
        foreach (var d in acc.Heads())
        {
            // Σ over distance bins of the mean mass = mean over queries 1..23 of (1 − sink share): the sink is mass to no token.
            double expected = Enumerable.Range(1, 23).Average(q => 1 - layers[d.Layer].SinkShare[d.Head, q]);
            Assert.True(Math.Abs(d.DistanceProfile.Sum() - expected) < 1e-5, $"layer {d.Layer} head {d.Head}: {d.DistanceProfile.Sum()} vs {expected}");
            Assert.Equal(23, d.Queries);
        }
        Assert.Equal(4 * 4, acc.Heads().Count);
        var without = new Attention.Diagnostics.AttentionHeadAccumulator();
        var e = Assert.Throws<ArgumentException>(() => Statistics.DatasetRunner.Run(model, new[] { GenerationModels.Ids24 }, new Statistics.IDatasetAccumulator[] { without }));
        Assert.Contains("model:", e.Message);
    }

    [Fact]
    public void RolloutOfAV4Trace_WithoutTheModel_SaysHowToMapTheEntries()
    {
        using var model = DeepSeekModel.Create(GenerationModels.V4Config, seed: 1);
        using var scope = NewDisposeScope();
        using var trace = model.RunWithCache(tensor(GenerationModels.Ids24, dtype: int64).unsqueeze(0), new TraceOptions { AttentionPatterns = true });
        var e = Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(trace));
        Assert.Contains("TokenAttention.FromTrace(model, trace)", e.Message);
        var missing = Assert.Throws<ArgumentException>(() => TokenAttention.FromTrace(model, trace));
        Assert.Contains("blocks.1.attn.sink_share", missing.Message);
    }
}
