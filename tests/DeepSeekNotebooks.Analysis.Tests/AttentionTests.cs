using DeepSeekNotebooks.Analysis.Attention;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>Rollout against the golden rollout (Abnar &amp; Zuidema 2020 on the reference attention), and attention flow.</summary>
public class AttentionTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    private readonly ITestOutputHelper _out;
    public AttentionTests(GoldenFixture g, ITestOutputHelper output) { _g = g; _out = output; }

    private static float[,,] GoldenAttention(int layer)
    {
        var (data, shape) = GoldenFixture.ReadF32("public.outputs.safetensors", $"attn_probs.{layer}"); // [2,4,12,12]
        int h = (int)shape[1], n = (int)shape[2];
        var r = new float[h, n, n];
        Buffer.BlockCopy(data, 0, r, 0, h * n * n * sizeof(float)); // sequence 0 comes first
        return r;
    }

    private static float[] Flat(float[,] m) { var f = new float[m.Length]; Buffer.BlockCopy(m, 0, f, 0, f.Length * sizeof(float)); return f; }
    private static float[] Flat(double[,] m) => m.Cast<double>().Select(v => (float)v).ToArray();
    private static float[] Flat(DeepSeekNotebooks.Analysis.Attention.AttentionMatrix m) => m.ToRowMajor();

    [Fact]
    public void Rollout_OfReferenceAttention_MatchesGolden()
    {
        var layers = Enumerable.Range(0, 3).Select(GoldenAttention).ToArray();
        var r = AttentionRollout.Compute(layers);
        var golden = GoldenFixture.ReadF32("public.rollout.safetensors", "rollout").Data;
        double err = GoldenFixture.MaxAbsDiff(Flat(r.Matrix), golden);
        _out.WriteLine($"rollout (reference attention) max abs err {err:G3}");
        Assert.True(err < 1e-6);
        for (int l = 0; l < 3; l++)
        {
            var aug = AttentionRollout.Augment(AttentionRollout.Fuse(layers[l], HeadFusion.Mean));
            Assert.True(GoldenFixture.MaxAbsDiff(Flat(aug), GoldenFixture.ReadF32("public.rollout.safetensors", $"augmented.{l}").Data) < 1e-6);
        }
        for (int q = 0; q < 12; q++) Assert.Equal(1.0, r.Row(q).Sum(v => (double)v), 5);
    }

    [Fact]
    public void Rollout_FromModel_MatchesGolden_AndSaves()
    {
        var r = AttentionRollout.Compute(_g.Model, _g.Ids());
        var golden = GoldenFixture.ReadF32("public.rollout.safetensors", "rollout").Data;
        double err = GoldenFixture.MaxAbsDiff(Flat(r.Matrix), golden);
        _out.WriteLine($"rollout (our model) max abs err {err:G3}");
        Assert.True(err < 1e-5);
        Assert.Equal(_g.InputIds, r.TokenIds);
        var path = Path.Combine(Path.GetTempPath(), $"rollout-{Guid.NewGuid():N}.safetensors");
        try
        {
            r.SaveSafetensors(path);
            using var f = DeepSeekNotebooks.Model.Checkpoints.SafetensorsFile.Open(path);
            Assert.Equal(new long[] { 12, 12 }, f.GetTensor("rollout").ToShapeArray());
            Assert.Equal(Flat(r.Matrix), f.ReadAsFloat32("rollout"));
            Assert.Equal("attention_rollout", f.Metadata["method"]);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Rollout_Options_BehaveAsDocumented()
    {
        var layers = Enumerable.Range(0, 3).Select(GoldenAttention).ToArray();
        // one layer = its augmented matrix
        var one = AttentionRollout.Compute(layers, startLayer: 1, endLayer: 1);
        Assert.True(GoldenFixture.MaxAbsDiff(Flat(one.Matrix), GoldenFixture.ReadF32("public.rollout.safetensors", "augmented.1").Data) < 1e-6);
        foreach (var fusion in new[] { HeadFusion.Max, HeadFusion.Min })
            foreach (var ratio in new[] { 0.0, 0.5, 0.9 })
            {
                var r = AttentionRollout.Compute(layers, fusion, ratio);
                for (int q = 0; q < 12; q++)
                {
                    var row = r.Row(q);
                    Assert.Equal(1.0, row.Sum(v => (double)v), 5);
                    for (int k = q + 1; k < 12; k++) Assert.Equal(0f, row[k]); // causal
                }
            }
        // discard 0.5: half of the 66 off-diagonal causal entries of each layer are zeroed, the diagonal kept
        var fused = AttentionRollout.Fuse(layers[0], HeadFusion.Mean);
        var aug = AttentionRollout.Augment(fused, 0.5);
        int zeroed = 0;
        for (int i = 0; i < 12; i++) { Assert.True(aug[i, i] > 0); for (int j = 0; j < i; j++) if (aug[i, j] == 0) zeroed++; }
        Assert.Equal(33, zeroed);
    }

    [Fact]
    public void AttentionFlow_RowsSumToOne_SingleLayerEqualsAugmented_AndRefusesLargeInputs()
    {
        var layers = Enumerable.Range(0, 3).Select(GoldenAttention).ToArray();
        var flow = AttentionFlow.Compute(layers);
        Assert.Equal(RolloutMethod.AttentionFlow, flow.Method);
        Assert.Equal("attention_flow", flow.Method.Name());
        for (int q = 0; q < 12; q++)
        {
            var row = flow.Row(q);
            Assert.Equal(1.0, row.Sum(v => (double)v), 5);
            Assert.All(row, v => Assert.True(v >= 0));
        }
        Assert.Equal(1f, flow.Matrix[0, 0], 5); // the first token only sees itself
        var single = AttentionFlow.Compute(layers, startLayer: 2, endLayer: 2);
        Assert.True(GoldenFixture.MaxAbsDiff(Flat(single.Matrix), GoldenFixture.ReadF32("public.rollout.safetensors", "augmented.2").Data) < 1e-6);
        var ex = Assert.Throws<ArgumentException>(() => AttentionFlow.Compute(layers, maxLayerTokens: 35));
        Assert.Contains("exceeds the limit", ex.Message);
        var fromModel = AttentionFlow.Compute(_g.Model, _g.Ids());
        Assert.True(GoldenFixture.MaxAbsDiff(Flat(fromModel.Matrix), Flat(flow.Matrix)) < 1e-4);
    }

    [Fact]
    public void Rollout_RejectsBadArguments()
    {
        var layers = Enumerable.Range(0, 3).Select(GoldenAttention).ToArray();
        Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(layers, discardRatio: 1.0));
        Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(layers, discardRatio: -0.1));
        Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(layers, discardRatio: double.NaN));
        Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(layers, startLayer: 3));
        Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(layers, startLayer: 2, endLayer: 1));
        Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(Array.Empty<float[,,]>()));
        Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(new[] { new float[1, 3, 4] }));
        Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(_g.Model, tensor(Array.Empty<long>())));
    }
}
