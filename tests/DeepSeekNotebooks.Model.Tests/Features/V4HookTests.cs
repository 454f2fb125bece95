using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tests.Fidelity;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>
/// DeepSeek-V4's hook points in the one registry (golden/v4 model: sliding + hash MoE, CSA, HCA, sliding): the
/// registry lists exactly what the forward visits, per block kind; names a block kind lacks are errors saying why;
/// a stand-alone block reproduces the model's step; hooks on the new points steer the forward.
/// </summary>
public class V4HookTests
{
    private static readonly long[] Ids = { 343, 286, 252, 317, 166, 430, 387, 90, 32, 212, 419, 305 };

    [Fact]
    public void All_EqualsThePointsTheForwardVisits_InForwardOrder()
    {
        using var ckpt = V4FidelityTests.Load(CheckpointLayout.Official);
        var c = ckpt.Config;
        using var scope = NewDisposeScope();
        using var trace = ckpt.Model.RunWithCache(tensor(Ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Where(_ => true, "everything") });
        Assert.Equal(trace.Names.Order(StringComparer.Ordinal), HookPoints.All(c).Order(StringComparer.Ordinal));

        string[] Of(int l) => HookPoints.All(c).Where(n => n.StartsWith($"blocks.{l}.", StringComparison.Ordinal)).Select(n => n[$"blocks.{l}.".Length..]).ToArray();
        string[] hcAttn = { "hc_attn.pre", "hc_attn.post", "hc_attn.comb", "hc_attn.collapsed" };
        string[] hcFfn = { "hc_ffn.pre", "hc_ffn.post", "hc_ffn.comb", "hc_ffn.collapsed" };
        string[] slots = { "attn.topk_idxs", "attn.probs", "attn.sink_share", "attn.pattern", "attn.out", "resid_mid" };
        // Block 0: sliding window, hash-routed MoE.
        Assert.Equal(new[] { "resid_pre" }.Concat(hcAttn).Append("attn.kv").Concat(slots).Concat(hcFfn)
            .Concat(new[] { "moe.router", "moe.hash_ids", "moe.indices", "moe.weights", "moe.shared_out", "mlp.out", "resid_post" }), Of(0));
        // Block 1: CSA (compressed entries + indexer), score-routed MoE.
        Assert.Equal(new[] { "resid_pre" }.Concat(hcAttn).Concat(new[] { "attn.kv", "attn.compressed_kv", "attn.indexer.compressed_k", "attn.indexer.scores", "attn.indexer.topk" })
            .Concat(slots).Concat(hcFfn).Concat(new[] { "moe.router", "moe.selection", "moe.indices", "moe.weights", "moe.shared_out", "mlp.out", "resid_post" }), Of(1));
        // Block 2: HCA, compressed entries but no indexer.
        Assert.Contains("attn.compressed_kv", Of(2));
        Assert.DoesNotContain("attn.indexer.topk", Of(2));
        Assert.Equal(new[] { "hc_head.pre", "hc_head.collapsed", "ln_final", "logits" }, HookPoints.All(c).TakeLast(4));
        // Shapes: the streams [b, s, n, D]; the mixing matrices [b, s, n, n].
        Assert.Equal(new long[] { 1, 12, 4, 64 }, trace[HookPoints.ResidPost(3)].shape);
        Assert.Equal(new long[] { 1, 12, 4, 4 }, trace[HookPoints.HcFfnComb(2)].shape);
        Assert.Equal(new long[] { 1, 4, 12, 12 + 3 }, trace[HookPoints.AttnPattern(1)].shape);   // 12 tokens + 12 div 4 entries
    }

    [Theory]
    [InlineData("blocks.0.attn.compressed_kv", "block 0 is sliding-window attention (compress ratio 0) and compresses nothing")]
    [InlineData("blocks.2.attn.indexer.topk", "only compressed sparse attention blocks (ratio 4) have an indexer")]
    [InlineData("blocks.1.moe.hash_ids", "block 1 routes by score; hash-routed blocks are 0..0")]
    [InlineData("blocks.0.moe.selection", "block 0 is hash-routed (tid2eid), it has no selection scores")]
    [InlineData("blocks.1.hc_attn.combb", "Did you mean 'blocks.1.hc_attn.comb'")]
    public void NamesABlockKindLacks_AreErrors_SayingWhy(string name, string hint)
    {
        using var ckpt = V4FidelityTests.Load(CheckpointLayout.Official);
        var e = Assert.Throws<ArgumentException>(() => HookPoints.Validate(name, ckpt.Config));
        Assert.Contains(hint, e.Message);
        // And V3 models have none of the V4 points.
        Assert.False(HookPoints.Exists("blocks.1.hc_attn.comb", DeepSeekConfig.TinyFullFeatured));
    }

    [Fact]
    public void StandaloneBlock_ReproducesTheModelsStep_AndAHashBlockAsksForTokenIds()
    {
        using var ckpt = V4FidelityTests.Load(CheckpointLayout.Official);
        using var scope = NewDisposeScope();
        using var trace = ckpt.Model.RunWithCache(tensor(Ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Where(n => n.Contains("resid_"), "resid") });
        using (no_grad())
        {
            var y = ckpt.Model.Layers[1].forward(trace[HookPoints.ResidPre(1)]);
            Assert.Equal(0, (y != trace[HookPoints.ResidPost(1)]).sum().item<long>());
        }
        var e = Assert.Throws<InvalidOperationException>(() => ckpt.Model.Layers[0].forward(trace[HookPoints.ResidPre(0)]));
        Assert.Contains("hash-routed", e.Message);
        Assert.Contains("token ids", e.Message);
        var bad = Assert.Throws<ArgumentException>(() => ckpt.Model.Layers[1].forward(zeros(1, 12, 64)));
        Assert.Contains("streams [batch, seq, 4, 64]", bad.Message);
    }

    [Fact]
    public void Hooks_OnTheNewPoints_SteerTheForward()
    {
        using var ckpt = V4FidelityTests.Load(CheckpointLayout.Official);
        var model = ckpt.Model;
        model.Quantisation = QuantisationSimulation.Off;
        using var scope = NewDisposeScope();
        var ids = tensor(Ids).unsqueeze(0);
        var plain = model.forward(ids);
        // Dropping every compressed entry from CSA block 1 (its slots after the window) changes its attention…
        var slotsHook = new Dictionary<string, HookFunction>
        {
            [HookPoints.AttnTopkIdxs(1)] = (v, _) => cat(new[] { v.narrow(-1, 0, 8), full_like(v.narrow(-1, 8, v.shape[^1] - 8), -1) }, -1),
        };
        using var steered = model.RunWithCache(ids, new TraceOptions { Hooks = slotsHook, Names = HookPoints.AttnSlotProbs(1) });
        Assert.Equal(0f, steered[HookPoints.AttnSlotProbs(1)].narrow(-1, 8, 2).abs().max().item<float>());
        Assert.True((model.RunWithHooks(ids, slotsHook) - plain).abs().max().item<float>() > 1e-6);
        // Replacing the dense pattern by itself changes nothing (the output is recomputed from it, to float rounding);
        // moving block 3's mass onto the first token changes the logits.
        var same = new Dictionary<string, HookFunction> { [HookPoints.AttnPattern(3)] = (v, _) => v.clone() };
        Assert.True((model.RunWithHooks(ids, same) - plain).abs().max().item<float>() < 1e-5);
        var first = new Dictionary<string, HookFunction>
        {
            [HookPoints.AttnPattern(3)] = (v, _) => zeros_like(v).index_fill(-1, tensor(new long[] { 0 }), 1.0),
        };
        Assert.True((model.RunWithHooks(ids, first) - plain).abs().max().item<float>() > 1e-4);
        // …and making every stream mix the identity at every site is a different model again.
        var identity = new Dictionary<string, HookFunction>();
        for (int l = 0; l < 4; l++)
            foreach (var name in new[] { HookPoints.HcAttnComb(l), HookPoints.HcFfnComb(l) })
                identity[name] = (v, _) => eye(4).expand_as(v).clone();
        Assert.True((model.RunWithHooks(ids, identity) - plain).abs().max().item<float>() > 1e-4);
    }
}
