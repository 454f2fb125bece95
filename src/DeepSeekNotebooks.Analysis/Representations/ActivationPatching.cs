#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Representations;

/// <summary>Effect of patching one activation from a source run into a destination run.</summary>
/// <param name="Position">Patched position (null = all positions).</param>
/// <param name="DestinationMetric">Metric of the unpatched destination run (input A).</param>
/// <param name="SourceMetric">Metric of the source run (input B).</param>
/// <param name="PatchedMetric">Metric of A with B's activation patched in.</param>
/// <param name="RestoredFraction">(patched − A) / (B − A): 1 = the patch moves the metric all the way to B's value, 0 = no effect (NaN when A = B).</param>
/// <param name="PatchedLastLogits">Logits of the patched run at the last position.</param>
public sealed record PatchingResult(string HookPoint, int? Position, long Target, long? Foil, double DestinationMetric, double SourceMetric,
    double PatchedMetric, double RestoredFraction, float[] PatchedLastLogits);

/// <summary>
/// Activation patching (causal tracing; Meng et al. 2022 "Locating and Editing Factual Associations in GPT",
/// Heimersheim &amp; Nanda 2024 "How to use and interpret activation patching").
/// </summary>
public static partial class ActivationPatching
{
    /// <summary>
    /// Runs <paramref name="source"/> (B) recording <paramref name="hookPoint"/>, then runs <paramref name="destination"/> (A) with
    /// that hook point replaced by B's value — at every position, or only at <paramref name="position"/> — and measures the
    /// metric at the last position: logit(target) − logit(foil), or logit(target) when no foil. Returns A's, B's and the
    /// patched metric and the restored fraction (Meng et al. 2022; Heimersheim &amp; Nanda's logit-difference metric).
    /// Position indexes dim 1 of [batch, seq, …] hooks (per-head points such as attn.z included; with DeepSeek-V4
    /// hyper-connections a resid_* point patches all hc_mult streams of the position), the query dim of attention patterns
    /// (V4 attn.probs / attn.sink_share too) and dim 0 of [tokens, …] router hooks. Hash-routed layers (V4) route by the
    /// destination's token ids whatever is patched into the streams.
    /// </summary>
    /// <exception cref="ArgumentException">Different lengths, empty inputs, unknown hook point (e.g. a layer that does not exist), position or tokens out of range.</exception>
    public static PatchingResult Patch(DeepSeekModel model, long[] destination, long[] source, string hookPoint, long target, long? foil = null, int? position = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(hookPoint);
        CheckPair(model, destination, source, target, foil, position);

        HookPoints.Validate(hookPoint, model.Config, nameof(hookPoint));

        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var b = tensor(source, dtype: ScalarType.Int64).unsqueeze(0);
        var a = tensor(destination, dtype: ScalarType.Int64).unsqueeze(0);
        using var traceB = model.RunWithCache(b, new TraceOptions { AttentionPatterns = false, Routing = false, HiddenStates = false, Logits = true, Extra = new[] { hookPoint } });
        var cached = traceB[hookPoint];
        // Query axis: 2 for [b, heads, seq, …] attention points (attn.pattern, V4 attn.probs and attn.sink_share), 1 for
        // [b, seq, …] points (per-head attn.z [b, seq, heads, d] and the V4 streams [b, seq, hc_mult, D]: all streams), 0 for router points.
        bool headsFirst = hookPoint.EndsWith(".attn.pattern", StringComparison.Ordinal) || hookPoint.EndsWith(".attn.probs", StringComparison.Ordinal)
            || hookPoint.EndsWith(".attn.sink_share", StringComparison.Ordinal);
        int posDim = cached.dim() switch { 4 => headsFirst ? 2 : 1, 3 => headsFirst ? 2 : 1, 2 => 0, _ => -1 };
        if (position is not null && posDim < 0) throw new ArgumentException($"cannot patch a single position of '{hookPoint}' (shape [{string.Join(", ", cached.shape)}])", nameof(position));
        HookFunction hook = (value, _) =>
        {
            if (position is not { } pos) return cached.to(value.dtype).clone();
            var patched = value.clone();
            patched.narrow(posDim, pos, 1).copy_(cached.narrow(posDim, pos, 1));
            return patched;
        };
        var logitsA = model.forward(a);
        var patchedLogits = model.RunWithHooks(a, new Dictionary<string, HookFunction> { [hookPoint] = hook });
        double Metric(Tensor logits)
        {
            var last = logits[0, -1].to(ScalarType.Float64);
            double m = last[target].item<double>();
            return foil is { } f ? m - last[f].item<double>() : m;
        }
        double ma = Metric(logitsA), mb = Metric(traceB.Logits), mp = Metric(patchedLogits);
        double restored = mb == ma ? double.NaN : (mp - ma) / (mb - ma);
        var lastLogits = patchedLogits[0, -1].to(ScalarType.Float32).data<float>().ToArray();
        return new PatchingResult(hookPoint, position, target, foil, ma, mb, mp, restored, lastLogits);
    }

    /// <summary>
    /// Patching sweep (Meng et al. 2022 causal-tracing grid): <see cref="Patch"/> at every layer's hook point given by
    /// <paramref name="hookOfLayer"/> (e.g. <see cref="HookPoints.ResidPre"/>) and every position.
    /// </summary>
    public static IReadOnlyList<PatchingResult> Sweep(DeepSeekModel model, long[] destination, long[] source, Func<int, string> hookOfLayer, long target, long? foil = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(hookOfLayer);
        ArgumentNullException.ThrowIfNull(destination);
        var rows = new List<PatchingResult>();
        for (int layer = 0; layer < model.Config.NumHiddenLayers; layer++)
            for (int p = 0; p < destination.Length; p++)
                rows.Add(Patch(model, destination, source, hookOfLayer(layer), target, foil, p));
        return rows;
    }

    /// <summary>Patching results as a DataFrame (hook_point, position, destination/source/patched metric, restored).</summary>
    public static DataFrame ToDataFrame(IReadOnlyList<PatchingResult> rows) => new(
        Frames.Str("hook_point", rows, r => r.HookPoint), Frames.Int("position", rows, r => r.Position ?? -1),
        Frames.Double("destination_metric", rows, r => r.DestinationMetric), Frames.Double("source_metric", rows, r => r.SourceMetric),
        Frames.Double("patched_metric", rows, r => r.PatchedMetric), Frames.Double("restored", rows, r => r.RestoredFraction));
}
