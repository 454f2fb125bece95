using System.Globalization;
using System.Text.Json;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// The data-randomisation sanity check of Adebayo, Gilmer, Muelly, Goodfellow, Hardt &amp; Kim 2018 ("Sanity Checks for
/// Saliency Maps", NeurIPS, §4.2) over several inputs (<see cref="DataRandomisation.Run"/>): every method's map of a model
/// trained on the true labels compared with its map of the same architecture trained on randomly permuted labels. Plain
/// data; JSON round-trips.
/// </summary>
public sealed record DataRandomisationReport
{
    /// <summary>The methods compared.</summary>
    public required AttributionMethod[] Methods { get; init; }
    /// <summary>Tokens per input (every input has the same length).</summary>
    public required int SequenceLength { get; init; }
    /// <summary>Per method, per input: the similarity of the two models' maps (<see cref="MapSimilarity"/>).</summary>
    public required MapSimilarity[][] PerInput { get; init; }
    /// <summary>Per method: the mean Spearman ρ of the signed per-token scores over the inputs.</summary>
    public required double[] MeanSpearman { get; init; }
    /// <summary>Per method: the mean Spearman ρ of the absolute per-token scores over the inputs.</summary>
    public required double[] MeanSpearmanAbs { get; init; }
    /// <summary>
    /// The flagging threshold: the one-sided 5 % critical value of ρ for <see cref="SequenceLength"/> tokens under
    /// independence (<see cref="Correlation.SpearmanCriticalValue"/>), the rule of <see cref="SanityChecks"/>.
    /// </summary>
    public required double Threshold { get; init; }
    /// <summary>Methods whose mean ρ reaches <see cref="Threshold"/>: their maps barely depend on what the model learned from the labels.</summary>
    public required AttributionMethod[] Flagged { get; init; }

    private static readonly JsonSerializerOptions Options = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The report as JSON (snake_case names).</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(this, new JsonSerializerOptions(Options) { WriteIndented = indented });

    /// <summary>Reads a report written by <see cref="ToJson"/>.</summary>
    public static DataRandomisationReport FromJson(string json) =>
        JsonSerializer.Deserialize<DataRandomisationReport>(json, Options) ?? throw new JsonException("the JSON holds no data-randomisation report");
}

/// <summary>
/// Data randomisation (Adebayo et al. 2018, §4.2): an explanation method that is faithful to what a model learned must
/// give different maps for a model trained on the true labels and for the same architecture trained on the same inputs
/// with permuted labels (which can only memorise). For each input and method both maps are computed with the same target
/// and options and compared by Spearman ρ (signed and absolute), Pearson of |·| and top-k overlap
/// (<see cref="MapSimilarity"/>); a method whose mean ρ reaches the one-sided 5 % critical value of ρ for that many tokens is
/// flagged, as in the model-randomisation check (<see cref="SanityChecks"/>).
/// </summary>
/// <remarks>Training the permuted-label model is the caller's: for the case-study classifiers,
/// <c>ClassifierTrainingOptions.PermuteLabelsSeed</c> in the Training project (<c>case-study imaging --permuted-labels</c>).</remarks>
public static class DataRandomisation
{
    /// <summary>
    /// Compares <paramref name="methods"/> (default Integrated Gradients, Saliency, Input×Gradient) on
    /// <paramref name="trained"/> and <paramref name="permutedLabels"/> for every input of <paramref name="inputs"/> (equal
    /// lengths), explaining <paramref name="target"/> with <paramref name="options"/> on both.
    /// </summary>
    /// <exception cref="ArgumentException">No inputs, inputs of different lengths, an empty method list, topK &lt; 1, or models of different architectures.</exception>
    public static DataRandomisationReport Run(DeepSeekModel trained, DeepSeekModel permutedLabels, IReadOnlyList<long[]> inputs, AttributionTarget target,
        IReadOnlyList<AttributionMethod>? methods = null, AttributionOptions? options = null, int topK = 3)
    {
        ArgumentNullException.ThrowIfNull(trained);
        ArgumentNullException.ThrowIfNull(permutedLabels);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(target);
        if (inputs.Count == 0) throw new ArgumentException("give at least one input", nameof(inputs));
        int seq = inputs[0].Length;
        for (int i = 0; i < inputs.Count; i++)
            if (inputs[i].Length != seq) throw new ArgumentException($"every input must have {seq} tokens (the first's length); input {i} has {inputs[i].Length}", nameof(inputs));
        if (trained.Config.ToJson() != permutedLabels.Config.ToJson())
            throw new ArgumentException("the two models must share one architecture (the same config): data randomisation changes the labels, not the model", nameof(permutedLabels));
        var m = (methods ?? new[] { AttributionMethod.IntegratedGradients, AttributionMethod.Saliency, AttributionMethod.InputXGradient }).ToArray();
        if (m.Length == 0) throw new ArgumentException("give at least one attribution method", nameof(methods));
        if (topK < 1) throw new ArgumentException($"topK must be at least 1, got {topK}", nameof(topK));
        int k = Math.Min(topK, seq);
        var perInput = m.Select(_ => new MapSimilarity[inputs.Count]).ToArray();
        for (int i = 0; i < inputs.Count; i++)
        {
            using var ids = tensor(inputs[i], new long[] { 1, seq });
            for (int j = 0; j < m.Length; j++)
            {
                var a = Attributor.Run(m[j], trained, ids, target, options).TokenSums;
                var b = Attributor.Run(m[j], permutedLabels, ids, target, options).TokenSums;
                perInput[j][i] = SanityChecks.Compare(m[j], a, b, k);
            }
        }
        double threshold = Correlation.SpearmanCriticalValue(seq);
        var mean = perInput.Select(r => r.Average(s => s.Spearman)).ToArray();
        var meanAbs = perInput.Select(r => r.Average(s => s.SpearmanAbs)).ToArray();
        return new DataRandomisationReport
        {
            Methods = m,
            SequenceLength = seq,
            PerInput = perInput,
            MeanSpearman = mean,
            MeanSpearmanAbs = meanAbs,
            Threshold = threshold,
            Flagged = m.Where((_, j) => double.IsFinite(threshold) && mean[j] >= threshold).ToArray(),
        };
    }

    /// <summary>One line per method: mean ρ (signed and absolute) and whether it is flagged.</summary>
    public static string Summary(DataRandomisationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        return string.Join("\n", report.Methods.Select((method, j) => FormattableString.Invariant(
            $"{method.Name()}: mean ρ {report.MeanSpearman[j]:F2} (|·| {report.MeanSpearmanAbs[j]:F2}) over {report.PerInput[j].Length} inputs — ") +
            (report.Flagged.Contains(method) ? FormattableString.Invariant($"FLAGGED (ρ ≥ {report.Threshold:F2})") : FormattableString.Invariant($"passes (threshold {report.Threshold:F2})"))));
    }
}
