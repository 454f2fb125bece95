using System.CommandLine;
using DeepSeekNotebooks.Analysis.Statistics;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary><c>merge</c>: combines the states written by <c>collect</c> (shards of one dataset and model) into one.</summary>
public static class MergeCommand
{
    public static Command Create()
    {
        var inputs = new Argument<FileInfo[]>("states") { Description = "State files written by collect (or merge), one per shard or group of shards.", Arity = ArgumentArity.OneOrMore };
        var output = CliSupport.OutOption("merged state, .safetensors");
        var command = new Command("merge", "Combine collect states of shards of one dataset and model; equal to one pass over the merged shards.") { inputs, output };
        command.SetAction(parse => CliSupport.Run(() => Run(parse.GetValue(inputs)!.Select(f => f.FullName).ToArray(), parse.GetValue(output)!.FullName, Console.Out)));
        return command;
    }

    internal static int Run(string[] inputs, string outPath, TextWriter output)
    {
        if (inputs.Length == 0) throw new UsageException("give at least one state file to merge, e.g. merge shard0.safetensors shard1.safetensors --out total.safetensors");
        var total = DatasetState.Load(inputs[0]);
        foreach (var path in inputs.Skip(1))
        {
            var next = DatasetState.Load(path);
            try { total.Merge(next); }
            catch (ArgumentException e) { throw new InvalidDataException($"{Path.GetFileName(path)} does not merge with {Path.GetFileName(inputs[0])}: {e.Message.Split(" (Parameter")[0]}"); }
        }
        total.Save(outPath);
        int n = total.Provenance.ShardCount;
        var missing = Enumerable.Range(0, n).Except(total.Shards).ToArray();
        output.WriteLine($"merged {inputs.Length} state(s): shards {string.Join(",", total.Shards)} of {n}" +
            (missing.Length == 0 ? " (complete)" : $" (incomplete: missing {string.Join(",", missing)})"));
        output.WriteLine($"wrote {outPath}");
        return 0;
    }
}
