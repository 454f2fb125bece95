using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Switches of one discrete selection of one block along the path (<see cref="RoutingSwitchReport"/>): the MoE block's
/// top-k expert sets (<see cref="RoutingSwitchReport.Layers"/>) or the lightning indexer's top-k selection
/// (<see cref="RoutingSwitchReport.IndexerSwitches"/>: per query, the set of keys (V3.2) or compressed entries (V4 CSA) it may attend).
/// </summary>
/// <param name="Layer">The block index.</param>
/// <param name="GridIntervals">Grid intervals [α_i, α_{i+1}] across which the selected set of at least one token (query) of this block changes.</param>
/// <param name="TokenSwitches">(token, grid interval) pairs whose selected set changes.</param>
/// <param name="Positions">Token positions that switch at least once, ascending.</param>
public sealed record LayerSwitches(int Layer, int GridIntervals, int TokenSwitches, int[] Positions);

/// <summary>One discontinuity of F along the path, located by bisection.</summary>
/// <param name="AlphaLeft">Left end of the final bracket (routing as on the left).</param>
/// <param name="AlphaRight">Right end (routing as on the right); AlphaRight − AlphaLeft ≤ the report's tolerance.</param>
/// <param name="FLeft">F at <paramref name="AlphaLeft"/>.</param>
/// <param name="FRight">F at <paramref name="AlphaRight"/>.</param>
/// <param name="Layers">The MoE blocks whose top-k set differs across the bracket.</param>
/// <param name="Positions">The token positions whose top-k set differs (in any of those blocks) or whose indexer selection differs (in any of <see cref="IndexerLayers"/>).</param>
public sealed record RoutingJump(double AlphaLeft, double AlphaRight, double FLeft, double FRight, int[] Layers, int[] Positions)
{
    /// <summary>The blocks whose lightning-indexer selection differs across the bracket (V3.2/V4; empty without an indexer).</summary>
    public int[] IndexerLayers { get; init; } = Array.Empty<int>();

    /// <summary>F(right) − F(left): the jump of F at this switch.</summary>
    public double Jump => FRight - FLeft;
}

/// <summary>
/// Routing switches along Integrated Gradients' straight path B + α(E − B) — the MoE blocks' expert choices and, on
/// DeepSeek-V3.2/V4, the lightning indexers' top-k selections — and how much of IG's convergence delta they
/// explain (<see cref="RoutingSwitches.Analyse(DeepSeekModel, Tensor, AttributionTarget?, Baseline?, int, double, int, int)"/>). Plain data: JSON round-trips with <see cref="ToJson"/>/<see cref="FromJson"/>.
/// </summary>
public sealed record RoutingSwitchReport
{
    /// <summary>The input token ids.</summary>
    public required long[] TokenIds { get; init; }
    /// <summary>The explained scalar.</summary>
    public required TargetInfo Target { get; init; }
    /// <summary>The baseline (<see cref="Baseline.Describe"/>).</summary>
    public required string Baseline { get; init; }
    /// <summary>The MoE blocks, ascending (empty for a dense model).</summary>
    public required int[] MoeLayers { get; init; }
    /// <summary>α of the evaluation grid: linspace(0, 1, points).</summary>
    public required double[] GridAlphas { get; init; }
    /// <summary>F at each grid point (for the chart of F along the path).</summary>
    public required double[] GridF { get; init; }
    /// <summary>Per MoE block, the switches on the grid.</summary>
    public required LayerSwitches[] Layers { get; init; }
    /// <summary>The blocks with a lightning indexer, ascending (V3.2: every block; V4: the CSA blocks; empty otherwise).</summary>
    public int[] IndexerLayers { get; init; } = Array.Empty<int>();
    /// <summary>Per indexer block, the switches of its top-k selection on the grid (a query's selected key or entry set changes).</summary>
    public LayerSwitches[] IndexerSwitches { get; init; } = Array.Empty<LayerSwitches>();
    /// <summary>Grid intervals with a change in any MoE block or indexer.</summary>
    public required int GridIntervalsWithSwitch { get; init; }
    /// <summary>Width to which every switch is bracketed by bisection.</summary>
    public required double Tolerance { get; init; }
    /// <summary>Every located switch (expert or indexer selection), in α order (a grid interval holding several switches gives several).</summary>
    public required RoutingJump[] Jumps { get; init; }
    /// <summary>F(E).</summary>
    public required double FInput { get; init; }
    /// <summary>F(B).</summary>
    public required double FBaseline { get; init; }
    /// <summary>IG's convergence delta Σ attr − (F(E) − F(B)) at <see cref="IgNSteps"/> Gauss–Legendre steps (standard routing).</summary>
    public required double IgDelta { get; init; }
    /// <summary>The steps of <see cref="IgDelta"/>.</summary>
    public required int IgNSteps { get; init; }

    /// <summary>Σ jumps: the part of F(E) − F(B) no gradient sees.</summary>
    [JsonIgnore] public double JumpTotal => Jumps.Sum(j => j.Jump);
    /// <summary>Largest |jump|.</summary>
    [JsonIgnore] public double LargestJump => Jumps.Select(j => Math.Abs(j.Jump)).DefaultIfEmpty(0).Max();
    /// <summary>−JumpTotal / IgDelta: the share of the delta the jumps explain (IG's delta → −Σ jumps as steps → ∞); NaN when the delta is 0.</summary>
    [JsonIgnore] public double ExplainedFraction => IgDelta == 0 ? double.NaN : -JumpTotal / IgDelta;
    /// <summary>IgDelta + JumpTotal: what remains, the quadrature error on the smooth parts.</summary>
    [JsonIgnore] public double Residual => IgDelta + JumpTotal;

    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>JSON (System.Text.Json).</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(this, new JsonSerializerOptions(Options) { WriteIndented = indented });

    /// <summary>Reads <see cref="ToJson"/>'s output.</summary>
    public static RoutingSwitchReport FromJson(string json) =>
        JsonSerializer.Deserialize<RoutingSwitchReport>(json, Options) ?? throw new JsonException("the JSON holds no routing switch report");

    /// <summary>One line: switches per block, jump total, delta and the share explained.</summary>
    public string Summary()
    {
        if (MoeLayers.Length == 0 && IndexerLayers.Length == 0) return "the model has no MoE block and no indexer: the path has no routing switch";
        var parts = new List<string>();
        if (Layers.Length > 0) parts.Add("experts: " + string.Join(", ", Layers.Select(l => $"block {l.Layer}: {l.GridIntervals}")));
        if (IndexerSwitches.Length > 0) parts.Add("indexer: " + string.Join(", ", IndexerSwitches.Select(l => $"block {l.Layer}: {l.GridIntervals}")));
        return string.Create(CultureInfo.InvariantCulture,
            $"{Jumps.Length} routing switches on {GridAlphas.Length} path points ({string.Join("; ", parts)} grid intervals); Σ jumps {JumpTotal:G4}, IG delta ({IgNSteps} steps) {IgDelta:G4}: the jumps explain {ExplainedFraction:P0} of it (residual {Residual:G3})");
    }
}

/// <summary>
/// Counts the routing switches along IG's path on a DeepSeekMoE model and measures the jumps of F they cause — the
/// reason IG's convergence delta does not go to zero with more steps on MoE models (tests/fixtures/golden/captum2/README.md,
/// "Deltas do not go to zero with more steps (MoE routing)": on the golden model ≈ 20 switches per MoE layer and
/// delta ≈ −Σ jumps). The routing is read at the <c>blocks.{L}.moe.indices</c> hook points of a traced forward. On
/// DeepSeek-V3.2/V4 the lightning indexer's top-k is a discrete selection too (piecewise constant in its scores; F jumps
/// where a query's selected keys or compressed entries change): it is read at <c>blocks.{L}.attn.indexer.topk</c> (V3.2's
/// key mask, V4's entry picks as a set), counted per block in <see cref="RoutingSwitchReport.IndexerSwitches"/> and its
/// switches bisected and measured like the experts'. Hash-routed blocks (V4 <c>tid2eid</c>) route by token id and never
/// switch along a path in embedding space.
/// </summary>
public static class RoutingSwitches
{
    /// <summary>
    /// Evaluates F, every MoE block's top-k sets and every indexer's selection at <paramref name="gridPoints"/> points α_i = i/(points − 1) of the path
    /// B + α(E − B) (α in float32, as Captum scales inputs); in each grid interval where a selection changes it bisects
    /// until the bracket is at most <paramref name="tolerance"/> wide (recursively, so several switches in one interval are
    /// all found) and takes the jump F(right) − F(left) across it; the smooth change across a bracket is at most
    /// |dF/dα|·tolerance. Runs standard IG with <paramref name="igNSteps"/> Gauss–Legendre steps for the delta to compare
    /// with. Forwards are batched by <paramref name="batchSize"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid ids/target/baseline, fewer than 2 grid points, tolerance not in (0, 1/(points − 1)), igNSteps &lt; 1, batchSize &lt; 1.</exception>
    public static RoutingSwitchReport Analyse(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, Baseline? baseline = null,
        int gridPoints = 1025, double tolerance = 1e-7, int igNSteps = 128, int batchSize = 64)
    {
        if (gridPoints < 2) throw new ArgumentException($"gridPoints must be at least 2 (the two ends of the path), got {gridPoints}", nameof(gridPoints));
        if (!(tolerance > 0) || tolerance >= 1.0 / (gridPoints - 1))
            throw new ArgumentException($"tolerance must be in (0, {1.0 / (gridPoints - 1):G3}) (below the grid spacing), got {tolerance}", nameof(tolerance));
        if (igNSteps < 1) throw new ArgumentException($"igNSteps must be at least 1, got {igNSteps}", nameof(igNSteps));
        if (batchSize < 1) throw new ArgumentException($"batchSize must be at least 1, got {batchSize}", nameof(batchSize));
        baseline ??= Baseline.Default;
        var ig = IntegratedGradients.Attribute(model, inputIds, target, baseline, igNSteps);
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        var b = baseline.Build(model, p.Embeddings);
        var diff = p.Embeddings - b;
        var c = model.Config;
        var moe = Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsMoeLayer).ToArray();
        var indexers = PathRouting.IndexerLayers(c);
        int seq = p.Ids.Length, groups = moe.Length + indexers.Length;
        // One selection group per MoE block (experts), then one per indexer block; sets[point][group] = per-token keys.
        int[] groupLayer = moe.Concat(indexers).ToArray();
        bool IsIndexer(int gi) => gi >= moe.Length;

        (double[] F, long[][][] Sets) At(double[] alphas)
        {
            var fs = new List<double>();
            var sets = new List<long[][]>();
            for (int s = 0; s < alphas.Length; s += batchSize)
            {
                using var inner = NewDisposeScope();
                int m = Math.Min(batchSize, alphas.Length - s);
                var a = tensor(alphas.Skip(s).Take(m).Select(v => (float)v).ToArray()).view(m, 1, 1).to(b.device);
                var (f, st, ix) = PathRouting.Probe(model, b + a * diff, p.Target, moe, indexers);
                fs.AddRange(f);
                for (int r = 0; r < m; r++) sets.Add(st[r].Concat(ix[r]).ToArray());
            }
            return (fs.ToArray(), sets.ToArray());
        }

        var grid = Enumerable.Range(0, gridPoints).Select(i => (double)i / (gridPoints - 1)).ToArray();
        var (gridF, gridSets) = At(grid);
        var layerIntervals = new int[groups];
        var layerTokenSwitches = new int[groups];
        var layerPositions = groupLayer.Select(_ => new SortedSet<int>()).ToArray();
        int intervals = 0;
        var jumps = new List<RoutingJump>();
        for (int i = 0; i + 1 < gridPoints; i++)
        {
            bool any = false;
            for (int li = 0; li < groups; li++)
            {
                var changed = ChangedPositions(gridSets[i][li], gridSets[i + 1][li], seq);
                if (changed.Count == 0) continue;
                any = true;
                layerIntervals[li]++;
                layerTokenSwitches[li] += changed.Count;
                layerPositions[li].UnionWith(changed);
            }
            if (!any) continue;
            intervals++;
            Refine(grid[i], grid[i + 1], gridF[i], gridF[i + 1], gridSets[i], gridSets[i + 1]);
        }

        void Refine(double lo, double hi, double fLo, double fHi, long[][] sLo, long[][] sHi)
        {
            var layers = new List<int>();
            var indexerLayers = new List<int>();
            var positions = new SortedSet<int>();
            for (int li = 0; li < groups; li++)
            {
                var ch = ChangedPositions(sLo[li], sHi[li], seq);
                if (ch.Count == 0) continue;
                (IsIndexer(li) ? indexerLayers : layers).Add(groupLayer[li]);
                positions.UnionWith(ch);
            }
            if (layers.Count == 0 && indexerLayers.Count == 0) return;
            // Stop at the tolerance, or when float32 α can no longer split the bracket.
            double mid = 0.5 * (lo + hi);
            if (hi - lo <= tolerance || (float)mid == (float)lo || (float)mid == (float)hi)
            {
                jumps.Add(new RoutingJump(lo, hi, fLo, fHi, layers.ToArray(), positions.ToArray()) { IndexerLayers = indexerLayers.ToArray() });
                return;
            }
            var (fm, sm) = At(new[] { mid });
            Refine(lo, mid, fLo, fm[0], sLo, sm[0]);
            Refine(mid, hi, fm[0], fHi, sm[0], sHi);
        }

        return new RoutingSwitchReport
        {
            TokenIds = p.Ids,
            Target = p.Target.ToInfo(),
            Baseline = baseline.Describe(),
            MoeLayers = moe,
            GridAlphas = grid,
            GridF = gridF,
            Layers = moe.Select((l, li) => new LayerSwitches(l, layerIntervals[li], layerTokenSwitches[li], layerPositions[li].ToArray())).ToArray(),
            IndexerLayers = indexers,
            IndexerSwitches = indexers.Select((l, j) => new LayerSwitches(l, layerIntervals[moe.Length + j], layerTokenSwitches[moe.Length + j], layerPositions[moe.Length + j].ToArray())).ToArray(),
            GridIntervalsWithSwitch = intervals,
            Tolerance = tolerance,
            Jumps = jumps.ToArray(),
            FInput = p.FInput,
            FBaseline = ig.FBaseline!.Value,
            IgDelta = ig.ConvergenceDelta!.Value,
            IgNSteps = igNSteps,
        };
    }

    /// <summary>As <see cref="Analyse(DeepSeekModel, Tensor, AttributionTarget?, Baseline?, int, double, int, int)"/> with ids as an array.</summary>
    public static RoutingSwitchReport Analyse(DeepSeekModel model, long[] inputIds, AttributionTarget? target = null, Baseline? baseline = null,
        int gridPoints = 1025, double tolerance = 1e-7, int igNSteps = 128, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        DeepSeekNotebooks.Model.Native.TorchRuntime.EnsureLoaded();
        using var ids = tensor(inputIds, new long[] { 1, inputIds.Length });
        return Analyse(model, ids, target, baseline, gridPoints, tolerance, igNSteps, batchSize);
    }

    private static List<int> ChangedPositions(long[] a, long[] b, int seq)
    {
        var r = new List<int>();
        int k = a.Length / seq;
        for (int t = 0; t < seq; t++)
            for (int j = 0; j < k; j++)
                if (a[t * k + j] != b[t * k + j]) { r.Add(t); break; }
        return r;
    }
}
