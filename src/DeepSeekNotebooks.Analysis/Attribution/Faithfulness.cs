using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>Deletion and insertion curves of one token ordering (<see cref="FaithfulnessReport"/>).</summary>
/// <param name="Label">The method's saved name (<see cref="AttributionMethods.Name"/>), or <c>random</c> for the random-order reference.</param>
/// <param name="Order">Token positions from most to least attributed (empty for the random reference, an average over orders).</param>
/// <param name="Fractions">k/n for k = 0 … n tokens removed (deletion) or inserted (insertion).</param>
/// <param name="Deletion">Normalised target (F − F(B)) / (F(E) − F(B)) after replacing the k top tokens by the baseline: starts at 1.</param>
/// <param name="Insertion">Normalised target after putting the k top tokens into the baseline: starts at 0, ends at 1.</param>
/// <param name="DeletionAuc">Trapezoidal area under <paramref name="Deletion"/> over [0, 1]: lower = more faithful.</param>
/// <param name="InsertionAuc">Area under <paramref name="Insertion"/>: higher = more faithful.</param>
public sealed record FaithfulnessCurve(string Label, int[] Order, double[] Fractions, double[] Deletion, double[] Insertion, double DeletionAuc, double InsertionAuc)
{
    /// <summary>InsertionAuc − DeletionAuc: one number per method, higher = more faithful (0 for an order that does not matter on average).</summary>
    public double Score => InsertionAuc - DeletionAuc;
}

/// <summary>
/// Deletion/insertion faithfulness (Petsiuk, Das &amp; Saenko 2018, "RISE: Randomized Input Sampling for Explanation of
/// Black-box Models", §4.1) of several attribution maps of one input, with a random-order reference. Plain data; JSON round-trips.
/// </summary>
public sealed record FaithfulnessReport
{
    /// <summary>The input ids.</summary>
    public required long[] TokenIds { get; init; }
    /// <summary>The explained target.</summary>
    public required TargetInfo Target { get; init; }
    /// <summary>The replacement of removed tokens (<see cref="Baseline.Describe"/>).</summary>
    public required string Baseline { get; init; }
    /// <summary>F(E).</summary>
    public required double FInput { get; init; }
    /// <summary>F(B): every token replaced.</summary>
    public required double FBaseline { get; init; }
    /// <summary>One curve pair per attribution method, in the given order.</summary>
    public required FaithfulnessCurve[] Curves { get; init; }
    /// <summary>The mean curves over <see cref="RandomOrders"/> uniformly random orders (what an uninformative map scores).</summary>
    public required FaithfulnessCurve Random { get; init; }
    /// <summary>How many random orders <see cref="Random"/> averages.</summary>
    public required int RandomOrders { get; init; }

    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>JSON (System.Text.Json).</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(this, new JsonSerializerOptions(Options) { WriteIndented = indented });

    /// <summary>Reads <see cref="ToJson"/>'s output.</summary>
    public static FaithfulnessReport FromJson(string json) =>
        JsonSerializer.Deserialize<FaithfulnessReport>(json, Options) ?? throw new JsonException("the JSON holds no faithfulness report");
}

/// <summary>
/// Deletion and insertion curves (Petsiuk et al. 2018, RISE §4.1) for token attributions: delete (replace by the
/// baseline token's embedding) the most-attributed tokens first and follow the target; insert them first into an
/// all-baseline input. A faithful map makes the target fall fast under deletion (small area) and rise fast under
/// insertion (large area). Tokens are ranked by their per-token score (<see cref="AttributionResult.TokenSums"/>,
/// highest first: for signed methods the tokens that pushed the target up), ties by position. The target is normalised
/// as (F − F(B)) / (F(E) − F(B)) so curves of different targets and models share one scale (deletion 1 → 0,
/// insertion 0 → 1); areas are trapezoidal over the removed fraction k/n.
/// </summary>
public static class Faithfulness
{
    /// <summary>
    /// The curves of each result in <paramref name="results"/> (all of <paramref name="inputIds"/> and the same target) and
    /// of <paramref name="randomOrders"/> random orders (seeded by <paramref name="seed"/>), with <paramref name="baseline"/>
    /// (default <see cref="Baseline.Default"/>) as the removed-token replacement. <paramref name="target"/> must be the
    /// target the results explain (null: default target); its resolved token is checked against theirs.
    /// </summary>
    /// <exception cref="ArgumentException">No results, results of another input or target, a result without one score per token, randomOrders &lt; 0.</exception>
    public static FaithfulnessReport Evaluate(DeepSeekModel model, Tensor inputIds, IReadOnlyList<AttributionResult> results, AttributionTarget? target = null,
        Baseline? baseline = null, int randomOrders = 20, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(results);
        if (results.Count == 0) throw new ArgumentException("give at least one attribution result", nameof(results));
        if (randomOrders < 0) throw new ArgumentException($"randomOrders must be ≥ 0, got {randomOrders}", nameof(randomOrders));
        baseline ??= Baseline.Default;
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        int n = p.Ids.Length;
        foreach (var r in results)
        {
            if (!r.TokenIds.SequenceEqual(p.Ids))
                throw new ArgumentException($"the {r.Method.Name()} result explains another input ({r.TokenIds.Length} tokens [{string.Join(",", r.TokenIds.Take(6))}…]) than the one given ({n} tokens [{string.Join(",", p.Ids.Take(6))}…])", nameof(results));
            if (r.Target.Position != p.Target.Position || (r.Target.TokenId ?? -1) != p.Target.Token || r.Target.Kind != p.Target.Kind)
                throw new ArgumentException($"the {r.Method.Name()} result explains {r.Target.Kind} of token {r.Target.TokenId} at position {r.Target.Position}, not the given target ({p.Target.Kind} of token {p.Target.Token} at {p.Target.Position})", nameof(results));
            if (r.TokenSums.Length != n)
                throw new ArgumentException($"the {r.Method.Name()} result has {r.TokenSums.Length} token scores for {n} tokens", nameof(results));
        }
        var b = baseline.Build(model, p.Embeddings);
        double fBaseline = AttributionCore.Evaluate(model, b, p.Target)[0];
        double gap = p.FInput - fBaseline;
        double scale = Math.Abs(gap) < 1e-12 ? 1 : gap;
        var fractions = Enumerable.Range(0, n + 1).Select(k => (double)k / n).ToArray();

        (double[] Del, double[] Ins) Curves(int[] order)
        {
            using var inner = NewDisposeScope();
            var rows = new List<Tensor>();
            for (int pass = 0; pass < 2; pass++)
                for (int k = 0; k <= n; k++)
                {
                    var (from, into) = pass == 0 ? (b, p.Embeddings) : (p.Embeddings, b);   // deletion: E with top-k from B; insertion: B with top-k from E
                    var x = into[0].clone();
                    for (int j = 0; j < k; j++) x[order[j]] = from[0, order[j]];
                    rows.Add(x);
                }
            var f = AttributionCore.Evaluate(model, stack(rows), p.Target);
            var del = f.Take(n + 1).Select(v => (v - fBaseline) / scale).ToArray();
            var ins = f.Skip(n + 1).Select(v => (v - fBaseline) / scale).ToArray();
            return (del, ins);
        }

        var curves = results.Select(r =>
        {
            var order = Enumerable.Range(0, n).OrderByDescending(i => double.IsNaN(r.TokenSums[i]) ? double.NegativeInfinity : r.TokenSums[i]).ThenBy(i => i).ToArray();
            var (del, ins) = Curves(order);
            return new FaithfulnessCurve(r.Method.Name(), order, fractions, del, ins, Auc(fractions, del), Auc(fractions, ins));
        }).ToArray();

        var rng = new Random((int)(seed & 0x7fffffff));
        var meanDel = new double[n + 1];
        var meanIns = new double[n + 1];
        for (int r = 0; r < randomOrders; r++)
        {
            var order = Enumerable.Range(0, n).ToArray();
            rng.Shuffle(order);
            var (del, ins) = Curves(order);
            for (int k = 0; k <= n; k++) { meanDel[k] += del[k] / randomOrders; meanIns[k] += ins[k] / randomOrders; }
        }
        if (randomOrders == 0) { meanDel = Enumerable.Repeat(double.NaN, n + 1).ToArray(); meanIns = meanDel.ToArray(); }
        return new FaithfulnessReport
        {
            TokenIds = p.Ids,
            Target = p.Target.ToInfo(),
            Baseline = baseline.Describe(),
            FInput = p.FInput,
            FBaseline = fBaseline,
            Curves = curves,
            Random = new FaithfulnessCurve("random", Array.Empty<int>(), fractions, meanDel, meanIns, Auc(fractions, meanDel), Auc(fractions, meanIns)),
            RandomOrders = randomOrders,
        };
    }

    /// <summary>
    /// Computes <paramref name="methods"/> (default: every <see cref="AttributionMethod"/>) with <paramref name="options"/>
    /// through <see cref="Attributor"/> and evaluates them as <see cref="Evaluate"/> does, with the options' baseline as the
    /// replacement (default <see cref="Baseline.Default"/>).
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Evaluate"/> and the methods.</exception>
    public static FaithfulnessReport Run(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, IReadOnlyList<AttributionMethod>? methods = null,
        AttributionOptions? options = null, int randomOrders = 20, long seed = 0)
    {
        methods ??= AttributionMethods.InputAttribution;
        if (methods.Count == 0) throw new ArgumentException("give at least one attribution method", nameof(methods));
        var results = methods.Select(m => Attributor.Run(m, model, inputIds, target, options)).ToArray();
        var t = target ?? AttributionTarget.Logit(results[0].Target.Position, results[0].Target.TokenId);
        return Evaluate(model, inputIds, results, t, options?.Baseline, randomOrders, seed);
    }

    /// <summary>Trapezoidal area under y(x).</summary>
    internal static double Auc(double[] x, double[] y)
    {
        double a = 0;
        for (int i = 0; i + 1 < x.Length; i++) a += 0.5 * (y[i] + y[i + 1]) * (x[i + 1] - x[i]);
        return a;
    }

    /// <summary>One line per method: deletion and insertion areas, and the random reference.</summary>
    public static string Summary(FaithfulnessReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        return string.Join("\n", report.Curves.Append(report.Random).Select(c => string.Create(CultureInfo.InvariantCulture,
            $"{c.Label}: deletion AUC {c.DeletionAuc:F3}, insertion AUC {c.InsertionAuc:F3}, insertion − deletion {c.Score:F3}")));
    }
}
