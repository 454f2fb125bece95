using System.Text.Json;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Tracing;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// Routing switches along IG's path and routing-frozen IG on the golden model, against the convergence study of
/// tests/fixtures/golden/captum2 (README "Deltas do not go to zero with more steps (MoE routing)", JSON
/// <c>convergence_study</c>): sequence 1 of the golden inputs, target 311 at the last position, baseline token 0.
/// </summary>
public class MoeAttributionTests : IClassFixture<GoldenFixture>
{
    private const string Set2 = "captum2/public.captum2.safetensors";
    private readonly GoldenFixture _g;
    private readonly ITestOutputHelper _out;

    public MoeAttributionTests(GoldenFixture g, ITestOutputHelper output) { _g = g; _out = output; }

    private static long[] Ids => GoldenFixture.ReadI64(Set2, "input_ids").Data;
    private static AttributionTarget Target => AttributionTarget.Logit(-1, 311);

    private static JsonElement Study(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(GoldenFixture.GoldenDir, "captum2", "public.captum2.json")));
        var e = doc.RootElement.GetProperty("convergence_study").GetProperty("jumps_on_1025_point_grid").GetProperty(path);
        return e.Clone();
    }

    [Fact]
    public void RoutingSwitches_OnTheInputPath_MatchTheGoldenConvergenceStudy()
    {
        var r = RoutingSwitches.Analyse(_g.Model, Ids, Target, Baseline.Token(0), gridPoints: 1025, igNSteps: 128);
        var s = Study("input_path.target");
        _out.WriteLine(r.Summary());
        foreach (var l in r.Layers) _out.WriteLine($"block {l.Layer}: {l.GridIntervals} intervals, {l.TokenSwitches} token switches, positions {string.Join(",", l.Positions)}");
        _out.WriteLine($"golden: {s}");
        Assert.Equal(new[] { 1, 2 }, r.MoeLayers);
        Assert.Equal(s.GetProperty("intervals_with_a_change").GetInt32(), r.GridIntervalsWithSwitch);
        foreach (var l in r.Layers)
        {
            // The study's layer{L}_changes counts (token, grid interval) pairs whose top-2 set changes.
            Assert.Equal(s.GetProperty($"layer{l.Layer}_changes").GetInt32(), l.TokenSwitches);
            Assert.Equal(s.GetProperty($"layer{l.Layer}_positions_with_changes").EnumerateArray().Select(x => x.GetInt32()).ToArray(), l.Positions);
        }
        // The generator's Σ jumps (grid differences minus the smooth part) vs ours (bisected to 1e-7): agree to 1 % of it.
        double golden = s.GetProperty("sum_of_jumps").GetDouble();
        Assert.True(Math.Abs(r.JumpTotal - golden) < 0.01 * Math.Abs(golden), $"Σ jumps {r.JumpTotal} vs golden {golden}");
        Assert.True(Math.Abs(r.LargestJump - s.GetProperty("largest_jump_abs").GetDouble()) < 1e-5, $"largest jump {r.LargestJump}");
        // IG at 128 steps: README's 2.41e-3; the jumps explain it up to the smooth-part quadrature error (README: ≈ 1e-4 at 128).
        Assert.True(Math.Abs(r.IgDelta - 2.4112e-3) < 5e-6, $"delta(128) {r.IgDelta}");
        Assert.InRange(r.ExplainedFraction, 0.95, 1.05);
        Assert.Equal(r.FInput - r.FBaseline, r.GridF[^1] - r.GridF[0], 5);
        foreach (var j in r.Jumps) Assert.True(j.AlphaRight - j.AlphaLeft <= 1e-7 + 1e-12 && j.Layers.Length > 0 && j.Positions.Length > 0);
        var back = RoutingSwitchReport.FromJson(r.ToJson());
        Assert.Equal(r.JumpTotal, back.JumpTotal);
        Assert.Equal(r.Layers.Select(l => l.Positions.Length), back.Layers.Select(l => l.Positions.Length));
    }

    [Fact]
    public void FrozenRouting_Completeness_HoldsAndImproves_WhereStandardStaysFlat()
    {
        using var ids = tensor(Ids, new long[] { 1, 12 });
        var steps = new[] { 8, 32, 128 };
        var c = MoeIntegratedGradients.Convergence(_g.Model, ids, Target, Baseline.Token(0), steps);
        for (int i = 0; i < steps.Length; i++) _out.WriteLine($"n={steps[i]}: standard {c.StandardDelta[i]:E3}, frozen {c.FrozenDelta[i]:E3}");
        // Standard: the golden study's values (32: 2.78e-3, 128: 2.41e-3), not shrinking.
        Assert.True(Math.Abs(c.StandardDelta[1] - 2.7775e-3) < 5e-6 && Math.Abs(c.StandardDelta[2] - 2.4112e-3) < 5e-6, "standard deltas differ from the golden study");
        Assert.True(Math.Abs(c.StandardDelta[2]) > 1e-3);
        // Frozen: smooth function, Gauss–Legendre converges; 128 steps to float32 noise.
        Assert.True(Math.Abs(c.FrozenDelta[1]) < Math.Abs(c.FrozenDelta[0]) && Math.Abs(c.FrozenDelta[2]) <= Math.Abs(c.FrozenDelta[1]) + 2e-6,
            $"frozen deltas do not decrease: {string.Join(", ", c.FrozenDelta)}");
        Assert.True(Math.Abs(c.FrozenDelta[2]) < 1e-5, $"frozen delta(128) {c.FrozenDelta[2]}");
        Assert.True(Math.Abs(c.FrozenDelta[2]) < Math.Abs(c.StandardDelta[2]) / 100);
        // Endpoints: the input routes as itself; the baseline with the input's experts is a different value than F(B).
        Assert.Equal(GoldenFixture.ReadF32(Set2, "f_input").Data[0], c.FInput, 5);
        Assert.Equal(GoldenFixture.ReadF32(Set2, "f_baseline").Data[0], c.FBaseline, 5);
        Assert.True(Math.Abs(c.FBaselineFrozen - c.FBaseline) > 1e-4, $"F_frozen(B) {c.FBaselineFrozen} vs F(B) {c.FBaseline}");
    }

    [Fact]
    public void FrozenRouting_UsesTheInputsExperts_AtEveryPathPoint_AndRecomputesWeights()
    {
        using var scope = NewDisposeScope();
        using var ids = tensor(Ids, new long[] { 1, 12 });
        var e = _g.Model.Embed(ids).detach();
        var b = Baseline.Token(0).Build(_g.Model, e);
        var hooks = MoeIntegratedGradients.FreezeRoutingHooks(_g.Model, e);
        Assert.Equal(new[] { HookPoints.SelectionScores(1), HookPoints.SelectionScores(2) }, hooks.Keys.OrderBy(k => k));
        // The hooks on a batch of path points (α = 0, 0.3, 0.7): every row routes like the input, i.e. as the reference
        // code routes sequence 1 (public.outputs.safetensors moe.{1,2}.indices rows 12..23).
        var a = tensor(new float[] { 0f, 0.3f, 0.7f }).view(3, 1, 1);
        var points = b + a * (e - b);
        var seen = new Dictionary<string, long[]>();
        var all = new Dictionary<string, HookFunction>(hooks)
        {
            [HookPoints.ExpertIndices(1)] = (v, n) => { seen[n] = v.cpu().data<long>().ToArray(); return null; },
            [HookPoints.ExpertIndices(2)] = (v, n) => { seen[n] = v.cpu().data<long>().ToArray(); return null; },
        };
        using (no_grad()) _g.Model.ForwardFromEmbeddings(points, all);
        var g1 = GoldenFixture.ReadI64("public.outputs.safetensors", "moe.1.indices").Data[24..];
        var g2 = GoldenFixture.ReadI64("public.outputs.safetensors", "moe.2.indices").Data[24..];
        // The top-2 *set* per token (the order inside it follows each point's own scores).
        static long[] Sets(IEnumerable<long> pairs) => pairs.Chunk(2).SelectMany(p => p.Order()).ToArray();
        for (int row = 0; row < 3; row++)
        {
            Assert.Equal(Sets(g1), Sets(seen[HookPoints.ExpertIndices(1)].Skip(row * 24).Take(24)));
            Assert.Equal(Sets(g2), Sets(seen[HookPoints.ExpertIndices(2)].Skip(row * 24).Take(24)));
        }
        // At the input the frozen function is the model: same value and the same gradient (the router's share included:
        // had the hooks frozen the weights too, the gate's gradient would be missing and these would differ).
        var t = Target.Resolve(12, 512, null);
        var gStandard = MoeIntegratedGradients.Gradient(_g.Model, e, t, new Dictionary<string, HookFunction>());
        var gFrozen = MoeIntegratedGradients.Gradient(_g.Model, e, t, hooks);
        Assert.Equal(0.0, (gStandard - gFrozen).abs().max().item<float>(), 6);
        Assert.Equal(MoeIntegratedGradients.Evaluate(_g.Model, e, t, new Dictionary<string, HookFunction>())[0], MoeIntegratedGradients.Evaluate(_g.Model, e, t, hooks)[0], 12);
        // Where the standard path routes differently (α = 0.3 has switched tokens), the frozen value differs.
        var fStd = MoeIntegratedGradients.Evaluate(_g.Model, points, t, new Dictionary<string, HookFunction>());
        var fFrz = MoeIntegratedGradients.Evaluate(_g.Model, points, t, hooks);
        Assert.True(Math.Abs(fStd[0] - fFrz[0]) > 1e-4, "the baseline routed like the input should change F");
    }

    [Fact]
    public void FrozenRouting_Result_CarriesRoutingAndBothBaselineValues()
    {
        var r = MoeIntegratedGradients.Attribute(_g.Model, Ids, Target, Baseline.Token(0), nSteps: 64);
        var s = MoeIntegratedGradients.Attribute(_g.Model, Ids, Target, Baseline.Token(0), nSteps: 64, routing: IgRouting.Standard);
        Assert.Equal("frozen", r.Parameters["routing"]);
        Assert.Equal("standard", s.Parameters["routing"]);
        Assert.Equal(AttributionMethod.IntegratedGradients, r.Method);
        Assert.Equal(s.FBaseline!.Value, double.Parse(r.Parameters["f_baseline_standard"], System.Globalization.CultureInfo.InvariantCulture), 12);
        double sum = r.Attributions.Sum(v => (double)v);
        Assert.Equal(r.FInput!.Value - r.FBaseline!.Value, sum, 5);
        Assert.Empty(r.Warnings);
        Assert.Equal(IgRouting.Frozen, MoeIntegratedGradients.ParseRouting("Frozen"));
        var ex = Assert.Throws<ArgumentException>(() => MoeIntegratedGradients.ParseRouting("fixed"));
        Assert.Contains("standard", ex.Message);
        Assert.Contains("frozen", ex.Message);
    }

    [Fact]
    public void FrozenRouting_HonoursGroupLimitsAndSelectionBias_OnTheBundledModel()
    {
        // The bundled model routes with sigmoid scores, a selection bias and n_group = 2 / topk_group = 1: the masked
        // selection scores must keep the input's group (top-2 sums) and its experts, at every point of the path.
        using var ckpt = DeepSeekNotebooks.Model.Checkpoints.Checkpoint.Load(Path.Combine(GoldenFixture.RepoRoot(), "data", "checkpoints", "deepseek-tiny-moe"));
        var c = ckpt.Model.Config;
        Assert.True(c.NGroup > 1 && c.TopkGroup < c.NGroup && c.HasGateBias, "the bundled model should exercise group-limited, biased routing");
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 5, 77, 301, 12, 9, 440, 63, 128 }, new long[] { 1, 8 });
        var e = ckpt.Model.Embed(ids).detach();
        var b = Baseline.Token(0).Build(ckpt.Model, e);
        var moe = Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsMoeLayer).ToArray();
        var hooks = MoeIntegratedGradients.FreezeRoutingHooks(ckpt.Model, e);
        var seenInput = new Dictionary<int, long[]>();
        var seenPath = new Dictionary<int, long[]>();
        Dictionary<string, HookFunction> Record(Dictionary<int, long[]> into, IReadOnlyDictionary<string, HookFunction> with)
        {
            var h = new Dictionary<string, HookFunction>(with);
            foreach (var l in moe) { int layer = l; h[HookPoints.ExpertIndices(l)] = (v, _) => { into[layer] = v.cpu().data<long>().ToArray(); return null; }; }
            return h;
        }
        using (no_grad())
        {
            ckpt.Model.ForwardFromEmbeddings(e, Record(seenInput, new Dictionary<string, HookFunction>()));
            var alphas = tensor(new float[] { 0f, 0.25f, 0.5f, 0.75f }).view(4, 1, 1);
            ckpt.Model.ForwardFromEmbeddings(b + alphas * (e - b), Record(seenPath, hooks));
        }
        static long[][] Sets(long[] flat, int k) => flat.Chunk(k).Select(x => x.Order().ToArray()).ToArray();
        int k = c.NumExpertsPerTok, perGroup = c.NRoutedExperts / c.NGroup;
        foreach (var l in moe)
        {
            var want = Sets(seenInput[l], k);
            var got = Sets(seenPath[l], k);
            for (int row = 0; row < got.Length; row++) Assert.Equal(want[row % 8], got[row]);
            // The input's own choice respects the group limit (at most topk_group groups per token).
            Assert.All(want, t => Assert.True(t.Select(x => x / perGroup).Distinct().Count() <= c.TopkGroup));
        }
        // Completeness on this model too: 64 steps leave a delta at float32 noise, far below standard IG's.
        var frozen = MoeIntegratedGradients.Attribute(ckpt.Model, ids, null, Baseline.Token(0), nSteps: 64);
        var standard = MoeIntegratedGradients.Attribute(ckpt.Model, ids, null, Baseline.Token(0), nSteps: 64, routing: IgRouting.Standard);
        _out.WriteLine($"bundled: frozen delta {frozen.ConvergenceDelta:E3}, standard {standard.ConvergenceDelta:E3}");
        Assert.True(Math.Abs(frozen.ConvergenceDelta!.Value) < 1e-4 * Math.Abs(frozen.FInput!.Value - frozen.FBaseline!.Value) + 1e-5);
    }

    [Fact]
    public void RoutingSwitches_BadArguments_SayWhatIsAllowed()
    {
        var e1 = Assert.Throws<ArgumentException>(() => RoutingSwitches.Analyse(_g.Model, Ids, Target, gridPoints: 1));
        Assert.Contains("gridPoints", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => RoutingSwitches.Analyse(_g.Model, Ids, Target, gridPoints: 11, tolerance: 0.5));
        Assert.Contains("below the grid spacing", e2.Message);
        using var scope = NewDisposeScope();
        var e = _g.Model.Embed(tensor(Ids, new long[] { 1, 12 })).detach();
        var hooks = MoeIntegratedGradients.FreezeRoutingHooks(_g.Model, e);
        var shorter = e.narrow(1, 0, 5);
        var ex = Assert.Throws<InvalidOperationException>(() => { using var _ = no_grad(); _g.Model.ForwardFromEmbeddings(shorter, hooks); });
        Assert.Contains("12 tokens", ex.Message);
    }
}
