#:project ../src/DeepSeekNotebooks.Visualization/DeepSeekNotebooks.Visualization.csproj
// Expert usage, balance and domain specialisation over the bundled corpus's test split, as one offline HTML page.
//   dotnet run scripts/expert-usage.cs -- [documents-per-domain] [out.html]
using System.Text.Json;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;

int perDomain = args.Length > 0 ? int.Parse(args[0]) : 24;
var output = args.Length > 1 ? args[1] : "artifacts/expert-usage.html";
var root = Path.GetFullPath(Path.Combine(BundledModel.DefaultCheckpoint(), "..", "..", ".."));
using var ckpt = Checkpoint.Load(BundledModel.DefaultCheckpoint());
var tok = ckpt.Tokenizer ?? throw new InvalidOperationException("this script tokenizes the corpus: the checkpoint needs a tokenizer.json");
var dataset = File.ReadLines(Path.Combine(root, "data", "corpus", "corpus.jsonl"))
    .Select(l => JsonDocument.Parse(l).RootElement)
    .Where(d => d.GetProperty("split").GetString() == "test")
    .GroupBy(d => d.GetProperty("domain").GetString()!)
    .SelectMany(g => g.Take(perDomain))
    .Select(d => (Ids: tok.Encode(d.GetProperty("text").GetString()!).Take(64).ToArray(), Domain: (string?)d.GetProperty("domain").GetString()))
    .Where(d => d.Ids.Length > 1).ToList();
var routing = new ExpertRoutingAccumulator(ckpt.Config);
DatasetRunner.Run(ckpt.Model, dataset, new IDatasetAccumulator[] { routing },
    new Progress<DatasetProgress>(p => { if (p.SequencesDone % 20 == 0) Console.Error.Write($"\r{p.SequencesDone}/{dataset.Count} sequences"); }));
Console.Error.WriteLine();
var layers = Enumerable.Range(0, ckpt.Config.NumHiddenLayers).Where(ckpt.Config.IsMoeLayer).ToArray();
var usage = new double[layers.Length, ckpt.Config.NRoutedExperts];
var page = new HtmlReport("Expert usage on the test split");
for (int i = 0; i < layers.Length; i++)
{
    var loads = routing.ExpertLoads(layers[i]);
    double total = loads.Sum(l => (double)l.Count);
    for (int e = 0; e < loads.Count; e++) usage[i, e] = loads[e].Count / total;
    var s = routing.Summary(layers[i]);
    Console.WriteLine($"layer {layers[i]}: MaxVio {s.Balance.MaxVio:F2}, CV {s.Balance.CoefficientOfVariation:F2}, NMI(domain; top-1 expert) {routing.DomainTop1Nmi(layers[i]):F3}");
}
page.AddChart(ExpertCharts.UsageHeatmap(usage, layers, "Share of routed choices per expert"));
page.AddView(new TrustedTable(routing.ToDataFrame()));
Console.WriteLine($"wrote {page.Save(output)}");

sealed class TrustedTable(Microsoft.Data.Analysis.DataFrame frame) : IHtmlView
{
    public string ToHtml() => DataFrameHtml.ToHtml(frame);
}
