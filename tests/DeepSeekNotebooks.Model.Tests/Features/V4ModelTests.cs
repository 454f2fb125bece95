using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tests.Fidelity;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>
/// A freshly created DeepSeek-V4 model (the golden/v4 shape): reproducible initialisation with valid hash tables and
/// neutral mHC scales, causality through window, compressed entries and indexer (a later token never changes an
/// earlier position), and the sink share as the mass the tokens do not get.
/// </summary>
public class V4ModelTests
{
    private static DeepSeekConfig V4 => DeepSeekConfig.Load(Path.Combine(V4KernelTests.V4Dir, "public.hf_config.json"));

    [Fact]
    public void Create_IsReproducible_WithValidHashTables()
    {
        using var a = DeepSeekModel.Create(V4, seed: 3);
        using var b = DeepSeekModel.Create(V4, seed: 3);
        var pa = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in b.named_parameters())
            Assert.True((p != pa[name]).sum().item<long>() == 0, $"{name} differs between two seeded creations");
        var table = pa["layers.0.ffn.gate.tid2eid"];
        Assert.Equal(new long[] { 512, 2 }, table.shape);
        // Every token gets k distinct experts in [0, E); every expert is used.
        Assert.True(table.ge(0).all().item<bool>() && table.lt(8).all().item<bool>());
        Assert.True(table[.., 0].ne(table[.., 1]).all().item<bool>());
        Assert.Equal(8, table.flatten().unique().Item1.shape[0]);
        Assert.Equal(1f, pa["layers.2.hc_ffn_scale"].min().item<float>());
        Assert.Equal(0f, pa["layers.2.hc_ffn_base"].abs().max().item<float>());
    }

    [Theory]
    [InlineData(QuantisationSimulation.Off)]
    [InlineData(QuantisationSimulation.Official)]
    public void ALaterToken_NeverChangesAnEarlierPosition(QuantisationSimulation quantisation)
    {
        // The golden weights (random but not tiny, so a leak would show); differences below 1e-6 are float noise of the
        // expert dispatch (an expert's batch of tokens changes with the routing of the changed token).
        using var ckpt = V4FidelityTests.Load(Model.Checkpoints.CheckpointLayout.Official);
        var model = ckpt.Model;
        model.Quantisation = quantisation;
        using var scope = NewDisposeScope();
        var ids = arange(40, 64, dtype: int64).unsqueeze(0);                 // 24 tokens: CSA entries 0..5, HCA 0..2
        var logits = model.forward(ids);
        foreach (int t in new[] { 3, 7, 8, 15, 23 })
        {
            var changed = ids.clone();
            changed[0, t] = tensor(500L);
            var other = model.forward(changed);
            double before = t == 0 ? 0 : (logits.narrow(1, 0, t) - other.narrow(1, 0, t)).abs().max().item<float>();
            double own = (logits.select(1, t) - other.select(1, t)).abs().max().item<float>();
            Assert.True(before < 1e-6, $"changing token {t} changed earlier logits by {before}");
            Assert.True(own > 1e-3, $"changing token {t} changed its own logits by only {own}");
        }
    }

    [Fact]
    public void SlotProbabilities_AndTheSinkShare_SumToOne_AndTheSinkTakesMassFromTheTokens()
    {
        using var model = DeepSeekModel.Create(V4, seed: 5);
        using var scope = NewDisposeScope();
        var ids = arange(40, 64, dtype: int64).unsqueeze(0);
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = NamesFilter.Where(n => n.Contains(".attn."), "attention") });
        for (int l = 0; l < 4; l++)
        {
            var probs = trace[HookPoints.AttnSlotProbs(l)];
            var sink = trace[HookPoints.AttnSinkShare(l)];
            Assert.True((probs.sum(-1) + sink - 1).abs().max().item<float>() < 1e-5);
            // With zero sink logits and near-zero scores the sink's share is about 1 / (visible keys + 1).
            Assert.True(sink.min().item<float>() > 0);
            var dense = trace[HookPoints.AttnPattern(l)];
            Assert.True((dense.sum(-1) - probs.sum(-1)).abs().max().item<float>() < 1e-5);
        }
        // HCA block 2 (ratio 8): the entry covering tokens 0..7 becomes visible exactly at query 7.
        var slots = trace[HookPoints.AttnTopkIdxs(2)][0];
        Assert.Equal(-1L, slots[6, 8].item<long>());
        Assert.Equal(24L, slots[7, 8].item<long>());
    }

    [Fact]
    public void EntryTokens_AreTheWindowsTheCompressorPools()
    {
        // HCA ratio 8: entry 2 pools tokens 16..23. CSA ratio 4: entry 0 pools 0..3 (no window before), entry 3 pools 8..15.
        Assert.Equal((16, 23), CompressedAttention.EntryTokens(8, 2));
        Assert.Equal((0, 3), CompressedAttention.EntryTokens(4, 0));
        Assert.Equal((8, 15), CompressedAttention.EntryTokens(4, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => CompressedAttention.EntryTokens(1, 0));

        // Independent check on the model: perturbing a token moves exactly the entries that pool it.
        using var ckpt = V4FidelityTests.Load(Model.Checkpoints.CheckpointLayout.Official);
        var model = ckpt.Model;
        model.Quantisation = QuantisationSimulation.Off;
        using var scope = NewDisposeScope();
        var ids = arange(40, 64, dtype: int64).unsqueeze(0);
        var names = NamesFilter.Where(n => n.EndsWith("attn.compressed_kv", StringComparison.Ordinal) || n == HookPoints.HcAttnCollapsed(1) || n == HookPoints.HcAttnCollapsed(2), "entries");
        using var before = model.RunWithCache(ids, new TraceOptions { Names = names });
        // Change the collapsed input of token 9 only (a hook), so nothing but the compressors sees a difference at 9.
        foreach (var (layer, ratio) in new[] { (1, 4), (2, 8) })
        {
            var hooks = new Dictionary<string, HookFunction>
            {
                [HookPoints.HcAttnCollapsed(layer)] = (v, _) => { var c = v.clone(); c[0, 9] = c[0, 9] * 3; return c; },
            };
            using var after = model.RunWithCache(ids, new TraceOptions { Names = HookPoints.AttnCompressedKv(layer), Hooks = hooks });
            var moved = (after[HookPoints.AttnCompressedKv(layer)] - before[HookPoints.AttnCompressedKv(layer)]).abs().amax(new long[] { 0, 2 });
            var expected = Enumerable.Range(0, (int)moved.shape[0]).Where(e => CompressedAttention.EntryTokens(ratio, e) is var (f, l) && f <= 9 && 9 <= l).ToArray();
            var actual = Enumerable.Range(0, (int)moved.shape[0]).Where(e => moved[e].item<float>() > 0).ToArray();
            Assert.Equal(expected, actual);
        }
    }
}
