using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>The hook registry (HookPoints.All / Validate), names filters, and unknown names as errors everywhere.</summary>
public class HookRegistryTests
{
    private static readonly long[] Ids = { 3, 17, 42, 8, 8, 60 };

    private static DeepSeekModel NewModel(DeepSeekConfig? c = null) => DeepSeekModel.Create(c ?? DeepSeekConfig.TinyFullFeatured, seed: 5);

    private static string[] Block(int l, params string[] suffixes) => suffixes.Select(s => $"blocks.{l}.{s}").ToArray();

    [Fact]
    public void All_ForTheTinyModel_IsTheHandWrittenList_InForwardOrder()
    {
        // TinyFullFeatured: 3 blocks, block 0 dense, blocks 1-2 MoE with a shared expert.
        var expected = new List<string> { "embed" };
        // MLA's per-head points in forward order: queries (nope, rotated rope), the shared rope key, the latent, keys, values; z after the pattern.
        string[] mla = { "attn.q_nope", "attn.q_rope", "attn.k_rope", "attn.kv_latent", "attn.k_nope", "attn.v" };
        expected.AddRange(Block(0, new[] { "resid_pre" }.Concat(mla).Concat(new[] { "attn.pattern", "attn.z", "attn.out", "resid_mid", "mlp.out", "resid_post" }).ToArray()));
        foreach (var l in new[] { 1, 2 })
            expected.AddRange(Block(l, new[] { "resid_pre" }.Concat(mla).Concat(new[] { "attn.pattern", "attn.z", "attn.out", "resid_mid",
                "moe.router", "moe.selection", "moe.indices", "moe.weights", "moe.shared_out", "mlp.out", "resid_post" }).ToArray()));
        expected.AddRange(new[] { "ln_final", "logits" });
        Assert.Equal(expected, HookPoints.All(DeepSeekConfig.TinyFullFeatured));
    }

    public static TheoryData<string> Shapes => new() { "full", "no-shared", "every-other-moe", "dense", "v32-indexer" };

    private static DeepSeekConfig Shape(string shape) => shape switch
    {
        "no-shared" => DeepSeekConfig.TinyFullFeatured with { NSharedExperts = 0 },
        "every-other-moe" => DeepSeekConfig.TinyFullFeatured with { NumHiddenLayers = 5, MoeLayerFreq = 2 },
        "dense" => DeepSeekConfig.TinyFullFeatured with { NRoutedExperts = 0 },
        // DeepSeek-V3.2's lightning indexer (FP8 simulation on: index_head_dim and kv_lora_rank one 128-block each).
        "v32-indexer" => DeepSeekConfig.TinyFullFeatured with { KvLoraRank = 128, Indexer = new LightningIndexerConfig { NHeads = 2, HeadDim = 128, Topk = 3 } },
        _ => DeepSeekConfig.TinyFullFeatured,
    };

    /// <summary>The registry lists exactly the points the forward pass visits (recorded with an unchecked predicate).</summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void All_EqualsThePointsTheForwardVisits(string shape)
    {
        var c = Shape(shape);
        using var model = NewModel(c);
        using var scope = NewDisposeScope();
        using var trace = model.RunWithCache(tensor(Ids), new TraceOptions { Names = NamesFilter.Where(_ => true, "everything") });
        Assert.Equal(trace.Names.Order(StringComparer.Ordinal), HookPoints.All(c).Order(StringComparer.Ordinal));
        Assert.All(HookPoints.All(c), n => Assert.True(HookPoints.Exists(n, c)));
    }

    [Theory]
    [InlineData("blocks.1.attn.patern", "Did you mean 'blocks.1.attn.pattern'")]
    [InlineData("blocks.0.moe.router", "block 0 is a dense block (MoE hook points exist on blocks 1..2)")]
    [InlineData("blocks.7.resid_post", "the model has blocks 0..2")]
    [InlineData("blocks.1.attn.indexer.scores", "the model has no lightning indexer")]
    [InlineData("blocks.1.attn.zz", "Did you mean 'blocks.1.attn.z'")]
    [InlineData("blocks.0.attn.kv_latnet", "Did you mean 'blocks.0.attn.kv_latent'")]
    [InlineData("hidden.1", "Valid names: embed, blocks.0.resid_pre")]
    public void UnknownHookName_InRunWithHooks_IsAnError_ListingTheValidNames(string name, string hint)
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        int calls = 0;
        var hooks = new Dictionary<string, HookFunction> { [name] = (v, _) => { calls++; return v; } };
        var e = Assert.Throws<ArgumentException>(() => model.RunWithHooks(tensor(Ids), hooks));
        Assert.Equal(0, calls);
        Assert.Contains($"'{name}' is not a hook point of this model", e.Message);
        Assert.Contains(hint, e.Message);
        Assert.Contains("blocks.2.moe.shared_out", e.Message); // the tiny model's list is short: every name is given
    }

    [Fact]
    public void UnknownNames_InTraceOptionsAndForwardFromEmbeddings_AreErrors()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var typo = "blocks.1.moe.indexes";
        var hook = new Dictionary<string, HookFunction> { [typo] = (v, _) => v };
        Assert.Contains("Did you mean 'blocks.1.moe.indices'",
            Assert.Throws<ArgumentException>(() => model.RunWithCache(tensor(Ids), new TraceOptions { Hooks = hook })).Message);
        Assert.Contains("Did you mean 'blocks.1.moe.indices'",
            Assert.Throws<ArgumentException>(() => model.RunWithCache(tensor(Ids), new TraceOptions { Extra = new[] { typo } })).Message);
        Assert.Contains("Did you mean 'blocks.1.moe.indices'",
            Assert.Throws<ArgumentException>(() => model.RunWithCache(tensor(Ids), new TraceOptions { Names = typo })).Message);
        var pattern = Assert.Throws<ArgumentException>(() => model.RunWithCache(tensor(Ids), new TraceOptions { Names = "blocks.*.mlp.output" }));
        Assert.Contains("the pattern 'blocks.*.mlp.output' matches no hook point", pattern.Message);
        Assert.Contains("blocks.{0..2}.mlp.out", pattern.Message);
        var embeddings = model.Embed(tensor(Ids));
        Assert.Throws<ArgumentException>(() => model.ForwardFromEmbeddings(embeddings, hook));
    }

    [Fact]
    public void ModelTrace_Indexer_TellsANotRecordedPointFromANonexistentOne()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        using var trace = model.RunWithCache(tensor(Ids), new TraceOptions { Names = NamesFilter.Logits });
        Assert.Contains("was not recorded", Assert.Throws<KeyNotFoundException>(() => trace[HookPoints.ResidMid(1)]).Message);
        Assert.Contains("is not a hook point of this model", Assert.Throws<KeyNotFoundException>(() => trace["blocks.1.resid_middle"]).Message);
    }

    [Fact]
    public void Validate_OnAFullSizeModel_GivesCloseNamesAndPatterns_NotSixHundredNames()
    {
        var v3 = DeepSeekConfig.TinyFullFeatured with { NumHiddenLayers = 61, FirstKDenseReplace = 3 };
        Assert.Equal(1 + 3 * (6 + 7) + 58 * (11 + 7) + 2, HookPoints.All(v3).Count);   // + 7 MLA per-head points per block
        var e = Assert.Throws<ArgumentException>(() => HookPoints.Validate("blocks.40.moe.wieghts", v3));
        Assert.Contains("Did you mean 'blocks.40.moe.weights'", e.Message);
        Assert.Contains("blocks.{0..60}.resid_pre", e.Message);
        Assert.Contains("blocks.{3..60}.moe.router", e.Message);
        Assert.DoesNotContain("blocks.12.resid_pre", e.Message);
        var dense = Assert.Throws<ArgumentException>(() => HookPoints.Validate(HookPoints.ExpertIndices(1), v3));
        Assert.Contains("block 1 is a dense block (MoE hook points exist on blocks 3..60)", dense.Message);
        HookPoints.Validate(HookPoints.ExpertIndices(3), v3);
        // Leading zeros and signs are not block indices.
        Assert.False(HookPoints.Exists("blocks.01.resid_pre", v3));
        Assert.False(HookPoints.Exists("blocks.-1.resid_pre", v3));
    }

    [Fact]
    public void TheBooleanFlags_SelectTheirPresets_AsBefore()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        using (var t = model.RunWithCache(tensor(Ids), new TraceOptions { AttentionPatterns = false, Routing = true, HiddenStates = false, Logits = false }))
            Assert.Equal(new[] { "blocks.1.moe.router", "blocks.1.moe.indices", "blocks.1.moe.weights", "blocks.2.moe.router", "blocks.2.moe.indices", "blocks.2.moe.weights" }.Order(),
                t.Names.Order());
        using (var t = model.RunWithCache(tensor(Ids)))
            Assert.Equal(3 + 6 + 3 + 1, t.Names.Count); // 3 patterns, 2×3 routing, 3 hidden, logits
        using (var t = model.RunWithCache(tensor(Ids), TraceOptions.Default with { Everything = true }))
            Assert.Equal(HookPoints.All(model.Config).Count, t.Names.Count);
        using (var t = model.RunWithCache(tensor(Ids), new TraceOptions { Routing = false, Extra = new[] { HookPoints.ResidMid(2) } }))
        {
            Assert.Contains(HookPoints.ResidMid(2), t.Names);
            Assert.DoesNotContain(HookPoints.ExpertIndices(1), t.Names);
            Assert.Contains(HookPoints.AttnPattern(0), t.Names);
        }
        var o = new TraceOptions { AttentionPatterns = false, Logits = false };
        Assert.False(o.AttentionPatterns);
        Assert.True(o.Routing);
        Assert.Equal(NamesFilter.Routing | NamesFilter.HiddenStates, o.Names);
    }

    [Fact]
    public void NamesFilter_ExactNamesPatternsPredicatesAndPresets()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var c = model.Config;
        Assert.Equal(new[] { "blocks.1.moe.indices", "blocks.2.moe.indices" }, ((NamesFilter)"blocks.*.moe.indices").Select(c));
        // '*' is one dot-free part: "blocks.2.*" is the block's one-part names, "blocks.2.moe.*" its MoE names.
        Assert.Equal(Block(2, "resid_pre", "resid_mid", "resid_post"), ((NamesFilter)"blocks.2.*").Select(c));
        Assert.Equal(Block(2, "moe.router", "moe.selection", "moe.indices", "moe.weights", "moe.shared_out"), NamesFilter.Pattern("blocks.2.moe.*").Select(c));
        var residual = NamesFilter.ResidualStream.Select(c);
        Assert.Equal(1 + 3 * 3, residual.Count);
        Assert.Contains("embed", residual);
        using var trace = model.RunWithCache(tensor(Ids), new TraceOptions { Names = new[] { HookPoints.ResidMid(0), HookPoints.Logits } });
        Assert.Equal(new[] { HookPoints.ResidMid(0), HookPoints.Logits }, trace.Names.Order(StringComparer.Ordinal));
        using var byPredicate = model.RunWithCache(tensor(Ids), new TraceOptions { Names = NamesFilter.Where(n => n.EndsWith("attn.out")) });
        Assert.Equal(3, byPredicate.Names.Count);
        // the recorded values are those of a plain forward
        Assert.Equal(0f, (trace.Logits - model.forward(tensor(Ids))).abs().max().item<float>());
    }
}
