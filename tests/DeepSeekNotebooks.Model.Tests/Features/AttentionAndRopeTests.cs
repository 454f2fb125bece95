using DeepSeekNotebooks.Model.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>MLA with query LoRA, RoPE (adjacent pairs, relative-position invariance) and YaRN against the official formulas.</summary>
public class AttentionAndRopeTests
{
    [Fact]
    public void QueryLoRA_Model_HasLowRankQueryParameters_AndRuns()
    {
        var c = DeepSeekConfig.TinyFullFeatured;
        using var model = DeepSeekModel.Create(c, seed: 1);
        var names = model.named_parameters().Select(p => p.name).ToHashSet();
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            Assert.Contains($"layers.{l}.attn.wq_a.weight", names);
            Assert.Contains($"layers.{l}.attn.q_norm.weight", names);
            Assert.Contains($"layers.{l}.attn.wq_b.weight", names);
            Assert.DoesNotContain($"layers.{l}.attn.wq.weight", names);
        }
        var shapes = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal(new long[] { c.QLoraRank!.Value, c.HiddenSize }, shapes["layers.0.attn.wq_a.weight"]);
        Assert.Equal(new long[] { c.NumAttentionHeads * c.QkHeadDim, c.QLoraRank.Value }, shapes["layers.0.attn.wq_b.weight"]);
        Assert.Contains("layers.1.ffn.gate.bias", names);

        using var scope = NewDisposeScope();
        var logits = model.forward(tensor(new long[] { 1, 5, 9, 33, 2, 63 }));
        Assert.Equal(new long[] { 1, 6, c.VocabSize }, logits.shape);
        Assert.True(logits.isfinite().all().item<bool>());

        // Without LoRA: a single wq.
        using var full = DeepSeekModel.Create(c with { QLoraRank = null }, seed: 1);
        var fullNames = full.named_parameters().Select(p => p.name).ToHashSet();
        Assert.Contains("layers.0.attn.wq.weight", fullNames);
        Assert.DoesNotContain("layers.0.attn.wq_a.weight", fullNames);
        Assert.DoesNotContain("layers.0.attn.q_norm.weight", fullNames);
    }

    private static Tensor Rotate(Tensor x /* [d] */, float[] freqs, long position)
    {
        var (cos, sin) = RotaryEmbedding.Tables(freqs, position, 1, CPU);
        return RotaryEmbedding.Apply(x.view(1, 1, 1, -1), cos, sin).view(-1);
    }

    [Theory]
    [InlineData(5, 2, 17)]
    [InlineData(0, 9, 30)]
    [InlineData(40, 40, 11)]
    public void Rope_DotProductDependsOnlyOnRelativePosition(long m, long n, long t)
    {
        var c = DeepSeekConfig.TinyFullFeatured with { QkRopeHeadDim = 8 };
        var freqs = RotaryEmbedding.InverseFrequencies(c);
        using var scope = NewDisposeScope();
        var g = new Generator(4);
        var q = randn(8, generator: g);
        var k = randn(8, generator: g);
        double a = Rotate(q, freqs, m).dot(Rotate(k, freqs, n)).item<float>();
        double b = Rotate(q, freqs, m + t).dot(Rotate(k, freqs, n + t)).item<float>();
        Assert.True(Math.Abs(a - b) < 1e-4, $"<R({m})q, R({n})k> = {a} but shifted by {t}: {b}");
        // The rotation is norm-preserving.
        Assert.Equal(q.norm().item<float>(), Rotate(q, freqs, m + t).norm().item<float>(), 4);
    }

    [Fact]
    public void Rope_RotatesAdjacentPairs_AtEachRowsPosition()
    {
        float[] freqs = { 0.7f, 0.05f };
        using var scope = NewDisposeScope();
        // x [batch 1, seq 4, heads 1, 4]; position p = row index.
        var rows = new[] { new[] { 1f, 2f, 3f, 4f }, new[] { -1f, 0.5f, 2f, -3f }, new[] { 0.3f, 0.2f, 0.1f, 0f }, new[] { 1f, 2f, 3f, 4f } };
        var x = tensor(rows.SelectMany(r => r).ToArray(), new long[] { 1, 4, 1, 4 });
        var (cos, sin) = RotaryEmbedding.Tables(freqs, 0, 4, CPU);
        var y = RotaryEmbedding.Apply(x, cos, sin).data<float>().ToArray();
        for (int p = 0; p < 4; p++)
            for (int i = 0; i < 2; i++)
            {
                double ang = p * (double)freqs[i], x0 = rows[p][2 * i], x1 = rows[p][2 * i + 1];
                // (x0 + i·x1)·e^{i·p·θ}: the official view_as_complex pairs elements 2i and 2i+1.
                Assert.Equal(x0 * Math.Cos(ang) - x1 * Math.Sin(ang), y[p * 4 + 2 * i], 5);
                Assert.Equal(x0 * Math.Sin(ang) + x1 * Math.Cos(ang), y[p * 4 + 2 * i + 1], 5);
            }
    }

    /// <summary>Official <c>precompute_freqs_cis</c> (find_correction_dim/range, linear_ramp_factor, smooth) in double precision.</summary>
    private static double[] OfficialFreqs(int dim, double theta, int maxSeq, int originalSeq, double factor, double betaFast, double betaSlow)
    {
        var freqs = Enumerable.Range(0, dim / 2).Select(i => 1.0 / Math.Pow(theta, 2.0 * i / dim)).ToArray();
        if (maxSeq <= originalSeq) return freqs;
        double CorrectionDim(double rot) => dim * Math.Log(originalSeq / (rot * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = Math.Max(Math.Floor(CorrectionDim(betaFast)), 0);
        double high = Math.Min(Math.Ceiling(CorrectionDim(betaSlow)), dim - 1);
        if (low == high) high += 0.001;
        for (int i = 0; i < freqs.Length; i++)
        {
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            double smooth = 1 - ramp;
            freqs[i] = freqs[i] / factor * (1 - smooth) + freqs[i] * smooth;
        }
        return freqs;
    }

    [Theory]
    [InlineData(64, 10000.0, 16)]   // correction range [0, 4]: dim 0 kept, 1..3 ramped, 4.. divided by factor
    [InlineData(4, 10000.0, 16)]    // TinyFullFeatured
    [InlineData(32, 500.0, 16)]
    [InlineData(8, 10000.0, 5)]     // original length < 2π: low == high == 0 (the +0.001 branch)
    public void Yarn_InverseFrequencies_MatchOfficialCorrection(int dim, double theta, int original)
    {
        var c = DeepSeekConfig.TinyFullFeatured with
        {
            QkRopeHeadDim = dim, RopeTheta = theta, MaxPositionEmbeddings = 64,
            RopeScaling = new RopeScaling { Factor = 4, OriginalMaxPositionEmbeddings = original, BetaFast = 32, BetaSlow = 1, MscaleAllDim = 1 },
        };
        Assert.True(c.YarnActive);
        var got = RotaryEmbedding.InverseFrequencies(c);
        var want = OfficialFreqs(dim, theta, 64, original, 4, 32, 1);
        var plain = OfficialFreqs(dim, theta, 1, 2, 4, 32, 1);
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(got[i] - want[i]) <= 2e-6 * want[i], $"freq[{i}] = {got[i]}, official {want[i]}");
        Assert.Equal(plain[0], got[0], 6);                                    // highest frequency: unchanged
        Assert.True(Math.Abs(got[^1] - plain[^1] / 4) <= 2e-6 * plain[^1]);   // lowest frequency: divided by the factor
        if (dim == 64)
        {
            Assert.Equal(plain[2] * (0.5 + 0.5 / 4), got[2], 6);              // halfway up the ramp (low 0, high 4)
            Assert.All(Enumerable.Range(4, 28), i => Assert.True(Math.Abs(got[i] - plain[i] / 4) <= 2e-6 * plain[i]));
        }
    }

    [Theory]
    [InlineData(16)]
    [InlineData(10)]
    public void Yarn_Inactive_WhenContextNotLongerThanOriginal(int maxPositions)
    {
        var c = DeepSeekConfig.TinyFullFeatured with
        {
            QkRopeHeadDim = 16, MaxPositionEmbeddings = maxPositions,
            RopeScaling = new RopeScaling { Factor = 4, OriginalMaxPositionEmbeddings = 16, MscaleAllDim = 1 },
        };
        Assert.False(c.YarnActive);
        var got = RotaryEmbedding.InverseFrequencies(c);
        var plain = OfficialFreqs(16, 10000, 1, 2, 4, 32, 1);
        for (int i = 0; i < plain.Length; i++) Assert.True(Math.Abs(got[i] - plain[i]) <= 2e-6 * plain[i]);
        Assert.Equal(Math.Pow(c.QkHeadDim, -0.5), c.SoftmaxScale, 12);
        Assert.Equal(Math.Pow(c.QkHeadDim, -0.5), (c with { RopeScaling = null }).SoftmaxScale, 12);
    }

    [Theory]
    [InlineData(4.0, 1.0)]
    [InlineData(40.0, 1.0)]
    [InlineData(4.0, 0.707)]
    public void SoftmaxScale_WithYarn_IsMscaleSquaredCorrected(double factor, double mscaleAllDim)
    {
        var c = DeepSeekConfig.TinyFullFeatured with
        {
            RopeScaling = new RopeScaling { Factor = factor, OriginalMaxPositionEmbeddings = 16, MscaleAllDim = mscaleAllDim },
        };
        Assert.True(c.YarnActive);
        double m = 0.1 * mscaleAllDim * Math.Log(factor) + 1;
        Assert.Equal(Math.Pow(8 + 4, -0.5) * m * m, c.SoftmaxScale, 12);
    }
}
