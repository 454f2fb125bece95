using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>
/// The router against hand-computed examples of the official <c>Gate.forward</c> (DeepSeek-V3 inference/model.py).
/// The gate's weight is the identity (dim = n_routed_experts), so the input rows are the router logits.
/// </summary>
public class GateRoutingTests
{
    private static double Logit(double s) => Math.Log(s / (1 - s));

    private static DeepSeekConfig Cfg(int experts, int groups, int topkGroup, int k, ScoringFunc scoring, TopkMethod method,
        bool norm = false, double scale = 1.0) =>
        (DeepSeekConfig.TinyFullFeatured with
        {
            HiddenSize = experts, NRoutedExperts = experts, NGroup = groups, TopkGroup = topkGroup, NumExpertsPerTok = k,
            ScoringFunc = scoring, TopkMethod = method, NormTopkProb = norm, RoutedScalingFactor = scale,
        }).Validate();

    /// <summary>Routes the given logit rows through a real <see cref="Gate"/> with identity weight and the given bias.</summary>
    private static (long[][] Indices, float[][] Weights, float[][] Scores) Route(DeepSeekConfig c, double[][] logits, double[]? bias)
    {
        DeepSeekNotebooks.Model.Native.TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        using var gate = new Gate("gate", c, 0);
        using (no_grad())
        {
            gate.Weight.copy_(eye(c.NRoutedExperts));
            if (bias is not null) gate.SelectionBias!.copy_(tensor(bias.Select(v => (float)v).ToArray()));
            else Assert.True(gate.SelectionBias is null || c.HasGateBias);
        }
        int e = c.NRoutedExperts, k = c.NumExpertsPerTok;
        var x = tensor(logits.SelectMany(r => r).Select(v => (float)v).ToArray(), new long[] { logits.Length, e });
        var r = gate.Route(x, null);
        var idx = r.Indices.data<long>().ToArray();
        var w = r.Weights.data<float>().ToArray();
        var s = r.Scores.data<float>().ToArray();
        return (Enumerable.Range(0, logits.Length).Select(t => idx.Skip(t * k).Take(k).ToArray()).ToArray(),
                Enumerable.Range(0, logits.Length).Select(t => w.Skip(t * k).Take(k).ToArray()).ToArray(),
                Enumerable.Range(0, logits.Length).Select(t => s.Skip(t * e).Take(e).ToArray()).ToArray());
    }

    private static void Close(double[] expected, float[] actual, double tol = 1e-6)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"[{i}] expected {expected[i]}, got {actual[i]}");
    }

    [Fact]
    public void Sigmoid_SelectionBiasChangesTheChoice_ButWeightsComeFromUnbiasedScores()
    {
        var c = Cfg(4, 1, 1, 2, ScoringFunc.Sigmoid, TopkMethod.NoauxTc, norm: true, scale: 2.5);
        double[] s = { 0.88, 0.73, 0.50, 0.27 };
        var logits = new[] { s.Select(Logit).ToArray() };

        var noBias = Route(c, logits, new double[4]);
        Assert.Equal(new long[] { 0, 1 }, noBias.Indices[0]);
        Close(new[] { 0.88 / 1.61 * 2.5, 0.73 / 1.61 * 2.5 }, noBias.Weights[0]);

        // bias +0.5 on expert 2: selection scores 0.88, 0.73, 1.00, 0.27 → experts 2, 0 (top-k order),
        // weights from the unbiased sigmoid scores 0.50 and 0.88, renormalised to sum 1, × 2.5.
        var biased = Route(c, logits, new[] { 0, 0, 0.5, 0 });
        Assert.Equal(new long[] { 2, 0 }, biased.Indices[0]);
        Close(new[] { 0.50 / 1.38 * 2.5, 0.88 / 1.38 * 2.5 }, biased.Weights[0]);
        Assert.Equal(2.5, biased.Weights[0].Sum(), 5);
        Close(s, biased.Scores[0]); // Routing.Scores are before the bias
    }

    // 12 experts in 4 groups of 3, keep 2 groups, top-2 experts, bias present (all zero) ⇒ group score = sum of top-2.
    // Case "max": group 0 holds the best expert (0.95) but its top-2 sum (0.97) loses to groups 1 (1.18) and 2 (0.99);
    //   with a max group score (bias-free rule) groups 0 and 1 would win and expert 0 would be chosen.
    // Case "sum-all": group 2's sum of all three (1.44) would beat group 1, but its top-2 sum (0.99) does not.
    [Theory]
    [InlineData("max", new[] { 0.95, 0.01, 0.02, 0.60, 0.58, 0.01, 0.50, 0.49, 0.01, 0.10, 0.10, 0.10 }, new long[] { 3, 4 })]
    [InlineData("sum-all", new[] { 0.95, 0.30, 0.30, 0.60, 0.58, 0.01, 0.50, 0.49, 0.45, 0.10, 0.10, 0.10 }, new long[] { 0, 3 })]
    public void GroupLimited_WithBias_GroupScoreIsSumOfTop2_AndDroppedGroupsAreNeverSelected(string _, double[] scores, long[] expected)
    {
        var c = Cfg(12, 4, 2, 2, ScoringFunc.Sigmoid, TopkMethod.NoauxTc, norm: true, scale: 2.5);
        var r = Route(c, new[] { scores.Select(Logit).ToArray() }, new double[12]);
        Assert.Equal(expected, r.Indices[0]);
        double a = scores[expected[0]], b = scores[expected[1]];
        Close(new[] { a / (a + b) * 2.5, b / (a + b) * 2.5 }, r.Weights[0]);
    }

    [Fact]
    public void GroupMask_IsMinusInfinity_NotHuggingFacesZeroFill()
    {
        // 4 experts, 2 groups of 2, keep 1 group, top-2; bias −1 makes every selection score negative:
        // selection = −0.1, −0.2, −0.7, −0.8 → group 0 wins (−0.3 vs −1.5). Official (−∞ fill): experts 0, 1.
        // HF's masked_fill(…, 0.0) would give the dropped experts 2, 3 a score of 0 > −0.1 and select them.
        var c = Cfg(4, 2, 1, 2, ScoringFunc.Sigmoid, TopkMethod.NoauxTc, norm: true, scale: 1.0);
        var r = Route(c, new[] { new[] { 0.9, 0.8, 0.3, 0.2 }.Select(Logit).ToArray() }, new[] { -1.0, -1, -1, -1 });
        Assert.Equal(new long[] { 0, 1 }, r.Indices[0]);
        Close(new[] { 0.9 / 1.7, 0.8 / 1.7 }, r.Weights[0]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Softmax_NoBias_GroupScoreIsMax_WeightsNotRenormalisedUnlessNormTopkProb(bool normTopkProb)
    {
        // 6 experts, 3 groups of 2, keep 1 group, top-2, scale 1.5. Group 0 has the largest single logit (3.0) but
        // group 1 has the larger sum of its two probabilities (e^2.6 + e^2.5 > e^3 + e^-3): max ⇒ group 0.
        var c = Cfg(6, 3, 1, 2, ScoringFunc.Softmax, TopkMethod.GroupLimitedGreedy, norm: normTopkProb, scale: 1.5);
        double[] logits = { 3.0, -3.0, 2.6, 2.5, 0.0, 0.1 };
        var r = Route(c, new[] { logits }, null);
        Assert.Equal(new long[] { 0, 1 }, r.Indices[0]);
        double z = logits.Sum(Math.Exp);
        double p0 = Math.Exp(3.0) / z, p1 = Math.Exp(-3.0) / z;
        var expected = normTopkProb ? new[] { p0 / (p0 + p1) * 1.5, p1 / (p0 + p1) * 1.5 } : new[] { p0 * 1.5, p1 * 1.5 };
        Close(expected, r.Weights[0]);
    }

    [Fact]
    public void Softmax_Greedy_NoGroups_TopKOfProbabilities()
    {
        var c = Cfg(5, 1, 1, 3, ScoringFunc.Softmax, TopkMethod.Greedy, scale: 1.0);
        double[] logits = { 0.1, 2.0, -1.0, 1.5, 1.9 };
        var r = Route(c, new[] { logits }, null);
        Assert.Equal(new long[] { 1, 4, 3 }, r.Indices[0]);
        double z = logits.Sum(Math.Exp);
        Close(new[] { Math.Exp(2.0) / z, Math.Exp(1.9) / z, Math.Exp(1.5) / z }, r.Weights[0]);
    }

    public static TheoryData<string> RandomConfigs => new() { "v3-groups-bias", "v3-no-groups", "v2-softmax-groups", "softmax-greedy-norm" };

    private static DeepSeekConfig Named(string name) => name switch
    {
        "v3-groups-bias" => Cfg(32, 8, 3, 4, ScoringFunc.Sigmoid, TopkMethod.NoauxTc, norm: true, scale: 2.5),
        "v3-no-groups" => Cfg(16, 1, 1, 3, ScoringFunc.Sigmoid, TopkMethod.NoauxTc, norm: true, scale: 1.7),
        "v2-softmax-groups" => Cfg(24, 4, 2, 5, ScoringFunc.Softmax, TopkMethod.GroupLimitedGreedy, scale: 16),
        _ => Cfg(10, 1, 1, 2, ScoringFunc.Softmax, TopkMethod.Greedy, norm: true, scale: 1.0),
    };

    [Theory]
    [MemberData(nameof(RandomConfigs))]
    public void RandomLogits_MatchIndependentReference(string name)
    {
        var c = Named(name);
        var rng = new Random(1234);
        int tokens = 200, e = c.NRoutedExperts;
        var logits = Enumerable.Range(0, tokens).Select(_ => Enumerable.Range(0, e).Select(_ => rng.NextDouble() * 6 - 3).Select(v => (double)(float)v).ToArray()).ToArray();
        double[]? bias = c.HasGateBias ? Enumerable.Range(0, e).Select(_ => (double)(float)(rng.NextDouble() * 0.4 - 0.2)).ToArray() : null;
        var got = Route(c, logits, bias);
        int compared = 0;
        for (int t = 0; t < tokens; t++)
        {
            var want = ReferenceGate.Route(logits[t], bias, c);
            if (want.Margin < 1e-5) continue; // float32 vs double could break a near-tie either way
            compared++;
            Assert.Equal(want.Indices.Select(i => (long)i).ToArray(), got.Indices[t]);
            Close(want.Weights, got.Weights[t], 1e-5);
        }
        Assert.True(compared > tokens * 0.9, $"only {compared} tokens without near-ties");
        if (c.ScoringFunc == ScoringFunc.Sigmoid || c.NormTopkProb)
            Assert.All(got.Weights, w => Assert.Equal(c.RoutedScalingFactor, w.Sum(), 4));
    }

    [Fact]
    public void TracedModel_RecordsUnbiasedScores_AndRoutingMatchesReference()
    {
        var c = DeepSeekConfig.TinyFullFeatured;
        using var model = DeepSeekModel.Create(c, seed: 7);
        var biasValues = new float[c.NRoutedExperts];
        var rng = new Random(3);
        for (int i = 0; i < biasValues.Length; i++) biasValues[i] = (float)(rng.NextDouble() * 0.2 - 0.1);
        using (no_grad()) model.Layers[1].Moe!.Gate.SelectionBias!.copy_(tensor(biasValues));
        using var scope = NewDisposeScope();
        var ids = tensor(Enumerable.Range(0, 12).Select(i => (long)(i * 5 % c.VocabSize)).ToArray());
        using var trace = model.RunWithCache(ids, new TraceOptions { Extra = new[] { HookPoints.SelectionScores(1) } });
        var scores = trace.RouterScores(1);
        var selection = trace[HookPoints.SelectionScores(1)];
        Assert.True((selection - scores - tensor(biasValues)).abs().max().item<float>() < 1e-6, "selection = router scores + bias");
        var s = scores.data<float>().ToArray();
        var idx = trace.ExpertIndices(1).data<long>().ToArray();
        var w = trace.ExpertWeights(1).data<float>().ToArray();
        int e = c.NRoutedExperts, k = c.NumExpertsPerTok;
        for (int t = 0; t < 12; t++)
        {
            var want = ReferenceGate.RouteScores(s.Skip(t * e).Take(e).Select(v => (double)v).ToArray(), biasValues.Select(v => (double)v).ToArray(), c);
            if (want.Margin < 1e-6) continue;
            Assert.Equal(want.Indices.Select(i => (long)i).ToArray(), idx.Skip(t * k).Take(k).ToArray());
            Close(want.Weights, w.Skip(t * k).Take(k).ToArray(), 1e-5);
        }
    }
}
