using System.Runtime.CompilerServices;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Native;

namespace DeepSeekNotebooks.Interactive;

/// <summary>
/// One call that prepares a .NET Interactive notebook (VS Code Polyglot / dotnet-interactive / dotnet-repl) for the kit.
/// Put it at the end of the first cell, right after the <c>#r</c> lines (see docs/notebook-kernel.md).
/// </summary>
public static class Notebook
{
    /// <summary>
    /// Installs <see cref="FSharpCoreRedirect"/> (before anything touches Plotly.NET: in the kernel, any Plotly.NET call
    /// made before the redirect fails with "Could not load file or assembly 'FSharp.Core, Version=10.1.0.0'"),
    /// registers the formatters (<see cref="DeepSeekNotebooksFormatters.Register"/>) and loads TorchSharp's native
    /// backend (<see cref="TorchRuntime.EnsureLoaded"/>, with its GLIBCXX repair). Idempotent; returns a short status
    /// string (a good cell value). Throws <see cref="TorchLoadException"/> when TorchSharp cannot be loaded.
    /// </summary>
    public static string Setup()
    {
        FSharpCoreRedirect.Install();
        return SetupCore(); // separate method: the redirect is in place before Plotly.NET types are resolved
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string SetupCore()
    {
        DeepSeekNotebooksFormatters.Register();
        TorchRuntime.EnsureLoaded();
        var fsharpCore = AppDomain.CurrentDomain.GetAssemblies()
            .Select(a => a.GetName()).Where(n => n.Name == "FSharp.Core")
            .Select(n => n.Version).Max();
        return $"DeepSeekNotebooks ready: formatters registered, FSharp.Core redirect installed (loaded FSharp.Core {fsharpCore?.ToString() ?? "none"}), " +
               $"torch: {TorchRuntime.Status}";
    }

    /// <summary>Environment variable naming the residency notebooks load with (<c>auto</c>, <c>memory</c>, <c>stream</c>; <c>report --residency</c> sets it).</summary>
    public const string ResidencyVariable = "DEEPSEEK_RESIDENCY";
    /// <summary>Environment variable naming the compute dtype notebooks load with (<c>f32</c>, <c>bf16</c>; <c>report --dtype</c> sets it).</summary>
    public const string DTypeVariable = "DEEPSEEK_DTYPE";

    /// <summary>
    /// The load options of the analysed checkpoint, as the second cell passes them to
    /// <c>Checkpoint.Load(checkpointDir, Notebook.LoadOptions())</c>: the residency from <c>$DEEPSEEK_RESIDENCY</c> and the
    /// compute dtype from <c>$DEEPSEEK_DTYPE</c> (the report runner's <c>--residency</c>/<c>--dtype</c> set them, as
    /// <c>--checkpoint</c> sets <c>$DEEPSEEK_CHECKPOINT</c>); unset or empty means <see cref="CheckpointLoadOptions"/>'s
    /// defaults, <see cref="Residency.Auto"/> and float32.
    /// </summary>
    /// <exception cref="ArgumentException">A variable holds a value other than the accepted ones (the message names it and them).</exception>
    public static CheckpointLoadOptions LoadOptions() =>
        LoadOptions(Environment.GetEnvironmentVariable(ResidencyVariable), Environment.GetEnvironmentVariable(DTypeVariable));

    /// <summary>
    /// <see cref="LoadOptions()"/> from the given texts: residency <c>auto|memory|stream</c>, dtype <c>f32|bf16</c>
    /// (case-insensitive; null or empty = the default).
    /// </summary>
    /// <exception cref="ArgumentException">A value other than the accepted ones.</exception>
    public static CheckpointLoadOptions LoadOptions(string? residency, string? dtype) => new()
    {
        Residency = string.IsNullOrWhiteSpace(residency) ? Residency.Auto : residency.Trim().ToLowerInvariant() switch
        {
            "auto" => Residency.Auto,
            "memory" => Residency.Memory,
            "stream" => Residency.Stream,
            _ => throw new ArgumentException($"{ResidencyVariable} (report --residency) must be auto, memory or stream, got '{residency}'", nameof(residency)),
        },
        DType = string.IsNullOrWhiteSpace(dtype) ? TorchSharp.torch.ScalarType.Float32 : dtype.Trim().ToLowerInvariant() switch
        {
            "f32" => TorchSharp.torch.ScalarType.Float32,
            "bf16" => TorchSharp.torch.ScalarType.BFloat16,
            _ => throw new ArgumentException($"{DTypeVariable} (report --dtype) must be f32 or bf16, got '{dtype}'", nameof(dtype)),
        },
    };

    /// <summary>Models with fewer parameters than this run on one intra-op thread (<see cref="UseThreadsFor"/>).</summary>
    public const long SmallModelParameters = 50_000_000;

    /// <summary>
    /// The one-thread rule, for small models only: a model with fewer than <see cref="SmallModelParameters"/> parameters does
    /// many small tensor operations whose OpenMP hand-offs cost more than the arithmetic they split, so it runs on one
    /// intra-op thread; a larger model keeps (or gets back) one thread per core. Returns the thread count now in use.
    /// </summary>
    public static int UseThreadsFor(DeepSeekModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        int threads = ThreadsFor(model.ParameterCounts().Total, Environment.ProcessorCount);
        TorchSharp.torch.set_num_threads(threads);
        return threads;
    }

    /// <summary>The thread count <see cref="UseThreadsFor"/> picks for a model of <paramref name="parameters"/> on <paramref name="cores"/> cores.</summary>
    internal static int ThreadsFor(long parameters, int cores) => parameters < SmallModelParameters ? 1 : Math.Max(1, cores);

    /// <summary>The id sequence <see cref="Prompt"/> uses when the checkpoint has no tokenizer (the golden fixture's first 12 ids).</summary>
    internal static readonly long[] FallbackIds = { 303, 211, 294, 53, 204, 372, 152, 505, 143, 177, 279, 233 };

    /// <summary>
    /// A notebook's prompt: <paramref name="text"/> through the checkpoint's tokenizer when it has one; otherwise a fixed
    /// sequence of 12 ids (taken modulo the model's vocabulary, so it fits any model) shown as <c>#id</c>.
    /// </summary>
    public static (long[] Ids, string[] Tokens) Prompt(Checkpoint checkpoint, string text)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return Prompt(checkpoint.Tokenizer, checkpoint.Config.VocabSize, text);
    }

    internal static (long[] Ids, string[] Tokens) Prompt(DeepSeekNotebooks.Model.Tokenization.DeepSeekTokenizer? tokenizer, long vocabSize, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (tokenizer is not null)
        {
            var ids = tokenizer.Encode(text);
            if (ids.Length == 0) throw new ArgumentException($"the prompt \"{text}\" encodes to no tokens", nameof(text));
            var outside = ids.Where(i => i < 0 || i >= vocabSize).ToArray();
            if (outside.Length > 0)
                throw new ArgumentException($"the checkpoint's tokenizer gives id {outside[0]} for \"{text}\", outside the model's vocabulary of {vocabSize}", nameof(text));
            return (ids, tokenizer.TokenStrings(ids));
        }
        var fallback = FallbackIds.Select(i => i % vocabSize).ToArray();
        return (fallback, fallback.Select(i => $"#{i}").ToArray());
    }

    /// <summary>The text that starts the output of <see cref="Values"/>; the series tests find a notebook's stated values by it.</summary>
    public const string ValuesPrefix = "notebook values: ";

    private static readonly System.Text.Json.JsonSerializerOptions ValuesJson = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// The numbers behind a notebook's stated claims, as one machine-checkable line: <see cref="ValuesPrefix"/> followed by a
    /// JSON object (name → value; NaN and ±Infinity written as strings). A notebook ends with this cell so a test can check
    /// what the text says (e.g. "NMI above its permutation null") on every checkpoint it runs on. Names must be unique and non-empty.
    /// </summary>
    public static string Values(params (string Name, double Value)[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var map = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (name, value) in values)
        {
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("a value needs a non-empty name", nameof(values));
            if (!map.TryAdd(name, value)) throw new ArgumentException($"the value name '{name}' is given twice", nameof(values));
        }
        return ValuesPrefix + System.Text.Json.JsonSerializer.Serialize(map, ValuesJson);
    }
}
