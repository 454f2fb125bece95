#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>Loss change of an expert ablation on a set of sequences.</summary>
/// <param name="Description">What was ablated, e.g. "layer 1: disable experts [3]" or "mask top-1 routed experts in layers [1, 2]".</param>
/// <param name="Layers">Layers the ablation touched.</param>
/// <param name="Experts">Disabled experts (empty for top-r masking).</param>
/// <param name="MaskedTop">r for top-r masking (0 when experts were disabled).</param>
/// <param name="BaselineLoss">Mean next-token cross-entropy (nats) without ablation.</param>
/// <param name="AblatedLoss">Mean next-token cross-entropy with the ablation.</param>
/// <param name="LossChange">AblatedLoss − BaselineLoss.</param>
/// <param name="Tokens">Predicted tokens the means are over (Σ (length − 1)).</param>
public sealed record AblationResult(string Description, int[] Layers, int[] Experts, int MaskedTop, double BaselineLoss, double AblatedLoss, double LossChange, long Tokens);

/// <summary>
/// Expert ablations through the router's selection-score hook (<see cref="HookPoints.SelectionScores"/>): setting an
/// expert's selection score to −∞ removes it from the top-k, so the token is routed to the next-best expert with that
/// expert's own gate weight — the "disable experts" and "mask top routed experts" experiments of DeepSeekMoE
/// (arXiv:2401.06066 Fig. 4).
/// </summary>
public static class ExpertAblation
{
    /// <summary>A selection-score hook that sets the given experts' scores to −∞ for every token (they are never selected).</summary>
    public static HookFunction DisableExpertsHook(IReadOnlyCollection<int> experts)
    {
        ArgumentNullException.ThrowIfNull(experts);
        var list = experts.Select(e => (long)e).ToArray();
        return (value, _) =>
        {
            using var idx = tensor(list, dtype: ScalarType.Int64, device: value.device);
            return value.index_fill(1, idx, float.NegativeInfinity);
        };
    }

    /// <summary>
    /// A selection-score hook that sets each token's <paramref name="r"/> highest selection scores to −∞ (DeepSeekMoE
    /// arXiv:2401.06066 Fig. 4 "top routed experts masked"). Without a group limit the token is routed to its (r+1)-th …
    /// (r+k)-th experts; with one (n_group &gt; 1) the gate then scores the groups on their unmasked experts, keeps the best
    /// topk_group and takes the top-k unmasked experts inside them, which need not be ranks r+1 … r+k.
    /// <see cref="MaskTopRouted"/> accepts only the r for which that is always possible (<see cref="MaxMaskableTop"/>).
    /// </summary>
    public static HookFunction MaskTopRoutedHook(int r)
    {
        if (r < 1) throw new ArgumentException("r must be at least 1", nameof(r));
        return (value, _) =>
        {
            using var top = value.topk(r, dim: -1).indexes;
            using var inf = full(top.shape, float.NegativeInfinity, dtype: value.dtype, device: value.device);
            return value.scatter(1, top, inf);
        };
    }

    /// <summary>
    /// Mean next-token cross-entropy (nats) over all predicted positions of the sequences (token-weighted; sequences of
    /// one token contribute nothing), optionally with hooks — the loss whose change DeepSeekMoE Fig. 4 reports.
    /// </summary>
    /// <exception cref="ArgumentException">No sequence with at least two tokens.</exception>
    public static double MeanNextTokenLoss(DeepSeekModel model, IEnumerable<long[]> sequences, IReadOnlyDictionary<string, HookFunction>? hooks = null)
        => Loss(model, sequences, hooks).Loss;

    private static (double Loss, long Tokens) Loss(DeepSeekModel model, IEnumerable<long[]> sequences, IReadOnlyDictionary<string, HookFunction>? hooks)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        double total = 0;
        long tokens = 0;
        using var _ = no_grad();
        foreach (var ids in sequences)
        {
            if (ids is null || ids.Length < 2) continue;
            using var scope = NewDisposeScope();
            var input = tensor(ids, dtype: ScalarType.Int64).unsqueeze(0);
            var logits = hooks is null ? model.forward(input) : model.RunWithHooks(input, hooks);
            var pred = logits[0].narrow(0, 0, ids.Length - 1).to(ScalarType.Float64);
            var target = input[0].narrow(0, 1, ids.Length - 1);
            total += nn.functional.cross_entropy(pred, target, reduction: nn.Reduction.Sum).item<double>();
            tokens += ids.Length - 1;
        }
        if (tokens == 0) throw new ArgumentException("no sequence with at least two tokens: nothing to predict", nameof(sequences));
        return (total / tokens, tokens);
    }

    /// <summary>
    /// Disables <paramref name="experts"/> at MoE layer <paramref name="layer"/> (selection score −∞) and measures the change of
    /// the mean next-token loss on <paramref name="sequences"/> (DeepSeekMoE arXiv:2401.06066 §4 / Fig. 4 style ablation).
    /// </summary>
    /// <exception cref="ArgumentException">Not an MoE layer, expert out of range, no experts, or disabling would leave fewer than k experts.</exception>
    public static AblationResult DisableExperts(DeepSeekModel model, IReadOnlyList<long[]> sequences, int layer, IReadOnlyCollection<int> experts)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckMoeLayer(model.Config, layer);
        ArgumentNullException.ThrowIfNull(experts);
        var c = model.Config;
        var distinct = CheckDisable(c, experts);
        var hooks = new Dictionary<string, HookFunction> { [HookPoints.SelectionScores(layer)] = DisableExpertsHook(distinct) };
        return Compare(model, sequences, hooks, $"layer {layer}: disable experts [{string.Join(", ", distinct)}]", new[] { layer }, distinct, 0);
    }

    /// <summary>Disables each expert of a layer in turn (one <see cref="DisableExperts"/> per expert, sharing the baseline).</summary>
    public static IReadOnlyList<AblationResult> DisableEachExpert(DeepSeekModel model, IReadOnlyList<long[]> sequences, int layer)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckMoeLayer(model.Config, layer);
        for (int e = 0; e < model.Config.NRoutedExperts; e++) CheckDisable(model.Config, new[] { e });
        var (baseline, tokens) = Loss(model, sequences, null);
        return Enumerable.Range(0, model.Config.NRoutedExperts).Select(e =>
        {
            var hooks = new Dictionary<string, HookFunction> { [HookPoints.SelectionScores(layer)] = DisableExpertsHook(new[] { e }) };
            var ablated = Loss(model, sequences, hooks).Loss;
            return new AblationResult($"layer {layer}: disable experts [{e}]", new[] { layer }, new[] { e }, 0, baseline, ablated, ablated - baseline, tokens);
        }).ToArray();
    }

    /// <summary>
    /// Masks the top-<paramref name="r"/> routed experts of every token in the given MoE layers (all MoE layers when null)
    /// and measures the loss change — DeepSeekMoE arXiv:2401.06066 Fig. 4 ("ratio of disabled top routed experts" vs Pile loss).
    /// </summary>
    /// <exception cref="ArgumentException">A layer is not an MoE layer, or r is not in [1, <see cref="MaxMaskableTop"/>] (E − k without a group limit).</exception>
    public static AblationResult MaskTopRouted(DeepSeekModel model, IReadOnlyList<long[]> sequences, int r, IReadOnlyCollection<int>? layers = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        var chosen = (layers ?? Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsMoeLayer).ToArray()).Distinct().Order().ToArray();
        if (chosen.Length == 0) throw new ArgumentException("the model has no MoE layer", nameof(layers));
        foreach (var l in chosen) CheckMoeLayer(c, l);
        int maxR = MaxMaskableTop(c);
        if (r < 1 || r > maxR)
            throw new ArgumentException(c.NGroup == 1
                ? $"r must be in [1, E − k] = [1, {maxR}], got {r}"
                : $"r must be in [1, {maxR}], got {r}: with n_group = {c.NGroup}, topk_group = {c.TopkGroup} and k = {c.NumExpertsPerTok} ({GroupScoreRule(c)}), " +
                  $"masking more than {maxR} experts can leave the kept group(s) with fewer than k unmasked experts, and the gate would have to use a masked one", nameof(r));
        var hook = MaskTopRoutedHook(r);
        var hooks = chosen.ToDictionary(HookPoints.SelectionScores, _ => hook);
        return Compare(model, sequences, hooks, $"mask top-{r} routed experts in layers [{string.Join(", ", chosen)}]", chosen, Array.Empty<int>(), r);
    }

    private static AblationResult Compare(DeepSeekModel model, IReadOnlyList<long[]> sequences, Dictionary<string, HookFunction> hooks,
        string description, int[] layers, int[] experts, int r)
    {
        var (baseline, tokens) = Loss(model, sequences, null);
        var ablated = Loss(model, sequences, hooks).Loss;
        return new AblationResult(description, layers, experts, r, baseline, ablated, ablated - baseline, tokens);
    }

    /// <summary>
    /// The largest r for which masking each token's top-r routed experts (<see cref="MaskTopRouted"/>) is guaranteed to leave
    /// k unmasked experts in the groups the gate keeps, whatever the scores: E − k without a group limit; under a group limit
    /// the worst case over every way the r masked experts can fall into groups (a group whose score is −∞ — no unmasked
    /// expert for the max rule, fewer than two for the top-2-sum rule of <c>noaux_tc</c> — is kept only if too few others
    /// are finite, and ties are taken at their worst).
    /// </summary>
    public static int MaxMaskableTop(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        int maxR = 0;
        for (int r = 1; r <= config.NRoutedExperts - config.NumExpertsPerTok; r++)
        {
            if (WorstCaseSelectable(config, r) < config.NumExpertsPerTok) break;
            maxR = r;
        }
        return maxR;
    }

    /// <summary>
    /// Fewest unmasked experts the kept groups can hold when r experts are masked, over every split of r into groups — in
    /// closed form per number f of groups whose score stays finite (at least φ unmasked experts; φ = 2 for the top-2-sum
    /// rule, 1 for the max rule). With f ≥ topk_group the kept groups are the emptiest finite ones, each keeping ≥ φ; with
    /// f &lt; topk_group all finite groups are kept plus the emptiest −∞ ones. The masks the kept groups can take are
    /// bounded by their own capacity and by what the other groups must absorb.
    /// </summary>
    internal static int WorstCaseSelectable(DeepSeekConfig c, int r)
    {
        int groups = c.NGroup, size = c.NRoutedExperts / groups, kept = c.TopkGroup;
        if (groups == 1) return c.NRoutedExperts - r;
        int phi = c.HasGateBias ? 2 : 1;
        int infiniteMin = size - phi + 1; // fewest masks that make a group's score −∞
        int worst = int.MaxValue;
        for (int f = 0; f <= groups; f++)
        {
            int keptMax, othersMin, othersMax, keptMin;
            if (f >= kept)
            {
                keptMin = 0;
                keptMax = kept * (size - phi);
                othersMin = (groups - f) * infiniteMin;
                othersMax = (f - kept) * (size - phi) + (groups - f) * size;
            }
            else
            {
                keptMin = (kept - f) * infiniteMin;
                keptMax = f * (size - phi) + (kept - f) * size;
                othersMin = (groups - kept) * infiniteMin;
                othersMax = (groups - kept) * size;
            }
            if (r < keptMin + othersMin || r > keptMax + othersMax) continue; // no split of r has exactly f finite groups
            int maskedInKept = Math.Min(keptMax, r - othersMin);
            worst = Math.Min(worst, kept * size - maskedInKept);
        }
        return worst;
    }

    /// <summary>
    /// Fewest unmasked experts the gate's kept groups can hold, given each group's number of unmasked experts, when the
    /// scores are adversarial: groups with a finite score win over −∞ ones, and among equals the emptiest are kept.
    /// </summary>
    internal static int KeptSelectable(DeepSeekConfig c, int[] unmasked)
    {
        if (c.NGroup == 1) return unmasked[0];
        int finiteFrom = c.HasGateBias ? 2 : 1; // top-2 sum with −∞ entries is −∞; a max is −∞ only for an empty group
        return unmasked.OrderBy(u => u >= finiteFrom ? 0 : 1).ThenBy(u => u).Take(c.TopkGroup).Sum();
    }

    private static string GroupScoreRule(DeepSeekConfig c) =>
        c.HasGateBias ? "group score = sum of its top-2 selection scores" : "group score = its largest selection score";

    private static int[] CheckDisable(DeepSeekConfig c, IReadOnlyCollection<int> experts)
    {
        if (experts.Count == 0) throw new ArgumentException("name at least one expert to disable", nameof(experts));
        foreach (var e in experts)
            if (e < 0 || e >= c.NRoutedExperts) throw new ArgumentException($"expert {e} out of range [0, {c.NRoutedExperts})", nameof(experts));
        var distinct = experts.Distinct().Order().ToArray();
        if (c.NRoutedExperts - distinct.Length < c.NumExpertsPerTok)
            throw new ArgumentException($"disabling {distinct.Length} of {c.NRoutedExperts} experts leaves fewer than k = {c.NumExpertsPerTok}", nameof(experts));
        if (c.NGroup > 1)
        {
            int size = c.NRoutedExperts / c.NGroup;
            var unmasked = Enumerable.Range(0, c.NGroup).Select(g => size - distinct.Count(e => e / size == g)).ToArray();
            int kept = KeptSelectable(c, unmasked);
            if (kept < c.NumExpertsPerTok)
                throw new ArgumentException(
                    $"disabling experts [{string.Join(", ", distinct)}] can leave the kept group(s) with only {kept} selectable expert(s), fewer than k = {c.NumExpertsPerTok}: " +
                    $"n_group = {c.NGroup} groups of {size}, topk_group = {c.TopkGroup} ({GroupScoreRule(c)}); enabled experts per group: [{string.Join(", ", unmasked)}]. " +
                    "Disable fewer experts of one group, or spread them over groups", nameof(experts));
        }
        return distinct;
    }

    internal static void CheckMoeLayer(DeepSeekConfig c, int layer)
    {
        if (layer < 0 || layer >= c.NumHiddenLayers)
            throw new ArgumentException($"layer {layer} out of range [0, {c.NumHiddenLayers})", nameof(layer));
        if (!c.IsMoeLayer(layer))
            throw new ArgumentException($"layer {layer} is a dense layer; MoE layers: [{string.Join(", ", Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsMoeLayer))}]", nameof(layer));
    }
}
