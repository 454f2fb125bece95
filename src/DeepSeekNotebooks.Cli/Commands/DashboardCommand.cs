using System.CommandLine;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Analysis.Tracing;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary><c>dashboard</c>: one self-contained HTML file for one input — attention, rollout, attribution (IG, saliency, input×gradient) and routing.</summary>
public static class DashboardCommand
{
    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var inputIds = new Option<string?>("--input-ids") { Description = "Comma-separated token ids of one sequence." };
        var text = new Option<string?>("--text") { Description = "Text to tokenize with the checkpoint's tokenizer.json (instead of --input-ids)." };
        var output = CliSupport.OutOption("self-contained HTML dashboard");
        var quantisation = CliSupport.QuantisationOption();
        var loading = new CliSupport.ModelLoading();
        var command = new Command("dashboard", "Write a one-file offline HTML dashboard (attention, rollout, attribution, routing) for one input.")
        {
            checkpoint, inputIds, text, output, quantisation,
        };
        loading.AddTo(command);
        command.SetAction(parse => CliSupport.Run(() =>
        {
            var load = loading.Apply(parse, new CheckpointLoadOptions { Quantisation = CliSupport.ParseQuantisation(parse.GetValue(quantisation)) });
            using var ckpt = CliSupport.Load(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)), load);
            long[] ids = (parse.GetValue(inputIds), parse.GetValue(text)) switch
            {
                ({ } s, null) => CliSupport.ParseIds(s),
                (null, { } t) => ckpt.Tokenizer?.Encode(t) ?? throw new UsageException("--text needs a checkpoint with tokenizer.json; give --input-ids instead"),
                _ => throw new UsageException("give exactly one of --input-ids or --text"),
            };
            var tokens = ckpt.Tokenizer?.TokenStrings(ids) ?? ids.Select(i => $"#{i}").ToArray();
            using var idTensor = tensor(ids, new long[] { 1, ids.Length });
            using var trace = ckpt.Model.RunWithCache(idTensor);
            var snapshot = TraceSnapshot.FromTrace(ckpt.Model, trace, ids, tokens);   // token-to-token attention on every generation (V4: TokenAttention)
            var rollout = AttentionRollout.Compute(ckpt.Model, idTensor);
            var attributions = new[] { AttributionMethod.IntegratedGradients, AttributionMethod.Saliency, AttributionMethod.InputXGradient }.Select(m => Attributor.Run(m, ckpt.Model, idTensor)).ToList();
            var outPath = parse.GetValue(output)!.FullName;
            Dashboard.Save(ResultCharts.Dashboard($"{Path.GetFileName(ckpt.Directory)}: {string.Concat(tokens.Take(12))}", snapshot, rollout, attributions), outPath);
            Console.WriteLine($"dashboard of {ids.Length} tokens written to {outPath} (opens from disk, no network)");
            return 0;
        }));
        return command;
    }
}
