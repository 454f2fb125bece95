using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>The golden tiny model (random weights, 4 blocks), loaded once for the result-chart tests.</summary>
public sealed class GoldenModelFixture : IDisposable
{
    public GoldenModelFixture()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DeepSeekNotebooks.sln"))) dir = dir.Parent;
        if (dir is null) throw new InvalidOperationException($"No DeepSeekNotebooks.sln above {AppContext.BaseDirectory}.");
        Checkpoint = Checkpoint.Load(Path.Combine(dir.FullName, "data", "checkpoints", "golden-tiny-hf"));
    }

    public Checkpoint Checkpoint { get; }
    public static readonly long[] Ids = { 3, 17, 42, 5, 99 };
    public Tensor IdTensor() => tensor(Ids, new long[] { 1, Ids.Length });
    public void Dispose() => Checkpoint.Dispose();
}

public class ResultChartsTests(GoldenModelFixture golden) : IClassFixture<GoldenModelFixture>
{
    private const string Hostile = "<img src=x onerror=alert(1)>";

    private AttributionResult Attribution(AttributionMethod method)
    {
        using var ids = golden.IdTensor();
        return Attributor.Run(method, golden.Checkpoint.Model, ids, AttributionTarget.Logit(2, 9),
                new AttributionOptions { NSteps = 4, NSamples = 2 })
            with { TokenStrings = new[] { "a", Hostile, "c", "d", "e" } };
    }

    [Theory]
    [InlineData(AttributionMethod.IntegratedGradients, "integrated_gradients")]
    [InlineData(AttributionMethod.Saliency, "saliency")]
    [InlineData(AttributionMethod.Occlusion, "occlusion")]
    public void AttributionResult_ChartsAndView_CarryMethodTargetAndEscapedTokens(AttributionMethod method, string savedName)
    {
        var r = Attribution(method);
        var chart = ResultCharts.TokenScores(r);
        var fig = ChartAssert.Figure(chart);
        Assert.Contains($"{savedName}: attribution to Logit of token 9 at position 2", ChartAssert.Str(fig, "layout", "title", "text"));
        ChartAssert.HostileSafe(chart);
        var view = ResultCharts.TokenView(r).ToHtml();
        ChartAssert.NoRawHostile(view);
        Assert.Contains("&lt;img", view);
    }

    [Theory]
    [InlineData(RolloutMethod.AttentionRollout, "Attention rollout")]
    [InlineData(RolloutMethod.AttentionFlow, "Attention flow")]
    public void RolloutResult_IsAHeatmapTitledByItsProducer(RolloutMethod method, string title)
    {
        using var ids = golden.IdTensor();
        var model = golden.Checkpoint.Model;
        var r = method == RolloutMethod.AttentionRollout ? AttentionRollout.Compute(model, ids) : AttentionFlow.Compute(model, ids);
        Assert.Equal(method, r.Method);
        var fig = ChartAssert.Figure(ResultCharts.Rollout(r));
        Assert.Equal("heatmap", ChartAssert.Str(ChartAssert.Trace(fig), "type"));
        Assert.Equal(title, ChartAssert.Str(fig, "layout", "title", "text"));
    }
}
