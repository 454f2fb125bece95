namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>
/// Thrown when a checkpoint file does not conform to its format (for safetensors: the
/// layout described in the huggingface/safetensors README, https://github.com/huggingface/safetensors#format).
/// The message always names the file, states the exact problem and, where it helps, what a valid file would contain.
/// </summary>
public sealed class CheckpointFormatException : Exception
{
    /// <summary>Creates the exception for <paramref name="filePath"/> with the problem description <paramref name="problem"/>.</summary>
    /// <param name="filePath">The offending file.</param>
    /// <param name="problem">What is wrong, and what would be right.</param>
    /// <param name="tensorName">The tensor the problem concerns, if any.</param>
    /// <param name="innerException">The underlying error (e.g. a JSON parser error), if any.</param>
    public CheckpointFormatException(string filePath, string problem, string? tensorName = null, Exception? innerException = null)
        : base($"Invalid safetensors file '{filePath}': {problem}", innerException)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The file that failed validation.</summary>
    public string FilePath { get; }

    /// <summary>The tensor the problem concerns, or <c>null</c> if it concerns the file as a whole.</summary>
    public string? TensorName { get; }
}
