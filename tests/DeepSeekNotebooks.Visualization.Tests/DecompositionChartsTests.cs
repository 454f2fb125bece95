using DeepSeekNotebooks.Analysis.Representations;
using DeepSeekNotebooks.Visualization.Charts;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>Direct logit attribution, head patching and induction charts from hand-made results.</summary>
public class DecompositionChartsTests
{
    private static DirectLogitAttributionResult Dla() => new(3, 10, 11, Logit: 1.5, FrozenScale: 0.7, new LogitComponent[]
    {
        new(LogitComponentKind.Embedding, -1, -1, 0.25),
        new(LogitComponentKind.Attention, 0, -1, 0.5), new(LogitComponentKind.Head, 0, 0, 0.75), new(LogitComponentKind.Head, 0, 1, -0.25),
        new(LogitComponentKind.Mlp, 0, -1, 0.25),
        new(LogitComponentKind.Attention, 1, -1, -0.5), new(LogitComponentKind.Head, 1, 0, -0.5), new(LogitComponentKind.Head, 1, 1, 0),
        new(LogitComponentKind.Mlp, 1, -1, 1.0), new(LogitComponentKind.RoutedExpert, 1, 2, 0.75), new(LogitComponentKind.SharedExperts, 1, -1, 0.25),
    }, 0, 0);

    [Fact]
    public void ByLayer_OneBarPerResidualPart_InOrder_WithTheModelsValueAsALine()
    {
        var r = Dla();
        Assert.Equal(1.5, r.SumOfParts, 12);
        var c = DecompositionCharts.LogitAttributionByLayer(r, "logit(10) − logit(11)");
        Basics(c, "bar", "Direct logit attribution of logit(10) − logit(11) at position 3", "component (embedding; attention and FFN per block)",
            "direct contribution to logit(10) − logit(11)", null);
        var fig = Figure(c);
        var ticks = fig.GetProperty("layout").GetProperty("xaxis").GetProperty("ticktext").EnumerateArray().Select(e => e.GetString()).ToArray();
        Assert.Equal(new[] { "embed", "L0 attn", "L0 mlp", "L1 attn", "L1 mlp" }, ticks);
        Assert.Equal(new[] { 0.25, 0.5, 0.25, -0.5, 1.0 }, Trace(fig).GetProperty("y").EnumerateArray().Select(e => e.GetDouble()));
        Assert.Equal(1.5, Trace(fig, 1).GetProperty("y")[0].GetDouble());
    }

    [Fact]
    public void ByHeadAndByExpert_PlaceEachValueInItsCell()
    {
        var heads = Figure(DecompositionCharts.LogitAttributionByHead(Dla()));
        var z = Trace(heads).GetProperty("z");
        Assert.Equal(-0.25, z[0][1].GetDouble());
        Assert.Equal(-0.5, z[1][0].GetDouble());
        Assert.Equal("heatmap", Str(Trace(heads), "type"));
        Assert.Equal("head", Str(heads, "layout", "xaxis", "title", "text"));
        var experts = Figure(DecompositionCharts.LogitAttributionByExpert(Dla(), routedExperts: 4));
        var ez = Trace(experts).GetProperty("z");
        Assert.Equal(1, ez.GetArrayLength());                 // one MoE block
        Assert.Equal(5, ez[0].GetArrayLength());              // 4 routed + shared
        Assert.Equal(0.75, ez[0][2].GetDouble());
        Assert.Equal(0.25, ez[0][4].GetDouble());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, ez[0][0].ValueKind);   // not selected: blank
        Assert.Throws<ArgumentException>(() => DecompositionCharts.LogitAttributionByExpert(Dla(), routedExperts: 2));
    }

    [Fact]
    public void HeadPatchingAndInduction_Heatmaps()
    {
        var patching = new HeadPatchingResult(1, 2, DestinationMetric: 0, SourceMetric: 2, new double[,] { { 1, 2 }, { 0, -1 } }, null);
        var p = DecompositionCharts.HeadPatching(patching);
        Basics(p, "heatmap", "Per-head activation patching (attn.z, clean → corrupted)", "head", "layer", "restored fraction of the logit difference");
        var pz = Trace(Figure(p)).GetProperty("z");
        Assert.Equal(0.5, pz[0][0].GetDouble());
        Assert.Equal(-0.5, pz[1][1].GetDouble());
        var induction = new InductionResult(new double[,] { { 0.1, 0.9 } }, 6.2, 1.1, Math.Log(512), new[] { new long[] { 1, 2, 1, 2 } }, 0, 2);
        Basics(DecompositionCharts.InductionScores(induction), "heatmap", "Induction score per head (repeated random tokens, 2 per repeat)", "head", "layer", "induction score (mean attention)");
        var loss = Figure(DecompositionCharts.InductionLoss(induction));
        Assert.Equal(new[] { 6.2, 1.1, Math.Log(512) }, Trace(loss).GetProperty("y").EnumerateArray().Select(e => e.GetDouble()));
        Assert.Equal("mean cross-entropy (nats)", Str(loss, "layout", "yaxis", "title", "text"));
        var ablated = induction with { SecondRepeatLoss = 5.5 };
        var withAblation = Figure(DecompositionCharts.InductionLoss(induction, ablated, "head L0 H1 ablated"));
        Assert.Equal(new[] { 6.2, 1.1, 5.5, Math.Log(512) }, Trace(withAblation).GetProperty("y").EnumerateArray().Select(e => e.GetDouble()));
        Assert.Equal("head L0 H1 ablated", withAblation.GetProperty("layout").GetProperty("xaxis").GetProperty("ticktext")[2].GetString());
    }
}
