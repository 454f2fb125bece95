using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>
/// Attribution drawn on the image: for a vision model whose tokens are image patches (ViT-style), the per-patch scores
/// laid over the scan on the patch grid — the image alone on the left, the image with the patch heatmap on the right
/// (Captum's <c>visualize_image_attr(method="blended_heat_map")</c>, at patch resolution).
/// </summary>
public static class PatchGridCharts
{
    /// <summary>
    /// A grayscale image (<paramref name="pixels"/>, row-major <paramref name="height"/>×<paramref name="width"/>, values in
    /// [0, 1]) and, beside it, the image under a diverging heatmap of <paramref name="patchScores"/> (row-major over the
    /// (height/patch)×(width/patch) grid). <paramref name="outline"/> patches (e.g. a known artefact region) get a dashed box
    /// on both panels.
    /// </summary>
    /// <exception cref="ArgumentException">Sizes that do not tile, or arrays of the wrong length.</exception>
    public static GenericChart PatchHeatmapOverImage(string title, IReadOnlyList<float> pixels, int width, int height, int patch,
        IReadOnlyList<double> patchScores, string valueLabel, IReadOnlyCollection<int>? outline = null, string? outlineLabel = null, double opacity = 0.6)
    {
        if (width < 1 || height < 1 || patch < 1 || width % patch != 0 || height % patch != 0)
            throw new ArgumentException($"the image ({width}×{height}) must tile into {patch}×{patch} patches (width and height multiples of the patch size)");
        RequireLength(width * height, pixels.Count, "pixels");
        int gw = width / patch, gh = height / patch;
        RequireLength(gw * gh, patchScores.Count, "patch scores");
        if (!(opacity is > 0 and <= 1)) throw new ArgumentException($"opacity must be in (0, 1], got {opacity}");
        var image = new double?[height][];
        for (int y = 0; y < height; y++)
        {
            image[y] = new double?[width];
            for (int x = 0; x < width; x++) image[y][x] = Num(pixels[y * width + x]);
        }
        var grid = new double?[gh][];
        double max = 1e-12;
        for (int r = 0; r < gh; r++)
        {
            grid[r] = new double?[gw];
            for (int c = 0; c < gw; c++)
            {
                grid[r][c] = Num(patchScores[r * gw + c]);
                if (double.IsFinite(patchScores[r * gw + c])) max = Math.Max(max, Math.Abs(patchScores[r * gw + c]));
            }
        }
        var gray = new object[][] { new object[] { 0.0, "rgb(0,0,0)" }, new object[] { 1.0, "rgb(255,255,255)" } };
        Trace Image(string xa, string ya) => Trace2D("heatmap",
            ("z", image), ("colorscale", gray), ("zmin", 0.0), ("zmax", 1.0), ("showscale", false), ("xaxis", xa), ("yaxis", ya),
            ("hovertemplate", "pixel (%{x}, %{y})<br>intensity %{z:.2f}<extra></extra>"));
        var overlay = Trace2D("heatmap",
            ("z", grid), ("x0", (patch - 1) / 2.0), ("dx", (double)patch), ("y0", (patch - 1) / 2.0), ("dy", (double)patch),
            ("colorscale", Diverging), ("zmid", 0.0), ("zmin", -max), ("zmax", max), ("opacity", opacity), ("xaxis", "x2"), ("yaxis", "y2"),
            ("colorbar", ColorBar(valueLabel)),
            ("hovertemplate", "patch centred at (%{x}, %{y})<br>" + T(valueLabel) + " = %{z:.4g}<extra></extra>"));
        var shapes = new List<DynamicObj.DynamicObj>();
        foreach (var p in outline ?? Array.Empty<int>())
        {
            if (p < 0 || p >= gw * gh) throw new ArgumentException($"outline patch {p} is outside the {gw}×{gh} grid [0, {gw * gh - 1}]", nameof(outline));
            int r = p / gw, c = p % gw;
            foreach (var (xr, yr) in new[] { ("x", "y"), ("x2", "y2") })
                shapes.Add(Obj(("type", "rect"), ("xref", xr), ("yref", yr), ("x0", c * patch - 0.5), ("x1", (c + 1) * patch - 0.5),
                    ("y0", r * patch - 0.5), ("y1", (r + 1) * patch - 0.5), ("line", Obj(("color", "rgb(255,200,0)"), ("width", 2), ("dash", "dash")))));
        }
        var annotations = new List<DynamicObj.DynamicObj>
        {
            Obj(("text", "scan"), ("xref", "x domain"), ("yref", "y domain"), ("x", 0.5), ("y", 1.06), ("showarrow", false)),
            Obj(("text", T($"{valueLabel} per {patch}×{patch} patch")), ("xref", "x2 domain"), ("yref", "y2 domain"), ("x", 0.5), ("y", 1.06), ("showarrow", false)),
        };
        if (outline is { Count: > 0 } && outlineLabel is not null)
            annotations.Add(Obj(("text", T($"dashed: {outlineLabel}")), ("xref", "paper"), ("yref", "paper"), ("x", 0.5), ("y", -0.12), ("showarrow", false)));
        DynamicObj.DynamicObj Axis(string titleText, double lo, double hi, string? anchor, bool reversed, string? scaleAnchor) =>
            Fig.Axis(titleText, ("domain", new[] { lo, hi }), ("anchor", anchor), ("range", reversed ? new[] { height - 0.5, -0.5 } : new[] { -0.5, width - 0.5 }),
                ("scaleanchor", scaleAnchor), ("showgrid", false), ("zeroline", false));
        return Chart(new[] { Image("x", "y"), Image("x2", "y2"), overlay }, title,
            ("xaxis", Axis("x (pixels)", 0, 0.44, "y", false, null)),
            ("yaxis", Axis("y (pixels)", 0, 1, "x", true, "x")),
            ("xaxis2", Axis("x (pixels)", 0.5, 0.94, "y2", false, null)),
            ("yaxis2", Axis("y (pixels)", 0, 1, "x2", true, "x2")),
            ("shapes", shapes.ToArray()), ("annotations", annotations.ToArray()),
            ("height", 440), ("width", 880));
    }
}
