using System.Numerics;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>
/// Chance baselines for routing statistics that follow the configured routing (groups, top-k, selection bias) instead of
/// assuming any k of E experts can be chosen together. With DeepSeek's group limit (n_group &gt; 1, topk_group &lt; n_group)
/// a token's k experts come from at most topk_group groups, so pairs across groups are rarer — with topk_group = 1
/// impossible — and pairs within a group more frequent than k(k−1)/(E(E−1)).
/// </summary>
public static class ChanceRouting
{
    /// <summary>
    /// Exact co-activation rates when every selection the gate can make is equally likely: each k-subset of the experts
    /// that touches at most topk_group groups (of n_group equal groups) has the same probability. Entry (i, j) is the
    /// probability that a token selects both i and j; the diagonal is each expert's selection probability, k/E. Without a
    /// group limit every pair gets k(k−1)/(E(E−1)). This is the expectation of the real gate on exchangeable scores without
    /// a selection bias when topk_group is 1 or n_group; otherwise (and with a bias) use <see cref="ShuffledScores"/>.
    /// </summary>
    public static double[,] ExactPairRates(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        int e = config.NRoutedExperts, groups = config.NGroup, size = e / groups, kept = config.TopkGroup, k = config.NumExpertsPerTok;
        // Subsets of size n drawn from `free` experts that, together with experts already fixed in `touched` groups,
        // touch exactly those groups plus `others` further specified groups (inclusion–exclusion over the others).
        static BigInteger TouchAll(int others, int free, int size, int n)
        {
            BigInteger sum = 0;
            for (int j = 0; j <= others; j++)
            {
                var term = Choose(others, j) * Choose(free + (others - j) * size, n);
                sum += j % 2 == 0 ? term : -term;
            }
            return sum;
        }
        BigInteger total = 0, single = 0, same = 0, cross = 0;
        for (int t = 1; t <= kept; t++)
        {
            total += Choose(groups, t) * TouchAll(t, 0, size, k);
            single += Choose(groups - 1, t - 1) * TouchAll(t - 1, size - 1, size, k - 1);
            if (k >= 2) same += Choose(groups - 1, t - 1) * TouchAll(t - 1, size - 2, size, k - 2);
            if (k >= 2 && t >= 2) cross += Choose(groups - 2, t - 2) * TouchAll(t - 2, 2 * (size - 1), size, k - 2);
        }
        double Rate(BigInteger n) => (double)n / (double)total;
        var rates = new double[e, e];
        for (int i = 0; i < e; i++)
            for (int j = 0; j < e; j++)
                rates[i, j] = i == j ? Rate(single) : i / size == j / size ? Rate(same) : Rate(cross);
        return rates;
    }

    /// <summary>
    /// Monte-Carlo chance routing through the model's real gate: every MoE layer's gate scores (<see cref="HookPoints.RouterScores"/>)
    /// are permuted across experts independently for each token, then the gate adds its selection bias, applies the group
    /// limit and takes the top-k as usual. Each token keeps its own score distribution (how confident the router is) but the
    /// scores no longer know which expert is which. Returns the accumulated routing of <paramref name="shuffles"/> passes over
    /// the sequences, so any statistic of <see cref="ExpertRoutingAccumulator"/> (co-activation, repetition, vocabulary
    /// ownership…) can be read off under chance and compared with the observed one. Deterministic for a given seed.
    /// </summary>
    /// <exception cref="ArgumentException">shuffles &lt; 1, no MoE layer, or no sequences.</exception>
    public static ExpertRoutingAccumulator ShuffledScores(DeepSeekModel model, IEnumerable<(long[] Ids, string? Domain)> sequences, int shuffles = 8, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        if (shuffles < 1) throw new ArgumentException($"shuffles must be at least 1, got {shuffles}", nameof(shuffles));
        var c = model.Config;
        var moe = Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsMoeLayer).ToArray();
        if (moe.Length == 0) throw new ArgumentException("the model has no MoE layer: nothing is routed", nameof(model));
        var rng = new Random(seed);
        HookFunction shuffle = (scores, _) =>
        {
            var keys = new float[scores.shape[0] * scores.shape[1]];
            for (int i = 0; i < keys.Length; i++) keys[i] = rng.NextSingle();
            using var order = tensor(keys, scores.shape, device: scores.device).argsort(-1);
            return scores.gather(1, order);
        };
        var options = new TraceOptions
        {
            AttentionPatterns = false, HiddenStates = false, Logits = false, Routing = true,
            Hooks = moe.ToDictionary(HookPoints.RouterScores, _ => shuffle),
        };
        var data = sequences.ToList();
        if (data.Count == 0) throw new ArgumentException("no sequences to route", nameof(sequences));
        var acc = new ExpertRoutingAccumulator(c);
        using var _ = no_grad();
        int index = 0;
        for (int s = 0; s < shuffles; s++)
            foreach (var (ids, domain) in data)
            {
                if (ids is null || ids.Length == 0) throw new ArgumentException($"sequence {index % data.Count} is empty", nameof(sequences));
                using var scope = NewDisposeScope();
                using var trace = model.RunWithCache(tensor(ids, dtype: ScalarType.Int64).unsqueeze(0), options);
                acc.Observe(new SequenceObservation(index++, ids, domain, trace));
            }
        return acc;
    }

    private static BigInteger Choose(int n, int r)
    {
        if (r < 0 || n < 0 || r > n) return BigInteger.Zero;
        BigInteger result = BigInteger.One;
        for (int i = 1; i <= r; i++) result = result * (n - r + i) / i;
        return result;
    }
}
