using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests.Generations;

/// <summary>
/// Attribution through the lightning indexer's top-k (V3.2) and V4 compressed sparse attention: IG and Saliency run,
/// and no gradient reaches the indexer (its scores only choose keys, a piecewise-constant function).
/// </summary>
public class GenerationAttributionTests
{
    private static readonly long[] Ids = GenerationModels.Ids24.Take(12).ToArray();

    public static TheoryData<string> Generations => new() { "v32", "v4" };

    private static Model.Checkpoints.Checkpoint Load(string generation) => generation == "v32" ? GenerationModels.LoadV32() : GenerationModels.LoadV4();

    [Theory]
    [MemberData(nameof(Generations))]
    public void IntegratedGradientsAndSaliency_Run_AndSaliencyIsTheGradientOfTheLogit(string generation)
    {
        using var ckpt = Load(generation);
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var ids = tensor(Ids, dtype: int64).unsqueeze(0);
        var target = AttributionTarget.Logit(-1, 7);
        var ig = IntegratedGradients.Attribute(model, ids, target, nSteps: 16);
        Assert.Equal(Ids.Length, ig.SequenceLength);
        Assert.All(ig.Attributions, a => Assert.True(float.IsFinite(a)));
        Assert.NotNull(ig.ConvergenceDelta);
        // IG's delta is F(E) − F(B) − Σ attr: finite and reported (top-k jumps along the path are invisible to gradients,
        // so it need not vanish; docs/generations-analyses.md).
        Assert.True(double.IsFinite(ig.ConvergenceDelta!.Value));

        // Saliency (signed) against an independent finite difference of the model's own forward along one embedding direction.
        var sal = Saliency.Attribute(model, ids, target, abs: false);
        using var _ = no_grad();
        var e = model.Embed(ids);
        var dir = randn(e.shape, generator: new Generator(3)) * 1e-3f;
        Tensor? hashIds = model.Config.NumHashLayers > 0 ? ids : null;
        double Logit(Tensor x) => model.ForwardFromEmbeddings(x, null, hashIds)[0, -1, 7].to(float64).item<double>();
        double fd = (Logit(e + dir) - Logit(e - dir)) / 2;
        double lin = tensor(sal.Attributions).reshape(e.shape).to(float64).mul(dir.to(float64)).sum().item<double>();
        Assert.True(Math.Abs(fd - lin) < 0.05 * Math.Abs(fd) + 1e-6, $"finite difference {fd} vs gradient·direction {lin}");
    }

    [Theory]
    [MemberData(nameof(Generations))]
    public void NoGradientReachesTheIndexer_ButItReachesTheAttentionItSelectsFor(string generation)
    {
        using var ckpt = Load(generation);
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        foreach (var p in model.parameters()) p.grad = null;
        using (enable_grad())
        {
            var logits = model.RunWithHooks(tensor(Ids, dtype: int64).unsqueeze(0), new Dictionary<string, HookFunction>());
            logits[0, -1, 7].backward();
        }
        var indexer = model.named_parameters().Where(p => p.name.Contains(".attn.indexer.")).ToList();
        Assert.NotEmpty(indexer);
        foreach (var (name, p) in indexer)
            Assert.True(p.grad is null || p.grad.abs().max().item<float>() == 0, $"{name} got a gradient: the indexer's top-k should pass none");
        // The attention the indexer selects for does get gradient (its query projection).
        var attnQuery = model.named_parameters().First(p => p.name == "layers.1.attn.wq_b.weight").parameter;
        Assert.NotNull(attnQuery.grad);
        Assert.True(attnQuery.grad!.abs().max().item<float>() > 0);
        foreach (var p in model.parameters()) p.grad = null;
    }

    [Fact]
    public void V32_TopkSelection_IsConstantOnASmallNeighbourhood()
    {
        // Around the input the indexer keeps the same keys (piecewise constant): there the model is MLA over those keys,
        // which is what the gradient (and the finite difference of the test above) sees.
        using var ckpt = GenerationModels.LoadV32();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = tensor(Ids, dtype: int64).unsqueeze(0);
        var e = model.Embed(ids);
        var dir = randn(e.shape, generator: new Generator(5)) * 1e-4f;
        var names = Enumerable.Range(0, 3).Select(HookPoints.IndexerTopk).ToArray();
        bool[] Selected(Tensor x)
        {
            var sel = new List<bool>();
            // Read the mask inside the hook: the forward's dispose scope frees the recorded tensor afterwards.
            model.ForwardFromEmbeddings(x, names.ToDictionary(n => n, n => (HookFunction)((v, _) => { sel.AddRange(v.cpu().data<bool>().ToArray()); return v; })));
            return sel.ToArray();
        }
        var at0 = Selected(e);
        Assert.Equal(at0, Selected(e + dir));
        Assert.Equal(at0, Selected(e - dir));
    }
}
