using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>Which randomisation test a stage belongs to (saved by name).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<RandomisationKind>))]
public enum RandomisationKind
{
    /// <summary>Cascading model-parameter randomisation: re-initialise from the head down, cumulatively (Adebayo et al. 2018 §4.1).</summary>
    Cascading,
    /// <summary>Independent model-parameter randomisation: one module at a time, the rest as trained (Adebayo et al. 2018 §4.1).</summary>
    Independent,
    /// <summary>The explained target replaced by another token (the stand-in for data randomisation; see <see cref="SanityChecks"/>).</summary>
    Target,
}

/// <summary>How similar a method's map on a randomised model is to its map on the trained one (per-token scores).</summary>
/// <param name="Method">The attribution method.</param>
/// <param name="Spearman">Spearman's ρ of the signed per-token scores (<see cref="AttributionResult.TokenSums"/>).</param>
/// <param name="SpearmanAbs">Spearman's ρ of their absolute values (Adebayo et al. report both).</param>
/// <param name="PearsonAbs">Pearson's r of the absolute values.</param>
/// <param name="TopKOverlap">Fraction of the original top-k tokens still in the top k (<see cref="Correlation.TopKOverlap"/>).</param>
public sealed record MapSimilarity(AttributionMethod Method, double Spearman, double SpearmanAbs, double PearsonAbs, double TopKOverlap);

/// <summary>One randomised model (or target) and every method's similarity to the original map.</summary>
/// <param name="Kind">The test.</param>
/// <param name="Label">What was randomised, e.g. <c>head</c>, <c>block 3</c>, <c>head → block 2</c>, <c>target 17</c>.</param>
/// <param name="Modules">The re-initialised parameter prefixes (<c>head.</c>, <c>norm.</c>, <c>layers.3.</c>); empty for the target test.</param>
/// <param name="Similarity">Per method, in <see cref="SanityCheckReport.Methods"/> order.</param>
/// <param name="TokenScores">Per method, the per-token scores on this stage (for charts).</param>
public sealed record RandomisationStage(RandomisationKind Kind, string Label, string[] Modules, MapSimilarity[] Similarity, float[][] TokenScores);

/// <summary>
/// The model-parameter randomisation sanity checks of Adebayo, Gilmer, Muelly, Goodfellow, Hardt &amp; Kim 2018 ("Sanity
/// Checks for Saliency Maps", NeurIPS) for several attribution methods on one input (<see cref="SanityChecks.Run(DeepSeekModel, Tensor, AttributionTarget?, IReadOnlyList{AttributionMethod}?, AttributionOptions?, long, int, int)"/>).
/// Plain data; JSON round-trips.
/// </summary>
public sealed record SanityCheckReport
{
    /// <summary>The input ids.</summary>
    public required long[] TokenIds { get; init; }
    /// <summary>The explained target on the trained model (kept on every randomised model, as Adebayo et al. keep the class).</summary>
    public required TargetInfo Target { get; init; }
    /// <summary>The methods, in the order of every per-method array.</summary>
    public required AttributionMethod[] Methods { get; init; }
    /// <summary>Per method, the per-token scores on the trained model.</summary>
    public required float[][] OriginalTokenScores { get; init; }
    /// <summary>Cascading stages: head, then head + last block, … down to all blocks (the embedding is never re-drawn).</summary>
    public required RandomisationStage[] Cascading { get; init; }
    /// <summary>Independent stages: head alone, each block alone.</summary>
    public required RandomisationStage[] Independent { get; init; }
    /// <summary>Target randomisation: the same model, another target token.</summary>
    public required RandomisationStage[] TargetRandomisation { get; init; }
    /// <summary>k of the top-k overlap.</summary>
    public required int TopK { get; init; }
    /// <summary>The flag threshold on Spearman's ρ (see <see cref="Flagged"/>).</summary>
    public required double Threshold { get; init; }
    /// <summary>The seed of the re-initialisation.</summary>
    public required long Seed { get; init; }
    /// <summary>
    /// Methods whose map survives the randomisation of every block and the head: Spearman's ρ of the signed token
    /// scores with the original is at least <see cref="Threshold"/> at the last cascading stage. The threshold is the
    /// one-sided 5 % critical value of ρ under independence for this many tokens (<see cref="Correlation.SpearmanCriticalValue"/>):
    /// a map still that correlated with the original cannot be told apart from "unchanged" at the 5 % level, so it
    /// depends on the input's structure rather than on what the model learnt.
    /// </summary>
    public required AttributionMethod[] Flagged { get; init; }

    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>JSON (System.Text.Json; NaN written as a string).</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(this, new JsonSerializerOptions(Options) { WriteIndented = indented });

    /// <summary>Reads <see cref="ToJson"/>'s output.</summary>
    public static SanityCheckReport FromJson(string json) =>
        JsonSerializer.Deserialize<SanityCheckReport>(json, Options) ?? throw new JsonException("the JSON holds no sanity check report");
}

/// <summary>
/// Sanity checks for attribution maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): an explanation that
/// does not change when the model's parameters are re-drawn at random cannot be explaining the model.
/// </summary>
/// <remarks>
/// <para><b>Model-parameter randomisation.</b> Copies of the model (the loaded model is never modified) with modules
/// re-initialised as <see cref="DeepSeekModel.Create"/> initialises a new model (N(0, 0.02) matrices, unit norm gains,
/// zero selection bias): <i>cascading</i> from the top — the head (unembedding and final norm), then the last block, …,
/// down to block 0 — and <i>independent</i>, one of those modules at a time. The token embedding is not re-drawn: the
/// methods attribute to the embeddings, so re-drawing them would change the input being explained rather than the
/// model. With tied embeddings the head stage re-draws only the final norm. Every method is recomputed on each copy for
/// the same target token and compared with its map on the trained model.</para>
/// <para><b>Data randomisation</b> (retraining on permuted labels) is <see cref="DataRandomisation"/>, for models the
/// caller trained on permuted labels (the imaging case study ships one). It is not run here: for a language model it means
/// retraining on a corpus with shuffled next tokens, which the kit's trainer does in minutes per stage, not seconds.
/// <see cref="RandomisationKind.Target"/> stands in for it on the trained model: explain a different, randomly drawn
/// target token; a method whose map stays the same explains the input, not the label — the dependence on the label
/// that the data-randomisation test probes.</para>
/// </remarks>
public static class SanityChecks
{
    /// <summary>
    /// Runs the cascading and independent randomisations and the target randomisation for <paramref name="methods"/>
    /// (default: every <see cref="AttributionMethod"/>) on one input, with <paramref name="options"/> for the methods
    /// (<see cref="Attributor.Run(AttributionMethod, DeepSeekModel, Tensor, AttributionTarget?, AttributionOptions?)"/>).
    /// <paramref name="seed"/> fixes the re-initialisation and the random targets; <paramref name="topK"/> is clamped to the
    /// sequence length; <paramref name="randomTargets"/> other tokens are drawn for the target test.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid ids/target, an empty method list, topK &lt; 1, randomTargets &lt; 0.</exception>
    public static SanityCheckReport Run(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null, IReadOnlyList<AttributionMethod>? methods = null,
        AttributionOptions? options = null, long seed = 0, int topK = 3, int randomTargets = 2)
    {
        ArgumentNullException.ThrowIfNull(model);
        methods ??= AttributionMethods.InputAttribution;
        if (methods.Count == 0) throw new ArgumentException("give at least one attribution method", nameof(methods));
        if (topK < 1) throw new ArgumentException($"topK must be at least 1, got {topK}", nameof(topK));
        if (randomTargets < 0) throw new ArgumentException($"randomTargets must be ≥ 0, got {randomTargets}", nameof(randomTargets));
        var m = methods.ToArray();
        // Resolve the target once on the trained model and keep its token fixed on every copy.
        var first = Attributor.Run(m[0], model, inputIds, target, options);
        var fixedTarget = first.Target.Kind switch
        {
            TargetKind.Logit => AttributionTarget.Logit(first.Target.Position, first.Target.TokenId),
            TargetKind.Probability => AttributionTarget.Probability(first.Target.Position, first.Target.TokenId),
            TargetKind.LogProbability => AttributionTarget.LogProbability(first.Target.Position, first.Target.TokenId),
            _ => target!,
        };
        var original = m.Select((method, i) => (i == 0 ? first : Attributor.Run(method, model, inputIds, fixedTarget, options)).TokenSums).ToArray();
        int seq = original[0].Length, k = Math.Min(topK, seq);

        RandomisationStage Stage(RandomisationKind kind, string label, string[] modules, DeepSeekModel on, AttributionTarget t)
        {
            var scores = m.Select(method => Attributor.Run(method, on, inputIds, t, options).TokenSums).ToArray();
            var sim = m.Select((method, i) => Compare(method, original[i], scores[i], k)).ToArray();
            return new RandomisationStage(kind, label, modules, sim, scores);
        }

        var c = model.Config;
        var blocks = Enumerable.Range(0, c.NumHiddenLayers).Reverse().ToArray();
        string[] headModules = c.TieWordEmbeddings ? new[] { "norm." } : new[] { "head.", "norm." };
        string headLabel = c.TieWordEmbeddings ? "head (final norm; unembedding tied)" : "head";
        var topDown = new List<(string Label, string[] Modules)> { (headLabel, headModules) };
        topDown.AddRange(blocks.Select(b => ($"block {b}", new[] { $"layers.{b}." })));

        var cascading = new List<RandomisationStage>();
        var cumulative = new List<string>();
        for (int s = 0; s < topDown.Count; s++)
        {
            cumulative.AddRange(topDown[s].Modules);
            string label = s == 0 ? topDown[0].Label : $"head → {topDown[s].Label}";
            using var copy = Randomised(model, cumulative, seed);
            cascading.Add(Stage(RandomisationKind.Cascading, label, cumulative.ToArray(), copy, fixedTarget));
        }
        var independent = new List<RandomisationStage>();
        foreach (var (label, modules) in topDown)
        {
            using var copy = Randomised(model, modules, seed);
            independent.Add(Stage(RandomisationKind.Independent, label, modules, copy, fixedTarget));
        }
        var targets = new List<RandomisationStage>();
        var rng = new Random((int)(seed & 0x7fffffff));
        long vocab = c.VocabSize, kept = first.Target.TokenId ?? -1;
        for (int r = 0; r < randomTargets && vocab > 1; r++)
        {
            long tok;
            do tok = rng.NextInt64(vocab); while (tok == kept);
            var t = first.Target.Kind switch
            {
                TargetKind.Probability => AttributionTarget.Probability(first.Target.Position, tok),
                TargetKind.LogProbability => AttributionTarget.LogProbability(first.Target.Position, tok),
                _ => AttributionTarget.Logit(first.Target.Position, tok),
            };
            targets.Add(Stage(RandomisationKind.Target, $"target {tok}", Array.Empty<string>(), model, t));
        }
        double threshold = Correlation.SpearmanCriticalValue(seq);
        var last = cascading[^1];
        var flagged = m.Where((_, i) => double.IsFinite(threshold) && last.Similarity[i].Spearman >= threshold).ToArray();
        return new SanityCheckReport
        {
            TokenIds = first.TokenIds,
            Target = first.Target,
            Methods = m,
            OriginalTokenScores = original,
            Cascading = cascading.ToArray(),
            Independent = independent.ToArray(),
            TargetRandomisation = targets.ToArray(),
            TopK = k,
            Threshold = threshold,
            Seed = seed,
            Flagged = flagged,
        };
    }

    /// <summary>As <see cref="Run(DeepSeekModel, Tensor, AttributionTarget?, IReadOnlyList{AttributionMethod}?, AttributionOptions?, long, int, int)"/> with ids as an array.</summary>
    public static SanityCheckReport Run(DeepSeekModel model, long[] inputIds, AttributionTarget? target = null, IReadOnlyList<AttributionMethod>? methods = null,
        AttributionOptions? options = null, long seed = 0, int topK = 3, int randomTargets = 2)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        DeepSeekNotebooks.Model.Native.TorchRuntime.EnsureLoaded();
        using var ids = tensor(inputIds, new long[] { 1, inputIds.Length });
        return Run(model, ids, target, methods, options, seed, topK, randomTargets);
    }

    /// <summary>
    /// A copy of <paramref name="model"/> in which every parameter whose name starts with one of <paramref name="prefixes"/>
    /// (e.g. <c>layers.3.</c>, <c>head.</c>) is freshly initialised as by <see cref="DeepSeekModel.Create"/> with
    /// <paramref name="seed"/>, and every other parameter is a copy of the original's (the original is not touched).
    /// Dispose the copy.
    /// </summary>
    /// <exception cref="ArgumentException">A prefix that matches no parameter (names: embed., layers.{i}., norm., head.).</exception>
    public static DeepSeekModel Randomised(DeepSeekModel model, IReadOnlyCollection<string> prefixes, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prefixes);
        var source = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var pre in prefixes)
            if (!source.Keys.Any(n => n.StartsWith(pre, StringComparison.Ordinal)))
                throw new ArgumentException($"no parameter starts with '{pre}': use embed., layers.0. … layers.{model.Config.NumHiddenLayers - 1}., norm. or head.", nameof(prefixes));
        var copy = DeepSeekModel.Create(model.Config, seed);
        try
        {
            copy.Quantisation = model.Quantisation;
            using var _ = no_grad();
            foreach (var (name, p) in copy.named_parameters())
            {
                if (prefixes.Any(pre => name.StartsWith(pre, StringComparison.Ordinal))) continue;
                p.copy_(source[name]);
            }
            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }

    internal static MapSimilarity Compare(AttributionMethod method, float[] original, float[] other, int k)
    {
        var a = original.Select(v => (double)v).ToArray();
        var b = other.Select(v => (double)v).ToArray();
        var aa = a.Select(Math.Abs).ToArray();
        var ba = b.Select(Math.Abs).ToArray();
        return new MapSimilarity(method, Correlation.Spearman(a, b), Correlation.Spearman(aa, ba), Correlation.Pearson(aa, ba), Correlation.TopKOverlap(a, b, k));
    }

    /// <summary>One line per method: ρ after full cascading randomisation, and whether it is flagged.</summary>
    public static string Summary(SanityCheckReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var last = report.Cascading[^1];
        return string.Join("\n", report.Methods.Select((m, i) => string.Create(CultureInfo.InvariantCulture,
            $"{m.Name()}: ρ {last.Similarity[i].Spearman:F2} (|·| {last.Similarity[i].SpearmanAbs:F2}) after {last.Label}{(report.Flagged.Contains(m) ? $" — FLAGGED (ρ ≥ {report.Threshold:F2})" : "")}")));
    }
}
