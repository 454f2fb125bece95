using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>The sort-by-expert MoE dispatch against a naive per-token loop with an independently computed routing.</summary>
public class MoeDispatchTests
{
    internal static DeepSeekConfig ManyExperts => (DeepSeekConfig.TinyFullFeatured with
    {
        HiddenSize = 16, IntermediateSize = 32, MoeIntermediateSize = 8, NRoutedExperts = 64, NSharedExperts = 2,
        NumExpertsPerTok = 6, NGroup = 8, TopkGroup = 3,
    }).Validate();

    [Theory]
    [InlineData("tiny-full-featured")]
    [InlineData("64-experts")]
    public void SortByExpertDispatch_EqualsNaivePerTokenLoop(string which)
    {
        var c = which == "64-experts" ? ManyExperts : DeepSeekConfig.TinyFullFeatured;
        using var model = DeepSeekModel.Create(c, seed: 11);
        var moe = model.Layers[1].Moe!;
        using var scope = NewDisposeScope();
        var g = new Generator(99);
        using (no_grad())
        {
            moe.Gate.Weight.copy_(randn(moe.Gate.Weight.shape, generator: g) * 0.5);
            moe.Gate.SelectionBias!.copy_(randn(c.NRoutedExperts, generator: g) * 0.1);
        }
        var x = randn(new long[] { 3, 7, c.HiddenSize }, generator: g);
        using var _ = no_grad();
        var y = moe.forward(x);
        Assert.Equal(x.shape, y.shape);

        // Reference: routing from the official formula in double precision, then one token at a time.
        var flat = x.reshape(-1, c.HiddenSize);
        var logits = flat.matmul(moe.Gate.Weight.t()).to(float64).data<double>().ToArray();
        var bias = moe.Gate.SelectionBias!.to(float64).data<double>().ToArray();
        int n = (int)flat.shape[0], e = c.NRoutedExperts;
        var expected = new List<Tensor>();
        var used = new HashSet<int>();
        for (int t = 0; t < n; t++)
        {
            var r = ReferenceGate.Route(logits.Skip(t * e).Take(e).ToArray(), bias, c);
            Assert.True(r.Margin > 1e-5, $"token {t} has a near-tie in routing; choose another seed");
            var xt = flat.narrow(0, t, 1);
            var acc = moe.SharedExperts!.forward(xt).to(float64);
            for (int j = 0; j < r.Indices.Length; j++)
            {
                acc = acc + moe.Experts[r.Indices[j]].forward(xt).to(float64) * r.Weights[j];
                used.Add(r.Indices[j]);
            }
            expected.Add(acc);
        }
        var want = cat(expected, 0).view(y.shape);
        var diff = (y.to(float64) - want).abs().max().item<double>();
        Assert.True(diff < 1e-5, $"dispatch differs from the per-token loop by {diff}");
        Assert.True(used.Count > Math.Min(e, 8) / 2, $"the test routes to only {used.Count} experts");
    }

    [Fact]
    public void Dispatch_WithGivenRouting_EachTokenGetsItsWeightedExperts()
    {
        // Routing set by hand (duplicates across tokens, unused experts, a zero weight) through the internal Dispatch.
        var c = DeepSeekConfig.TinyFullFeatured;
        using var model = DeepSeekModel.Create(c, seed: 2);
        var moe = model.Layers[2].Moe!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(new long[] { 4, c.HiddenSize }, generator: new Generator(5));
        long[,] idx = { { 7, 0 }, { 0, 7 }, { 3, 7 }, { 7, 3 } };
        float[,] w = { { 0.25f, 2f }, { 1f, 0f }, { -1f, 0.5f }, { 3f, 1f } };
        var routing = new Modules.Routing(tensor(w), tensor(idx), zeros(4, c.NRoutedExperts));
        var y = moe.Dispatch(x, routing);
        for (int t = 0; t < 4; t++)
        {
            var xt = x.narrow(0, t, 1);
            var want = moe.Experts[(int)idx[t, 0]].forward(xt) * w[t, 0] + moe.Experts[(int)idx[t, 1]].forward(xt) * w[t, 1];
            Assert.True((y.narrow(0, t, 1) - want).abs().max().item<float>() < 1e-6, $"token {t}");
        }
    }
}
