using BenchmarkDotNet.Attributes;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Benchmarks;

/// <summary>One MLA layer forward at the DeepSeek-V2-Lite attention shape (hidden 2048, 16 heads, kv_lora 512) vs sequence length.</summary>
public class MlaBenchmarks
{
    [Params(64, 256, 1024, 2048)] public int SeqLen { get; set; }
    private MultiHeadLatentAttention _attn = null!;
    private Tensor _x = null!, _cos = null!, _sin = null!, _mask = null!;

    [GlobalSetup]
    public void Setup()
    {
        TorchRuntime.EnsureLoaded();
        var c = MoeDispatchBenchmarks.ConfigFor("v2lite");
        manual_seed(0);
        _attn = new MultiHeadLatentAttention("attn", c, 0);
        using (no_grad()) foreach (var p in _attn.parameters()) p.normal_(0, 0.02);
        _x = randn(1, SeqLen, c.HiddenSize);
        (_cos, _sin) = RotaryEmbedding.Tables(RotaryEmbedding.InverseFrequencies(c), 0, SeqLen, CPU);
        _mask = full(SeqLen, SeqLen, float.NegativeInfinity).triu(1);
    }

    [Benchmark(Description = "MLA forward")]
    public void Forward()
    {
        using var _ = no_grad();
        using var y = _attn.Forward(_x, _cos, _sin, _mask, null);
        Measure.PeakRss(new object[] { SeqLen });
    }
}

/// <summary>The bundled model's shape with random weights and a 1024-token context (speed does not depend on the weights).</summary>
internal static class BenchModel
{
    internal static DeepSeekModel Create() =>
        DeepSeekModel.Create(MoeDispatchBenchmarks.BundledShape() with { MaxPositionEmbeddings = 1024 }, seed: 0);
}

/// <summary>
/// Integrated Gradients, 50 Gauss–Legendre steps, at 32/128/512 tokens with internal batch sizes 1, 8 and 50 — against the
/// method's floor: one forward + backward over a batch of 50 scaled inputs.
/// </summary>
public class IntegratedGradientsBenchmarks
{
    [Params(32, 128, 512)] public int SeqLen { get; set; }
    [Params(1, 8, 50)] public int InternalBatch { get; set; }
    private DeepSeekModel _model = null!;
    private Tensor _ids = null!;

    [GlobalSetup]
    public void Setup()
    {
        TorchRuntime.EnsureLoaded();
        _model = BenchModel.Create();
        _ids = randint(0, _model.Config.VocabSize, new long[] { 1, SeqLen }, generator: new Generator(1));
    }

    [Benchmark(Description = "IG, 50 steps")]
    public void IntegratedGradients50()
    {
        IntegratedGradients.Attribute(_model, _ids, AttributionTarget.Logit(-1, 0), Baseline.Token(0), 50, IntegrationMethod.GaussLegendre, InternalBatch);
        Measure.PeakRss(new object[] { SeqLen, InternalBatch });
    }

    [Benchmark(Description = "floor: fwd+bwd of 50 inputs")]
    public void ForwardBackwardFloor()
    {
        if (InternalBatch != 50) return; // one floor per length (reported on the batch-50 row)
        using var scope = NewDisposeScope();
        var e = _model.Embed(_ids).detach().expand(50, -1, -1).contiguous().requires_grad_(true);
        var y = _model.ForwardFromEmbeddings(e).select(1, -1).select(1, 0).sum();
        autograd.grad(new[] { y }, new[] { e });
        Measure.PeakRss(new object[] { SeqLen, InternalBatch });
    }
}

/// <summary>Plain forward vs traced forward with the default observations and with every hook point recorded.</summary>
public class TracingBenchmarks
{
    private DeepSeekModel _model = null!;
    private Tensor _ids = null!;

    [GlobalSetup]
    public void Setup()
    {
        TorchRuntime.EnsureLoaded();
        _model = BenchModel.Create();
        _ids = randint(0, _model.Config.VocabSize, new long[] { 4, 256 }, generator: new Generator(2));
    }

    [Benchmark(Baseline = true, Description = "plain forward [4×256]")]
    public void Plain() { using var _ = no_grad(); using var y = _model.forward(_ids); }

    [Benchmark(Description = "traced: attention, routing, hidden, logits")]
    public void TracedDefault() { using var _ = no_grad(); using var t = _model.RunWithCache(_ids); }

    [Benchmark(Description = "traced: every hook point")]
    public void TracedEverything() { using var _ = no_grad(); using var t = _model.RunWithCache(_ids, TraceOptions.Default with { Everything = true }); }
}

/// <summary>Attention rollout vs attention flow over the bundled model's depth, on random causal attention.</summary>
public class RolloutFlowBenchmarks
{
    [Params(8, 16, 32, 64, 256, 1024)] public int SeqLen { get; set; }
    private List<float[,,]> _attention = null!;

    [GlobalSetup]
    public void Setup()
    {
        TorchRuntime.EnsureLoaded();
        var c = MoeDispatchBenchmarks.BundledShape();
        var rng = new Random(3);
        _attention = Enumerable.Range(0, c.NumHiddenLayers).Select(_ =>
        {
            var a = new float[c.NumAttentionHeads, SeqLen, SeqLen];
            for (int h = 0; h < c.NumAttentionHeads; h++)
                for (int q = 0; q < SeqLen; q++)
                {
                    float sum = 0;
                    for (int k = 0; k <= q; k++) sum += a[h, q, k] = (float)rng.NextDouble();
                    for (int k = 0; k <= q; k++) a[h, q, k] /= sum;
                }
            return a;
        }).ToList();
    }

    [Benchmark(Description = "rollout")]
    public void Rollout() => AttentionRollout.Compute(_attention);

    [Benchmark(Description = "flow (max-flow)")]
    public void Flow()
    {
        try { AttentionFlow.Compute(_attention); }
        catch (ArgumentException) { /* refused above the size limit: reported as a near-zero time; see docs */ }
    }
}
