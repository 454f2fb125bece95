using DeepSeekNotebooks.Model;

namespace DeepSeekNotebooks.Interactive;

/// <summary>A family of the kit's analyses whose applicability depends on the model generation (see <see cref="GenerationSupport"/>).</summary>
public enum GenerationDependentAnalysis
{
    /// <summary>Analyses that read or replace each head's output (<c>attn.z</c>): direct logit attribution by head, per-head patching, head ablation.</summary>
    PerHeadOutputs,
    /// <summary>Ablations that mask the selection scores of every MoE block at once (top-r masking): hash-routed blocks have none.</summary>
    SelectionMaskingEveryBlock,
    /// <summary>MLA's compressed key/value latent (<c>kv_lora_rank</c>, <c>wkv_a</c>/<c>wkv_b</c>): the KV-cache saving and the key rank.</summary>
    MlaLatent,
}

/// <summary>
/// Whether an analysis family applies to a model, decided from its configuration, and if not the one line a notebook
/// section prints instead (DeepSeek-V4, issue 13: the analyses are being extended to V4; until they are, a section skips
/// with its reason rather than fail or show a number that means something else).
/// </summary>
public static class GenerationSupport
{
    /// <summary>Null when <paramref name="analysis"/> runs on <paramref name="config"/>; else the line to print, <c>(skipped: …)</c>.</summary>
    public static string? Skip(DeepSeekConfig config, GenerationDependentAnalysis analysis)
    {
        ArgumentNullException.ThrowIfNull(config);
        return analysis switch
        {
            GenerationDependentAnalysis.PerHeadOutputs when config.CompressedAttention is not null =>
                "(skipped: DeepSeek-V4 attention exposes no per-head output hook point (attn.z) yet: its heads are combined by the grouped low-rank output projection wo_a/wo_b, which the per-head decomposition does not take)",
            GenerationDependentAnalysis.SelectionMaskingEveryBlock when config.NumHashLayers > 0 =>
                $"(skipped: MoE blocks 0..{config.NumHashLayers - 1} are hash-routed (num_hash_layers = {config.NumHashLayers}): their experts come from the tid2eid table, with no selection scores to mask, so masking every block's top experts does not apply)",
            GenerationDependentAnalysis.MlaLatent when config.CompressedAttention is not null =>
                $"(skipped: DeepSeek-V4 attention has no key/value latent (kv_lora_rank): it caches one shared key = value head of head_dim {config.CompressedAttention.HeadDim} per token, plus compressed entries)",
            GenerationDependentAnalysis.PerHeadOutputs
                or GenerationDependentAnalysis.SelectionMaskingEveryBlock or GenerationDependentAnalysis.MlaLatent => null,
            _ => throw new ArgumentOutOfRangeException(nameof(analysis), analysis, "not a GenerationDependentAnalysis"),
        };
    }
}
