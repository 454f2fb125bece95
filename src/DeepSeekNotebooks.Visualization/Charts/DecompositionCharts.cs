using DeepSeekNotebooks.Analysis.Representations;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>
/// TransformerLens-style decomposition charts: direct logit attribution (per block, per head, per expert), per-head
/// activation patching and the induction probe. Signed values use the kit's diverging scale centred at 0.
/// </summary>
public static class DecompositionCharts
{
    /// <summary>
    /// Direct logit attribution per block: one bar per part of the final residual (the embedding, then each block's
    /// attention and FFN), whose heights sum to the logit (difference); a dashed line marks the model's own value.
    /// </summary>
    public static GenericChart LogitAttributionByLayer(DirectLogitAttributionResult result, string metricName = "logit", string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        var parts = result.Components.Where(c => c.Kind is LogitComponentKind.Embedding or LogitComponentKind.Attention or LogitComponentKind.Mlp).ToList();
        var labels = parts.Select(p => p.Label).ToArray();
        var values = parts.Select(p => p.Attribution).ToArray();
        var bars = Trace2D("bar",
            ("x", Enumerable.Range(0, parts.Count).ToArray()),
            ("y", values.Select(Num).ToArray()),
            ("text", labels.Select(T).ToArray()),
            ("textposition", "none"),
            ("name", "direct contribution"),
            ("hovertemplate", "%{text}: %{y:.4g}<extra></extra>"),
            ("marker", Obj(("color", parts.Select(p => p.Kind switch
            {
                LogitComponentKind.Attention => "rgb(31,119,180)",
                LogitComponentKind.Mlp => "rgb(255,127,14)",
                _ => "rgb(127,127,127)",
            }).ToArray()))));
        var total = Trace2D("scatter",
            ("x", new[] { -0.5, parts.Count - 0.5 }),
            ("y", new[] { Num(result.Logit), Num(result.Logit) }),
            ("mode", "lines"),
            ("line", Obj(("dash", "dash"), ("color", "black"))),
            ("name", T($"model's {metricName} = {result.Logit:0.###} (parts sum to {result.SumOfParts:0.###})")));
        return Chart(new[] { bars, total }, title ?? $"Direct logit attribution of {metricName} at position {result.Position}",
            ("xaxis", LabelledAxis("component (embedding; attention and FFN per block)", labels, tokens: false, ("tickangle", -45))),
            ("yaxis", Axis($"direct contribution to {metricName}")),
            ("legend", Obj(("orientation", "h"), ("y", -0.35))));
    }

    /// <summary>Direct logit attribution of every head: a layer × head heatmap of z_h · wo_hᵀ projected on the logit direction.</summary>
    public static GenericChart LogitAttributionByHead(DirectLogitAttributionResult result, string metricName = "logit", string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        var heads = result.Of(LogitComponentKind.Head);
        if (heads.Count == 0) throw new ArgumentException("the result has no per-head components", nameof(result));
        int layers = heads.Max(h => h.Layer) + 1, n = heads.Max(h => h.Index) + 1;
        var z = new double[layers, n];
        foreach (var h in heads) z[h.Layer, h.Index] = h.Attribution;
        return LayerHeadHeatmap(z, title ?? $"Direct logit attribution per head ({metricName}, position {result.Position})",
            $"direct contribution to {metricName}", signed: true);
    }

    /// <summary>
    /// Direct logit attribution of the experts: MoE blocks × (routed experts, then "shared"); cells of experts the router did
    /// not select for this token are blank (they contribute nothing).
    /// </summary>
    public static GenericChart LogitAttributionByExpert(DirectLogitAttributionResult result, int routedExperts, string metricName = "logit", string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        var routed = result.Of(LogitComponentKind.RoutedExpert);
        var shared = result.Of(LogitComponentKind.SharedExperts);
        var layers = routed.Select(r => r.Layer).Concat(shared.Select(s => s.Layer)).Distinct().Order().ToArray();
        if (layers.Length == 0) throw new ArgumentException("the result has no expert components (the model has no MoE block)", nameof(result));
        if (routed.Any(r => r.Index >= routedExperts)) throw new ArgumentException($"an expert index exceeds routedExperts = {routedExperts}", nameof(routedExperts));
        bool hasShared = shared.Count > 0;
        int cols = routedExperts + (hasShared ? 1 : 0);
        var z = layers.Select(_ => new double?[cols]).ToArray();
        foreach (var r in routed) z[Array.IndexOf(layers, r.Layer)][r.Index] = Num(r.Attribution);
        foreach (var s in shared) z[Array.IndexOf(layers, s.Layer)][routedExperts] = Num(s.Attribution);
        var colLabels = Enumerable.Range(0, routedExperts).Select(e => $"E{e}").Concat(hasShared ? new[] { "shared" } : Array.Empty<string>()).ToArray();
        double max = Math.Max(1e-12, routed.Concat(shared).Max(c => Math.Abs(c.Attribution)));
        var trace = Trace2D("heatmap",
            ("z", z),
            ("colorscale", Diverging), ("zmin", -max), ("zmax", max), ("zmid", 0.0),
            ("hoverongaps", false),
            ("hovertemplate", "%{y}, %{x}: %{z:.4g}<extra></extra>"),
            ("colorbar", ColorBar($"direct contribution to {metricName}")));
        return Chart(new[] { trace }, title ?? $"Direct logit attribution per selected expert ({metricName}, position {result.Position})",
            ("xaxis", LabelledAxis("expert (blank: not selected for this token)", colLabels, tokens: false, ("zeroline", false))),
            ("yaxis", LabelledAxis("MoE block", layers.Select(l => $"layer {l}").ToArray(), tokens: false, ("zeroline", false))),
            ("plot_bgcolor", "white"),
            ("height", Math.Clamp(220 + 40 * layers.Length, 350, 900)));
    }

    /// <summary>Per-head activation patching: layer × head heatmap of the normalised logit difference ((patched − corrupted) / (clean − corrupted)).</summary>
    public static GenericChart HeadPatching(HeadPatchingResult result, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        return LayerHeadHeatmap(result.Restored, title ?? "Per-head activation patching (attn.z, clean → corrupted)",
            "restored fraction of the logit difference", signed: true, fixedRange: 1.0);
    }

    /// <summary>Induction score per head (0 … 1): attention from each second-repeat token to the token after its first occurrence.</summary>
    public static GenericChart InductionScores(InductionResult result, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        return LayerHeadHeatmap(result.Score, title ?? $"Induction score per head (repeated random tokens, {result.RepeatLength} per repeat)",
            "induction score (mean attention)", signed: false);
    }

    /// <summary>
    /// The model's loss on tokens 2 … n of the first and the second repeat, with the uniform-guess loss ln(vocab) for
    /// reference and, when given, the second repeat's loss of a run with a head ablated (<paramref name="ablated"/>).
    /// </summary>
    public static GenericChart InductionLoss(InductionResult result, InductionResult? ablated = null, string ablatedLabel = "second repeat, head ablated", string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        var labels = new List<string> { "first repeat", "second repeat" };
        var values = new List<double> { result.FirstRepeatLoss, result.SecondRepeatLoss };
        var colours = new List<string> { "rgb(127,127,127)", "rgb(31,119,180)" };
        if (ablated is not null)
        {
            labels.Add(ablatedLabel);
            values.Add(ablated.SecondRepeatLoss);
            colours.Add("rgb(214,39,40)");
        }
        labels.Add("uniform guess ln(vocab)");
        values.Add(result.ChanceLoss);
        colours.Add("rgb(200,200,200)");
        var trace = Trace2D("bar",
            ("x", Enumerable.Range(0, labels.Count).ToArray()),
            ("y", values.Select(Num).ToArray()),
            ("text", values.Select(v => v.ToString("0.###")).ToArray()),
            ("textposition", "outside"),
            ("hovertemplate", "%{y:.4f} nats<extra></extra>"),
            ("marker", Obj(("color", colours.ToArray()))));
        return Chart(new[] { trace }, title ?? "Next-token loss on repeated random tokens",
            ("xaxis", LabelledAxis("tokens 2 … n of each repeat", labels, tokens: false)),
            ("yaxis", Axis("mean cross-entropy (nats)")));
    }

    /// <summary>A layer × head heatmap (rows = layers from 0, columns = heads).</summary>
    public static GenericChart LayerHeadHeatmap(double[,] values, string title, string colorbarTitle, bool signed, double? fixedRange = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        int layers = values.GetLength(0), heads = values.GetLength(1);
        var finite = values.Cast<double>().Where(double.IsFinite).ToArray();
        double max = fixedRange ?? Math.Max(1e-12, finite.Length == 0 ? 1 : finite.Max(Math.Abs));
        var props = new List<(string, object?)>
        {
            ("z", Rows(values)),
            ("hovertemplate", "layer %{y}, head %{x}: %{z:.4g}<extra></extra>"),
            ("colorbar", ColorBar(colorbarTitle)),
        };
        if (signed)
        {
            double lim = fixedRange is null ? max : Math.Max(max, finite.Length == 0 ? 0 : finite.Max(Math.Abs));
            props.AddRange(new (string, object?)[] { ("colorscale", Diverging), ("zmin", -lim), ("zmax", lim), ("zmid", 0.0) });
        }
        else props.AddRange(new (string, object?)[] { ("colorscale", "Viridis"), ("zmin", 0.0), ("zmax", fixedRange ?? 1.0) });
        return Chart(new[] { Trace2D("heatmap", props.ToArray()) }, title,
            ("xaxis", LabelledAxis("head", Enumerable.Range(0, heads).Select(h => $"H{h}").ToArray(), tokens: false, ("zeroline", false))),
            ("yaxis", LabelledAxis("layer", Enumerable.Range(0, layers).Select(l => $"L{l}").ToArray(), tokens: false, ("zeroline", false))),
            ("height", Math.Clamp(220 + 40 * layers, 350, 1000)));
    }
}
