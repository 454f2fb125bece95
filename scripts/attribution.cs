#:project ../src/DeepSeekNotebooks.Visualization/DeepSeekNotebooks.Visualization.csproj
#:project ../src/DeepSeekNotebooks.Training/DeepSeekNotebooks.Training.csproj
// Token attribution of the model's next-token prediction, five methods, as one offline HTML page.
//   dotnet run scripts/attribution.cs -- "Q: 12+7=? A:" [out.html]
// The checkpoint is $DEEPSEEK_CHECKPOINT or the bundled model.
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Training;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using static TorchSharp.torch;

var text = args.Length > 0 ? args[0] : "Q: 12+7=? A:";
var output = args.Length > 1 ? args[1] : "artifacts/attribution.html";
using var ckpt = Checkpoint.Load(BundledModel.DefaultCheckpoint());
var tok = ckpt.Tokenizer ?? throw new InvalidOperationException("this script tokenizes text: the checkpoint needs a tokenizer.json");
var ids = tok.Encode(text);
var tokens = tok.TokenStrings(ids);
using var input = tensor(ids).unsqueeze(0);
var page = new HtmlReport($"Attribution of the next token after \"{text}\"");
foreach (var method in new[] { AttributionMethod.IntegratedGradients, AttributionMethod.Saliency, AttributionMethod.InputXGradient, AttributionMethod.SmoothGrad, AttributionMethod.Occlusion })
{
    var result = Attributor.Run(method, ckpt.Model, input) with { TokenStrings = tokens };
    page.AddView(ResultCharts.TokenView(result));
    page.AddChart(ResultCharts.TokenScores(result));
    Console.WriteLine($"{method.Name(),-20} top token: {tokens[Array.IndexOf(result.TokenSums, result.TokenSums.MaxBy(Math.Abs))]}" +
                      (result.ConvergenceDelta is { } d ? $"  (IG delta {d:E2})" : ""));
}
Console.WriteLine($"wrote {page.Save(output)}");
