namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>Finds the checkpoint the kit analyses by default (the one shipped under <c>data/checkpoints</c>).</summary>
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
    /// The default checkpoint directory: <c>$DEEPSEEK_CHECKPOINT</c> if set, else <c>data/checkpoints/deepseek-tiny-moe</c>
    /// found by walking up from the current directory and from the application's directory.
    /// </summary>
    public static string DefaultCheckpoint()
    {
        var env = Environment.GetEnvironmentVariable(CheckpointVariable);
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "data", "checkpoints", DefaultName);
                if (Directory.Exists(candidate)) return candidate;
            }
        }
        throw new CheckpointException(
            $"the bundled checkpoint data/checkpoints/{DefaultName} was not found above {Directory.GetCurrentDirectory()}; pass a checkpoint directory or set {CheckpointVariable}");
    }
}
