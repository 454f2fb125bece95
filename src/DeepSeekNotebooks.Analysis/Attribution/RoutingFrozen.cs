using System.Globalization;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// How the router behaves along Integrated Gradients' path on a mixture-of-experts model (saved in
/// <see cref="AttributionResult.Parameters"/> under <c>routing</c> as <c>standard</c> or <c>frozen</c>).
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<IgRouting>))]
public enum IgRouting
{
    /// <summary>The model as it is: every path point routes its tokens itself (Captum's IG on the real function).</summary>
    Standard,
    /// <summary>Every path point uses the input's top-k expert choice (per token and MoE layer); weights recomputed, see <see cref="MoeIntegratedGradients"/>.</summary>
    Frozen,
}

/// <summary>
/// Integrated Gradients (Sundararajan et al. 2017) on a DeepSeekMoE model with the routing either left alone
/// (<see cref="IgRouting.Standard"/>) or frozen to the input's choices along the whole path (<see cref="IgRouting.Frozen"/>).
/// </summary>
/// <remarks>
/// Why: along the straight path B + α(E − B) the top-k expert set of some token changes many times per MoE layer; F jumps
/// at each change, IG integrates only the gradient, so its convergence delta tends to −(sum of the jumps), not to 0
/// (tests/fixtures/golden/captum2/README.md, "Deltas do not go to zero with more steps"; <see cref="RoutingSwitches"/>
/// measures it). Freezing makes the attributed function smooth: F_frozen(X) is the model with each token's experts fixed
/// to those the input E selects (the gate's selection scores are masked through the <c>blocks.{L}.moe.selection</c>
/// hook so that top-k must pick them), while the routing <b>weights are recomputed</b> by the gate from X's own scores at
/// those experts (gather, sigmoid renormalisation, routed scaling — the gate's code, untouched). With the indices fixed
/// there is no discontinuity left, so completeness Σ attr = F_frozen(E) − F_frozen(B) holds up to quadrature error and
/// the delta shrinks with nSteps. Recomputing rather than freezing the weights keeps the router's gradient: near the
/// input F_frozen is the real function (same value and, without ties, the same gradient), so the attributions stay an
/// explanation of the model rather than of a linearised copy of its gate. Frozen weights would also be smooth, but they
/// would drop the gate's share of the gradient everywhere, even at the input. The price: F_frozen(B) is the baseline
/// routed like the input, not the model's F(B); both are reported.
/// </remarks>
public static class MoeIntegratedGradients
{
    /// <summary>
    /// IG of <paramref name="target"/> w.r.t. the token embeddings of <paramref name="inputIds"/>, as
    /// <see cref="IntegratedGradients.Attribute"/> (Captum semantics, same α/weights and chunking), with
    /// <paramref name="routing"/>: <see cref="IgRouting.Standard"/> is <see cref="IntegratedGradients.Attribute"/> itself;
    /// <see cref="IgRouting.Frozen"/> attributes F_frozen (see the type's remarks): <see cref="AttributionResult.FBaseline"/>
    /// is F_frozen(B), the delta is Σ attr − (F_frozen(E) − F_frozen(B)), and <c>Parameters["f_baseline_standard"]</c>
    /// holds the model's own F(B). Both carry <c>Parameters["routing"]</c>. On a model without MoE blocks the two coincide
    /// (a note says so in <see cref="AttributionResult.Warnings"/>).
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="IntegratedGradients.Attribute"/>.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, Baseline? baseline = null,
        int nSteps = 50, IntegrationMethod method = IntegrationMethod.GaussLegendre, int? internalBatchSize = null, IgRouting routing = IgRouting.Frozen)
    {
        if (routing == IgRouting.Standard)
        {
            var r = IntegratedGradients.Attribute(model, inputIds, target, baseline, nSteps, method, internalBatchSize);
            r.Parameters["routing"] = RoutingName(routing);
            return r;
        }
        if (routing != IgRouting.Frozen) throw new ArgumentOutOfRangeException(nameof(routing), routing, "use IgRouting.Standard or IgRouting.Frozen");
        if (nSteps < 1) throw new ArgumentException($"nSteps must be at least 1, got {nSteps}", nameof(nSteps));
        if (method != IntegrationMethod.GaussLegendre && nSteps < 2) throw new ArgumentException($"Riemann rules need nSteps ≥ 2 (as Captum), got {nSteps}", nameof(nSteps));
        if (internalBatchSize is < 1) throw new ArgumentException($"internalBatchSize must be at least 1, got {internalBatchSize}", nameof(internalBatchSize));
        baseline ??= Baseline.Default;
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var b = baseline.Build(model, p.Embeddings);
        using var routingIds = p.Target.RoutingIds is { } rid ? tensor(rid, new long[] { 1, rid.Length }) : null;
        var hooks = FreezeRoutingHooks(model, p.Embeddings, routingIds);
        var (alphas, weights) = ApproximationMethods.Get(method, nSteps);
        int chunk = internalBatchSize ?? nSteps;
        var diff = p.Embeddings - b;
        var acc = zeros_like(p.Embeddings);
        for (int start = 0; start < nSteps; start += chunk)
        {
            using var inner = NewDisposeScope();
            int m = Math.Min(chunk, nSteps - start);
            var a = tensor(alphas.Skip(start).Take(m).Select(v => (float)v).ToArray()).view(m, 1, 1).to(b.device);
            var w = tensor(weights.Skip(start).Take(m).Select(v => (float)v).ToArray()).view(m, 1, 1).to(b.device);
            var g = Gradient(model, b + a * diff, p.Target, hooks);
            acc.add_((g * w).sum(0, keepdim: true));
        }
        var attr = acc * diff;
        double fInputFrozen = Evaluate(model, p.Embeddings, p.Target, hooks)[0];
        double fBaselineFrozen = Evaluate(model, b, p.Target, hooks)[0];
        double fBaseline = AttributionCore.Evaluate(model, b, p.Target)[0];
        double delta = attr.to(float64).sum().item<double>() - (fInputFrozen - fBaselineFrozen);
        var warnings = new List<string>();
        if (hooks.Count == 0) warnings.Add("the model has no score-routed MoE block and no indexer: routing-frozen IG is standard IG");
        double gap = Math.Abs(fInputFrozen - fBaselineFrozen);
        if (Math.Abs(delta) > IntegratedGradients.DeltaWarningFraction * gap)
            warnings.Add(string.Create(CultureInfo.InvariantCulture,
                $"IG convergence delta {delta:G4} exceeds {IntegratedGradients.DeltaWarningFraction:P0} of |F_frozen(input) - F_frozen(baseline)| = {gap:G4}: every selection is held at the input's, so this is quadrature error: increase nSteps"));
        var parameters = new Dictionary<string, string>
        {
            ["n_steps"] = nSteps.ToString(CultureInfo.InvariantCulture),
            ["method"] = ApproximationMethods.CaptumName(method),
            ["baseline"] = baseline.Describe(),
            ["internal_batch_size"] = internalBatchSize?.ToString(CultureInfo.InvariantCulture) ?? "none",
            ["routing"] = RoutingName(IgRouting.Frozen),
            ["f_baseline_standard"] = fBaseline.ToString("R", CultureInfo.InvariantCulture),
        };
        var prepared = p with { FInput = fInputFrozen };
        return AttributionCore.Result(AttributionMethod.IntegratedGradients, prepared, attr[0], parameters, delta, fBaselineFrozen, warnings);
    }

    /// <summary>As <see cref="Attribute(DeepSeekModel, Tensor, AttributionTarget?, Baseline?, int, IntegrationMethod, int?, IgRouting)"/> with ids as an array.</summary>
    public static AttributionResult Attribute(DeepSeekModel model, long[] inputIds, AttributionTarget? target = null, Baseline? baseline = null,
        int nSteps = 50, IntegrationMethod method = IntegrationMethod.GaussLegendre, int? internalBatchSize = null, IgRouting routing = IgRouting.Frozen)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        DeepSeekNotebooks.Model.Native.TorchRuntime.EnsureLoaded();
        using var ids = tensor(inputIds, new long[] { 1, inputIds.Length });
        return Attribute(model, ids, target, baseline, nSteps, method, internalBatchSize, routing);
    }

    /// <summary>
    /// The convergence delta of standard and routing-frozen IG for each of <paramref name="nSteps"/> (Gauss–Legendre unless
    /// <paramref name="method"/> says otherwise): the side-by-side study of the type's remarks.
    /// </summary>
    /// <exception cref="ArgumentException">An empty or non-positive step list, or any argument error of <see cref="Attribute(DeepSeekModel, Tensor, AttributionTarget?, Baseline?, int, IntegrationMethod, int?, IgRouting)"/>.</exception>
    public static IgRoutingConvergence Convergence(DeepSeekModel model, Tensor inputIds, AttributionTarget? target, Baseline? baseline,
        IReadOnlyList<int> nSteps, IntegrationMethod method = IntegrationMethod.GaussLegendre)
    {
        ArgumentNullException.ThrowIfNull(nSteps);
        if (nSteps.Count == 0) throw new ArgumentException("give at least one step count (e.g. 8, 16, 32, 64, 128)", nameof(nSteps));
        var standard = new double[nSteps.Count];
        var frozen = new double[nSteps.Count];
        AttributionResult? s = null, f = null;
        for (int i = 0; i < nSteps.Count; i++)
        {
            s = Attribute(model, inputIds, target, baseline, nSteps[i], method, null, IgRouting.Standard);
            f = Attribute(model, inputIds, target, baseline, nSteps[i], method, null, IgRouting.Frozen);
            standard[i] = s.ConvergenceDelta!.Value;
            frozen[i] = f.ConvergenceDelta!.Value;
        }
        return new IgRoutingConvergence(nSteps.ToArray(), ApproximationMethods.CaptumName(method), standard, frozen,
            s!.FInput!.Value, s.FBaseline!.Value, f!.FBaseline!.Value);
    }

    /// <summary>
    /// Hooks that hold every discrete selection on the forward's path at the one the unhooked model makes on
    /// <paramref name="inputEmbeddings"/> [1, seq, dim]:
    /// <list type="bullet">
    /// <item>one per score-routed MoE block, at <c>blocks.{L}.moe.selection</c>: the gate must choose, for every token, the
    /// experts chosen at the input; the selection scores of the other experts are lowered below every chosen one (min − 1,
    /// so group scores — max or top-2 sums — keep the chosen experts' groups), and the gate then takes top-k, gathers and
    /// renormalises the weights from the point's own router scores as always;</item>
    /// <item>one per lightning indexer (DeepSeek-V3.2 every layer, DeepSeek-V4 CSA layers), at
    /// <c>blocks.{L}.attn.indexer.topk</c>: the keys (V3.2) or compressed entries (V4) the indexer selects at the input
    /// replace the point's own top-k (official <c>Indexer.forward</c>'s <c>topk_indices</c>); the attention scores of the
    /// selected keys stay the point's own.</item>
    /// </list>
    /// Hash-routed MoE blocks (DeepSeek-V4, <c>tid2eid</c>) get no hook: they route by token id, which is the input's
    /// along any path in embedding space, so they are frozen by construction; a model with hash layers needs
    /// <paramref name="inputIds"/> [1, seq] (the tokens the embeddings stand for) and every hooked forward must pass them
    /// too. The hooks apply to any batch of sequences of the same length (rows = batch·seq). Empty for a dense MLA model.
    /// </summary>
    /// <exception cref="ArgumentException">Embeddings not [1, seq, hidden], or a hash-routed model without <paramref name="inputIds"/>.</exception>
    public static IReadOnlyDictionary<string, HookFunction> FreezeRoutingHooks(DeepSeekModel model, Tensor inputEmbeddings, Tensor? inputIds = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputEmbeddings);
        if (inputEmbeddings.dim() != 3 || inputEmbeddings.shape[0] != 1)
            throw new ArgumentException($"give the embeddings of one sequence [1, seq, {model.Config.HiddenSize}], got [{string.Join(", ", inputEmbeddings.shape)}]", nameof(inputEmbeddings));
        var c = model.Config;
        if (c.NumHashLayers > 0 && inputIds is null)
            throw new ArgumentException($"this model routes its first {c.NumHashLayers} MoE layer(s) by token id (hash routing, tid2eid): pass inputIds [1, seq], the tokens the embeddings stand for", nameof(inputIds));
        int seq = (int)inputEmbeddings.shape[1], experts = c.NRoutedExperts;
        var (chosen, selections) = PathRouting.ChosenExpertsAndSelections(model, inputEmbeddings, inputIds);   // layer → [seq·k]; hook → [1, seq, …]
        var hooks = new Dictionary<string, HookFunction>();
        foreach (var (layer, idx) in chosen)
        {
            if (c.IsHashLayer(layer)) continue;   // routed by token id: frozen by construction
            int k = idx.Length / seq;
            var keep = new bool[seq * experts];
            for (int t = 0; t < seq; t++)
                for (int j = 0; j < k; j++) keep[t * experts + idx[t * k + j]] = true;
            string name = HookPoints.SelectionScores(layer);
            hooks[name] = (sel, _) =>
            {
                long rows = sel.shape[0];
                if (rows % seq != 0)
                    throw new InvalidOperationException($"{name}: the frozen routing was taken on a sequence of {seq} tokens, but this forward has {rows} token rows (not a multiple of {seq})");
                using var scope = NewDisposeScope();
                var mask = tensor(keep, new long[] { seq, experts }).to(sel.device).repeat(rows / seq, 1);
                double low = sel.min().to(float64).item<double>() - 1.0;
                return sel.masked_fill(mask.logical_not(), low).MoveToOuterDisposeScope();
            };
        }
        foreach (var (name, picked) in selections)
        {
            var frozen = picked;
            hooks[name] = (sel, _) =>
            {
                if (sel.dim() != frozen.dim() || !sel.shape.Skip(1).SequenceEqual(frozen.shape.Skip(1)))
                    throw new InvalidOperationException($"{name}: the frozen selection was taken on [{string.Join(", ", frozen.shape)}], but this forward selects [{string.Join(", ", sel.shape)}] (same sequence length needed)");
                return frozen.to(sel.device).expand(sel.shape).contiguous();
            };
        }
        return hooks;
    }

    internal static string RoutingName(IgRouting routing) => routing switch
    {
        IgRouting.Standard => "standard",
        IgRouting.Frozen => "frozen",
        _ => throw new ArgumentOutOfRangeException(nameof(routing), routing, "use IgRouting.Standard or IgRouting.Frozen"),
    };

    /// <summary>Parses <c>standard</c> or <c>frozen</c> (the saved and command-line names).</summary>
    /// <exception cref="ArgumentException">Any other value, naming both.</exception>
    public static IgRouting ParseRouting(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "standard" => IgRouting.Standard,
            "frozen" => IgRouting.Frozen,
            _ => throw new ArgumentException($"unknown routing '{name}': use standard (the model routes every path point itself) or frozen (the input's experts along the whole path)", nameof(name)),
        };
    }

    internal static Tensor Gradient(DeepSeekModel model, Tensor x, ResolvedTarget target, IReadOnlyDictionary<string, HookFunction> hooks)
    {
        Tensor g;
        using (var scope = NewDisposeScope())
        {
            using var _ = enable_grad();
            var xi = x.detach().requires_grad_(true);
            var y = target.Evaluate(model.ForwardFromEmbeddings(xi, hooks.Count == 0 ? null : hooks, AttributionCore.RoutingIds(xi, target)));
            g = torch.autograd.grad(new[] { y.sum() }, new[] { xi })[0].detach().MoveToOuterDisposeScope();
        }
        return g;
    }

    internal static double[] Evaluate(DeepSeekModel model, Tensor x, ResolvedTarget target, IReadOnlyDictionary<string, HookFunction> hooks)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var y = target.Evaluate(model.ForwardFromEmbeddings(x, hooks.Count == 0 ? null : hooks, AttributionCore.RoutingIds(x, target)));
        return y.to(float64).cpu().data<double>().ToArray();
    }
}

/// <summary>
/// Convergence deltas of standard and routing-frozen IG against the number of steps (<see cref="MoeIntegratedGradients.Convergence"/>).
/// </summary>
/// <param name="NSteps">The step counts.</param>
/// <param name="Method">Captum's name of the integration rule.</param>
/// <param name="StandardDelta">Σ attr − (F(E) − F(B)) of standard IG per step count.</param>
/// <param name="FrozenDelta">Σ attr − (F_frozen(E) − F_frozen(B)) of routing-frozen IG per step count.</param>
/// <param name="FInput">F(E) (equal for both: the input routes as itself).</param>
/// <param name="FBaseline">The model's F(B).</param>
/// <param name="FBaselineFrozen">F_frozen(B): the baseline with the input's experts.</param>
public sealed record IgRoutingConvergence(int[] NSteps, string Method, double[] StandardDelta, double[] FrozenDelta,
    double FInput, double FBaseline, double FBaselineFrozen);

/// <summary>Evaluates F and records each MoE block's top-k expert sets for a batch of embedding points.</summary>
internal static class PathRouting
{
    /// <summary>Per MoE layer, the experts chosen for each token of one sequence [1, seq, dim], row-major [seq·k], in top-k order.</summary>
    internal static SortedDictionary<int, long[]> ChosenExperts(DeepSeekModel model, Tensor embeddings, Tensor? inputIds = null) =>
        ChosenExpertsAndSelections(model, embeddings, inputIds).Experts;

    /// <summary>
    /// As <see cref="ChosenExperts"/>, and every indexer's selection (<c>blocks.{L}.attn.indexer.topk</c>: V3.2's key mask
    /// [1, seq, seq], V4's compressed-entry picks [1, seq, k]) of the same forward, detached clones the caller owns.
    /// </summary>
    internal static (SortedDictionary<int, long[]> Experts, SortedDictionary<string, Tensor> Selections) ChosenExpertsAndSelections(
        DeepSeekModel model, Tensor embeddings, Tensor? inputIds)
    {
        var captured = new SortedDictionary<int, long[]>();
        var selections = new SortedDictionary<string, Tensor>(StringComparer.Ordinal);
        var hooks = CaptureHooks(model.Config, captured);
        var names = new HashSet<string>(HookPoints.All(model.Config), StringComparer.Ordinal);
        for (int l = 0; l < model.Config.NumHiddenLayers; l++)
        {
            string name = HookPoints.IndexerTopk(l);
            if (!names.Contains(name)) continue;
            hooks[name] = (v, _) => { selections[name] = v.detach().clone().DetachFromDisposeScope(); return null; };
        }
        if (hooks.Count == 0) return (captured, selections);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        model.ForwardFromEmbeddings(embeddings, hooks, inputIds);
        return (captured, selections);
    }

    /// <summary>
    /// F of each row of <paramref name="points"/> [m, seq, dim] and, per MoE layer, each row's routing as one key:
    /// per token its k experts sorted ascending (the top-k <i>set</i>), [m][layer][seq·k]; and per layer of
    /// <paramref name="indexerLayers"/> each row's indexer selection at <c>blocks.{L}.attn.indexer.topk</c> as one key per
    /// query: V3.2's key mask as 0/1 over the keys [seq·seq], V4's compressed-entry picks sorted ascending [seq·k] (−1 = none).
    /// </summary>
    internal static (double[] F, long[][][] Sets, long[][][] IndexerSets) Probe(DeepSeekModel model, Tensor points, ResolvedTarget target, int[] moeLayers,
        int[]? indexerLayers = null)
    {
        indexerLayers ??= Array.Empty<int>();
        var captured = new SortedDictionary<int, long[]>();
        var hooks = CaptureHooks(model.Config, captured);
        var indexerCaptured = new SortedDictionary<int, (long[] Values, bool Mask)>();
        foreach (int layer in indexerLayers)
        {
            int l = layer;
            hooks[HookPoints.IndexerTopk(l)] = (v, _) =>
            {
                bool mask = v.dtype == ScalarType.Bool;
                using var cpu = v.detach().to(ScalarType.Int64).cpu().contiguous();
                indexerCaptured[l] = (cpu.data<long>().ToArray(), mask);
                return null;
            };
        }
        double[] f;
        using (var scope = NewDisposeScope())
        using (var _ = no_grad())
            f = target.Evaluate(model.ForwardFromEmbeddings(points, hooks.Count == 0 ? null : hooks, AttributionCore.RoutingIds(points, target))).to(float64).cpu().data<double>().ToArray();
        int m = (int)points.shape[0], seq = (int)points.shape[1];
        var sets = new long[m][][];
        var indexerSets = new long[m][][];
        for (int r = 0; r < m; r++)
        {
            sets[r] = new long[moeLayers.Length][];
            for (int li = 0; li < moeLayers.Length; li++)
            {
                var all = captured[moeLayers[li]];
                int k = all.Length / (m * seq);
                var row = new long[seq * k];
                Array.Copy(all, (long)r * seq * k, row, 0, seq * k);
                for (int t = 0; t < seq; t++) Array.Sort(row, t * k, k);
                sets[r][li] = row;
            }
            indexerSets[r] = new long[indexerLayers.Length][];
            for (int li = 0; li < indexerLayers.Length; li++)
            {
                if (!indexerCaptured.TryGetValue(indexerLayers[li], out var sel))
                    throw new InvalidOperationException($"{HookPoints.IndexerTopk(indexerLayers[li])} was not reached by the forward (a layer without a lightning indexer?)");
                int k = sel.Values.Length / (m * seq);
                var row = new long[seq * k];
                Array.Copy(sel.Values, (long)r * seq * k, row, 0, seq * k);
                if (!sel.Mask) for (int t = 0; t < seq; t++) Array.Sort(row, t * k, k);   // the picked entries as a set
                indexerSets[r][li] = row;
            }
        }
        return (f, sets, indexerSets);
    }

    /// <summary>The layers with a lightning indexer whose selection a forward from embeddings exposes at <c>blocks.{L}.attn.indexer.topk</c> (V3.2: every layer; V4: CSA layers).</summary>
    internal static int[] IndexerLayers(DeepSeekConfig config)
    {
        var names = new HashSet<string>(HookPoints.All(config), StringComparer.Ordinal);
        return Enumerable.Range(0, config.NumHiddenLayers).Where(l => names.Contains(HookPoints.IndexerTopk(l))).ToArray();
    }

    private static Dictionary<string, HookFunction> CaptureHooks(DeepSeekConfig c, SortedDictionary<int, long[]> into)
    {
        var hooks = new Dictionary<string, HookFunction>();
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            if (!c.IsMoeLayer(l)) continue;
            int layer = l;
            hooks[HookPoints.ExpertIndices(layer)] = (v, _) =>
            {
                using var cpu = v.detach().to(ScalarType.Int64).cpu().contiguous();
                into[layer] = cpu.data<long>().ToArray();
                return null;
            };
        }
        return hooks;
    }
}
