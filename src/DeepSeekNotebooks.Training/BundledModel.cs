using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Training;

/// <summary>
/// Finds what this repository bundles: the checkpoint the kit analyses by default (<c>data/checkpoints</c>, produced by
/// <c>deepseek-notebooks train</c>) and the corpus it was trained on (<c>data/corpus</c>).
/// </summary>
public static class BundledModel
{
    /// <summary>Environment variable that overrides the default checkpoint directory (notebooks and the CLI read it).</summary>
    public const string CheckpointVariable = "DEEPSEEK_CHECKPOINT";

    /// <summary>
    /// Folder name of the default checkpoint under <c>data/checkpoints</c>: the tiny DeepSeek-V3 MoE trained in this repository
    /// (<c>deepseek-notebooks train</c>, see docs/training.md). The golden fixtures stay under their own names.
    /// </summary>
    public const string DefaultName = "deepseek-tiny-moe";

    /// <summary>
    /// Folder name of the second bundled model under <c>data/checkpoints</c>: the same corpus and tokenizer, trained by the
    /// same pipeline with the DeepSeek-V4 architecture (<c>deepseek-notebooks train --architecture v4</c>; see
    /// <see cref="Training.TinyV4"/>). Load it with <c>Checkpoint(V4Name)</c>.
    /// </summary>
    public const string V4Name = "deepseek-tiny-v4";

    /// <summary>
    /// The default checkpoint directory: <c>$DEEPSEEK_CHECKPOINT</c> if set, else <c>data/checkpoints/deepseek-tiny-moe</c>
    /// found by walking up from the current directory and from the application's directory.
    /// </summary>
    public static string DefaultCheckpoint()
    {
        var env = Environment.GetEnvironmentVariable(CheckpointVariable);
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        return FindInRepository(Path.Combine("data", "checkpoints", DefaultName))
            ?? throw new CheckpointException(
                $"the bundled checkpoint data/checkpoints/{DefaultName} was not found above {Directory.GetCurrentDirectory()}; pass a checkpoint directory or set {CheckpointVariable}");
    }

    /// <summary>
    /// A bundled checkpoint by folder name (e.g. <c>golden-tiny-hf</c>, <c>golden-tiny-official</c>) under
    /// <c>data/checkpoints</c>, found like <see cref="DefaultCheckpoint"/> but never redirected by the environment variable.
    /// </summary>
    public static string Checkpoint(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return FindInRepository(Path.Combine("data", "checkpoints", name))
            ?? throw new CheckpointException($"the bundled checkpoint data/checkpoints/{name} was not found above {Directory.GetCurrentDirectory()}");
    }

    /// <summary>
    /// The bundled corpus directory (<c>data/corpus</c>: <c>corpus.jsonl</c>, <c>manifest.json</c>, <c>tokenizer.json</c>),
    /// found by walking up from the current directory and from the application's directory.
    /// </summary>
    public static string CorpusDirectory() =>
        FindInRepository(Path.Combine("data", "corpus"), Corpus.CorpusFile.FileName)
        ?? throw new Corpus.CorpusException(
            $"the bundled corpus data/corpus/{Corpus.CorpusFile.FileName} was not found above {Directory.GetCurrentDirectory()} (generate it with `train --generate-corpus`)");

    /// <summary>The first <c>&lt;ancestor&gt;/relative</c> that exists (holding <paramref name="requiredFile"/> when given).</summary>
    internal static string? FindInRepository(string relative, string? requiredFile = null)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, relative);
                if (requiredFile is null ? Directory.Exists(candidate) : File.Exists(Path.Combine(candidate, requiredFile))) return candidate;
            }
        }
        return null;
    }
}
