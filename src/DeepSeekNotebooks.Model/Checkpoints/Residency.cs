namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>
/// Where a loaded model's weights live while it computes (issue 12 §1).
/// </summary>
public enum Residency
{
    /// <summary>
    /// <see cref="Stream"/> when the model in the compute dtype would not fit comfortably in memory (more than half of the
    /// memory available), otherwise <see cref="Memory"/>; <see cref="Checkpoint.ResidencyReason"/> says which was chosen and why.
    /// </summary>
    Auto,
    /// <summary>Every weight is read into memory once, at load time.</summary>
    Memory,
    /// <summary>
    /// Weights stay on disk (memory-mapped safetensors); each block's weights are brought in, converted to the compute
    /// dtype, when the computation reaches that block and released before the next block.
    /// </summary>
    Stream,
}
