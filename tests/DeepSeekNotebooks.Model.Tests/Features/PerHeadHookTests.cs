using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>
/// MLA's per-head hook points (attn.q_nope/q_rope/k_rope/kv_latent/k_nope/v/z), checked against the equations of
/// DeepSeek-V2 §2.1 rebuilt from the recorded parts, and replaceable like every other point.
/// </summary>
public class PerHeadHookTests
{
    private static readonly long[] Ids = { 3, 17, 42, 8, 8, 60, 1, 29 };

    private static DeepSeekModel NewModel() => DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, seed: 33);

    private static double MaxAbs(Tensor a, Tensor b) => (a.to(float64) - b.to(float64)).abs().max().item<double>();

    private static ModelTrace Everything(DeepSeekModel model) =>
        model.RunWithCache(tensor(Ids), new TraceOptions { Names = NamesFilter.Where(_ => true, "everything") });

    [Fact]
    public void Shapes_AreTheDocumentedOnes()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        using var t = Everything(model);
        var c = model.Config;
        long s = Ids.Length, h = c.NumAttentionHeads;
        Assert.Equal(new[] { 1, s, h, c.QkNopeHeadDim }, t[HookPoints.AttnQNope(1)].shape);
        Assert.Equal(new[] { 1, s, h, c.QkRopeHeadDim }, t[HookPoints.AttnQRope(1)].shape);
        Assert.Equal(new[] { 1, s, (long)c.QkRopeHeadDim }, t[HookPoints.AttnKRope(1)].shape);
        Assert.Equal(new[] { 1, s, (long)c.KvLoraRank }, t[HookPoints.AttnKvLatent(1)].shape);
        Assert.Equal(new[] { 1, s, h, c.QkNopeHeadDim }, t[HookPoints.AttnKNope(1)].shape);
        Assert.Equal(new[] { 1, s, h, c.VHeadDim }, t[HookPoints.AttnV(1)].shape);
        Assert.Equal(new[] { 1, s, h, c.VHeadDim }, t[HookPoints.AttnZ(1)].shape);
    }

    /// <summary>softmax(scale·(q_nope·k_nope + q_rope·k_rope) + causal mask) — the MLA score with one shared rope key — is the recorded pattern.</summary>
    [Fact]
    public void ScoresRebuiltFromQueriesAndKeys_GiveTheRecordedPattern()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        using var t = Everything(model);
        int s = Ids.Length;
        var mask = full(s, s, double.NegativeInfinity, dtype: float64).triu(1);
        for (int l = 0; l < model.Config.NumHiddenLayers; l++)
        {
            var qn = t[HookPoints.AttnQNope(l)].to(float64).transpose(1, 2);        // [b, h, s, nope]
            var qr = t[HookPoints.AttnQRope(l)].to(float64).transpose(1, 2);
            var kn = t[HookPoints.AttnKNope(l)].to(float64).transpose(1, 2);
            var kr = t[HookPoints.AttnKRope(l)].to(float64).unsqueeze(1);           // [b, 1, s, rope]: every head reads the same key
            var scores = (qn.matmul(kn.transpose(-2, -1)) + qr.matmul(kr.transpose(-2, -1))) * model.Config.SoftmaxScale + mask;
            Assert.True(MaxAbs(scores.softmax(-1), t[HookPoints.AttnPattern(l)]) < 1e-5, $"layer {l}");
        }
    }

    /// <summary>z[b, q, h] = Σ_k pattern[b, h, q, k] · v[b, k, h], and Σ_h z_h · wo[:, h-slice]ᵀ = attn.out (TransformerLens's per-head decomposition).</summary>
    [Fact]
    public void Z_IsPatternTimesValues_AndItsHeadsThroughWoSumToAttnOut()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        using var t = Everything(model);
        var c = model.Config;
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            var pattern = t[HookPoints.AttnPattern(l)].to(float64);                   // [b, h, q, k]
            var v = t[HookPoints.AttnV(l)].to(float64).transpose(1, 2);               // [b, h, k, dv]
            var z = t[HookPoints.AttnZ(l)].to(float64);                               // [b, q, h, dv]
            Assert.True(MaxAbs(pattern.matmul(v).transpose(1, 2), z) < 1e-5, $"layer {l}: z != pattern · v");
            var wo = model.Layers[l].Attention.OutputWeight.to(float64);              // [dim, h·dv]
            var sum = zeros(1, Ids.Length, c.HiddenSize, dtype: float64);
            for (int h = 0; h < c.NumAttentionHeads; h++)
                sum += z.select(2, h).matmul(wo.narrow(1, h * c.VHeadDim, c.VHeadDim).t());
            Assert.True(MaxAbs(sum, t[HookPoints.AttnOut(l)]) < 1e-5, $"layer {l}: Σ heads through wo != attn.out");
        }
    }

    [Fact]
    public void ReplacingZ_ChangesTheOutput_AndZeroingEveryHeadZeroesAttnOut()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var plain = model.forward(tensor(Ids));
        using var t = model.RunWithCache(tensor(Ids), new TraceOptions
        {
            Names = new[] { HookPoints.AttnOut(1), HookPoints.Logits },
            Hooks = new Dictionary<string, HookFunction> { [HookPoints.AttnZ(1)] = (z, _) => zeros_like(z) },
        });
        Assert.Equal(0.0, t[HookPoints.AttnOut(1)].abs().max().item<float>());
        Assert.True(MaxAbs(plain, t.Logits) > 1e-4, "zeroing attn.z of block 1 did not change the logits");
        // Zeroing one head only: attn.out loses exactly that head's term.
        using var full_ = Everything(model);
        var c = model.Config;
        var z1 = full_[HookPoints.AttnZ(1)];
        var wo = model.Layers[1].Attention.OutputWeight;
        var headTerm = z1.select(2, 1).matmul(wo.narrow(1, c.VHeadDim, c.VHeadDim).t());
        using var one = model.RunWithCache(tensor(Ids), new TraceOptions
        {
            Names = new[] { HookPoints.AttnOut(1) },
            Hooks = new Dictionary<string, HookFunction> { [HookPoints.AttnZ(1)] = (z, _) => { var r = z.clone(); r.select(2, 1).zero_(); return r; } },
        });
        Assert.True(MaxAbs(one[HookPoints.AttnOut(1)], full_[HookPoints.AttnOut(1)] - headTerm) < 1e-5);
    }

    /// <summary>keys and values are a linear function of the latent (wkv_b has no bias): a zero latent gives zero k_nope and v.</summary>
    [Fact]
    public void ReplacingTheLatent_FlowsIntoKeysAndValues()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        using var t = model.RunWithCache(tensor(Ids), new TraceOptions
        {
            Names = new[] { HookPoints.AttnKNope(2), HookPoints.AttnV(2), HookPoints.AttnZ(2), HookPoints.AttnQNope(2) },
            Hooks = new Dictionary<string, HookFunction> { [HookPoints.AttnKvLatent(2)] = (x, _) => zeros_like(x) },
        });
        Assert.Equal(0.0, t[HookPoints.AttnKNope(2)].abs().max().item<float>());
        Assert.Equal(0.0, t[HookPoints.AttnV(2)].abs().max().item<float>());
        Assert.Equal(0.0, t[HookPoints.AttnZ(2)].abs().max().item<float>());
        Assert.True(t[HookPoints.AttnQNope(2)].abs().max().item<float>() > 0);   // queries do not read the KV latent
    }

    /// <summary>Identity hooks at every new point and recording them leave the logits bitwise those of the plain forward.</summary>
    [Fact]
    public void IdentityHooksAtEveryPerHeadPoint_LeaveTheLogitsBitwiseUnchanged()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var plain = model.forward(tensor(Ids));
        var hooks = new Dictionary<string, HookFunction>();
        for (int l = 0; l < model.Config.NumHiddenLayers; l++)
            foreach (var n in new[] { HookPoints.AttnQNope(l), HookPoints.AttnQRope(l), HookPoints.AttnKRope(l), HookPoints.AttnKvLatent(l), HookPoints.AttnKNope(l), HookPoints.AttnV(l), HookPoints.AttnZ(l) })
                hooks[n] = (v, _) => v.clone();
        var hooked = model.RunWithHooks(tensor(Ids), hooks);
        Assert.Equal(0.0, MaxAbs(plain, hooked));
        using var t = Everything(model);
        Assert.Equal(0.0, MaxAbs(plain, t.Logits));
    }
}
