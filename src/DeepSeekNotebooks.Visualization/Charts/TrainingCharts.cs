using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>Training curves.</summary>
public static class TrainingCharts
{
    /// <summary>
    /// Train (and optional validation) loss: raw values (thin, translucent) and EMA-smoothed (bold), using
    /// <see cref="Ema"/> with <paramref name="smoothing"/> (0 = none, 0.9 = TensorBoard's default feel).
    /// </summary>
    public static GenericChart LossCurves(IReadOnlyList<int> trainSteps, IReadOnlyList<double> trainLoss,
        IReadOnlyList<int>? valSteps = null, IReadOnlyList<double>? valLoss = null,
        double smoothing = 0.9, string title = "Loss")
    {
        RequireLength(trainSteps.Count, trainLoss.Count, "trainLoss");
        var traces = new List<Trace>
        {
            Line("train (raw)", trainSteps, trainLoss, "rgba(31,119,180,0.35)", 1, "train"),
            Line(FormattableString.Invariant($"train (EMA {smoothing:0.###})"), trainSteps, Ema(trainLoss, smoothing), "rgb(31,119,180)", 2.5, "train"),
        };
        if (valSteps is not null && valLoss is not null)
        {
            RequireLength(valSteps.Count, valLoss.Count, "valLoss");
            traces.Add(Line("validation (raw)", valSteps, valLoss, "rgba(255,127,14,0.45)", 1, "val", markers: true));
            traces.Add(Line(FormattableString.Invariant($"validation (EMA {smoothing:0.###})"), valSteps, Ema(valLoss, smoothing), "rgb(255,127,14)", 2.5, "val"));
        }
        return Chart(traces, title,
            ("xaxis", Axis("training step")),
            ("yaxis", Axis("loss (cross-entropy, nats)")),
            ("legend", Obj(("title", Title("curve")))));
    }

    /// <summary>Gradient norms per parameter group, one line per group, log-scaled y.</summary>
    public static GenericChart GradientNorms(IReadOnlyList<int> steps, IReadOnlyDictionary<string, IReadOnlyList<double>> normsByGroup,
        string title = "Gradient norms by parameter group")
    {
        var traces = normsByGroup.Select(kv =>
        {
            RequireLength(steps.Count, kv.Value.Count, $"group '{kv.Key}'");
            return Trace2D("scatter", ("mode", "lines"), ("name", T(kv.Key)), ("x", steps.ToArray()),
                ("y", kv.Value.Select(v => v > 0 ? Num(v) : null).ToArray()),
                ("hovertemplate", "step %{x}<br>‖g‖ = %{y:.3e}<extra>%{fullData.name}</extra>"));
        }).ToList();
        return Chart(traces, title,
            ("xaxis", Axis("training step")),
            ("yaxis", Axis("gradient L2 norm (log scale)", ("type", "log"), ("exponentformat", "power"))),
            ("legend", Obj(("title", Title("parameter group")))));
    }

    /// <summary>
    /// Debiased exponential moving average: s_t = w·s_{t−1} + (1−w)·x_t, divided by (1 − w^(t+1)) so early values are
    /// not pulled towards 0. Non-finite inputs are skipped (the previous smoothed value is repeated).
    /// </summary>
    public static double[] Ema(IReadOnlyList<double> values, double smoothing)
    {
        if (smoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(smoothing), "Must be in [0, 1).");
        var r = new double[values.Count];
        double s = 0, wPow = 1, last = double.NaN;
        for (int i = 0; i < values.Count; i++)
        {
            if (double.IsFinite(values[i]))
            {
                s = smoothing * s + (1 - smoothing) * values[i];
                wPow *= smoothing;
                last = s / (1 - wPow);
            }
            r[i] = last;
        }
        return r;
    }

    private static Trace Line(string name, IReadOnlyList<int> x, IReadOnlyList<double> y, string color, double width, string group, bool markers = false) =>
        Trace2D("scatter",
            ("mode", markers ? "lines+markers" : "lines"),
            ("name", name),
            ("legendgroup", group),
            ("x", x.ToArray()),
            ("y", y.Select(Num).ToArray()),
            ("line", Obj(("color", color), ("width", width))),
            ("hovertemplate", "step %{x}<br>loss = %{y:.4f}<extra>%{fullData.name}</extra>"));
}
