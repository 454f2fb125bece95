using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Visualization.Charts;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>Charts of MoE-aware IG and explanation validation, drawn from hand-made results.</summary>
public class ExplanationChartsTests
{
    private static readonly TargetInfo Target = new(3, 7, TargetKind.Logit, "Logit");

    private static RoutingSwitchReport Switches() => new()
    {
        TokenIds = new long[] { 1, 2, 3, 4 }, Target = Target, Baseline = "token:0", MoeLayers = new[] { 1, 2 },
        GridAlphas = new[] { 0, 0.5, 1 }, GridF = new[] { 0.1, 0.3, 0.6 },
        Layers = new[] { new LayerSwitches(1, 2, 3, new[] { 0, 2 }), new LayerSwitches(2, 1, 1, new[] { 3 }) },
        GridIntervalsWithSwitch = 2, Tolerance = 1e-7,
        Jumps = new[] { new RoutingJump(0.2, 0.2000001, 0.2, 0.25, new[] { 1 }, new[] { 0 }), new RoutingJump(0.7, 0.7000001, 0.4, 0.38, new[] { 1, 2 }, new[] { 2, 3 }) },
        FInput = 0.6, FBaseline = 0.1, IgDelta = -0.031, IgNSteps = 64,
    };

    [Fact]
    public void RoutingSwitchCharts_ShowTheReportsNumbers()
    {
        var r = Switches();
        var fig = Figure(ExplanationCharts.PathWithSwitches(r));
        Assert.Equal("α (0 = baseline, 1 = input)", Str(fig, "layout", "xaxis", "title", "text"));
        Assert.Equal("target F", Str(fig, "layout", "yaxis", "title", "text"));
        Assert.Equal(0.2, fig.GetProperty("data")[1].GetProperty("x")[0].GetDouble(), 6);   // the switch at its bracket, F mid-jump
        Assert.Equal(0.225, fig.GetProperty("data")[1].GetProperty("y")[0].GetDouble(), 6);
        var bars = Figure(ExplanationCharts.SwitchesPerLayer(r));
        Assert.Equal(2.0, bars.GetProperty("data")[0].GetProperty("y")[0].GetDouble());
        Assert.Equal(3.0, bars.GetProperty("data")[1].GetProperty("y")[0].GetDouble());
        var jd = Figure(ExplanationCharts.JumpsVersusDelta(r));
        var y = jd.GetProperty("data")[0].GetProperty("y");
        Assert.Equal(-0.031, y[0].GetDouble(), 12);
        Assert.Equal(-0.03, y[1].GetDouble(), 12);      // −Σ jumps = −(0.05 − 0.02)
        Assert.Equal(-0.001, y[2].GetDouble(), 10);     // delta + Σ jumps
        Assert.Throws<ArgumentException>(() => ExplanationCharts.SwitchesPerLayer(r with { Layers = Array.Empty<LayerSwitches>(), MoeLayers = Array.Empty<int>() }));
    }

    [Fact]
    public void RoutingConvergence_HasBothSeries_LogAxes()
    {
        var c = new IgRoutingConvergence(new[] { 8, 32 }, "gausslegendre", new[] { 2e-3, 2.5e-3 }, new[] { -8e-5, 1e-7 }, 0.4, 0.0, 0.1);
        var fig = Figure(ExplanationCharts.RoutingConvergence(c));
        Assert.Equal("standard routing", Str(fig.GetProperty("data")[0], "name"));
        Assert.Equal(8e-5, fig.GetProperty("data")[1].GetProperty("y")[0].GetDouble(), 12);
        Assert.Equal("log", Str(fig, "layout", "yaxis", "type"));
    }

    [Fact]
    public void Randomisation_StartsAtOne_AndDrawsTheThreshold()
    {
        var sim = new[] { new MapSimilarity(AttributionMethod.Saliency, 0.9, 0.9, 0.8, 1), new MapSimilarity(AttributionMethod.IntegratedGradients, 0.1, 0.2, 0.3, 0) };
        var stage = new RandomisationStage(RandomisationKind.Cascading, "head", new[] { "head." }, sim, new[] { new float[] { 1, 2 }, new float[] { 2, 1 } });
        var r = new SanityCheckReport
        {
            TokenIds = new long[] { 1, 2 }, Target = Target, Methods = new[] { AttributionMethod.Saliency, AttributionMethod.IntegratedGradients },
            OriginalTokenScores = new[] { new float[] { 1, 2 }, new float[] { 1, 2 } }, Cascading = new[] { stage }, Independent = new[] { stage with { Kind = RandomisationKind.Independent } },
            TargetRandomisation = Array.Empty<RandomisationStage>(), TopK = 1, Threshold = 0.56, Seed = 0, Flagged = new[] { AttributionMethod.Saliency },
        };
        var fig = Figure(ExplanationCharts.Randomisation(r));
        Assert.Equal("Spearman ρ with the original token scores", Str(fig, "layout", "yaxis", "title", "text"));
        var t0 = fig.GetProperty("data")[0].GetProperty("y");
        Assert.Equal(1.0, t0[0].GetDouble()); Assert.Equal(0.9, t0[1].GetDouble());
        Assert.Equal(0.56, fig.GetProperty("data")[2].GetProperty("y")[0].GetDouble());
        Assert.Contains("trained", fig.GetProperty("layout").GetProperty("xaxis").GetProperty("ticktext")[0].GetString());
        Assert.Throws<ArgumentException>(() => ExplanationCharts.Randomisation(r, RandomisationKind.Target));
    }

    [Fact]
    public void DeletionInsertion_CurvesWithAreasInTheLegend()
    {
        var fr = new[] { 0, 0.5, 1 };
        var c = new FaithfulnessCurve("saliency", new[] { 1, 0 }, fr, new[] { 1, 0.2, 0 }, new[] { 0, 0.9, 1 }, 0.35, 0.7);
        var rnd = new FaithfulnessCurve("random", Array.Empty<int>(), fr, new[] { 1, 0.5, 0 }, new[] { 0, 0.5, 1 }, 0.5, 0.5);
        var r = new FaithfulnessReport { TokenIds = new long[] { 1, 2 }, Target = Target, Baseline = "token:0", FInput = 1, FBaseline = 0, Curves = new[] { c }, Random = rnd, RandomOrders = 5 };
        var del = Figure(ExplanationCharts.DeletionInsertion(r));
        Assert.Equal("saliency (AUC 0.350)", Str(del.GetProperty("data")[0], "name"));
        Assert.Equal(0.2, del.GetProperty("data")[0].GetProperty("y")[1].GetDouble());
        Assert.Equal("fraction of tokens replaced by the baseline", Str(del, "layout", "xaxis", "title", "text"));
        var ins = Figure(ExplanationCharts.DeletionInsertion(r, insertion: true));
        Assert.Equal("random (AUC 0.500)", Str(ins.GetProperty("data")[1], "name"));
        Assert.Equal(0.9, ins.GetProperty("data")[0].GetProperty("y")[1].GetDouble());
    }
}
