#:project ../src/DeepSeekNotebooks.Visualization/DeepSeekNotebooks.Visualization.csproj
#:project ../src/DeepSeekNotebooks.Training/DeepSeekNotebooks.Training.csproj
// Expert usage, balance and domain specialisation over the bundled corpus's test split, as one offline HTML page.
//   dotnet run scripts/expert-usage.cs -- [documents-per-domain] [out.html]
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Training;
using DeepSeekNotebooks.Training.Corpus;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;

int perDomain = args.Length > 0 ? int.Parse(args[0]) : 24;
var output = args.Length > 1 ? args[1] : "artifacts/expert-usage.html";
using var ckpt = Checkpoint.Load(BundledModel.DefaultCheckpoint());
// The notebooks' corpus sample: the checkpoint's tokenizer, else the corpus's own when its vocabulary fits the model.
using var sample = CorpusSample.Load(ckpt.Config, ckpt.Tokenizer, new CorpusSampleOptions { DocumentsPerDomain = perDomain, MaxTokens = 64 });
if (!sample.IsAvailable) { Console.Error.WriteLine(sample); return 1; }
var dataset = sample.Documents.Select(d => (d.Ids, (string?)d.Domain)).ToList();
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
return 0;

sealed class TrustedTable(Microsoft.Data.Analysis.DataFrame frame) : IHtmlView
{
    public string ToHtml() => DataFrameHtml.ToHtml(frame);
}
