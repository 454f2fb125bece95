using DeepSeekNotebooks.Analysis.Attention;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>Attention heatmaps: one head, all layers × heads in one figure, and attention rollout.</summary>
public static class AttentionCharts
{
    /// <summary>
    /// One head's attention: rows = query tokens (top to bottom), columns = key tokens; colour = attention weight.
    /// With <paramref name="causalMask"/> the upper triangle (key after query) is left blank.
    /// </summary>
    public static GenericChart Heatmap(IReadOnlyList<string> queryTokens, IReadOnlyList<string> keyTokens, AttentionMatrix weights,
        string title = "Attention", bool causalMask = false)
    {
        ArgumentNullException.ThrowIfNull(weights);
        RequireLength(queryTokens.Count, weights.Queries, "weights rows (queries)");
        RequireLength(keyTokens.Count, weights.Keys, "weights columns (keys)");
        var trace = AttentionTrace(queryTokens, keyTokens, weights.ToArray(), causalMask, "attention weight (softmax probability)", visible: true);
        return Chart(new[] { trace }, title, AttentionLayout(queryTokens, keyTokens));
    }

    /// <summary>
    /// All layers × heads in one interactive figure: one heatmap per (layer, head), a slider stepping through every
    /// (layer, head) pair and a dropdown jumping to head 0 of a layer. <paramref name="weights"/> is
    /// [layer][head], each [query, key]. The causal upper triangle is blank when <paramref name="causalMask"/> (default).
    /// </summary>
    public static GenericChart LayerHeadGrid(IReadOnlyList<string> tokens, AttentionMatrix[][] weights,
        string title = "Attention by layer and head", bool causalMask = true, IReadOnlyList<int>? layerIds = null)
    {
        int layers = weights.Length;
        if (layers == 0) throw new ArgumentException("No layers.", nameof(weights));
        if (layerIds is not null) RequireLength(layers, layerIds.Count, "layerIds");
        var traces = new List<Trace>();
        var labels = new List<(int Layer, int Head)>();
        for (int l = 0; l < layers; l++)
            for (int h = 0; h < weights[l].Length; h++)
            {
                var w = weights[l][h] ?? throw new ArgumentException($"layer {l} head {h} is null", nameof(weights));
                RequireLength(tokens.Count, w.Queries, $"layer {l} head {h} rows");
                RequireLength(tokens.Count, w.Keys, $"layer {l} head {h} columns");
                int lid = layerIds?[l] ?? l;
                var t = AttentionTrace(tokens, tokens, w.ToArray(), causalMask, "attention weight (softmax probability)", visible: traces.Count == 0);
                t.SetProperty("name", $"L{lid} H{h}");
                traces.Add(t);
                labels.Add((lid, h));
            }
        int n = traces.Count;
        object[] VisibleOnly(int k) => Enumerable.Range(0, n).Select(i => (object)(i == k)).ToArray();
        DynamicObj.DynamicObj Step(int k, string label) => Obj(
            ("method", "update"),
            ("label", label),
            ("args", new object[] { Obj(("visible", VisibleOnly(k))), Obj(("title", Title($"{title} — layer {labels[k].Layer}, head {labels[k].Head}"))) }));

        var slider = Obj(
            ("active", 0),
            ("currentvalue", Obj(("prefix", "layer·head: "))),
            ("pad", Obj(("t", 60))),
            ("steps", Enumerable.Range(0, n).Select(k => Step(k, $"L{labels[k].Layer}·H{labels[k].Head}")).ToArray()));
        var firstOfLayer = Enumerable.Range(0, n).Where(k => labels[k].Head == 0).ToArray();
        var menu = Obj(
            ("type", "dropdown"),
            ("direction", "down"),
            ("x", 1.0), ("xanchor", "right"), ("y", 1.15), ("yanchor", "top"),
            ("showactive", true),
            ("buttons", firstOfLayer.Select(k => Step(k, $"layer {labels[k].Layer}")).ToArray()));

        var layoutProps = AttentionLayout(tokens, tokens).ToList();
        layoutProps.Add(("sliders", new[] { slider }));
        layoutProps.Add(("updatemenus", new[] { menu }));
        layoutProps[0] = ("title", Title($"{title} — layer {labels[0].Layer}, head {labels[0].Head}"));
        var chart = Chart(traces, title, layoutProps.ToArray());
        return chart;
    }

    /// <summary>Attention rollout (cumulative attention flow from the input up to the last layer).</summary>
    public static GenericChart Rollout(IReadOnlyList<string> tokens, AttentionMatrix rollout, string title = "Attention rollout")
    {
        ArgumentNullException.ThrowIfNull(rollout);
        RequireLength(tokens.Count, rollout.Queries, "rollout rows");
        RequireLength(tokens.Count, rollout.Keys, "rollout columns");
        var trace = AttentionTrace(tokens, tokens, rollout.ToArray(), false, "rollout weight (cumulative attention flow)", visible: true);
        return Chart(new[] { trace }, title, AttentionLayout(tokens, tokens));
    }

    /// <summary>
    /// Attention between token classes for one head: rows = query classes, columns = key classes, colour and cell text =
    /// <paramref name="lift"/>[query class, key class], typically attention mass ÷ the mass uniform attention would give
    /// (1 = no preference). NaN cells (class pairs never seen) stay blank.
    /// </summary>
    public static GenericChart TokenClassLift(IReadOnlyList<string> queryClasses, IReadOnlyList<string> keyClasses, double[,] lift,
        string title = "Attention between token classes", string valueLabel = "attention mass ÷ uniform baseline")
    {
        ArgumentNullException.ThrowIfNull(queryClasses);
        ArgumentNullException.ThrowIfNull(keyClasses);
        ArgumentNullException.ThrowIfNull(lift);
        RequireLength(queryClasses.Count, lift.GetLength(0), "lift rows (query classes)");
        RequireLength(keyClasses.Count, lift.GetLength(1), "lift columns (key classes)");
        var text = new string[queryClasses.Count][];
        for (int i = 0; i < queryClasses.Count; i++)
        {
            text[i] = new string[keyClasses.Count];
            for (int j = 0; j < keyClasses.Count; j++) text[i][j] = $"query class {T(queryClasses[i])} → key class {T(keyClasses[j])}";
        }
        var trace = Trace2D("heatmap",
            ("z", Rows(lift)),
            ("text", text),
            ("texttemplate", "%{z:.2f}"),
            ("hovertemplate", "%{text}<br>" + T(valueLabel) + " = %{z:.3f}<extra></extra>"),
            ("colorscale", "Viridis"),
            ("zmin", 0.0),
            ("colorbar", ColorBar(valueLabel)));
        return Chart(new[] { trace }, title,
            ("xaxis", LabelledAxis("key class", keyClasses, tokens: false, ("tickangle", -45))),
            ("yaxis", LabelledAxis("query class", queryClasses, tokens: false, ("autorange", "reversed"))),
            ("height", Math.Clamp(260 + 40 * queryClasses.Count, 380, 900)));
    }

    private static Trace AttentionTrace(IReadOnlyList<string> q, IReadOnlyList<string> k, float[,] w, bool causal,
        string colorbarTitle, bool visible)
    {
        var text = new string[q.Count][];
        for (int i = 0; i < q.Count; i++)
        {
            text[i] = new string[k.Count];
            for (int j = 0; j < k.Count; j++) text[i][j] = $"query {i} {Tok(q[i])} → key {j} {Tok(k[j])}";
        }
        return Trace2D("heatmap",
            ("z", Rows(w, causal ? (i, j) => j > i : null)),
            ("text", text),
            ("hovertemplate", "%{text}<br>weight = %{z:.4f}<extra></extra>"),
            ("colorscale", "Viridis"),
            ("zmin", 0.0),
            ("hoverongaps", false),
            ("colorbar", ColorBar(colorbarTitle)),
            ("visible", visible));
    }

    private static (string, object?)[] AttentionLayout(IReadOnlyList<string> q, IReadOnlyList<string> k) => new (string, object?)[]
    {
        ("title", null), // placeholder (set by Chart / replaced by LayerHeadGrid)
        ("xaxis", LabelledAxis("key token (attended to)", k, tokens: true, ("tickangle", -45), ("side", "bottom"))),
        ("yaxis", LabelledAxis("query token (attending)", q, tokens: true, ("autorange", "reversed"))),
        ("height", Math.Clamp(250 + 18 * q.Count, 420, 1000)),
        ("plot_bgcolor", "rgb(255,255,255)"),
    };
}
