using DeepSeekNotebooks.Analysis.Representations;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>TransformerLens-style decomposition on the golden model: direct logit attribution, per-head patching, the induction probe.</summary>
public sealed class DecompositionTests(GoldenModel golden) : IClassFixture<GoldenModel>
{
    // ---- direct logit attribution ----

    [Theory]
    [InlineData(null)]
    [InlineData(7)]
    public void DirectLogitAttribution_PartsSumToTheModelsLogit_HeadsToAttention_ExpertsToTheFfn(int? position)
    {
        var model = golden.Model;
        var ids = GoldenModel.Seq0;
        int pos = position ?? ids.Length - 1;
        using var logits = model.forward(tensor(ids).unsqueeze(0));
        long target = logits[0, pos].argmax().item<long>(), foil = 100;
        var r = DirectLogitAttribution.Run(model, ids, target, foil, position);
        double expected = logits[0, pos, target].item<float>() - logits[0, pos, foil].item<float>();
        Assert.Equal(expected, r.Logit, 5);
        // RMSNorm with its scale frozen is linear in the residual: embed + Σ (attn + mlp) gives the logit up to float error.
        Assert.True(Math.Abs(r.FrozenNormError) < 1e-4, $"parts sum {r.SumOfParts} vs logit {r.Logit}");
        Assert.True(r.HeadSumError < 1e-5, $"heads vs attention: {r.HeadSumError}");
        Assert.True(r.ExpertSumError < 1e-5, $"experts + shared vs ffn: {r.ExpertSumError}");
        var c = model.Config;
        Assert.Equal(1 + 2 * c.NumHiddenLayers, r.Components.Count(x => x.Kind is LogitComponentKind.Embedding or LogitComponentKind.Attention or LogitComponentKind.Mlp));
        Assert.Equal(c.NumHiddenLayers * c.NumAttentionHeads, r.Of(LogitComponentKind.Head).Count);
        int moeLayers = Enumerable.Range(0, c.NumHiddenLayers).Count(c.IsMoeLayer);
        Assert.Equal(moeLayers * c.NumExpertsPerTok, r.Of(LogitComponentKind.RoutedExpert).Count);
        Assert.Equal(moeLayers, r.Of(LogitComponentKind.SharedExperts).Count);
        // The selected experts are the router's for this token.
        using var trace = model.RunWithCache(tensor(ids).unsqueeze(0));
        foreach (int l in trace.MoeLayers)
            Assert.Equal(trace.ExpertIndices(l)[pos].data<long>().ToArray().Order(), r.Of(LogitComponentKind.RoutedExpert).Where(x => x.Layer == l).Select(x => (long)x.Index));
    }

    [Fact]
    public void DirectLogitAttribution_FrozenScaleIsTheFinalNormsScale_AndTheDifferenceDirectionIsLinear()
    {
        var model = golden.Model;
        var ids = GoldenModel.Seq1;
        using var trace = model.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = new[] { HookPoints.FinalNorm, HookPoints.ResidPost(2) } });
        // ln_final = r · s · w: recover s from the model's own RMSNorm output.
        var r = trace.Hidden(2)[0, -1].to(float64);
        var n = trace[HookPoints.FinalNorm][0, -1].to(float64);
        var w = model.FinalNorm.Weight.to(float64);
        double s = (n / (r * w)).mean().item<double>();
        var a = DirectLogitAttribution.Run(model, ids, 3);
        var b = DirectLogitAttribution.Run(model, ids, 9);
        var ab = DirectLogitAttribution.Run(model, ids, 3, foil: 9);
        Assert.Equal(s, a.FrozenScale, 5);
        // logit_attrs of W_U[3] − W_U[9] is the difference of the two single-token attributions, component by component.
        for (int i = 0; i < ab.Components.Count; i++)
        {
            Assert.Equal(a.Components[i].Label, ab.Components[i].Label);
            Assert.Equal(a.Components[i].Attribution - b.Components[i].Attribution, ab.Components[i].Attribution, 5);
        }
        Assert.Equal(ab.Components.Count, DirectLogitAttribution.ToDataFrame(ab).Rows.Count);
    }

    [Fact]
    public void DirectLogitAttribution_OnADenseOnlyModel_HasNoExperts_AndBadInputsAreNamed()
    {
        using var dense = DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured with { NRoutedExperts = 0 }, seed: 2);
        var r = DirectLogitAttribution.Run(dense, new long[] { 1, 2, 3, 4 }, 5);
        Assert.Empty(r.Of(LogitComponentKind.RoutedExpert));
        Assert.Equal(0, r.ExpertSumError);
        Assert.True(Math.Abs(r.FrozenNormError) < 1e-4);
        var model = golden.Model;
        Assert.Contains("the foil equals the target", Assert.Throws<ArgumentException>(() => DirectLogitAttribution.Run(model, GoldenModel.Seq0, 4, foil: 4)).Message);
        Assert.Contains("position 12 out of range [0, 12)", Assert.Throws<ArgumentException>(() => DirectLogitAttribution.Run(model, GoldenModel.Seq0, 4, position: 12)).Message);
        Assert.Contains("target 512 out of range", Assert.Throws<ArgumentException>(() => DirectLogitAttribution.Run(model, GoldenModel.Seq0, 512)).Message);
    }

    // ---- per-head patching ----

    [Fact]
    public void PatchingEveryHeadOfABlock_EqualsPatchingItsAttnOut()
    {
        var model = golden.Model;
        long target = 17, foil = 300;
        var c = model.Config;
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            var all = Enumerable.Range(0, c.NumAttentionHeads).Select(h => (l, h)).ToArray();
            var heads = ActivationPatching.PatchHeads(model, GoldenModel.Seq0, GoldenModel.Seq1, all, target, foil);
            var layer = ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.AttnOut(l), target, foil);
            Assert.Equal(layer.PatchedMetric, heads, 4);
            var atPos = ActivationPatching.PatchHeads(model, GoldenModel.Seq0, GoldenModel.Seq1, all, target, foil, position: 5);
            Assert.Equal(ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.AttnOut(l), target, foil, position: 5).PatchedMetric, atPos, 4);
            // Patch on the per-head point itself: attn.z is [batch, seq, heads, dv], so its position dimension is 1, not the pattern's 2.
            Assert.Equal(atPos, ActivationPatching.Patch(model, GoldenModel.Seq0, GoldenModel.Seq1, HookPoints.AttnZ(l), target, foil, position: 5).PatchedMetric, 4);
        }
    }

    [Fact]
    public void SweepHeads_GivesEachHeadsPatch_AndNormalisesAsTransformerLens()
    {
        var model = golden.Model;
        var r = ActivationPatching.SweepHeads(model, GoldenModel.Seq0, GoldenModel.Seq1, 17, 300);
        Assert.Equal(model.Config.NumHiddenLayers, r.Layers);
        Assert.Equal(model.Config.NumAttentionHeads, r.Heads);
        using var a = model.forward(tensor(GoldenModel.Seq0).unsqueeze(0));
        using var b = model.forward(tensor(GoldenModel.Seq1).unsqueeze(0));
        Assert.Equal(a[0, -1, 17].item<float>() - a[0, -1, 300].item<float>(), r.DestinationMetric, 5);
        Assert.Equal(b[0, -1, 17].item<float>() - b[0, -1, 300].item<float>(), r.SourceMetric, 5);
        Assert.Equal(ActivationPatching.PatchHeads(model, GoldenModel.Seq0, GoldenModel.Seq1, new[] { (1, 2) }, 17, 300), r.PatchedMetric[1, 2], 10);
        var restored = r.Restored;
        Assert.Equal((r.PatchedMetric[2, 3] - r.DestinationMetric) / (r.SourceMetric - r.DestinationMetric), restored[2, 3], 12);
        // Some head matters: patching changes the corrupted metric.
        Assert.Contains(Enumerable.Range(0, r.Layers * r.Heads), i => Math.Abs(r.PatchedMetric[i / r.Heads, i % r.Heads] - r.DestinationMetric) > 1e-3);
        // A hand-made result: corrupted 1, clean 3, patched 2 → half restored.
        Assert.Equal(0.5, new HeadPatchingResult(0, null, 1, 3, new double[,] { { 2 } }, null).Restored[0, 0]);
        Assert.Equal(r.Layers * r.Heads, ActivationPatching.ToDataFrame(r).Rows.Count);
        Assert.Contains("equal length", Assert.Throws<ArgumentException>(() => ActivationPatching.SweepHeads(model, GoldenModel.Seq0, GoldenModel.Seq1[..5], 1)).Message);
        Assert.Contains("head (layer 3, head 0) does not exist", Assert.Throws<ArgumentException>(() => ActivationPatching.PatchHeads(model, GoldenModel.Seq0, GoldenModel.Seq1, new[] { (3, 0) }, 1)).Message);
    }

    // ---- induction ----

    /// <summary>[1, 2, seq, seq]: head 0 attends from each second-repeat token to the token after its first occurrence; head 1 uniformly (causal).</summary>
    private static Tensor HandBuiltPattern(int start, int n)
    {
        int seq = start + 2 * n;
        var p = new double[2 * seq * seq];
        for (int q = 0; q < seq; q++)
            for (int k = 0; k <= q; k++)
            {
                p[(0 * seq + q) * seq + k] = q >= start + n ? (k == q - n + 1 ? 1 : 0) : 1.0 / (q + 1);
                p[(1 * seq + q) * seq + k] = 1.0 / (q + 1);
            }
        return tensor(p, new long[] { 1, 2, seq, seq });
    }

    [Fact]
    public void InductionScore_OfAHandBuiltPattern()
    {
        using var scope = NewDisposeScope();
        var s = InductionProbe.Score(HandBuiltPattern(start: 1, n: 4), repeatStart: 1, repeatLength: 4);
        Assert.Equal(1.0, s[0], 12);
        // uniform causal: queries 5..8 give 1/(q+1) to each key
        Assert.Equal((1.0 / 6 + 1.0 / 7 + 1.0 / 8 + 1.0 / 9) / 4, s[1], 12);
        Assert.Throws<ArgumentException>(() => InductionProbe.Score(HandBuiltPattern(1, 4), 2, 4));
    }

    [Fact]
    public void InductionProbe_FindsAHeadPlantedThroughHooks_AndMeasuresTheLossOfACopyingModel()
    {
        var model = golden.Model;
        int n = 10;
        var plain = InductionProbe.Run(model, repeatLength: n, batch: 3, seed: 4);
        Assert.Equal(3, plain.Tokens.Length);
        Assert.All(plain.Tokens, t => Assert.Equal(t[..n], t[n..]));
        Assert.Equal(Math.Log(512), plain.ChanceLoss, 12);
        // Plant an induction pattern in head 2 of block 1 (the hook rewrites that head's attention).
        var planted = new Dictionary<string, HookFunction>
        {
            [HookPoints.AttnPattern(1)] = (p, _) =>
            {
                var r = p.clone();
                for (int q = n; q < 2 * n; q++)
                {
                    r[.., 2, q].zero_();
                    r[.., 2, q, q - n + 1].fill_(1.0);
                }
                return r;
            },
        };
        var withHead = InductionProbe.Run(model, repeatLength: n, batch: 3, seed: 4, hooks: planted);
        Assert.Equal(1.0, withHead.Score[1, 2], 6);
        Assert.Equal((1, 2), (withHead.Strongest.Layer, withHead.Strongest.Head));
        Assert.True(plain.Score[1, 2] < 0.5, $"the random model's head scores {plain.Score[1, 2]} before planting");
        // A "copying" model (logits hooked to put all mass on the token after the earlier occurrence, for targets r_2 … r_n of
        // the second repeat) has zero loss there; the first repeat's loss stays the plain model's, computed here by hand.
        var copy = new Dictionary<string, HookFunction>
        {
            [HookPoints.Logits] = (logits, _) =>
            {
                var r = logits.clone();
                for (int b = 0; b < 3; b++)
                    for (int p = n; p < 2 * n - 1; p++)
                    {
                        r[b, p].fill_(-1e4);
                        r[b, p, plain.Tokens[b][p + 1 - n]].fill_(1e4);
                    }
                return r;
            },
        };
        var copying = InductionProbe.Run(model, repeatLength: n, batch: 3, seed: 4, hooks: copy);
        Assert.True(copying.SecondRepeatLoss < 1e-6, $"second-repeat loss of a copier: {copying.SecondRepeatLoss}");
        using var logits = model.forward(tensor(plain.Tokens.SelectMany(t => t).ToArray()).view(3, 2 * n));
        var lp = logits.to(float64).log_softmax(-1);
        double first = 0;
        for (int b = 0; b < 3; b++)
            for (int p = 0; p < n - 1; p++) first -= lp[b, p, plain.Tokens[b][p + 1]].item<double>();
        Assert.Equal(first / (3 * (n - 1)), copying.FirstRepeatLoss, 6);
        Assert.Equal(plain.FirstRepeatLoss, copying.FirstRepeatLoss, 12);
        // With BOS the repeats start at 1.
        var withBos = InductionProbe.Run(model, repeatLength: n, batch: 1, seed: 4, bos: 0);
        Assert.Equal(1, withBos.RepeatStart);
        Assert.Equal(0, withBos.Tokens[0][0]);
        Assert.Contains("exceed max_position_embeddings = 64", Assert.Throws<ArgumentException>(() => InductionProbe.Run(model, repeatLength: 33)).Message);
    }
}
