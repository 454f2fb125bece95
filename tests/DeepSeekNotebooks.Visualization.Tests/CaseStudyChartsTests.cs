using DeepSeekNotebooks.Visualization.Charts;

namespace DeepSeekNotebooks.Visualization.Tests;

public class CaseStudyChartsTests
{
    [Fact]
    public void Patch_heatmap_places_each_patch_score_over_its_pixels_and_outlines_the_region()
    {
        // A 8×4 image of 2×2 patches: a 4×2 grid. Patch 5 (row 1, column 1) covers pixels x 2–3, y 2–3.
        var pixels = Enumerable.Range(0, 32).Select(i => i / 32f).ToArray();
        var scores = new double[8];
        scores[5] = -2.5; scores[0] = 1;
        var chart = PatchGridCharts.PatchHeatmapOverImage("Scan <b>", pixels, 8, 4, 2, scores, "IG", new[] { 5 }, "marker");
        var fig = ChartAssert.Figure(chart);
        Assert.Equal("Scan &lt;b&gt;", ChartAssert.Str(fig, "layout", "title", "text"));
        Assert.Equal(3, fig.GetProperty("data").GetArrayLength());            // scan, scan under the overlay, overlay
        var overlay = ChartAssert.Trace(fig, 2);
        // Patch centres: x0 = (patch − 1)/2 = 0.5 and dx = patch = 2, so patch column c sits at pixel 0.5 + 2c.
        Assert.Equal(0.5, overlay.GetProperty("x0").GetDouble());
        Assert.Equal(2.0, overlay.GetProperty("dx").GetDouble());
        Assert.Equal(-2.5, overlay.GetProperty("z")[1][1].GetDouble());
        Assert.Equal(2.5, overlay.GetProperty("zmax").GetDouble());           // symmetric scale around 0
        Assert.Equal(31 / 32.0, ChartAssert.Trace(fig, 0).GetProperty("z")[3][7].GetDouble(), 6);
        var shapes = fig.GetProperty("layout").GetProperty("shapes");
        Assert.Equal(2, shapes.GetArrayLength());                               // the outline on both panels
        Assert.Equal(1.5, shapes[0].GetProperty("x0").GetDouble());            // pixel 2's left edge
        Assert.Equal(3.5, shapes[0].GetProperty("y1").GetDouble());            // pixel 3's bottom edge
        Assert.Equal("x (pixels)", ChartAssert.Str(fig, "layout", "xaxis", "title", "text"));
        Assert.Equal("y (pixels)", ChartAssert.Str(fig, "layout", "yaxis", "title", "text"));
    }

    [Fact]
    public void Patch_heatmap_refuses_sizes_that_do_not_tile()
    {
        Assert.Contains("must tile", Assert.Throws<ArgumentException>(() => PatchGridCharts.PatchHeatmapOverImage("t", new float[30], 6, 5, 2, new double[6], "v")).Message);
        Assert.Contains("patch scores", Assert.Throws<ArgumentException>(() => PatchGridCharts.PatchHeatmapOverImage("t", new float[16], 4, 4, 2, new double[3], "v")).Message);
        Assert.Contains("outside the 2×2 grid", Assert.Throws<ArgumentException>(() => PatchGridCharts.PatchHeatmapOverImage("t", new float[16], 4, 4, 2, new double[4], "v", new[] { 4 })).Message);
    }

    [Fact]
    public void Estimates_draw_asymmetric_intervals_and_flag_those_excluding_the_reference()
    {
        var chart = IntervalCharts.Estimates("d per head", "effect size d", new[] { "L0.H0", "<img src=x onerror=alert(1)>" },
            new[] { 0.5, -0.1 }, new[] { 0.2, -0.4 }, new[] { 0.9, 0.3 }, 0, "none");
        var fig = ChartAssert.Figure(chart);
        var t = ChartAssert.Trace(fig);
        Assert.Equal(0.4, t.GetProperty("error_x").GetProperty("array")[0].GetDouble(), 12);       // upper − estimate
        Assert.Equal(0.3, t.GetProperty("error_x").GetProperty("arrayminus")[0].GetDouble(), 12);  // estimate − lower
        Assert.Equal("rgb(214,39,40)", t.GetProperty("marker").GetProperty("color")[0].GetString());  // [0.2, 0.9] excludes 0
        Assert.Equal("rgb(90,90,90)", t.GetProperty("marker").GetProperty("color")[1].GetString());   // [−0.4, 0.3] does not
        Assert.Equal("effect size d", ChartAssert.Str(fig, "layout", "xaxis", "title", "text"));
        ChartAssert.HostileSafe(chart);
        Assert.Contains("lower bound 1 is above", Assert.Throws<ArgumentException>(() =>
            IntervalCharts.Estimates("t", "v", new[] { "a" }, new[] { 0.0 }, new[] { 1.0 }, new[] { 0.5 })).Message);
    }
}
