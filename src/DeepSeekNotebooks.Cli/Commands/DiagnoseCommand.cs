using System.CommandLine;
using System.Globalization;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Indexer;
using DeepSeekNotebooks.Analysis.Streams;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.IO;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>diagnose</c>: the DeepSeek-V3.2 / V4 diagnostics (docs/generations-diagnostics.md) of a checkpoint on one or more
/// prompts — indexer (recall against the dense attention, DSA's KL, selection, layer overlap), mHC streams (comb distances,
/// reads/writes, effective depth) and compression (attention mass on window / compressed entries / sink by distance) — each
/// printed as a summary and written as JSON to <c>--out DIR</c>. A diagnostic the model has nothing for is skipped with one line.
/// </summary>
public static class DiagnoseCommand
{
    private static readonly string[] Kinds = { "indexer", "streams", "compression" };

    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var inputIds = new Option<string[]>("--input-ids")
        {
            Description = "Comma-separated token ids of one prompt; repeat the option for more prompts (lengths may differ).",
            AllowMultipleArgumentsPerToken = false,
        };
        var text = new Option<string[]>("--text")
        {
            Description = "A prompt as text, tokenized with the checkpoint's tokenizer.json; repeatable, and combinable with --input-ids.",
            AllowMultipleArgumentsPerToken = false,
        };
        var what = new Option<string[]>("--what")
        {
            Description = "Which diagnostics: indexer, streams, compression (repeatable; default all that apply to the model).",
            AllowMultipleArgumentsPerToken = false,
        };
        what.AcceptOnlyFromAmong(Kinds);
        var output = new Option<DirectoryInfo>("--out") { Description = "Directory for indexer.json, streams.json, compression.json.", Required = true };
        var allowPickle = CliSupport.AllowPickleOption();
        var quantisation = CliSupport.QuantisationOption();
        var command = new Command("diagnose", "DeepSeek-V3.2/V4 diagnostics: indexer recall and KL vs the dense attention, mHC stream mixing and effective depth, attention mass on compressed entries.")
        {
            checkpoint, inputIds, text, what, output, allowPickle, quantisation,
        };
        command.SetAction(parse => CliSupport.Run(() =>
        {
            var idPrompts = (parse.GetValue(inputIds) ?? Array.Empty<string>()).Select(s => CliSupport.ParseIds(s)).ToList();
            var texts = parse.GetValue(text) ?? Array.Empty<string>();
            if (idPrompts.Count == 0 && texts.Length == 0)
                throw new UsageException("give at least one prompt: --input-ids 303,211,294 or --text \"…\" (each repeatable)");
            var chosen = parse.GetValue(what) is { Length: > 0 } w ? w.Distinct().ToArray() : Kinds;
            var outDir = parse.GetValue(output)!.FullName;
            using var ckpt = Checkpoint.Load(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)),
                new CheckpointLoadOptions { AllowPickle = parse.GetValue(allowPickle), Quantisation = CliSupport.ParseQuantisation(parse.GetValue(quantisation)) });
            var c = ckpt.Config;
            foreach (var t in texts)
            {
                var encoded = ckpt.Tokenizer?.Encode(t) ?? throw new UsageException($"--text needs a checkpoint with tokenizer.json ({CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint))} has none); give --input-ids instead");
                if (encoded.Length == 0) throw new UsageException($"--text \"{t}\" tokenized to no tokens; give a non-empty prompt");
                idPrompts.Add(encoded);
            }
            var prompts = idPrompts.ToArray();
            Directory.CreateDirectory(outDir);
            int ran = 0;
            foreach (var kind in chosen)
            {
                string? skip = kind switch
                {
                    "indexer" => IndexerDiagnostics.Unavailable(c),
                    "streams" => HyperConnectionDiagnostics.Unavailable(c),
                    _ => CompressionDiagnostics.Unavailable(c),
                };
                if (skip is not null) { Console.WriteLine($"{kind}: skipped, {skip}"); continue; }
                string json = kind switch
                {
                    "indexer" => Indexer(ckpt, prompts),
                    "streams" => Streams(ckpt, prompts),
                    _ => Compression(ckpt, prompts),
                };
                var path = Path.Combine(outDir, kind + ".json");
                AtomicFile.WriteAllText(path, json);
                Console.WriteLine($"  wrote {path}");
                ran++;
            }
            if (ran == 0) Console.WriteLine("nothing to diagnose: the model is V2/V3-style (MLA, one residual stream)");
            return 0;
        }));
        return command;
    }

    private static string N(double v) => double.IsFinite(v) ? v.ToString("0.0000", CultureInfo.InvariantCulture) : "n/a";

    private static string Indexer(Checkpoint ckpt, long[][] prompts)
    {
        var r = IndexerDiagnostics.Measure(ckpt, prompts);
        Console.WriteLine($"indexer ({r.Axis}, top-{r.Topk}): {r.Note}");
        Console.WriteLine("  layer  queries  all_kept  recall  recall_where_sparse  dense_kl  selected_kl");
        foreach (var l in r.Layers)
            Console.WriteLine($"  {l.Layer,5}  {l.Queries,7}  {l.AllSelectedQueries,8}  {N(l.MeanRecall)}  {N(l.MeanRecallWhereSparse),19}  {N(l.MeanDenseKl),8}  {N(l.MeanSelectedKl),11}");
        foreach (var o in r.Overlaps)
            Console.WriteLine($"  overlap blocks {o.LayerA}–{o.LayerB}: mean Jaccard {N(o.MeanJaccard)} over {o.Queries} queries");
        return r.ToJson(indented: true);
    }

    private static string Streams(Checkpoint ckpt, long[][] prompts)
    {
        var r = HyperConnectionDiagnostics.Measure(ckpt, prompts);
        Console.WriteLine($"streams ({r.Streams} mHC streams, {r.Tokens} tokens): effective depth {N(r.EffectiveDepth)} of {r.NominalDepth} sub-layers; embedding share {N(r.EmbeddingReadoutShare)}, gain {N(r.EmbeddingGain)}; decomposition error {r.ReconstructionError:0.0e0}");
        Console.WriteLine("  layer site       comb_frac  transport_frac  reads  writes  gain    readout_share");
        foreach (var s in r.Sites)
            Console.WriteLine($"  {s.Layer,5} {s.Site,-10} {N(s.CombFraction),9}  {N(s.TransportFraction),14}  {s.ReadsMost,5}  {s.WritesMost,6}  {N(s.MeanGain)}  {N(s.MeanReadoutShare)}");
        return r.ToJson(indented: true);
    }

    private static string Compression(Checkpoint ckpt, long[][] prompts)
    {
        var r = CompressionDiagnostics.Measure(ckpt, prompts);
        Console.WriteLine($"compression (window {r.SlidingWindow}, {r.Queries} queries): mean mass per query and head");
        Console.WriteLine("  layer kind               window  compressed  sink");
        foreach (var l in r.Layers)
            Console.WriteLine($"  {l.Layer,5} {l.Kind,-18} {N(l.Window)}  {N(l.Compressed),10}  {N(l.Sink)}");
        return r.ToJson(indented: true);
    }
}
