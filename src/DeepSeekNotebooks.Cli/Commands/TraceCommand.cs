using System.CommandLine;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>trace</c>: runs the traced forward on one or more token sequences and writes logits, every block's hidden state,
/// attention probabilities and the MoE routing to a safetensors file (names as in the golden reference files);
/// <c>trace --list-hooks</c> prints the hook points the checkpoint's model offers (<see cref="HookPoints.All"/>), one per line.
/// </summary>
public static class TraceCommand
{
    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var inputIds = new Option<string[]>("--input-ids")
        {
            Description = "Comma-separated token ids of one sequence; repeat the option for a batch (all sequences the same length).",
            AllowMultipleArgumentsPerToken = false,
        };
        var output = CliSupport.OutOption("safetensors");
        output.Required = false; // required unless --list-hooks; checked in Run so the message can say so
        var listHooks = new Option<bool>("--list-hooks")
        {
            Description = "Print the hook point names this checkpoint's model offers (TransformerLens-style, in forward order), one per line, and exit; no --input-ids or --out needed.",
        };
        var allowPickle = CliSupport.AllowPickleOption();
        var quantisation = CliSupport.QuantisationOption();
        var loading = new CliSupport.ModelLoading();
        var command = new Command("trace", "Run the traced forward and write logits, hidden states, attention probabilities and routing to safetensors.")
        {
            checkpoint, inputIds, output, listHooks, allowPickle, quantisation,
        };
        loading.AddTo(command);
        command.SetAction(parse => CliSupport.Run(() =>
        {
            var dir = CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint));
            var sequences = parse.GetValue(inputIds) ?? [];
            var outFile = parse.GetValue(output);
            if (parse.GetValue(listHooks))
            {
                if (sequences.Length > 0 || outFile is not null)
                    throw new UsageException("--list-hooks prints the hook point names and runs no forward: leave out --input-ids and --out");
                return ListHooks(dir);
            }
            if (sequences.Length == 0)
                throw new UsageException("--input-ids is required: give comma-separated token ids, e.g. --input-ids 303,211,294 (or --list-hooks to list the hook points)");
            if (outFile is null)
                throw new UsageException("--out is required: the safetensors file to write, e.g. --out trace.safetensors");
            var q = CliSupport.ParseQuantisation(parse.GetValue(quantisation));
            var load = loading.Apply(parse, new CheckpointLoadOptions());
            return Run(dir, sequences, outFile.FullName, parse.GetValue(allowPickle), q, load);
        }));
        return command;
    }

    /// <summary>Prints <see cref="HookPoints.All"/> for the checkpoint's configuration, one name per line.</summary>
    internal static int ListHooks(string checkpointDir)
    {
        // The config as the loader reads it (either layout; the official layout's gate bias is read from the safetensors
        // headers), without reading any weights: a 671B checkpoint lists its hook points instantly.
        foreach (var name in HookPoints.All(ArchitectureCost.FromCheckpoint(checkpointDir).Config)) Console.WriteLine(name);
        return 0;
    }

    internal static int Run(string checkpointDir, string[] sequences, string outPath, bool allowPickle = false,
        Model.Modules.QuantisationSimulation quantisation = Model.Modules.QuantisationSimulation.Official, CheckpointLoadOptions? load = null)
    {
        var batch = sequences.Select(s => CliSupport.ParseIds(s)).ToArray();
        if (batch.Select(b => b.Length).Distinct().Count() > 1)
            throw new UsageException($"all --input-ids sequences must have the same length for one batch; got lengths {string.Join(", ", batch.Select(b => b.Length))}");

        using var ckpt = CliSupport.Load(checkpointDir, (load ?? new CheckpointLoadOptions()) with { AllowPickle = allowPickle, Quantisation = quantisation });
        using var scope = NewDisposeScope();
        var ids = tensor(batch.SelectMany(b => b).ToArray(), new long[] { batch.Length, batch[0].Length });
        var writer = new SafetensorsWriter()
            .SetMetadata("checkpoint", checkpointDir)
            .SetMetadata("layout", ckpt.Layout.ToString())
            .SetMetadata("quantisation", quantisation == Model.Modules.QuantisationSimulation.Official ? "official" : "off");
        if (ckpt.Config.CompressedAttention is not null && ckpt.Config.HyperConnections is not null)
            return WriteV4(ckpt, ids, writer, outPath, batch.Length, batch[0].Length);
        var v32Names = ckpt.Config.Indexer is null ? Array.Empty<(string HookPoint, string Reference)>() : ReferenceTensorNames.ForV32(ckpt.Config);
        using var trace = ckpt.Model.RunWithCache(ids, new TraceOptions { Extra = v32Names.Select(n => n.HookPoint).ToArray() });
        AddFloat(writer, "logits", trace.Logits);
        if (ckpt.Config.Indexer is { } indexer)
        {
            // DeepSeek-V3.2: the indexer's scores and selections under the official dumps' names (index_scores.{i}, index_topk.{i}).
            writer.AddInt64("input_ids", ids.shape, ids.data<long>().ToArray());
            foreach (var (hook, reference) in v32Names)
            {
                if (hook.EndsWith(".topk", StringComparison.Ordinal))
                    writer.AddInt64(reference, new[] { ids.shape[0], ids.shape[1], (long)indexer.Topk }, ReferenceTensorNames.IndexTopkPositions(trace[hook], indexer.Topk));
                else AddFloat(writer, reference, trace[hook]);
            }
        }
        for (int i = 0; i < ckpt.Config.NumHiddenLayers; i++)
        {
            AddFloat(writer, $"hidden.{i}", trace.Hidden(i));
            AddFloat(writer, $"attn_probs.{i}", trace.AttentionPattern(i));
        }
        foreach (var layer in trace.MoeLayers)
        {
            var idx = trace.ExpertIndices(layer).cpu().contiguous();
            writer.AddInt64($"moe.{layer}.indices", idx.shape, idx.data<long>().ToArray());
            AddFloat(writer, $"moe.{layer}.weights", trace.ExpertWeights(layer));
        }
        writer.WriteTo(outPath);

        var lastTop = trace.Logits.select(1, -1).argmax(-1).cpu().data<long>().ToArray();
        Console.WriteLine($"traced {batch.Length} sequence(s) of {batch[0].Length} tokens with {ckpt.Directory} ({ckpt.Layout} layout)");
        Console.WriteLine($"next-token argmax at the last position: {string.Join(", ", lastTop)}");
        Console.WriteLine($"wrote {writer.Count} tensors to {outPath}");
        return 0;
    }

    /// <summary>
    /// DeepSeek-V4: every internal under the golden reference's names (<see cref="ReferenceTensorNames.ForV4"/>:
    /// <c>layer.{i}.streams_out</c>, <c>layer.{i}.attn.probs</c>, <c>layer.{i}.indexer.topk</c>, …) plus <c>input_ids</c>.
    /// </summary>
    private static int WriteV4(Checkpoint ckpt, Tensor ids, SafetensorsWriter writer, string outPath, int batch, int seq)
    {
        var names = ReferenceTensorNames.ForV4(ckpt.Config);
        var wanted = names.Select(n => n.HookPoint).ToHashSet();
        using var trace = ckpt.Model.RunWithCache(ids, new TraceOptions { Names = NamesFilter.Where(wanted.Contains, "the V4 reference tensors") });
        writer.AddInt64("input_ids", ids.shape, ids.data<long>().ToArray());
        foreach (var (hook, reference) in names)
        {
            var t = trace[hook];
            if (t.dtype == ScalarType.Int64)
            {
                var c = t.cpu().contiguous();
                writer.AddInt64(reference, c.shape, c.data<long>().ToArray());
            }
            else AddFloat(writer, reference, t);
        }
        writer.WriteTo(outPath);
        var lastTop = trace.Logits.select(1, -1).argmax(-1).cpu().data<long>().ToArray();
        Console.WriteLine($"traced {batch} sequence(s) of {seq} tokens with {ckpt.Directory} ({ckpt.Layout} layout, DeepSeek-V4)");
        Console.WriteLine($"next-token argmax at the last position: {string.Join(", ", lastTop)}");
        Console.WriteLine($"wrote {writer.Count} tensors to {outPath} (the golden reference's names: layer.{{i}}.streams_out, layer.{{i}}.attn.probs, …)");
        return 0;
    }

    private static void AddFloat(SafetensorsWriter writer, string name, Tensor t)
    {
        var c = t.detach().to(float32).cpu().contiguous();
        writer.AddFloat32(name, c.shape, c.data<float>().ToArray());
    }
}
