using DeepSeekNotebooks.Analysis.Experts;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>Mixture-of-experts diagnostics: usage, domain affinity, co-activation, routing flow, load balance.</summary>
public static class ExpertCharts
{
    /// <summary>Expert usage: <paramref name="fraction"/>[layer, expert] = fraction of the layer's routed tokens sent to the expert.</summary>
    public static GenericChart UsageHeatmap(double[,] fraction, IReadOnlyList<int>? layerIds = null, string title = "Expert usage")
    {
        var layers = LayerLabels(fraction.GetLength(0), layerIds);
        var trace = Trace2D("heatmap",
            ("z", Rows(fraction)),
            ("y", Enumerable.Range(0, layers.Length).ToArray()),
            ("hovertemplate", "layer %{y}, expert %{x}<br>fraction = %{z:.4f}<extra></extra>"),
            ("colorscale", "Viridis"),
            ("zmin", 0.0),
            ("colorbar", ColorBar("fraction of routed tokens")));
        return Chart(new[] { trace }, title,
            ("xaxis", Axis("expert index")),
            ("yaxis", LabelledAxis("MoE layer", layers, tokens: false)),
            ("height", Math.Clamp(200 + 30 * layers.Length, 380, 1000)));
    }

    /// <summary>
    /// Domain × expert affinity: <paramref name="affinity"/>[domain, expert]. <paramref name="valueLabel"/> says what
    /// the value is (default: share of the domain's routed tokens that go to the expert).
    /// </summary>
    public static GenericChart DomainAffinity(IReadOnlyList<string> domains, double[,] affinity, string title = "Domain × expert affinity",
        string valueLabel = "share of domain's routed tokens")
    {
        RequireLength(domains.Count, affinity.GetLength(0), "affinity rows (domains)");
        var trace = Trace2D("heatmap",
            ("z", Rows(affinity)),
            ("text", domains.Select(d => Enumerable.Repeat(T(d), affinity.GetLength(1)).ToArray()).ToArray()),
            ("hovertemplate", "domain %{text}, expert %{x}<br>value = %{z:.4f}<extra></extra>"),
            ("colorscale", "Viridis"),
            ("colorbar", ColorBar(valueLabel)));
        return Chart(new[] { trace }, title,
            ("xaxis", Axis("expert index")),
            ("yaxis", LabelledAxis("domain", domains, tokens: false)),
            ("height", Math.Clamp(200 + 40 * domains.Count, 380, 900)));
    }

    /// <summary>
    /// Expert co-activation: <paramref name="matrix"/>[i, j] = how often experts i and j are selected for the same
    /// token (by default: fraction of tokens with both in their top-k).
    /// </summary>
    public static GenericChart CoActivation(double[,] matrix, string title = "Expert co-activation",
        string valueLabel = "fraction of tokens routed to both")
    {
        var trace = Trace2D("heatmap",
            ("z", Rows(matrix)),
            ("hovertemplate", "expert %{y} & expert %{x}<br>value = %{z:.4f}<extra></extra>"),
            ("colorscale", "Viridis"),
            ("zmin", 0.0),
            ("colorbar", ColorBar(valueLabel)));
        return Chart(new[] { trace }, title,
            ("xaxis", Axis("expert index")),
            ("yaxis", Axis("expert index", ("autorange", "reversed"), ("scaleanchor", "x"))),
            ("height", 600));
    }

    /// <summary>
    /// Routing Sankey: tokens → selected experts of the first MoE block → … → last block, one column per entry of
    /// <paramref name="routing"/> (in the given order; each holds one decision per token). Weights are normalised per
    /// (token, block) so each token carries flow 1; the link from expert a (block i) to expert b (block i+1) carries
    /// Σ_tokens w(t,i,a)·w(t,i+1,b), so link width = routing-weight mass.
    /// </summary>
    /// <exception cref="ArgumentException">A block's token count differs from <paramref name="tokens"/>, or a token's experts and weights differ in length.</exception>
    public static GenericChart RoutingSankey(IReadOnlyList<string> tokens, IReadOnlyList<LayerRouting> routing, string title = "Token routing across layers")
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(routing);
        int layers = routing.Count;
        foreach (var r in routing) r.Validate(tokens.Count);
        var layerIds = routing.Select(r => r.Layer).ToArray();
        var layerLabels = LayerLabels(layers, layerIds);
        var nodes = new List<string>();
        var nodeIndex = new Dictionary<(int Layer, int Expert), int>();
        for (int t = 0; t < tokens.Count; t++) nodes.Add($"{t}: {Tok(tokens[t])}");
        int Node(int l, int e)
        {
            if (!nodeIndex.TryGetValue((l, e), out int i))
            {
                i = nodes.Count;
                nodes.Add($"L{layerLabels[l]} E{e}");
                nodeIndex[(l, e)] = i;
            }
            return i;
        }
        var links = new Dictionary<(int, int), double>();
        void Add(int s, int d, double v) { if (v > 0) links[(s, d)] = links.GetValueOrDefault((s, d)) + v; }
        (int E, double W)[] Norm(int l, int t)
        {
            var d = routing[l].Tokens[t];
            double sum = d.Weights.Sum(w => Math.Max(0, (double)w));
            return d.Experts.Select((e, k) => (e, sum > 0 ? Math.Max(0, (double)d.Weights[k]) / sum : 1.0 / d.Experts.Length)).ToArray();
        }
        for (int t = 0; t < tokens.Count && layers > 0; t++)
        {
            var prev = Norm(0, t);
            foreach (var (e, w) in prev) Add(t, Node(0, e), w);
            for (int l = 1; l < layers; l++)
            {
                var cur = Norm(l, t);
                foreach (var (a, wa) in prev)
                    foreach (var (b, wb) in cur) Add(Node(l - 1, a), Node(l, b), wa * wb);
                prev = cur;
            }
        }
        var trace = TraceDomain("sankey",
            ("orientation", "h"),
            ("arrangement", "snap"),
            ("valueformat", ".3f"),
            ("node", Obj(
                ("label", nodes.ToArray()),
                ("pad", 12), ("thickness", 14),
                ("hovertemplate", "%{label}<br>flow = %{value:.3f}<extra></extra>"))),
            ("link", Obj(
                ("source", links.Keys.Select(k => k.Item1).ToArray()),
                ("target", links.Keys.Select(k => k.Item2).ToArray()),
                ("value", links.Values.ToArray()),
                ("hovertemplate", "%{source.label} → %{target.label}<br>routing weight = %{value:.3f}<extra></extra>"))));
        return Chart(new[] { trace }, title,
            ("height", Math.Clamp(300 + 22 * tokens.Count, 420, 1200)),
            ("annotations", new[]
            {
                Obj(("text", "columns: tokens → experts of layer " + string.Join(" → ", layerLabels) + "; link width = routing weight"),
                    ("showarrow", false), ("xref", "paper"), ("yref", "paper"), ("x", 0.0), ("y", -0.08), ("xanchor", "left")),
            }));
    }

    /// <summary>
    /// Load-balance metric over training (e.g. MaxVio = max_i load_i / mean load − 1), one line per layer.
    /// <paramref name="valuesPerLayer"/>[layer][step index].
    /// </summary>
    public static GenericChart LoadOverTraining(IReadOnlyList<int> steps, IReadOnlyList<IReadOnlyList<double>> valuesPerLayer,
        IReadOnlyList<int>? layerIds = null, string metricName = "MaxVio", string title = "Expert load balance over training")
    {
        var layers = LayerLabels(valuesPerLayer.Count, layerIds);
        var traces = valuesPerLayer.Select((v, l) =>
        {
            RequireLength(steps.Count, v.Count, $"layer {layers[l]} series");
            return Trace2D("scatter",
                ("mode", "lines"),
                ("name", $"layer {layers[l]}"),
                ("x", steps.ToArray()),
                ("y", v.Select(Num).ToArray()),
                ("hovertemplate", "step %{x}<br>" + T(metricName) + " = %{y:.4f}<extra>%{fullData.name}</extra>"));
        }).ToList();
        return Chart(traces, title,
            ("xaxis", Axis("training step")),
            ("yaxis", Axis(metricName)),
            ("legend", Obj(("title", Title("MoE layer")))));
    }

    private static string[] LayerLabels(int count, IReadOnlyList<int>? ids)
    {
        if (ids is not null) RequireLength(count, ids.Count, "layerIds");
        return Enumerable.Range(0, count).Select(i => (ids?[i] ?? i).ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }
}
