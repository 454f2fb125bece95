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

    /// <summary>
    /// <c>--residency auto|memory|stream</c>, <c>--dtype f32|bf16</c> and <c>--device cpu|cuda[:n]</c>, shared by every verb
    /// that loads a model (issue 12 §1): where the weights live while the model computes (<see cref="Residency"/>), the
    /// compute dtype and the device (<see cref="CheckpointLoadOptions.Residency"/>, <see cref="CheckpointLoadOptions.DType"/>,
    /// <see cref="CheckpointLoadOptions.Device"/>).
    /// </summary>
    internal sealed class ModelLoading
    {
        internal Option<string> Residency { get; } = new("--residency")
        {
            Description = "auto (default): stream the weights block by block from disk when the model in the compute dtype would not fit comfortably in memory, else hold them in memory; memory: load every weight; stream: keep the weights on disk and bring each block in when the computation reaches it. The choice and its reason are printed to stderr.",
            DefaultValueFactory = _ => "auto",
        };
        internal Option<string> DType { get; } = new("--dtype")
        {
            Description = "Compute dtype: f32 (default) or bf16 (half the memory; results within bf16 rounding of f32). Weights stored as bf16/fp16/FP8 are converted to it.",
            DefaultValueFactory = _ => "f32",
        };
        internal Option<string> Device { get; } = new("--device")
        {
            Description = "cpu (default), cuda or cuda:N. CUDA needs a build against TorchSharp's CUDA runtime package (README: 'what fits on which machine').",
            DefaultValueFactory = _ => "cpu",
        };

        /// <summary>Adds the three options to a verb.</summary>
        internal void AddTo(Command command)
        {
            command.Options.Add(Residency);
            command.Options.Add(DType);
            command.Options.Add(Device);
        }

        /// <summary>
        /// <paramref name="options"/> with the parsed residency, dtype and device; a bad value (or CUDA without its runtime) is
        /// refused here, before any model is loaded or file written.
        /// </summary>
        internal CheckpointLoadOptions Apply(ParseResult parse, CheckpointLoadOptions options) => options with
        {
            Residency = ParseResidency(parse.GetValue(Residency)),
            DType = ParseDType(parse.GetValue(DType)),
            Device = ParseDevice(parse.GetValue(Device)),
        };
    }

    /// <summary>Parses <c>--residency</c>, naming the accepted values.</summary>
    internal static Residency ParseResidency(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "auto" => Model.Checkpoints.Residency.Auto,
        "memory" => Model.Checkpoints.Residency.Memory,
        "stream" => Model.Checkpoints.Residency.Stream,
        _ => throw new UsageException($"--residency must be auto, memory or stream, got '{text}'"),
    };

    /// <summary>Parses <c>--dtype</c> (the compute dtype), naming the accepted values.</summary>
    internal static TorchSharp.torch.ScalarType ParseDType(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "f32" or "fp32" or "float32" => TorchSharp.torch.ScalarType.Float32,
        "bf16" or "bfloat16" => TorchSharp.torch.ScalarType.BFloat16,
        _ => throw new UsageException($"--dtype must be f32 or bf16, got '{text}'"),
    };

    /// <summary>
    /// Parses <c>--device cpu|cuda|cuda:N</c>. CUDA is refused unless TorchSharp's CUDA runtime is loaded and has device N,
    /// saying which package reference to change (this repository builds against the CPU runtime, <c>TorchSharp-cpu</c>).
    /// </summary>
    /// <returns>null for the CPU (the loader's default; touching TorchSharp here would load its native runtime before
    /// <see cref="TorchRuntime.EnsureLoaded"/> does), else the CUDA device.</returns>
    internal static TorchSharp.torch.Device? ParseDevice(string? text)
    {
        var s = text?.Trim().ToLowerInvariant();
        if (s is null or "cpu") return null;
        int index = 0;
        bool cuda = s == "cuda" || (s.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(s.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out index));
        if (!cuda) throw new UsageException($"--device must be cpu, cuda or cuda:N (N a device index, e.g. cuda:0), got '{text}'");
        TorchRuntime.EnsureLoaded();
        if (!TorchSharp.torch.cuda.is_available())
            throw new DeviceUnavailableException(
                $"--device {s}: TorchSharp's CUDA runtime is not available in this build (it references the CPU runtime package TorchSharp-cpu). " +
                "To run on a GPU, replace TorchSharp-cpu by TorchSharp-cuda-linux (or TorchSharp-cuda-windows), same version, in Directory.Packages.props " +
                "and src/DeepSeekNotebooks.Model/DeepSeekNotebooks.Model.csproj, rebuild, and check that an NVIDIA driver is installed; or use --device cpu");
        int count = TorchSharp.torch.cuda.device_count();
        if (index >= count)
            throw new DeviceUnavailableException($"--device {s}: this machine has {count} CUDA device(s), numbered 0 to {count - 1}");
        return new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, index);
    }

    /// <summary>Loads a checkpoint and prints its <see cref="Checkpoint.ResidencyReason"/> to stderr (stdout may carry JSON).</summary>
    internal static Checkpoint Load(string directory, CheckpointLoadOptions options, TextWriter? diagnostics = null)
    {
        var ckpt = Checkpoint.Load(directory, options);
        (diagnostics ?? Console.Error).WriteLine(ckpt.ResidencyReason);
        return ckpt;
    }

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
        catch (Exception e) when (e is ConfigException or DeviceUnavailableException or NotSupportedException or CheckpointException or CheckpointFormatException or ArgumentException
                                      or TorchLoadException or Training.Corpus.CorpusException or Training.Training.TrainingOptionsException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}

/// <summary>A command-line argument is malformed.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>The device a command line asks for is not available in this build or on this machine (exit code 1).</summary>
internal sealed class DeviceUnavailableException(string message) : Exception(message);
