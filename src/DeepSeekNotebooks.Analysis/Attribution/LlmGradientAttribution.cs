using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Native;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Attribution of a continuation to the prompt tokens, as Captum's <c>LLMGradientAttribution</c>
/// (<c>captum/attr/_core/llm_attr.py</c>) with <c>LayerIntegratedGradients</c> on the embedding layer and a
/// <c>TextTokenInput</c> whose baseline replaces the prompt tokens: each target token's log-probability, teacher-forced,
/// is attributed to each prompt token.
/// </summary>
public static class LlmGradientAttribution
{
    /// <summary>
    /// For k = 0..T−1: the sequence S_k = prompt ++ target[0..k), F_k = log_softmax(logits at S_k's last position)[target[k]],
    /// Integrated Gradients (Sundararajan et al. 2017) of F_k over S_k's embeddings from the baseline in which the prompt
    /// rows are <paramref name="baseline"/>'s (default <see cref="Baseline.Default"/>, token 0's embedding — Captum's
    /// <c>TextTokenInput(baselines=0)</c>) and the appended target rows are kept (so they move by 0 and get 0).
    /// <c>TokenAttr[k, i]</c> = Σ_d attr[i, d] over the prompt positions i (Captum's <c>token_attr</c>); <c>SeqAttr</c> = Σ_k
    /// (Captum's <c>seq_attr</c>, the attribution of the total log-probability); per-row convergence deltas as Captum's
    /// <c>return_convergence_delta</c>. A row whose |delta| exceeds <see cref="IntegratedGradients.DeltaWarningFraction"/> of its
    /// Δ log p adds a warning.
    /// </summary>
    /// <exception cref="ArgumentException">An empty prompt or continuation, ids out of range, prompt + continuation longer than the model's context, a baseline of the wrong shape ([prompt, dim]), nSteps &lt; 1 (&lt; 2 for Riemann rules), internalBatchSize &lt; 1.</exception>
    public static LlmAttributionResult Attribute(DeepSeekModel model, IReadOnlyList<long> promptIds, IReadOnlyList<long> targetIds, Baseline? baseline = null,
        int nSteps = 50, IntegrationMethod method = IntegrationMethod.GaussLegendre, int? internalBatchSize = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(targetIds);
        if (promptIds.Count == 0) throw new ArgumentException("the prompt is empty; give at least one prompt token", nameof(promptIds));
        if (targetIds.Count == 0) throw new ArgumentException("the continuation is empty; give at least one target token to attribute", nameof(targetIds));
        LayerIntegratedGradients.Validate(nSteps, method, internalBatchSize);
        baseline ??= Baseline.Default;
        TorchRuntime.EnsureLoaded();
        int prompt = promptIds.Count, targets = targetIds.Count;
        var all = promptIds.Concat(targetIds).ToArray();
        using var scope = NewDisposeScope();
        using (var check = tensor(all.Take(prompt + targets - 1).ToArray())) model.CheckInputIds(check);
        foreach (var t in targetIds)
            if (t < 0 || t >= model.Config.VocabSize)
                throw new ArgumentException($"target token {t} is out of range: ids must be in [0, {model.Config.VocabSize - 1}] (vocab_size {model.Config.VocabSize})", nameof(targetIds));
        var tokenAttr = new float[targets * prompt];
        var logProbs = new double[targets];
        var logProbsBaseline = new double[targets];
        var deltas = new double[targets];
        var warnings = new List<string>();
        for (int k = 0; k < targets; k++)
        {
            using var inner = NewDisposeScope();
            int len = prompt + k;
            Tensor e, b;
            using (var _ = no_grad())
            {
                e = model.Embed(tensor(all.Take(len).ToArray(), new long[] { 1, len })).detach();
                var promptBase = baseline.Build(model, e.narrow(1, 0, prompt));
                b = k == 0 ? promptBase : cat(new[] { promptBase, e.narrow(1, prompt, k) }, 1);
            }
            var target = AttributionTarget.LogProbability(-1, targetIds[k]).Resolve(len, model.Config.VocabSize, null);
            if (model.Config.NumHashLayers > 0) target.RoutingIds = all.Take(len).ToArray();   // hash layers route by the ids
            var attr = IntegratedGradients.AttributeEmbeddings(model, e, b, target, nSteps, method, internalBatchSize);
            var rows = attr[0].narrow(0, 0, prompt).sum(-1).to(float32).cpu().contiguous().data<float>().ToArray();
            Array.Copy(rows, 0, tokenAttr, k * prompt, prompt);
            logProbs[k] = AttributionCore.Evaluate(model, e, target)[0];
            logProbsBaseline[k] = AttributionCore.Evaluate(model, b, target)[0];
            deltas[k] = attr.to(float64).sum().item<double>() - (logProbs[k] - logProbsBaseline[k]);
            ConvergenceDelta.Check($"target {k} (token {targetIds[k]})", deltas[k], logProbs[k], logProbsBaseline[k], baseline, warnings, model.Config);
        }
        var seqAttr = new float[prompt];
        for (int i = 0; i < prompt; i++)
        {
            float s = 0;
            for (int k = 0; k < targets; k++) s += tokenAttr[k * prompt + i];
            seqAttr[i] = s;
        }
        return new LlmAttributionResult
        {
            PromptIds = promptIds.ToArray(),
            TargetIds = targetIds.ToArray(),
            TokenAttr = tokenAttr,
            SeqAttr = seqAttr,
            LogProbs = logProbs,
            LogProbsBaseline = logProbsBaseline,
            Deltas = deltas,
            Parameters = new Dictionary<string, string>
            {
                ["attribution_method"] = "layer_integrated_gradients(embed)",
                ["n_steps"] = nSteps.ToString(CultureInfo.InvariantCulture),
                ["method"] = ApproximationMethods.CaptumName(method),
                ["baseline"] = baseline.Describe(),
                ["internal_batch_size"] = internalBatchSize?.ToString(CultureInfo.InvariantCulture) ?? "none",
            },
            Warnings = warnings,
        };
    }
}

/// <summary>
/// The attribution of a continuation to its prompt (Captum's <c>LLMAttributionResult</c>): <see cref="TokenAttr"/>
/// [targets, prompt], <see cref="SeqAttr"/> [prompt], and per target the log-probabilities at the input and the
/// baseline and the convergence delta. Plain, serialisable data.
/// </summary>
public sealed record LlmAttributionResult
{
    /// <summary>The prompt token ids [prompt].</summary>
    public required long[] PromptIds { get; init; }
    /// <summary>The attributed continuation's token ids [targets] (teacher-forced).</summary>
    public required long[] TargetIds { get; init; }
    /// <summary>Optional display strings of the prompt tokens (Captum's <c>input_tokens</c>).</summary>
    public string[]? PromptTokens { get; init; }
    /// <summary>Optional display strings of the target tokens (Captum's <c>output_tokens</c>).</summary>
    public string[]? TargetTokens { get; init; }
    /// <summary>Row-major [targets, prompt]: element (k, i) is prompt token i's share of log p(target k | prompt, target[0..k)).</summary>
    public required float[] TokenAttr { get; init; }
    /// <summary>[prompt]: Σ_k TokenAttr[k, i], the attribution of the total log-probability of the continuation.</summary>
    public required float[] SeqAttr { get; init; }
    /// <summary>[targets]: log p(target k | …) at the input.</summary>
    public required double[] LogProbs { get; init; }
    /// <summary>[targets]: the same at the baseline (prompt replaced, earlier targets kept).</summary>
    public required double[] LogProbsBaseline { get; init; }
    /// <summary>[targets]: Σ_i TokenAttr[k, i] − (LogProbs[k] − LogProbsBaseline[k]).</summary>
    public required double[] Deltas { get; init; }
    /// <summary>Method parameters (n_steps, method, baseline, …).</summary>
    public Dictionary<string, string> Parameters { get; init; } = new();
    /// <summary>Diagnostics (e.g. a large convergence delta).</summary>
    public List<string> Warnings { get; init; } = new();

    /// <summary>Number of attributed target tokens.</summary>
    [JsonIgnore] public int Targets => TargetIds.Length;
    /// <summary>Number of prompt tokens.</summary>
    [JsonIgnore] public int PromptLength => PromptIds.Length;
    /// <summary>TokenAttr[k, i].</summary>
    public float At(int target, int promptToken) => TokenAttr[target * PromptLength + promptToken];
    /// <summary>TokenAttr as a [targets, prompt] array.</summary>
    public double[,] Matrix()
    {
        var m = new double[Targets, PromptLength];
        for (int k = 0; k < Targets; k++) for (int i = 0; i < PromptLength; i++) m[k, i] = At(k, i);
        return m;
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Serialises to JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a result written by <see cref="ToJson"/>.</summary>
    public static LlmAttributionResult FromJson(string json) =>
        JsonSerializer.Deserialize<LlmAttributionResult>(json, JsonOptions) ?? throw new JsonException("the JSON holds no continuation attribution");

    /// <summary>
    /// Writes <c>token_attr</c> [targets, prompt] F32, <c>seq_attr</c> [prompt] F32, <c>delta</c> [targets] F32,
    /// <c>log_probs</c> / <c>log_probs_baseline</c> [targets] F32, <c>prompt_ids</c> [prompt] and <c>target_ids</c> [targets] I64;
    /// the parameters go to the metadata (<c>param.*</c>, <c>method</c> = <c>llm_gradient_attribution</c>).
    /// </summary>
    public void SaveSafetensors(string path)
    {
        var w = new SafetensorsWriter()
            .SetMetadata("method", "llm_gradient_attribution")
            .AddFloat32("token_attr", new long[] { Targets, PromptLength }, TokenAttr)
            .AddFloat32("seq_attr", new long[] { PromptLength }, SeqAttr)
            .AddFloat32("delta", new long[] { Targets }, Deltas.Select(d => (float)d).ToArray())
            .AddFloat32("log_probs", new long[] { Targets }, LogProbs.Select(d => (float)d).ToArray())
            .AddFloat32("log_probs_baseline", new long[] { Targets }, LogProbsBaseline.Select(d => (float)d).ToArray())
            .AddInt64("prompt_ids", new long[] { PromptLength }, PromptIds)
            .AddInt64("target_ids", new long[] { Targets }, TargetIds);
        foreach (var (k, v) in Parameters) w.SetMetadata("param." + k, v);
        w.WriteTo(path);
    }
}
