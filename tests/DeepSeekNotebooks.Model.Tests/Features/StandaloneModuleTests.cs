using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>Block and MLA <c>forward</c> work on their own and agree with the same module inside the model's traced forward.</summary>
public class StandaloneModuleTests
{
    private static readonly long[][] Batch = { new long[] { 3, 17, 42, 8, 8, 60, 1 }, new long[] { 9, 9, 2, 55, 31, 4, 12 } };

    private static double MaxAbs(Tensor a, Tensor b) => (a.to(float64) - b.to(float64)).abs().max().item<double>();

    [Theory]
    [InlineData(7)]
    [InlineData(1)]
    public void BlockForward_MapsResidPreToResidPost_AsInsideTheModel(int seq)
    {
        using var model = DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, seed: 8);
        using var scope = NewDisposeScope();
        var ids = tensor(Batch.SelectMany(r => r.Take(seq)).ToArray()).view(2, seq);
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = NamesFilter.ResidualStream | "blocks.*.attn.out" });
        foreach (var block in model.Layers) // block 0 is dense, blocks 1-2 MoE: both kinds
        {
            int l = block.Layer;
            var x = trace[HookPoints.ResidPre(l)];
            Assert.True(MaxAbs(block.forward(x), trace[HookPoints.ResidPost(l)]) < 1e-6, $"block {l}: forward differs from the model's resid_post");
            var attnOut = block.Attention.forward(block.AttentionNorm.forward(x));
            Assert.True(MaxAbs(attnOut, trace[HookPoints.AttnOut(l)]) < 1e-6, $"block {l}: MLA forward differs from the model's attn.out");
        }
    }

    [Fact]
    public void AttentionForward_IsCausal_OnItsOwn()
    {
        using var model = DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, seed: 8);
        using var scope = NewDisposeScope();
        var attn = model.Layers[1].Attention;
        var x = randn(1, 6, model.Config.HiddenSize, generator: new Generator(3));
        var changed = x.clone();
        changed[0, 5] = randn(model.Config.HiddenSize, generator: new Generator(4));
        var a = attn.forward(x);
        var b = attn.forward(changed);
        Assert.Equal(0.0, MaxAbs(a.narrow(1, 0, 5), b.narrow(1, 0, 5)));
        Assert.True(MaxAbs(a.narrow(1, 5, 1), b.narrow(1, 5, 1)) > 1e-4);
    }

    [Fact]
    public void StandaloneForward_RejectsAWrongShape_NamingTheExpectedOne()
    {
        using var model = DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, seed: 8);
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => model.Layers[0].forward(zeros(1, 4, 16)));
        Assert.Contains("[batch, seq, 32]", e.Message);
        Assert.Contains("[1, 4, 16]", e.Message);
        Assert.Throws<ArgumentException>(() => model.Layers[0].Attention.forward(zeros(4, 32)));
        var tooLong = Assert.Throws<ArgumentException>(() => model.Layers[2].forward(zeros(1, 65, 32)));
        Assert.Contains("max_position_embeddings = 64", tooLong.Message);
    }
}
