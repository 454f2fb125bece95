using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>The token attribution view names the explained target as text and shows the model's prediction with its probability.</summary>
public class TokenViewTargetTests(GoldenModelFixture golden) : IClassFixture<GoldenModelFixture>
{
    /// <summary>softmax(logits[0, position]) of a plain traced forward, in float64: the independent expectation.</summary>
    private double[] Probabilities(int position)
    {
        using var ids = golden.IdTensor();
        using var trace = golden.Checkpoint.Model.RunWithCache(ids);
        using var p = trace.Logits[0, position].to(float64).softmax(-1);
        return p.data<double>().ToArray();
    }

    [Theory]
    [InlineData(AttributionMethod.Saliency)]
    [InlineData(AttributionMethod.Occlusion)]
    public void PredictionIsTheArgmaxWithItsSoftmaxProbability(AttributionMethod method)
    {
        using var ids = golden.IdTensor();
        var r = Attributor.Run(method, golden.Checkpoint.Model, ids, AttributionTarget.Logit(2, 9));
        var probs = Probabilities(2);
        int argmax = Array.IndexOf(probs, probs.Max());
        Assert.NotNull(r.Prediction);
        Assert.Equal(2, r.Prediction!.Position);
        Assert.Equal(argmax, r.Prediction.TokenId);
        Assert.Equal(probs[argmax], r.Prediction.Probability, 5);
        Assert.Equal(probs[9], r.Prediction.TargetProbability!.Value, 5);
        // survives the JSON round trip
        Assert.Equal(r.Prediction, AttributionResult.FromJson(r.ToJson()).Prediction);
    }

    [Fact]
    public void ViewShowsTargetTextAndPredictionEscaped()
    {
        using var ids = golden.IdTensor();
        var r = Attributor.Run(AttributionMethod.Saliency, golden.Checkpoint.Model, ids, AttributionTarget.Probability(-1, 9));
        var probs = Probabilities(GoldenModelFixture.Ids.Length - 1);
        int argmax = Array.IndexOf(probs, probs.Max());
        string Text(long id) => id == 9 ? HostileImg : id == argmax ? "\npred" : $"t{id}";
        var named = r.WithTokenText(Text);
        Assert.Equal(GoldenModelFixture.Ids.Select(Text), named.TokenStrings!);
        Assert.Equal(HostileImg, named.TargetText);
        Assert.Equal(Text(argmax), named.Prediction!.Text);

        var view = ResultCharts.TokenView(named);
        Assert.Equal($"probability of “{HostileImg}” (token 9) at position 4", view.Target);
        Assert.Equal(Text(argmax), view.PredictedToken);
        Assert.Equal(probs[argmax], view.PredictedProbability!.Value, 5);
        Assert.Equal(probs[9], view.TargetProbability!.Value, 5);
        string P(double x) => x.ToString("G4", System.Globalization.CultureInfo.InvariantCulture);
        string html = view.ToHtml();
        NoRawHostile(html);
        Assert.Contains($"Explained: probability of “&lt;img src=x onerror=alert(1)&gt;” (token 9) at position 4 (probability {P(probs[9])})", html);
        Assert.Contains($"↵pred</span> with probability {P(probs[argmax])}", html);
        Assert.Contains($"model predicts \\npred with probability {P(probs[argmax])}", view.ToString());
        Assert.Contains("Probability of token 9 “" + HostileImg + "” at position 4", view.Title);

        // Without text: the ids, as before.
        var plain = ResultCharts.TokenView(r);
        Assert.Equal("probability of token 9 at position 4", plain.Target);
        Assert.Equal($"token {argmax}", plain.PredictedToken);
    }
}
