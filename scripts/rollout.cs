#:project ../src/DeepSeekNotebooks.Visualization/DeepSeekNotebooks.Visualization.csproj
#:project ../src/DeepSeekNotebooks.Training/DeepSeekNotebooks.Training.csproj
// Attention rollout (Abnar & Zuidema 2020) and attention flow of one input, as one offline HTML page.
//   dotnet run scripts/rollout.cs -- "def add(a, b):" [out.html]
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Training;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using static TorchSharp.torch;

var text = args.Length > 0 ? args[0] : "def add(a, b):";
var output = args.Length > 1 ? args[1] : "artifacts/rollout.html";
using var ckpt = Checkpoint.Load(BundledModel.DefaultCheckpoint());
var tok = ckpt.Tokenizer ?? throw new InvalidOperationException("this script tokenizes text: the checkpoint needs a tokenizer.json");
var ids = tok.Encode(text);
var tokens = tok.TokenStrings(ids);
using var input = tensor(ids).unsqueeze(0);
var page = new HtmlReport($"Rollout and flow of \"{text}\"");
var rollout = AttentionRollout.Compute(ckpt.Model, input);
page.AddChart(AttentionCharts.Rollout(tokens, rollout.Matrix, "Attention rollout (mean over heads)"));
if (ids.Length * ckpt.Config.NumHiddenLayers <= AttentionFlow.DefaultMaxLayerTokens)
    page.AddChart(AttentionCharts.Rollout(tokens, AttentionFlow.Compute(ckpt.Model, input).Matrix, "Attention flow (mean over heads)"));
else
    page.AddParagraph($"Attention flow skipped: {ids.Length} tokens × {ckpt.Config.NumHiddenLayers} layers exceeds its size limit.");
var last = rollout.Row(ids.Length - 1);
Console.WriteLine($"the last position draws most on: {string.Join(", ", last.Select((w, i) => (w, i)).OrderByDescending(x => x.w).Take(3).Select(x => $"'{tokens[x.i]}' ({x.w:F2})"))}");
Console.WriteLine($"wrote {page.Save(output)}");
