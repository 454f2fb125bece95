using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>Causal masking, attention patterns and hooks on the full-featured tiny model.</summary>
public class CausalityAndHookTests
{
    private static readonly long[] Ids = { 3, 17, 42, 8, 8, 60, 1, 29, 33, 5 };

    private static DeepSeekModel NewModel() => DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, seed: 21);

    private static double MaxAbs(Tensor a, Tensor b) => (a.to(float64) - b.to(float64)).abs().max().item<double>();

    [Fact]
    public void ChangingALaterToken_NeverChangesEarlierLogits()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var a = model.forward(tensor(Ids));
        for (int changed = 1; changed < Ids.Length; changed++)
        {
            var other = (long[])Ids.Clone();
            other[changed] = (other[changed] + 13) % model.Config.VocabSize;
            var b = model.forward(tensor(other));
            var before = MaxAbs(a.narrow(1, 0, changed), b.narrow(1, 0, changed));
            Assert.True(before < 1e-5, $"changing token {changed} changed earlier logits by {before}");
            Assert.True(MaxAbs(a.narrow(1, changed, 1), b.narrow(1, changed, 1)) > 1e-4, $"changing token {changed} did not change its own logits");
        }
    }

    [Fact]
    public void AttentionPatterns_RowsSumToOne_AndAreZeroAboveTheDiagonal()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        using var trace = model.RunWithCache(tensor(Ids));
        int s = Ids.Length;
        for (int l = 0; l < model.Config.NumHiddenLayers; l++)
        {
            var p = trace.AttentionPattern(l);
            Assert.Equal(new long[] { 1, model.Config.NumAttentionHeads, s, s }, p.shape);
            Assert.True((p.sum(-1) - 1).abs().max().item<float>() < 1e-5, $"layer {l}: rows do not sum to 1");
            Assert.Equal(0f, p.triu(1).abs().max().item<float>());
            Assert.True(p.tril().min().item<float>() >= 0);
            Assert.Equal(1f, p[0, 0, 0, 0].item<float>(), 6); // the first token attends only to itself
        }
    }

    [Fact]
    public void ReplacingThePatternWithUniformCausalAttention_ChangesLogits_AndIsSeenDownstream()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        int s = Ids.Length;
        var uniform = ones(s, s).tril() / arange(1, s + 1, dtype: float32).unsqueeze(1);
        var hooks = new Dictionary<string, HookFunction>
        {
            [HookPoints.AttnPattern(1)] = (v, _) => uniform.expand(v.shape).contiguous(),
        };
        var plain = model.forward(tensor(Ids));
        var hooked = model.RunWithHooks(tensor(Ids), hooks);
        Assert.True(MaxAbs(plain, hooked) > 1e-4, "replacing the attention pattern did not change the logits");
        using var trace = model.RunWithCache(tensor(Ids), new TraceOptions { Hooks = hooks });
        Assert.True(MaxAbs(trace.AttentionPattern(1), uniform.expand(1, 2, s, s)) < 1e-7, "the trace records the replaced pattern");
        Assert.True(MaxAbs(trace.Logits, hooked) < 1e-6);
        // Earlier layers are untouched.
        using var plainTrace = model.RunWithCache(tensor(Ids));
        Assert.Equal(0.0, MaxAbs(plainTrace.AttentionPattern(0), trace.AttentionPattern(0)));
    }

    [Theory]
    [InlineData("blocks.1.attn.pattern")]
    [InlineData("blocks.2.resid_mid")]
    [InlineData("blocks.1.moe.weights")]
    public void HookReturningWrongShape_ThrowsNamingTheHook(string point)
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var hooks = new Dictionary<string, HookFunction> { [point] = (v, _) => v.narrow(-1, 0, v.shape[^1] - 1) };
        var e = Assert.Throws<InvalidOperationException>(() => model.RunWithHooks(tensor(Ids), hooks));
        Assert.Contains(point, e.Message);
    }

    [Fact]
    public void IdentityHooksEverywhere_EqualPlainForward()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var c = model.Config;
        var points = new List<string> { HookPoints.Embed, HookPoints.FinalNorm, HookPoints.Logits };
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            points.AddRange(new[] { HookPoints.ResidPre(l), HookPoints.AttnPattern(l), HookPoints.AttnOut(l), HookPoints.ResidMid(l), HookPoints.MlpOut(l), HookPoints.ResidPost(l) });
            if (c.IsMoeLayer(l))
                points.AddRange(new[] { HookPoints.RouterScores(l), HookPoints.SelectionScores(l), HookPoints.ExpertIndices(l), HookPoints.ExpertWeights(l), HookPoints.SharedExpertsOut(l) });
        }
        int calls = 0;
        var identity = points.ToDictionary(p => p, p => (HookFunction)((v, name) => { Assert.Equal(p, name); calls++; return v; }));
        var returningNull = points.ToDictionary(p => p, p => (HookFunction)((v, _) => null));
        var plain = model.forward(tensor(Ids));
        Assert.Equal(0.0, MaxAbs(plain, model.RunWithHooks(tensor(Ids), identity)));
        Assert.Equal(points.Count, calls);
        Assert.Equal(0.0, MaxAbs(plain, model.RunWithHooks(tensor(Ids), returningNull)));
    }

    [Fact]
    public void AblatingAnExpertThroughSelectionScores_RemovesItFromTheChoice()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        using var before = model.RunWithCache(tensor(Ids));
        var chosen = before.ExpertIndices(1).data<long>().ToArray();
        long victim = chosen.GroupBy(i => i).OrderByDescending(g => g.Count()).First().Key;
        var hooks = new Dictionary<string, HookFunction>
        {
            [HookPoints.SelectionScores(1)] = (v, _) => v.index_fill(1, tensor(new[] { victim }), float.NegativeInfinity),
        };
        using var after = model.RunWithCache(tensor(Ids), new TraceOptions { Hooks = hooks });
        Assert.DoesNotContain(victim, after.ExpertIndices(1).data<long>().ToArray());
        Assert.True(MaxAbs(before.Logits, after.Logits) > 1e-5);
    }
}
