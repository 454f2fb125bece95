using System.Text.Json;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// The output of an attribution method as plain, serialisable data: raw attributions [seq, dim] (row-major), per-token
/// scores, the explained target and the method's diagnostics. For embedding-layer methods <c>dim</c> is the hidden size;
/// attention×gradient uses one column per (layer, head) pair (see <see cref="AttentionTimesGradient"/>).
/// </summary>
public sealed record AttributionResult
{
    /// <summary>The method that produced the result; saved (JSON, safetensors metadata) as its <see cref="AttributionMethods.Name"/>
    /// (<c>integrated_gradients</c>, <c>saliency</c>, <c>input_x_gradient</c>, <c>smoothgrad</c>, <c>occlusion</c>, <c>attention_x_gradient</c>,
    /// <c>layer_integrated_gradients</c>, <c>layer_conductance</c>, <c>feature_ablation</c>). For the layer methods the attributions are over
    /// the block's output activations (<c>Parameters["layer"]</c> names the hook point), one row per position.</summary>
    public required AttributionMethod Method { get; init; }
    /// <summary>The input token ids [seq].</summary>
    public required long[] TokenIds { get; init; }
    /// <summary>Optional human-readable tokens (e.g. <c>result with { TokenStrings = tokenizer.TokenStrings(result.TokenIds) }</c>).</summary>
    public string[]? TokenStrings { get; init; }
    /// <summary>The explained scalar.</summary>
    public required TargetInfo Target { get; init; }
    /// <summary>Shape of <see cref="Attributions"/>: [seq, dim].</summary>
    public required int[] Shape { get; init; }
    /// <summary>Raw attributions, row-major [seq, dim].</summary>
    public required float[] Attributions { get; init; }
    /// <summary>Per-token score: sum of the token's attributions over dim (Captum's usual token summary).
    /// For occlusion every element of a token carries the same value and this holds that value (not dim × value).</summary>
    public required float[] TokenSums { get; init; }
    /// <summary>Per-token L2 norm of the attributions over dim.</summary>
    public required float[] TokenNorms { get; init; }
    /// <summary>IG convergence delta Σ attributions − (F(input) − F(baseline)); null when not computed.</summary>
    public double? ConvergenceDelta { get; init; }
    /// <summary>F at the input.</summary>
    public double? FInput { get; init; }
    /// <summary>F at the baseline (IG, occlusion).</summary>
    public double? FBaseline { get; init; }
    /// <summary>Method parameters (n_steps, method, baseline, …) as strings.</summary>
    public Dictionary<string, string> Parameters { get; init; } = new();
    /// <summary>Diagnostics (e.g. a large convergence delta).</summary>
    public List<string> Warnings { get; init; } = new();
    /// <summary>
    /// What the model predicts at the target position on the input: the argmax token with its softmax probability, and
    /// the target token's probability (filled by every method; null in results saved before it existed).
    /// </summary>
    public PredictionInfo? Prediction { get; init; }
    /// <summary>Optional text of the target token (null for custom targets); set it with <see cref="WithTokenText"/>.</summary>
    public string? TargetText { get; init; }

    /// <summary>
    /// The result with human-readable text: <see cref="TokenStrings"/> (when not set yet), <see cref="TargetText"/> and the
    /// prediction's <see cref="PredictionInfo.Text"/>, each token through <paramref name="tokenText"/> (e.g.
    /// <c>id =&gt; tokenizer.TokenStrings(new[] { id })[0]</c>).
    /// </summary>
    public AttributionResult WithTokenText(Func<long, string> tokenText)
    {
        ArgumentNullException.ThrowIfNull(tokenText);
        return this with
        {
            TokenStrings = TokenStrings ?? TokenIds.Select(tokenText).ToArray(),
            TargetText = Target.TokenId is { } t ? tokenText(t) : TargetText,
            Prediction = Prediction is { } p ? p with { Text = tokenText(p.TokenId) } : null,
        };
    }

    /// <summary>Number of tokens.</summary>
    [JsonIgnore] public int SequenceLength => Shape[0];
    /// <summary>Attribution width per token.</summary>
    [JsonIgnore] public int Dim => Shape[1];
    /// <summary>The attribution of element (token, d).</summary>
    public float At(int token, int d) => Attributions[token * Dim + d];

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
    private static readonly JsonSerializerOptions JsonIndented = new(JsonOptions) { WriteIndented = true };

    /// <summary>Serialises to JSON (System.Text.Json; NaN/∞ written as strings).</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(this, indented ? JsonIndented : JsonOptions);

    /// <summary>Reads a result written by <see cref="ToJson"/>.</summary>
    public static AttributionResult FromJson(string json) =>
        JsonSerializer.Deserialize<AttributionResult>(json, JsonOptions) ?? throw new JsonException("the JSON holds no attribution result");

    /// <summary>
    /// Writes <c>attributions</c> [1, seq, dim] F32, <c>token_sums</c> [1, seq] F32, <c>token_norms</c> [1, seq] F32,
    /// <c>input_ids</c> [1, seq] I64, <c>target</c> [1] I64 (token id, −1 for custom targets), <c>target_position</c> [1] I64,
    /// <c>contrast_token</c> [1] I64 for a contrastive target, and <c>delta</c> [1] F32 when a convergence delta exists; method, target kind and parameters go to the metadata.
    /// </summary>
    public void SaveSafetensors(string path)
    {
        long seq = Shape[0], dim = Shape[1];
        var w = new SafetensorsWriter()
            .SetMetadata("method", Method.Name())
            .SetMetadata("target_kind", Target.Kind.ToString())
            .AddFloat32("attributions", new[] { 1, seq, dim }, Attributions)
            .AddFloat32("token_sums", new[] { 1, seq }, TokenSums)
            .AddFloat32("token_norms", new[] { 1, seq }, TokenNorms)
            .AddInt64("input_ids", new[] { 1, seq }, TokenIds)
            .AddInt64("target", new long[] { 1 }, new[] { Target.TokenId ?? -1 })
            .AddInt64("target_position", new long[] { 1 }, new long[] { Target.Position });
        if (Target.ContrastTokenId is { } t2) w.AddInt64("contrast_token", new long[] { 1 }, new[] { t2 });
        if (ConvergenceDelta is { } d) w.AddFloat32("delta", new long[] { 1 }, new[] { (float)d });
        if (FInput is { } fi) w.AddFloat32("f_input", new long[] { 1 }, new[] { (float)fi });
        if (FBaseline is { } fb) w.AddFloat32("f_baseline", new long[] { 1 }, new[] { (float)fb });
        foreach (var (k, v) in Parameters) w.SetMetadata("param." + k, v);
        w.WriteTo(path);
    }

    internal static (float[] Sums, float[] Norms) Summaries(float[] attributions, int seq, int dim)
    {
        var sums = new float[seq];
        var norms = new float[seq];
        for (int t = 0; t < seq; t++)
        {
            double s = 0, q = 0;
            for (int d = 0; d < dim; d++) { double a = attributions[t * dim + d]; s += a; q += a * a; }
            sums[t] = (float)s; norms[t] = (float)Math.Sqrt(q);
        }
        return (sums, norms);
    }
}

/// <summary>
/// The model's next-token distribution at the attributed position: softmax(logits[P]) has its maximum at
/// <paramref name="TokenId"/> with <paramref name="Probability"/>; <paramref name="TargetProbability"/> is the explained
/// token's probability there (null for custom targets). <see cref="Text"/> is the predicted token's text when known.
/// </summary>
public sealed record PredictionInfo(int Position, long TokenId, double Probability, double? TargetProbability)
{
    /// <summary>The predicted token as text (see <see cref="AttributionResult.WithTokenText"/>).</summary>
    public string? Text { get; init; }
}
