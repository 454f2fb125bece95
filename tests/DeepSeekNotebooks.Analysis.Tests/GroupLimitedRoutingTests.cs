using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// Expert ablations and chance baselines under DeepSeek's group-limited routing (n_group &gt; 1, topk_group &lt; n_group),
/// the bundled model's routing: 8 experts in 2 groups of 4, one group kept, top-2.
/// </summary>
public sealed class GroupLimitedRoutingTests
{
    /// <summary>The bundled model's routing on a tiny random-weight model; <paramref name="bias"/> selects noaux_tc (selection bias, top-2-sum group score) or group_limited_greedy (max group score).</summary>
    private static DeepSeekModel Grouped(bool bias, int groups = 2, int topkGroup = 1)
    {
        var c = (DeepSeekConfig.TinyFullFeatured with
        {
            NGroup = groups, TopkGroup = topkGroup,
            ScoringFunc = bias ? ScoringFunc.Sigmoid : ScoringFunc.Softmax, TopkMethod = bias ? TopkMethod.NoauxTc : TopkMethod.GroupLimitedGreedy,
        }).Validate();
        var model = DeepSeekModel.Create(c, seed: 7);
        if (bias)
        {
            // A non-zero selection bias, so the masks act on biased scores as the real gate does.
            var b = new[] { 0.05f, -0.02f, 0.01f, 0.0f, -0.04f, 0.03f, -0.01f, 0.02f };
            using var _ = no_grad();
            foreach (var l in Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsMoeLayer))
                model.Layers[l].Moe!.Gate.SelectionBias!.copy_(tensor(b));
        }
        return model;
    }

    private static long[] Tokens(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (long)rng.Next(64)).ToArray();
    }

    /// <summary>
    /// Routes <paramref name="ids"/> with each token's top-<paramref name="r"/> selection scores masked at layer 1 and returns,
    /// per token, the masked experts and the experts the gate actually used.
    /// </summary>
    private static List<(HashSet<long> Masked, long[] Used)> RouteMasked(DeepSeekModel model, long[] ids, int r)
    {
        var masked = new List<HashSet<long>>();
        var mask = ExpertAblation.MaskTopRoutedHook(r);
        HookFunction recordingMask = (value, point) =>
        {
            var top = value.topk(r, dim: -1).indexes.data<long>().ToArray();
            for (int t = 0; t < value.shape[0]; t++) masked.Add(top.Skip(t * r).Take(r).ToHashSet());
            return mask(value, point);
        };
        using var trace = model.RunWithCache(tensor(ids).unsqueeze(0),
            new TraceOptions { Hooks = new Dictionary<string, HookFunction> { [HookPoints.SelectionScores(1)] = recordingMask } });
        var used = trace.ExpertIndices(1).data<long>().ToArray();
        int k = model.Config.NumExpertsPerTok;
        return masked.Select((m, t) => (m, used.Skip(t * k).Take(k).ToArray())).ToList();
    }

    [Theory]
    // 2 groups of 4, keep 1, k = 2. Top-2-sum group score (bias): a group with < 2 unmasked experts scores −∞, so up to
    // r = 5 the kept group always holds ≥ 2 unmasked experts; at r = 6 a 3 + 3 split leaves one in each (both groups −∞).
    [InlineData(true, 5)]
    // Max group score (no bias): at r = 3 a group with 3 masked experts can still win on its fourth one and offers only 1.
    [InlineData(false, 2)]
    public void MaskTopRouted_UnderAGroupLimit_NeverUsesAMaskedExpert_AndRefusesTheRThatCannotBeHonoured(bool bias, int maxR)
    {
        var model = Grouped(bias);
        var ids = Tokens(48, seed: 3);
        Assert.Equal(maxR, ExpertAblation.MaxMaskableTop(model.Config));
        for (int r = 1; r <= maxR; r++)
            foreach (var (masked, used) in RouteMasked(model, ids, r))
                Assert.DoesNotContain(used, masked.Contains);
        var refused = Assert.Throws<ArgumentException>(() => ExpertAblation.MaskTopRouted(model, new[] { ids }, maxR + 1));
        Assert.Contains("topk_group", refused.Message);
        Assert.Contains($"[1, {maxR}]", refused.Message);
        Assert.NotEqual(0, ExpertAblation.MaskTopRouted(model, new[] { ids }, maxR).LossChange);
    }

    [Theory]
    [InlineData(8, 2, 1, 2)]
    [InlineData(8, 4, 2, 2)]
    [InlineData(12, 3, 2, 3)]
    [InlineData(12, 4, 2, 2)]
    [InlineData(12, 6, 3, 3)]
    [InlineData(16, 4, 2, 4)]
    public void WorstCaseSelectable_MatchesEnumeratingEverySplitAndEveryGroupChoiceTheGateCouldMake(int experts, int groups, int topkGroup, int k)
    {
        foreach (bool bias in new[] { false, true })
        {
            var c = (DeepSeekConfig.TinyFullFeatured with
            {
                NRoutedExperts = experts, NGroup = groups, TopkGroup = topkGroup, NumExpertsPerTok = k,
                ScoringFunc = bias ? ScoringFunc.Sigmoid : ScoringFunc.Softmax, TopkMethod = bias ? TopkMethod.NoauxTc : TopkMethod.GroupLimitedGreedy,
            }).Validate();
            int size = experts / groups, finiteFrom = bias ? 2 : 1;
            for (int r = 0; r <= experts - k; r++)
            {
                // Every split of r masks over the groups; the gate keeps topk_group groups, finite scores before −∞ ones
                // and any order among equals (adversarial scores): take the emptiest such choice.
                int expected = int.MaxValue;
                foreach (var masks in Splits(groups, size, r))
                {
                    var unmasked = masks.Select(m => size - m).ToArray();
                    int finite = unmasked.Count(u => u >= finiteFrom);
                    foreach (var keptSet in Subsets(groups, topkGroup))
                    {
                        int keptFinite = keptSet.Count(g => unmasked[g] >= finiteFrom);
                        bool possible = finite >= topkGroup ? keptFinite == topkGroup : keptFinite == finite;
                        if (possible) expected = Math.Min(expected, keptSet.Sum(g => unmasked[g]));
                    }
                }
                Assert.True(expected == ExpertAblation.WorstCaseSelectable(c, r), $"bias {bias}, r = {r}: enumeration {expected}, closed form {ExpertAblation.WorstCaseSelectable(c, r)}");
            }
        }
    }

    private static IEnumerable<int[]> Splits(int groups, int size, int r)
    {
        if (groups == 0) { if (r == 0) yield return Array.Empty<int>(); yield break; }
        for (int m = 0; m <= Math.Min(size, r); m++)
            foreach (var rest in Splits(groups - 1, size, r - m)) yield return rest.Prepend(m).ToArray();
    }

    [Fact]
    public void MaxMaskableTop_ForADeepSeekV3SizedRouter_IsTheLargestHonouredR()
    {
        // 256 experts in 8 groups of 32, 4 groups kept, top-8 with bias: every kept group keeps ≥ 2 unmasked experts while
        // at least 4 groups stay finite, so masking is honoured far beyond a single group's size.
        var v3 = (DeepSeekConfig.TinyFullFeatured with { NRoutedExperts = 256, NGroup = 8, TopkGroup = 4, NumExpertsPerTok = 8 }).Validate();
        int maxR = ExpertAblation.MaxMaskableTop(v3);   // closed form: no enumeration of the C(256, r) masks
        Assert.InRange(maxR, 4 * 30, 256 - 8);
        Assert.True(ExpertAblation.WorstCaseSelectable(v3, maxR) >= 8);
        if (maxR < 248) Assert.True(ExpertAblation.WorstCaseSelectable(v3, maxR + 1) < 8);
    }

    [Fact]
    public void AHookThatLeavesFewerThanKSelectableExpertsInTheKeptGroups_IsAnError_NotASilentlyUsedMaskedExpert()
    {
        // r = E − k = 6 under the bundled routing: whenever a token's top-6 split 3 + 3 across the groups, the kept group
        // offers one unmasked expert and the official top-k would fill the second slot with a masked one.
        var model = Grouped(bias: true);
        var ids = Tokens(64, seed: 5);
        var error = Assert.Throws<InvalidOperationException>(() => RouteMasked(model, ids, 6));
        Assert.Contains("blocks.1.moe.selection", error.Message);
        Assert.Contains("topk_group = 1", error.Message);
    }

    [Fact]
    public void DisableExperts_RefusesAGroupLeftWithTooFewExperts_WhenTheGroupScoreIsItsMax()
    {
        // Experts 0–2 of group {0,1,2,3} disabled: with a max group score, group 0 can still win on expert 3 and then offers
        // only one expert for k = 2. With the top-2-sum score (bias) such a group scores −∞ and is never kept.
        var ids = Tokens(24, seed: 9);
        var error = Assert.Throws<ArgumentException>(() => ExpertAblation.DisableExperts(Grouped(bias: false), new[] { ids }, 1, new[] { 0, 1, 2 }));
        Assert.Contains("topk_group", error.Message);
        var biased = Grouped(bias: true);
        var ok = ExpertAblation.DisableExperts(biased, new[] { ids }, 1, new[] { 0, 1, 2 });
        Assert.True(double.IsFinite(ok.AblatedLoss));
        using var trace = biased.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions
        {
            Hooks = new Dictionary<string, HookFunction> { [HookPoints.SelectionScores(1)] = ExpertAblation.DisableExpertsHook(new[] { 0, 1, 2 }) },
        });
        Assert.All(trace.ExpertIndices(1).data<long>().ToArray(), e => Assert.InRange(e, 4, 7));
    }

    [Fact]
    public void ExactChancePairRates_FollowTheGroupLimit()
    {
        // The bundled routing: both choices come from one group of 4, so a within-group pair has 1 of the 2 · C(4,2) = 12
        // feasible selections and a cross-group pair none.
        var bundled = Grouped(bias: true).Config;
        var rates = ChanceRouting.ExactPairRates(bundled);
        Assert.Equal(1.0 / 12, rates[0, 1], 12);
        Assert.Equal(1.0 / 12, rates[6, 7], 12);
        Assert.Equal(0.0, rates[0, 4]);
        Assert.Equal(0.0, rates[3, 5]);
        Assert.Equal(2.0 / 8, rates[2, 2], 12);
        // Without a group limit: k(k − 1) / (E(E − 1)) = 2 / 56.
        var flat = ChanceRouting.ExactPairRates(bundled with { NGroup = 1, TopkGroup = 1 });
        Assert.Equal(2.0 / 56, flat[0, 4], 12);
        Assert.Equal(2.0 / 56, flat[0, 1], 12);
    }

    [Theory]
    [InlineData(8, 4, 2, 2)]
    [InlineData(12, 4, 2, 3)]
    [InlineData(12, 3, 1, 3)]
    [InlineData(16, 4, 3, 4)]
    public void ExactChancePairRates_MatchABruteForceCountOfFeasibleSelections(int experts, int groups, int topkGroup, int k)
    {
        var c = (DeepSeekConfig.TinyFullFeatured with
        {
            NRoutedExperts = experts, NGroup = groups, TopkGroup = topkGroup, NumExpertsPerTok = k,
        }).Validate();
        int size = experts / groups;
        var feasible = Subsets(experts, k).Where(s => s.Select(e => e / size).Distinct().Count() <= topkGroup).ToList();
        var rates = ChanceRouting.ExactPairRates(c);
        for (int i = 0; i < experts; i++)
            for (int j = 0; j < experts; j++)
            {
                double expected = (double)feasible.Count(s => s.Contains(i) && s.Contains(j)) / feasible.Count;
                Assert.True(Math.Abs(expected - rates[i, j]) < 1e-12, $"({i}, {j}): brute force {expected}, formula {rates[i, j]}");
            }
    }

    private static IEnumerable<int[]> Subsets(int n, int k, int from = 0)
    {
        if (k == 0) { yield return Array.Empty<int>(); yield break; }
        for (int i = from; i <= n - k; i++)
            foreach (var rest in Subsets(n, k - 1, i + 1)) yield return rest.Prepend(i).ToArray();
    }

    [Fact]
    public void ShuffledScoreChance_RejectsBadInputsByName()
    {
        var model = Grouped(bias: true);
        var one = new[] { (Tokens(8, seed: 1), (string?)null) };
        Assert.Contains("shuffles", Assert.Throws<ArgumentException>(() => ChanceRouting.ShuffledScores(model, one, shuffles: 0)).Message);
        Assert.Contains("no sequences", Assert.Throws<ArgumentException>(() => ChanceRouting.ShuffledScores(model, Array.Empty<(long[], string?)>())).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => ChanceRouting.ShuffledScores(model, new[] { (Array.Empty<long>(), (string?)null) })).Message);
        Assert.Throws<ArgumentNullException>(() => ChanceRouting.ExactPairRates(null!));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ShuffledScoreChance_RoutesThroughTheRealGate_NoCrossGroupPairs_AndTheUniformRateWithoutBias(bool bias)
    {
        var model = Grouped(bias);
        var data = Enumerable.Range(0, 2).Select(i => (Tokens(64, seed: 20 + i), (string?)null)).ToArray();
        var chance = ChanceRouting.ShuffledScores(model, data, shuffles: 12, seed: 1);
        foreach (int layer in chance.Layers)
        {
            var co = chance.CoActivation(layer);
            double tokens = chance.Tokens(layer);
            Assert.Equal(2 * 64 * 12, tokens);
            double sameSum = 0;
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++)
                {
                    if (i == j) continue;
                    if (i / 4 != j / 4) Assert.Equal(0, co[i, j]); // topk_group = 1: never two groups
                    else sameSum += co[i, j] / tokens;
                }
            // Each token contributes one within-group pair (counted twice in the symmetric matrix): 24 ordered pairs.
            Assert.Equal(2.0, sameSum, 9);
            if (!bias)
            {
                // Exchangeable scores and no bias: every within-group pair is equally likely, 1/12 (SE ≈ 0.007 each).
                for (int i = 0; i < 8; i++)
                    for (int j = i + 1; j < 8; j++)
                        if (i / 4 == j / 4) Assert.InRange(co[i, j] / tokens, 1.0 / 12 - 0.025, 1.0 / 12 + 0.025);
            }
        }
        // The observed routing of the same random model is not exchangeable: shuffling must change it.
        var observed = new ExpertRoutingAccumulator(model.Config);
        DatasetRunner.Run(model, data, new IDatasetAccumulator[] { observed });
        Assert.NotEqual(observed.ExpertLoads(1).Select(l => l.Frequency), chance.ExpertLoads(1).Select(l => l.Frequency));
    }
}
