using System.Text.Json;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

public class ChartTests
{
    private static readonly string[] Toks = { "The", HostileImg, " cat", HostileScript, "The" };

    private static float[,] Causal(int n)
    {
        var w = new float[n, n];
        for (int i = 0; i < n; i++) for (int j = 0; j <= i; j++) w[i, j] = 1f / (i + 1);
        return w;
    }

    [Fact]
    public void AttentionHeatmap()
    {
        var c = AttentionCharts.Heatmap(Toks, Toks, Causal(5), "Head " + HostileImg, causalMask: true);
        Basics(c, "heatmap", "Head &lt;img src=x onerror=alert(1)&gt;", "key token (attended to)", "query token (attending)",
            "attention weight (softmax probability)");
        HostileSafe(c);
        var fig = Figure(c);
        var z = Trace(fig).GetProperty("z");
        Assert.Equal(System.Text.Json.JsonValueKind.Null, z[0][1].ValueKind); // upper triangle blank
        Assert.Equal(1.0, z[0][0].GetDouble());
        // tokens as tick text, duplicates kept apart by position
        var ticks = fig.GetProperty("layout").GetProperty("xaxis").GetProperty("ticktext");
        Assert.Equal(5, ticks.GetArrayLength());
        Assert.Equal("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;", ticks[3].GetString());
    }

    [Fact]
    public void AttentionLayerHeadGrid()
    {
        var w = new[] { new AttentionMatrix[] { Causal(5), Causal(5) }, new AttentionMatrix[] { Causal(5), Causal(5) } };
        var c = AttentionCharts.LayerHeadGrid(Toks, w, "Grid");
        var fig = Figure(c);
        Assert.Equal(4, fig.GetProperty("data").GetArrayLength());
        Assert.True(Trace(fig, 0).GetProperty("visible").GetBoolean());
        Assert.False(Trace(fig, 3).GetProperty("visible").GetBoolean());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, Trace(fig, 3).GetProperty("z")[1][4].ValueKind);
        Assert.Equal(4, fig.GetProperty("layout").GetProperty("sliders")[0].GetProperty("steps").GetArrayLength());
        Assert.Equal(2, fig.GetProperty("layout").GetProperty("updatemenus")[0].GetProperty("buttons").GetArrayLength());
        Assert.Equal("Grid — layer 0, head 0", Str(fig, "layout", "title", "text"));
        Assert.Equal("attention weight (softmax probability)", Str(Trace(fig, 2), "colorbar", "title", "text"));
        Assert.Equal("key token (attended to)", Str(fig, "layout", "xaxis", "title", "text"));
        HostileSafe(c);
    }

    [Fact]
    public void AttentionRollout()
    {
        var c = AttentionCharts.Rollout(Toks, Causal(5));
        Basics(c, "heatmap", "Attention rollout", "key token (attended to)", "query token (attending)", "rollout weight (cumulative attention flow)");
        HostileSafe(c);
    }

    [Fact]
    public void AttentionTokenClassLiftHasClassAxes()
    {
        // 2 query classes × 3 key classes: rows are queries, columns keys, each axis labelled by its own classes.
        var lift = new double[,] { { 1.0, 2.5, double.NaN }, { 0.5, 1.0, 3.0 } };
        var chart = AttentionCharts.TokenClassLift(new[] { "digit", HostileImg }, new[] { "digit", "letter", "space" }, lift, "Layer 1, head 0: token classes");
        Basics(chart, "heatmap", "Layer 1, head 0: token classes", "key class", "query class", "attention mass ÷ uniform baseline");
        var fig = Figure(chart);
        Assert.Equal(new[] { "digit", "letter", "space" }, fig.GetProperty("layout").GetProperty("xaxis").GetProperty("ticktext").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(2, fig.GetProperty("layout").GetProperty("yaxis").GetProperty("ticktext").GetArrayLength());
        var z = Trace(fig).GetProperty("z");
        Assert.Equal(2.5, z[0][1].GetDouble());
        Assert.Equal(JsonValueKind.Null, z[0][2].ValueKind);
        HostileSafe(chart);
        Assert.Throws<ArgumentException>(() => AttentionCharts.TokenClassLift(new[] { "a" }, new[] { "a", "b" }, lift));
    }

    [Fact]
    public void AttributionBars()
    {
        var c = AttributionCharts.TokenScores(Toks, new[] { 0.5, -1.0, 0.25, 2.0, 0 }, method: "IG");
        Basics(c, "bar", "Token attribution", "token", "IG attribution score", "IG attribution score (red = +, blue = −)", colorbarOnMarker: true);
        Assert.Equal(0.0, Trace(Figure(c)).GetProperty("marker").GetProperty("cmid").GetDouble());
        HostileSafe(c);
    }

    [Fact]
    public void MethodComparisonUsesSpearman()
    {
        var scores = new IReadOnlyList<double>[] { new[] { 1.0, 2, 3, 4 }, new[] { 10.0, 20, 30, 40 }, new[] { 4.0, 3, 2, 1 } };
        var r = DeepSeekNotebooks.Analysis.Statistics.Correlation.SpearmanMatrix(scores);
        Assert.Equal(1.0, r[0, 1], 12);
        Assert.Equal(-1.0, r[0, 2], 12);
        var c = AttributionCharts.MethodComparison(new[] { "IG", "grad×input", HostileImg }, scores);
        Basics(c, "heatmap", "Attribution methods: rank correlation", "method", "method", "Spearman rank correlation ρ");
        HostileSafe(c);
    }

    [Fact]
    public void IgConvergenceIsLogY()
    {
        var c = AttributionCharts.IgConvergence(new[] { 8, 16, 32, 64 }, new[] { 0.1, -0.03, 0.01, 0.002 });
        Basics(c, "scatter", "Integrated gradients: convergence", "n_steps (integration steps)", "|completeness delta| (log scale)", null);
        var fig = Figure(c);
        Assert.Equal("log", Str(fig, "layout", "yaxis", "type"));
        Assert.Equal(0.03, Trace(fig).GetProperty("y")[1].GetDouble(), 12);
    }

    [Fact]
    public void ExpertUsageAffinityCoActivation()
    {
        var usage = new double[,] { { 0.5, 0.25, 0.25 }, { 0.1, 0.1, 0.8 } };
        Basics(ExpertCharts.UsageHeatmap(usage, new[] { 3, 4 }), "heatmap", "Expert usage", "expert index", "MoE layer", "fraction of routed tokens");
        var aff = ExpertCharts.DomainAffinity(new[] { "code", HostileImg }, usage);
        Basics(aff, "heatmap", "Domain × expert affinity", "expert index", "domain", "share of domain&#39;s routed tokens");
        HostileSafe(aff);
        Basics(ExpertCharts.CoActivation(new double[,] { { 1, 0.2 }, { 0.2, 1 } }), "heatmap", "Expert co-activation", "expert index", "expert index",
            "fraction of tokens routed to both");
    }

    [Fact]
    public void RoutingSankeyConservesFlow()
    {
        string[] toks = { "a", HostileImg };
        var routing = new[]
        {
            new LayerRouting(1, new[] { new RoutingDecision(new[] { 0, 1 }, new[] { 0.6f, 0.2f }), new RoutingDecision(new[] { 1, 2 }, new[] { 1f, 1f }) }),
            new LayerRouting(2, new[] { new RoutingDecision(new[] { 3, 0 }, new[] { 0.5f, 0.5f }), new RoutingDecision(new[] { 3, 1 }, new[] { 0.9f, 0.1f }) }),
        };
        var c = ExpertCharts.RoutingSankey(toks, routing);
        var fig = Figure(c);
        var t = Trace(fig);
        Assert.Equal("sankey", Str(t, "type"));
        Assert.Equal("Token routing across layers", Str(fig, "layout", "title", "text"));
        double total = t.GetProperty("link").GetProperty("value").EnumerateArray().Sum(v => v.GetDouble());
        Assert.Equal(4.0, total, 9); // 2 tokens × (token→L0 + L0→L1), each flow 1
        HostileSafe(c);
    }

    [Fact]
    public void LoadOverTraining()
    {
        var c = ExpertCharts.LoadOverTraining(new[] { 0, 100, 200 }, new IReadOnlyList<double>[] { new[] { 1.0, 0.5, 0.2 }, new[] { 2.0, 1, 0.3 } });
        Basics(c, "scatter", "Expert load balance over training", "training step", "MaxVio", null);
        Assert.Equal(2, Figure(c).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public void LossCurvesAndEma()
    {
        var ema = TrainingCharts.Ema(new[] { 2.0, 2.0, 2.0 }, 0.9);
        Assert.All(ema, v => Assert.Equal(2.0, v, 12)); // debiased: a constant stays constant
        var c = TrainingCharts.LossCurves(new[] { 1, 2, 3 }, new[] { 3.0, 2.5, 2.2 }, new[] { 3 }, new[] { 2.4 });
        Basics(c, "scatter", "Loss", "training step", "loss (cross-entropy, nats)", null);
        Assert.Equal(4, Figure(c).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public void GradientNormsLogY()
    {
        var c = TrainingCharts.GradientNorms(new[] { 1, 2 }, new Dictionary<string, IReadOnlyList<double>> { ["attention"] = new[] { 1.0, 0.5 }, [HostileImg] = new[] { 2.0, 0.1 } });
        Basics(c, "scatter", "Gradient norms by parameter group", "training step", "gradient L2 norm (log scale)", null);
        Assert.Equal("log", Str(Figure(c), "layout", "yaxis", "type"));
        HostileSafe(c);
    }

    [Fact]
    public void Pca2DAnd3D()
    {
        var pts = new[] { new[] { 0.0, 1, 2 }, new[] { 1.0, 0, 1 }, new[] { 2.0, 2, 0 } };
        var c2 = RepresentationCharts.Pca2D(pts, new[] { "code", "prose", "code" }, Toks[..3], explainedVariance: new[] { 0.5, 0.25 });
        Basics(c2, "scatter", "PCA of hidden states", "PC1 (50% of variance)", "PC2 (25% of variance)", null);
        Assert.Equal(2, Figure(c2).GetProperty("data").GetArrayLength());
        Assert.Equal("colour = category", Str(Figure(c2), "layout", "legend", "title", "text"));
        HostileSafe(c2);
        var c3 = RepresentationCharts.Pca3D(pts, new[] { HostileImg, "b", "c" });
        var fig = Figure(c3);
        Assert.Equal("scatter3d", Str(Trace(fig), "type"));
        Assert.Equal("PC3", Str(fig, "layout", "scene", "zaxis", "title", "text"));
        HostileSafe(c3);
    }

    [Fact]
    public void LogitLens()
    {
        var top = new IReadOnlyList<string>[] { new[] { "a", HostileScript }, new[] { HostileImg, "b" } };
        var p = new IReadOnlyList<double>[] { new[] { 0.1, 0.2 }, new[] { 0.9, 0.5 } };
        var c = RepresentationCharts.LogitLens(new[] { "x", "y" }, top, p);
        Basics(c, "heatmap", "Logit lens", "input position (token)", "layer", "probability of top-1 token");
        Assert.Equal("%{text}", Str(Trace(Figure(c)), "texttemplate"));
        HostileSafe(c);
    }

    [Fact]
    public void HeadAnomalyRanking()
    {
        var c = RepresentationCharts.HeadAnomalyRanking(new[] { (0, 1), (2, 3), (1, 0) }, new[] { 0.2, 3.0, 1.0 }, top: 2);
        Basics(c, "bar", "Attention heads ranked by anomaly", "anomaly score", "head (layer, head)", "anomaly score", colorbarOnMarker: true);
        var fig = Figure(c);
        Assert.Equal("L2 H3", fig.GetProperty("layout").GetProperty("yaxis").GetProperty("ticktext")[0].GetString());
        Assert.Equal(2, Trace(fig).GetProperty("x").GetArrayLength());
    }

    [Fact]
    public void MismatchedLengthsThrow()
    {
        Assert.Throws<ArgumentException>(() => AttentionCharts.Heatmap(Toks, Toks, new float[2, 2]));
        Assert.Throws<ArgumentException>(() => AttributionCharts.TokenScores(Toks, new[] { 1.0 }));
    }
}
