using DeepSeekNotebooks.Analysis.Experts;
using System.Globalization;
using DeepSeekNotebooks.Visualization.Html;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>
/// The model as a navigable 3D scene (plotly.js <c>scatter3d</c>: drag to rotate, scroll to zoom, hover for labels):
/// embedding → one column per block (attention heads on top, the residual stream / router in the middle, routed
/// experts or the dense MLP below, shared experts at the bottom) → LM head. With routing, every token is a coloured
/// path along the residual stream with a branch to each routed expert it selected; branch width ∝ gate weight and
/// routed-expert markers are coloured by how many tokens of the input chose them.
/// </summary>
public static class ModelView3D
{
    // z levels of the scene
    internal const double ZHeads = 2.0, ZResidual = 1.0, ZRouted = 0.0, ZShared = -0.8;
    /// <summary>Line widths used for flows (pixels); weights are binned onto these.</summary>
    internal static readonly double[] FlowWidths = { 1.5, 3, 5, 7.5, 10 };

    private static readonly string[] Palette =
    {
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    };

    /// <summary>
    /// Builds the 3D view. <paramref name="tokens"/> and <paramref name="routing"/> are optional; when
    /// <paramref name="routing"/> is given, <paramref name="tokens"/> is required and every <see cref="LayerRouting"/>
    /// must name an MoE block of <paramref name="architecture"/> and have one entry per token.
    /// </summary>
    public static GenericChart Build(ModelArchitecture architecture, IReadOnlyList<string>? tokens = null,
        IReadOnlyList<LayerRouting>? routing = null, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        architecture.Validate();
        var arch = architecture;
        int L = arch.Layers.Count, H = arch.AttentionHeads, E = arch.RoutedExperts, S = arch.SharedExperts;
        routing ??= Array.Empty<LayerRouting>();
        if (routing.Count > 0 && tokens is null) throw new ArgumentException("Routing flows need the token strings.", nameof(tokens));
        foreach (var r in routing)
        {
            if (r.Layer < 0 || r.Layer >= L || !arch.IsMoe(r.Layer))
                throw new ArgumentException($"Routing given for layer {r.Layer}, which is not an MoE layer of the architecture.");
            r.Validate(tokens!.Count, E);
        }
        if (routing.Select(r => r.Layer).Distinct().Count() != routing.Count) throw new ArgumentException("Routing lists a layer twice.");
        var inv = CultureInfo.InvariantCulture;
        string F(double v) => v.ToString("0.###", inv);

        double X(int layer) => layer + 1;                     // embedding at 0, head at L+1
        double Spread(int i, int n, double half) => n <= 1 ? 0 : -half + 2 * half * i / (n - 1);
        double YExpert(int e) => Spread(e, E, 1.0);
        int nTok = tokens?.Count ?? 0;
        double YToken(int t) => Spread(t, nTok, Math.Min(0.3, 0.04 * nTok));

        var traces = new List<Trace>();

        // --- skeleton: residual stream line (or DeepSeek-V4's hyper-connection lanes), embedding and head
        if (arch.Streams == 1)
            traces.Add(Trace3D("scatter3d",
                ("mode", "lines"), ("name", "residual stream"),
                ("x", new double[] { 0, L + 1 }), ("y", new double[] { 0, 0 }), ("z", new[] { ZResidual, ZResidual }),
                ("line", Obj(("color", "#999999"), ("width", 4))),
                ("hoverinfo", "skip"), ("legendgroup", "arch")));
        else
            AddStreams(traces, arch, X);
        traces.Add(Trace3D("scatter3d",
            ("mode", "markers+text"), ("name", "embedding / LM head"),
            ("x", new double[] { 0, L + 1 }), ("y", new double[] { 0, 0 }), ("z", new[] { ZResidual, ZResidual }),
            ("text", new[] { "embedding", "LM head" }), ("textposition", "top center"),
            ("marker", Obj(("symbol", "square"), ("size", 9), ("color", "#333333"))),
            ("hovertext", new[] { T($"{arch.Name}: token embedding"), T($"{arch.Name}: final norm + LM head") }),
            ("hoverinfo", "text"), ("legendgroup", "arch")));

        // --- attention heads of every block
        var hx = new List<double>(); var hy = new List<double>(); var hz = new List<double>(); var htext = new List<string>();
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++)
            {
                hx.Add(X(l) - 0.25); hy.Add(Spread(h, H, 0.6)); hz.Add(ZHeads);
                htext.Add(arch.AttentionKinds is null ? $"layer {l} · attention head {h} of {H}" : $"layer {l} · attention head {h} of {H} · {arch.AttentionLabel(l)}");
            }
        traces.Add(Trace3D("scatter3d",
            ("mode", "markers"), ("name", "attention heads"),
            ("x", hx.ToArray()), ("y", hy.ToArray()), ("z", hz.ToArray()),
            ("marker", Obj(("symbol", "diamond"), ("size", L * H > 1000 ? 1.5 : 4), ("color", "#6a51a3"))),
            ("hovertext", htext.ToArray()), ("hoverinfo", "text"), ("legendgroup", "arch")));

        // --- attention kind of each block (DeepSeek-V3.2 / V4 only)
        if (arch.AttentionKinds is not null)
        {
            var kinds = Enumerable.Range(0, L).ToArray();
            traces.Add(Trace3D("scatter3d",
                ("mode", "markers+text"), ("name", "attention kind per block"),
                ("x", kinds.Select(l => X(l) - 0.25).ToArray()), ("y", kinds.Select(_ => 0.0).ToArray()), ("z", kinds.Select(_ => ZHeads + 0.35).ToArray()),
                ("text", kinds.Select(l => ShortKind(arch, l)).ToArray()), ("textposition", "top center"),
                ("marker", Obj(("symbol", "circle"), ("size", 5), ("color", kinds.Select(l => KindColour(arch.AttentionKinds[l])).ToArray()))),
                ("hovertext", kinds.Select(l => $"layer {l} · {arch.AttentionLabel(l)}").ToArray()), ("hoverinfo", "text"), ("legendgroup", "arch")));
        }

        // --- dense MLPs
        var dense = Enumerable.Range(0, L).Where(l => arch.Layers[l] == LayerKind.Dense).ToArray();
        if (dense.Length > 0)
            traces.Add(Trace3D("scatter3d",
                ("mode", "markers"), ("name", "dense MLP"),
                ("x", dense.Select(X).ToArray()), ("y", dense.Select(_ => 0.0).ToArray()), ("z", dense.Select(_ => ZRouted).ToArray()),
                ("marker", Obj(("symbol", "square"), ("size", 8), ("color", "#74c476"))),
                ("hovertext", dense.Select(l => $"layer {l} · dense MLP").ToArray()), ("hoverinfo", "text"), ("legendgroup", "arch")));

        // --- routed experts (coloured by token count when routing is given) and shared experts
        var moe = arch.MoeLayers;
        var byLayer = routing.ToDictionary(r => r.Layer);
        var rx = new List<double>(); var ry = new List<double>(); var rz = new List<double>(); var rtext = new List<string>(); var rcount = new List<double>();
        foreach (int l in moe)
        {
            var users = new List<(int Token, double W)>[E];
            if (byLayer.TryGetValue(l, out var rl))
                for (int t = 0; t < nTok; t++)
                    for (int k = 0; k < rl.Tokens[t].Experts.Length; k++)
                        (users[rl.Tokens[t].Experts[k]] ??= new()).Add((t, rl.Tokens[t].Weights[k]));
            for (int e = 0; e < E; e++)
            {
                rx.Add(X(l)); ry.Add(YExpert(e)); rz.Add(ZRouted);
                var u = users[e];
                rcount.Add(u?.Count ?? 0);
                string who = u is null ? (byLayer.ContainsKey(l) ? "<br>no token of this input" : "")
                    : $"<br>{u.Count} token(s), Σ weight {F(u.Sum(x => x.W))}:<br>" + string.Join("<br>",
                        u.Take(8).Select(x => $"#{x.Token} {Tok(tokens![x.Token])} ({F(x.W)})")) + (u.Count > 8 ? "<br>…" : "");
                string how = arch.Layers[l] == LayerKind.HashMoe ? " · hash-routed (tid2eid: by token id)" : "";
                rtext.Add($"layer {l} · routed expert {e} of {E}{how}{who}");
            }
        }
        if (moe.Count > 0)
        {
            object marker = routing.Count > 0
                ? Obj(("size", moe.Count * E > 2000 ? 2.5 : 4), ("color", rcount.ToArray()), ("colorscale", "YlOrRd"), ("reversescale", true), ("cmin", 0.0),
                      ("line", Obj(("color", "#888888"), ("width", 0.5))),
                      ("colorbar", Obj(("title", Obj(("text", "routed-expert colour: tokens of this input routed there"), ("side", "top"))),
                          ("orientation", "h"), ("x", 0.1), ("xanchor", "left"), ("y", 1.0), ("yanchor", "top"), ("len", 0.3), ("thickness", 12))))
                : Obj(("size", moe.Count * E > 2000 ? 2 : 3), ("color", "#fd8d3c"));
            traces.Add(Trace3D("scatter3d",
                ("mode", "markers"), ("name", $"routed experts ({E} per MoE layer, top-{arch.ExpertsPerToken})"),
                ("x", rx.ToArray()), ("y", ry.ToArray()), ("z", rz.ToArray()),
                ("marker", marker), ("hovertext", rtext.ToArray()), ("hoverinfo", "text"), ("legendgroup", "arch")));
            if (S > 0)
            {
                var sx = new List<double>(); var sy = new List<double>(); var sz = new List<double>(); var stext = new List<string>();
                foreach (int l in moe)
                    for (int s = 0; s < S; s++)
                    {
                        sx.Add(X(l)); sy.Add(Spread(s, S, 0.3)); sz.Add(ZShared);
                        stext.Add($"layer {l} · shared expert {s} of {S} (active for every token)");
                    }
                traces.Add(Trace3D("scatter3d",
                    ("mode", "markers"), ("name", $"shared experts ({S} per MoE layer)"),
                    ("x", sx.ToArray()), ("y", sy.ToArray()), ("z", sz.ToArray()),
                    ("marker", Obj(("symbol", "square"), ("size", 6), ("color", "#3182bd"))),
                    ("hovertext", stext.ToArray()), ("hoverinfo", "text"), ("legendgroup", "arch")));
            }
        }

        // --- routing flows: per token a path along the residual stream plus one branch per selected expert,
        //     binned by weight onto FlowWidths (plotly draws one width per trace).
        double maxW = routing.SelectMany(r => r.Tokens).SelectMany(t => t.Weights).Select(w => (double)w).Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max();
        for (int t = 0; t < nTok && routing.Count > 0; t++)
        {
            string color = Palette[t % Palette.Length];
            string name = $"#{t} {Tok(tokens![t])}";
            string group = "tok" + t.ToString(inv);
            traces.Add(Trace3D("scatter3d",
                ("mode", "lines"), ("name", name), ("legendgroup", group), ("showlegend", true),
                ("x", new double[] { 0, L + 1 }), ("y", new[] { YToken(t), YToken(t) }), ("z", new[] { ZResidual, ZResidual }),
                ("line", Obj(("color", color), ("width", 2))),
                ("hovertext", new[] { $"token {name}: embedding", $"token {name}: LM head" }), ("hoverinfo", "text")));
            var bins = FlowWidths.Select(_ => (X: new List<double?>(), Y: new List<double?>(), Z: new List<double?>(), Text: new List<string?>())).ToArray();
            foreach (var rl in routing)
            {
                var tr = rl.Tokens[t];
                for (int k = 0; k < tr.Experts.Length; k++)
                {
                    double w = tr.Weights[k];
                    if (!double.IsFinite(w)) continue;
                    int b = maxW > 0 ? Math.Clamp((int)Math.Ceiling(Math.Abs(w) / maxW * FlowWidths.Length) - 1, 0, FlowWidths.Length - 1) : 0;
                    string tip = $"token {name} → layer {rl.Layer} expert {tr.Experts[k]}<br>routing weight {F(w)} (rank {k + 1})";
                    var bin = bins[b];
                    bin.X.AddRange(new double?[] { X(rl.Layer) - 0.35, X(rl.Layer), null });
                    bin.Y.AddRange(new double?[] { YToken(t), YExpert(tr.Experts[k]), null });
                    bin.Z.AddRange(new double?[] { ZResidual, ZRouted, null });
                    bin.Text.AddRange(new[] { tip, tip, null });
                }
            }
            for (int b = 0; b < bins.Length; b++)
            {
                if (bins[b].X.Count == 0) continue;
                traces.Add(Trace3D("scatter3d",
                    ("mode", "lines"), ("name", name), ("legendgroup", group), ("showlegend", false),
                    ("x", bins[b].X.ToArray()), ("y", bins[b].Y.ToArray()), ("z", bins[b].Z.ToArray()),
                    ("connectgaps", false),
                    ("line", Obj(("color", color), ("width", FlowWidths[b]))),
                    ("opacity", 0.85),
                    ("hovertext", bins[b].Text.ToArray()), ("hoverinfo", "text")));
            }
        }

        var xTicks = new List<double> { 0 }; var xText = new List<string> { "emb" };
        int step = Math.Max(1, (int)Math.Ceiling(L / 20.0));
        for (int l = 0; l < L; l += step) { xTicks.Add(X(l)); xText.Add($"L{l}{arch.Layers[l] switch { LayerKind.Moe => "", LayerKind.HashMoe => " (hash)", _ => " (dense)" }}"); }
        xTicks.Add(L + 1); xText.Add("head");
        string caption = routing.Count > 0
            ? $"Flows: one colour per token; branch width ∝ routing weight (widest = {F(maxW)}); expert colour = tokens of this input routed there. Drag to rotate, scroll to zoom, click legend to hide."
            : "Drag to rotate, scroll to zoom, hover for details.";
        string generations = (arch.HashLayers.Count > 0 ? $", {arch.HashLayers.Count} hash-routed" : "")
            + (arch.AttentionKinds is { } ak ? ", attention " + string.Join(" / ", ak.GroupBy(ShortKindOf).Select(g => $"{g.Count()}× {g.Key}")) : "")
            + (arch.Streams > 1 ? $", {arch.Streams} hyper-connection streams" : "");
        return Chart(traces, title ?? $"{arch.Name}: {L} blocks ({moe.Count} MoE{generations}), {H} heads, {E} routed + {S} shared experts",
            ("scene", Obj(
                ("xaxis", Obj(("title", Title("depth (embedding → blocks → head)")), ("tickmode", "array"), ("tickvals", xTicks.ToArray()), ("ticktext", xText.ToArray()))),
                ("yaxis", Obj(("title", Title("expert / head index (spread)")), ("showticklabels", false))),
                ("zaxis", Obj(("title", Title("component")), ("tickmode", "array"),
                    ("tickvals", new[] { ZShared, ZRouted, ZResidual, ZHeads }),
                    ("ticktext", new[] { "shared experts", "routed experts / MLP", "residual / router", "attention heads" }))),
                ("aspectmode", "manual"),
                ("aspectratio", Obj(("x", 2.2), ("y", 1.2), ("z", 0.8))),
                ("camera", Obj(("eye", Obj(("x", -1.35), ("y", -2.1), ("z", 1.0))))))),
            ("legend", Obj(("title", Title(routing.Count > 0 ? "components / tokens (flows)" : "components")), ("itemsizing", "constant"), ("tracegroupgap", 2))),
            ("height", 720),
            ("margin", Obj(("l", 0), ("r", 0), ("t", 60), ("b", 40))),
            ("annotations", new[]
            {
                Obj(("text", caption), ("showarrow", false), ("xref", "paper"), ("yref", "paper"), ("x", 0.0), ("y", 0.0), ("xanchor", "left"), ("yanchor", "top")),
            }));
    }

    /// <summary>
    /// DeepSeek-V4's hc_mult residual lanes (one line each, spread around the residual level) and, per block, the two mHC
    /// mixing sites (attention and FFN: read weights pre, write weights post, Sinkhorn stream mix comb).
    /// </summary>
    private static void AddStreams(List<Trace> traces, ModelArchitecture arch, Func<int, double> x)
    {
        int n = arch.Streams, L = arch.Layers.Count;
        double Lane(int j) => n <= 1 ? 0 : -0.15 + 0.3 * j / (n - 1);
        var lx = new List<double?>(); var ly = new List<double?>(); var lz = new List<double?>();
        for (int j = 0; j < n; j++)
        {
            lx.AddRange(new double?[] { 0, L + 1, null });
            ly.AddRange(new double?[] { Lane(j), Lane(j), null });
            lz.AddRange(new double?[] { ZResidual, ZResidual, null });
        }
        traces.Add(Trace3D("scatter3d",
            ("mode", "lines"), ("name", $"residual streams ({n} hyper-connection lanes, mHC)"),
            ("x", lx.ToArray()), ("y", ly.ToArray()), ("z", lz.ToArray()), ("connectgaps", false),
            ("line", Obj(("color", "#999999"), ("width", 3))),
            ("hoverinfo", "skip"), ("legendgroup", "arch")));
        var mx = new List<double>(); var mtext = new List<string>();
        for (int l = 0; l < L; l++)
        {
            mx.Add(x(l) - 0.4); mtext.Add($"layer {l} · mHC before attention: reads Σ pre_j H_j, writes post_k · out + Σ_j comb[j,k] H_j ({n} streams)");
            mx.Add(x(l) + 0.1); mtext.Add($"layer {l} · mHC before the FFN: reads Σ pre_j H_j, writes post_k · out + Σ_j comb[j,k] H_j ({n} streams)");
        }
        traces.Add(Trace3D("scatter3d",
            ("mode", "markers"), ("name", "mHC stream mixing (pre / post / comb)"),
            ("x", mx.ToArray()), ("y", mx.Select(_ => 0.0).ToArray()), ("z", mx.Select(_ => ZResidual).ToArray()),
            ("marker", Obj(("symbol", "diamond-open"), ("size", 5), ("color", "#525252"))),
            ("hovertext", mtext.ToArray()), ("hoverinfo", "text"), ("legendgroup", "arch")));
    }

    private static string ShortKindOf(DeepSeekNotebooks.Model.AttentionKind k) => k switch
    {
        DeepSeekNotebooks.Model.AttentionKind.Mla => "MLA",
        DeepSeekNotebooks.Model.AttentionKind.MlaWithIndexer => "MLA+idx",
        DeepSeekNotebooks.Model.AttentionKind.SlidingWindow => "SWA",
        DeepSeekNotebooks.Model.AttentionKind.CompressedSparse => "CSA",
        DeepSeekNotebooks.Model.AttentionKind.HeavilyCompressed => "HCA",
        _ => k.ToString(),
    };

    private static string ShortKind(ModelArchitecture arch, int layer)
    {
        var k = arch.AttentionKinds![layer];
        int ratio = arch.CompressRatios?[layer] ?? 0;
        return ratio > 0 ? $"{ShortKindOf(k)}×{ratio}" : ShortKindOf(k);
    }

    private static string KindColour(DeepSeekNotebooks.Model.AttentionKind k) => k switch
    {
        DeepSeekNotebooks.Model.AttentionKind.MlaWithIndexer => "#807dba",
        DeepSeekNotebooks.Model.AttentionKind.SlidingWindow => "#41ab5d",
        DeepSeekNotebooks.Model.AttentionKind.CompressedSparse => "#ef3b2c",
        DeepSeekNotebooks.Model.AttentionKind.HeavilyCompressed => "#993404",
        _ => "#6a51a3",
    };

    /// <summary>The 3D view as a complete offline page (plotly.js inline, no network).</summary>
    public static string Page(ModelArchitecture architecture, IReadOnlyList<string>? tokens = null,
        IReadOnlyList<LayerRouting>? routing = null, string? title = null)
    {
        var chart = Build(architecture, tokens, routing, title);
        return HtmlReport.PageFor(chart, title ?? $"{architecture.Name}: 3D model view");
    }
}
