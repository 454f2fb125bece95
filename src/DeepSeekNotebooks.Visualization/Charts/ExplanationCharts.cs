using System.Globalization;
using DeepSeekNotebooks.Analysis.Attribution;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>
/// Charts of MoE-aware IG (<see cref="RoutingSwitchReport"/>, <see cref="IgRoutingConvergence"/>) and of explanation
/// validation (<see cref="SanityCheckReport"/>, <see cref="FaithfulnessReport"/>). Drawing only: every number comes from the result.
/// </summary>
public static class ExplanationCharts
{
    private static string F(double v, string format = "G3") => v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>F along IG's straight path (the grid of the report), with a marker at every routing switch sized by its |jump|.</summary>
    public static GenericChart PathWithSwitches(RoutingSwitchReport report, string title = "Target along the IG path, with routing switches")
    {
        ArgumentNullException.ThrowIfNull(report);
        var traces = new List<Trace>
        {
            Trace2D("scatter", ("mode", "lines"), ("name", "F(baseline + α·(input − baseline))"),
                ("x", report.GridAlphas), ("y", report.GridF.Select(Num).ToArray()),
                ("hovertemplate", "α = %{x:.4f}<br>F = %{y:.6g}<extra></extra>")),
        };
        if (report.Jumps.Length > 0)
        {
            double max = report.LargestJump > 0 ? report.LargestJump : 1;
            traces.Add(Trace2D("scatter", ("mode", "markers"), ("name", "routing switch (size ∝ |jump|)"),
                ("x", report.Jumps.Select(j => 0.5 * (j.AlphaLeft + j.AlphaRight)).ToArray()),
                ("y", report.Jumps.Select(j => Num(0.5 * (j.FLeft + j.FRight))).ToArray()),
                ("text", report.Jumps.Select(j => T($"blocks {string.Join(",", j.Layers)}; tokens {string.Join(",", j.Positions)}; jump {F(j.Jump)}")).ToArray()),
                ("hovertemplate", "α = %{x:.6f}<br>%{text}<extra></extra>"),
                ("marker", Obj(("size", report.Jumps.Select(j => 5 + 15 * Math.Abs(j.Jump) / max).ToArray()),
                    ("color", report.Jumps.Select(j => j.Jump).ToArray()), ("colorscale", Diverging), ("cmid", 0.0),
                    ("showscale", true), ("colorbar", ColorBar("jump of F at the switch"))))));
        }
        return Chart(traces, title,
            ("xaxis", Axis("α (0 = baseline, 1 = input)")),
            ("yaxis", Axis("target F")),
            ("legend", Obj(("orientation", "h"), ("y", -0.2))));
    }

    /// <summary>Per MoE block: grid intervals with a routing switch and (token, interval) switches.</summary>
    public static GenericChart SwitchesPerLayer(RoutingSwitchReport report, string title = "Routing switches along the IG path, per MoE block")
    {
        ArgumentNullException.ThrowIfNull(report);
        if (report.Layers.Length == 0) throw new ArgumentException("the report has no MoE block (a dense model has no routing switch to draw)", nameof(report));
        var blocks = report.Layers.Select(l => $"block {l.Layer}").ToArray();
        return GeneralCharts.Bars(title, "MoE block", $"switches on {report.GridAlphas.Length} path points", blocks,
            new Dictionary<string, IReadOnlyList<double>>
            {
                ["grid intervals with a switch"] = report.Layers.Select(l => (double)l.GridIntervals).ToArray(),
                ["(token, interval) switches"] = report.Layers.Select(l => (double)l.TokenSwitches).ToArray(),
            });
    }

    /// <summary>IG's convergence delta next to −Σ jumps and the remainder: how much of the delta the routing switches explain.</summary>
    public static GenericChart JumpsVersusDelta(RoutingSwitchReport report, string title = "IG's convergence delta and the routing jumps")
    {
        ArgumentNullException.ThrowIfNull(report);
        var names = new[] { $"IG delta ({report.IgNSteps} steps)", "− Σ jumps", "delta + Σ jumps (quadrature error)" };
        var values = new[] { report.IgDelta, -report.JumpTotal, report.Residual };
        var trace = Trace2D("bar", ("x", Enumerable.Range(0, 3).ToArray()), ("y", values.Select(Num).ToArray()),
            ("text", values.Select(v => F(v)).ToArray()), ("textposition", "outside"),
            ("hovertemplate", "%{y:.4g}<extra></extra>"), ("showlegend", false));
        return Chart(new[] { trace }, title,
            ("xaxis", LabelledAxis("quantity", names, tokens: false)),
            ("yaxis", Axis("value (units of the target)", ("zeroline", true))));
    }

    /// <summary>|convergence delta| against n_steps for standard and routing-frozen IG (log–log).</summary>
    public static GenericChart RoutingConvergence(IgRoutingConvergence convergence, string title = "IG convergence: standard vs routing-frozen")
    {
        ArgumentNullException.ThrowIfNull(convergence);
        return AttributionCharts.IgConvergence(convergence.NSteps, new Dictionary<string, IReadOnlyList<double>>
        {
            ["standard routing"] = convergence.StandardDelta,
            ["routing frozen to the input's experts"] = convergence.FrozenDelta,
        }, title);
    }

    /// <summary>
    /// Spearman's ρ of each method's map with its original along the randomisation stages (<paramref name="kind"/>:
    /// cascading from "trained" to all blocks re-drawn, independent per module, or random targets), with the flag threshold.
    /// </summary>
    /// <exception cref="ArgumentException">The report has no stage of that kind.</exception>
    public static GenericChart Randomisation(SanityCheckReport report, RandomisationKind kind = RandomisationKind.Cascading, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        var stages = kind switch
        {
            RandomisationKind.Cascading => report.Cascading,
            RandomisationKind.Independent => report.Independent,
            _ => report.TargetRandomisation,
        };
        if (stages.Length == 0) throw new ArgumentException($"the report has no {kind} stage", nameof(kind));
        var labels = new[] { kind == RandomisationKind.Target ? "original target" : "trained" }.Concat(stages.Select(s => s.Label)).ToArray();
        var traces = report.Methods.Select((m, i) => Trace2D("scatter", ("mode", "lines+markers"), ("name", T(m.Name())),
            ("x", Enumerable.Range(0, labels.Length).ToArray()),
            ("y", new double?[] { 1.0 }.Concat(stages.Select(s => Num(s.Similarity[i].Spearman))).ToArray()),
            ("hovertemplate", T(m.Name()) + ": ρ = %{y:.3f}<extra></extra>"))).ToList();
        traces.Add(Trace2D("scatter", ("mode", "lines"), ("name", $"flag threshold ρ = {F(report.Threshold, "F2")}"),
            ("x", new[] { 0, labels.Length - 1 }), ("y", new[] { Num(report.Threshold), Num(report.Threshold) }),
            ("line", Obj(("dash", "dash"), ("color", "gray"))), ("hoverinfo", "skip")));
        string what = kind switch
        {
            RandomisationKind.Cascading => "Cascading randomisation (head → block 0)",
            RandomisationKind.Independent => "Independent randomisation (one module at a time)",
            _ => "Target randomisation",
        };
        return Chart(traces, title ?? $"{what}: rank correlation with the original map",
            ("xaxis", LabelledAxis(kind == RandomisationKind.Target ? "explained target" : "re-initialised", labels, tokens: false)),
            ("yaxis", Axis("Spearman ρ with the original token scores", ("range", new[] { -1.05, 1.05 }))),
            ("legend", Obj(("title", Title("method")))));
    }

    /// <summary>Deletion (<paramref name="insertion"/> false) or insertion curves of every method and the random reference, AUC in the legend.</summary>
    public static GenericChart DeletionInsertion(FaithfulnessReport report, bool insertion = false, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        var traces = report.Curves.Append(report.Random).Select(c =>
        {
            var y = insertion ? c.Insertion : c.Deletion;
            double auc = insertion ? c.InsertionAuc : c.DeletionAuc;
            bool random = ReferenceEquals(c, report.Random);
            return Trace2D("scatter", ("mode", "lines+markers"), ("name", T($"{c.Label} (AUC {F(auc, "F3")})")),
                ("x", c.Fractions), ("y", y.Select(Num).ToArray()),
                ("line", random ? Obj(("dash", "dot"), ("color", "gray")) : null),
                ("hovertemplate", "%{x:.0%} of tokens<br>normalised F = %{y:.3f}<extra>" + T(c.Label) + "</extra>"));
        });
        string defaultTitle = insertion
            ? "Insertion: most-attributed tokens put back first (higher area = more faithful)"
            : "Deletion: most-attributed tokens removed first (lower area = more faithful)";
        return Chart(traces, title ?? defaultTitle,
            ("xaxis", Axis(insertion ? "fraction of tokens inserted into the baseline" : "fraction of tokens replaced by the baseline", ("tickformat", ".0%"))),
            ("yaxis", Axis("(F − F(baseline)) / (F(input) − F(baseline))")),
            ("legend", Obj(("title", Title("method (area under the curve)")))));
    }
}
