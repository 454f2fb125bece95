using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests.Generations;

/// <summary>
/// Routing-frozen IG and the layer methods on DeepSeek-V3.2 and V4 (docs/generations-analyses.md, "Frozen routing"):
/// they run (V4 used to stop asking for inputIds), hash-routed layers are left alone (frozen by construction), the
/// indexers' top-k is held at the input's, so completeness (Sundararajan et al. 2017, Σ attr = F(E) − F(B)) holds for
/// the frozen function up to quadrature error, and the delta warning names the discrete selections.
/// </summary>
public class GenerationFrozenRoutingTests
{
    private static readonly long[] Ids = GenerationModels.Ids24;

    public static TheoryData<string> Generations => new() { "v32", "v4" };

    private static Model.Checkpoints.Checkpoint Load(string generation) => generation == "v32" ? GenerationModels.LoadV32() : GenerationModels.LoadV4();

    [Theory]
    [MemberData(nameof(Generations))]
    public void FrozenIg_HoldsEverySelection_SoCompletenessHolds_WhereStandardIgMissesByTheJumps(string generation)
    {
        using var ckpt = Load(generation);
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var ids = tensor(Ids, dtype: int64).unsqueeze(0);
        var target = AttributionTarget.Logit(-1, 7);
        var standard = MoeIntegratedGradients.Attribute(model, ids, target, nSteps: 64, routing: IgRouting.Standard);
        var frozen = MoeIntegratedGradients.Attribute(model, ids, target, nSteps: 64, routing: IgRouting.Frozen);
        double gap = frozen.FInput!.Value - frozen.FBaseline!.Value;
        // Frozen F at the input is the model's F (the input's own selections): same value as standard IG's.
        Assert.Equal(standard.FInput!.Value, frozen.FInput!.Value, 4);
        // Completeness of the smooth frozen function: |delta| a small fraction of the gap and far below standard IG's.
        Assert.True(Math.Abs(frozen.ConvergenceDelta!.Value) < 0.01 * Math.Abs(gap),
            $"{generation}: frozen delta {frozen.ConvergenceDelta} vs gap {gap} (standard delta {standard.ConvergenceDelta})");
        Assert.True(Math.Abs(frozen.ConvergenceDelta!.Value) < 0.2 * Math.Abs(standard.ConvergenceDelta!.Value),
            $"{generation}: frozen delta {frozen.ConvergenceDelta} should be well below standard's {standard.ConvergenceDelta}");
        Assert.Equal("frozen", frozen.Parameters["routing"]);
        Assert.DoesNotContain(frozen.Warnings, w => w.Contains("no score-routed MoE block"));
    }

    [Fact]
    public void V4FreezeHooks_SkipHashLayers_HoldTheCsaIndexer_AndReproduceTheModelAtTheInput()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        var c = model.Config;
        using var scope = NewDisposeScope();
        var ids = tensor(Ids, dtype: int64).unsqueeze(0);
        var e = model.Embed(ids).detach();
        var ex = Assert.Throws<ArgumentException>(() => MoeIntegratedGradients.FreezeRoutingHooks(model, e));
        Assert.Contains("pass inputIds", ex.Message);
        var hooks = MoeIntegratedGradients.FreezeRoutingHooks(model, e, ids);
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            Assert.Equal(c.IsMoeLayer(l) && !c.IsHashLayer(l), hooks.ContainsKey(HookPoints.SelectionScores(l)));
            Assert.Equal(c.AttentionKindOf(l) == AttentionKind.CompressedSparse, hooks.ContainsKey(HookPoints.IndexerTopk(l)));
        }
        Assert.Contains(Enumerable.Range(0, c.NumHiddenLayers), c.IsHashLayer);
        Assert.Contains(Enumerable.Range(0, c.NumHiddenLayers), l => c.AttentionKindOf(l) == AttentionKind.CompressedSparse);
        using var _ = no_grad();
        var plain = model.ForwardFromEmbeddings(e, null, ids);
        var held = model.ForwardFromEmbeddings(e, hooks, ids);
        Assert.True(plain.allclose(held, rtol: 0, atol: 1e-5), "at the input the frozen selections are the model's own");
    }

    [Fact]
    public void V32FreezeHooks_KeepTheInputsIndexerSelection_AtAPathPointWhereTheModelsOwnDiffers()
    {
        using var ckpt = GenerationModels.LoadV32();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var ids = tensor(Ids, dtype: int64).unsqueeze(0);
        var e = model.Embed(ids).detach();
        var hooks = MoeIntegratedGradients.FreezeRoutingHooks(model, e);
        string name = HookPoints.IndexerTopk(1);
        Assert.Contains(name, hooks.Keys);
        Tensor Selection(Tensor x, IReadOnlyDictionary<string, HookFunction>? baseHooks)
        {
            Tensor? seen = null;
            var h = new Dictionary<string, HookFunction>(baseHooks ?? new Dictionary<string, HookFunction>());
            h.TryGetValue(name, out var inner);
            h[name] = (v, n) => { var r = inner?.Invoke(v, n) ?? v; seen = r.detach().clone().DetachFromDisposeScope(); return inner is null ? null : r; };
            using var _ = no_grad();
            model.ForwardFromEmbeddings(x, h);
            return seen!;
        }
        var atInput = Selection(e, null);
        var point = e * 0.3f;   // the zero baseline's path at α = 0.3
        var own = Selection(point, null);
        var held = Selection(point, hooks);
        Assert.True(held.equal(atInput).all().item<bool>(), "the frozen forward must use the input's top-k keys");
        Assert.False(own.equal(atInput).all().item<bool>(), "the unhooked model selects other keys at this path point (else the test proves nothing)");
    }

    [Fact]
    public void LayerMethods_RunOnV4Streams_AttributingEveryStreamOfTheBlockOutput()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        var c = model.Config;
        using var scope = NewDisposeScope();
        var ids = tensor(Ids.Take(12).ToArray(), dtype: int64).unsqueeze(0);
        var target = AttributionTarget.Logit(-1, 7);
        int features = c.HyperConnections!.Mult * c.HiddenSize;
        Assert.True(c.HyperConnections!.Mult > 1);
        var lig = LayerIntegratedGradients.Attribute(model, ids, 1, target, nSteps: 16);
        var lc = LayerConductance.Attribute(model, ids, 1, target, nSteps: 16);
        foreach (var r in new[] { lig, lc })
        {
            Assert.Equal(new[] { 12, features }, r.Shape);
            Assert.All(r.Attributions, a => Assert.True(float.IsFinite(a)));
            Assert.True(r.Attributions.Any(a => a != 0));
            // Token sums add every stream's channels.
            Assert.Equal(r.Attributions.Skip(5 * features).Take(features).Sum(), r.TokenSums[5], 3);
        }
        // Layer IG on the last block's output: F is the hc_head collapse + norm + head of those streams, no discrete
        // selection after it, so completeness against the layer-space end points is the only error: Σ attr equals
        // F(E) − F(B) when h(B)'s forward is the baseline's (the delta here uses input-space end points, equal to them).
        var last = LayerIntegratedGradients.Attribute(model, ids, c.NumHiddenLayers - 1, target, nSteps: 32);
        double gap = last.FInput!.Value - last.FBaseline!.Value;
        Assert.True(Math.Abs(last.ConvergenceDelta!.Value) < 0.01 * Math.Abs(gap), $"last-layer IG delta {last.ConvergenceDelta} vs gap {gap}");
    }

    [Fact]
    public void LlmAttributionAndFeatureAblation_RunOnV4()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var llm = LlmGradientAttribution.Attribute(model, Ids.Take(8).ToArray(), new long[] { 50, 51 }, nSteps: 8);
        Assert.Equal(16, llm.TokenAttr.Length);
        Assert.All(llm.LogProbs, lp => Assert.True(lp < 0 && double.IsFinite(lp)));
        var ids = tensor(Ids.Take(8).ToArray(), dtype: int64).unsqueeze(0);
        var fa = FeatureAblation.Attribute(model, ids, AttributionTarget.Logit(-1, 7));
        // Ablating a token changes F by its attribution: independent check of position 3 by a direct forward.
        using var _ = no_grad();
        var e = model.Embed(ids);
        var b = Baseline.Default.Build(model, e);
        var mixed = e.clone();
        mixed[0, 3] = b[0, 3];
        double f = model.ForwardFromEmbeddings(e, null, ids)[0, -1, 7].item<float>();
        double fAblated = model.ForwardFromEmbeddings(mixed, null, ids)[0, -1, 7].item<float>();
        Assert.Equal(f - fAblated, fa.TokenSums[3], 3);
    }

    [Theory]
    [MemberData(nameof(Generations))]
    public void DeltaWarning_OnModelsWithDiscreteSelections_SaysMoreStepsWillNotHelp_AndPointsToFrozenRouting(string generation)
    {
        var c = generation == "v32" ? GenerationModels.V32Config : GenerationModels.V4Config;
        Assert.NotNull(ConvergenceDelta.DiscreteSelections(c));
        var warnings = new List<string>();
        ConvergenceDelta.Check("IG", -0.06, 1.0, 0.6, Baseline.Default, warnings, c);
        var msg = Assert.Single(warnings);
        Assert.Contains("does not shrink with more nSteps", msg);
        Assert.Contains("--routing frozen", msg);
        Assert.Contains("RoutingSwitches", msg);
        Assert.DoesNotContain("increase nSteps", msg);
        if (generation == "v32") Assert.Contains("indexer's top-k keys in", msg);
        // The frozen variant and a model without selections keep the quadrature advice.
        var frozenWarnings = new List<string>();
        ConvergenceDelta.Check("IG", -0.06, 1.0, 0.6, Baseline.Default, frozenWarnings, c, selectionsFrozen: true);
        Assert.Contains("increase nSteps", Assert.Single(frozenWarnings));
        // Below the threshold: no warning at all.
        var none = new List<string>();
        ConvergenceDelta.Check("IG", 1e-4, 1.0, 0.6, Baseline.Default, none, c);
        Assert.Empty(none);
    }

    [Fact]
    public void DeltaWarning_CountsScoreRoutedLayersOnly_HashLayersAreNoSelection()
    {
        var v4 = GenerationModels.V4Config;
        int scoreRouted = Enumerable.Range(0, v4.NumHiddenLayers).Count(l => v4.IsMoeLayer(l) && !v4.IsHashLayer(l));
        int csa = Enumerable.Range(0, v4.NumHiddenLayers).Count(l => v4.AttentionKindOf(l) == AttentionKind.CompressedSparse);
        Assert.Equal($"top-k experts in {scoreRouted} score-routed MoE layer{(scoreRouted == 1 ? "" : "s")}, the indexer's top-k keys in {csa} layer{(csa == 1 ? "" : "s")}",
            ConvergenceDelta.DiscreteSelections(v4));
        Assert.Null(ConvergenceDelta.DiscreteSelections(null));
    }
}
