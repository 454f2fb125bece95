using System.CommandLine;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Native;
using Training = DeepSeekNotebooks.Training;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>Options and error handling shared by the verbs.</summary>
internal static class CliSupport
{
    internal static Option<DirectoryInfo?> CheckpointOption() => new("--checkpoint")
    {
        Description = $"Checkpoint directory (Hugging Face or official DeepSeek layout). Default: ${Training.BundledModel.CheckpointVariable} or the bundled data/checkpoints/{Training.BundledModel.DefaultName}.",
    };

    internal static Option<FileInfo> OutOption(string what) => new("--out")
    {
        Description = $"Output file ({what}); written to a temporary file and moved into place.",
        Required = true,
    };

    internal static Option<bool> AllowPickleOption() => new("--allow-pickle")
    {
        Description = "Allow PyTorch pickle weights (.bin/.pt). Off by default: unpickling can execute code from the file; use only for files you trust.",
    };

    /// <summary><c>--quantisation official|off</c>, shared by every verb that runs a model (issue 13).</summary>
    internal static Option<string> QuantisationOption() => new("--quantisation")
    {
        Description = "official (default): simulate the FP8/FP4 activation rounding DeepSeek's official code does (V3.2: indexer and KV latent; V4: KV and indexer); off: plain float. No effect on V2/V3.",
        DefaultValueFactory = _ => "official",
    };

    /// <summary>Parses <c>--quantisation</c>, naming the accepted values.</summary>
    internal static Model.Modules.QuantisationSimulation ParseQuantisation(string? text) => text switch
    {
        null or "official" => Model.Modules.QuantisationSimulation.Official,
        "off" => Model.Modules.QuantisationSimulation.Off,
        _ => throw new UsageException($"--quantisation must be official or off, got '{text}'"),
    };

    internal static string ResolveCheckpoint(DirectoryInfo? given) => given?.FullName ?? Training.BundledModel.DefaultCheckpoint();

    /// <summary>Parses "1,2,3" into token ids, naming the bad entry.</summary>
    internal static long[] ParseIds(string text, string option = "--input-ids")
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length == 0 || parts.All(p => p.Length == 0))
            throw new UsageException($"{option} is empty: give comma-separated token ids, e.g. {option} 303,211,294");
        return parts.Select((p, i) => long.TryParse(p, out var v) ? v
            : throw new UsageException($"{option}: entry {i + 1} ('{p}') is not an integer token id; expected comma-separated integers, e.g. 303,211,294")).ToArray();
    }

    /// <summary>Runs a verb body, turning the kit's errors into a one-line message and exit code 1 (2 for usage errors).</summary>
    internal static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is ConfigException or CheckpointException or CheckpointFormatException or ArgumentException
                                      or TorchLoadException or Training.Corpus.CorpusException or Training.Training.TrainingOptionsException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}

/// <summary>A command-line argument is malformed.</summary>
internal sealed class UsageException(string message) : Exception(message);
