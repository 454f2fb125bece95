namespace DeepSeekNotebooks.Model.Tracing;

/// <summary>
/// Names of the model's hook points, in the style of TransformerLens (<c>blocks.{L}.attn.pattern</c>, …).
/// Each names a tensor computed during the forward pass that a trace can record and a hook can read or replace.
/// </summary>
public static class HookPoints
{
    /// <summary>Token embeddings [batch, seq, dim].</summary>
    public const string Embed = "embed";
    /// <summary>Output of the final RMSNorm [batch, seq, dim].</summary>
    public const string FinalNorm = "ln_final";
    /// <summary>Logits for every position [batch, seq, vocab].</summary>
    public const string Logits = "logits";

    /// <summary>Residual stream entering block L [batch, seq, dim].</summary>
    public static string ResidPre(int layer) => $"blocks.{layer}.resid_pre";
    /// <summary>Attention probabilities of block L after softmax [batch, heads, query, key].</summary>
    public static string AttnPattern(int layer) => $"blocks.{layer}.attn.pattern";
    /// <summary>Attention output of block L after <c>wo</c> [batch, seq, dim].</summary>
    public static string AttnOut(int layer) => $"blocks.{layer}.attn.out";
    /// <summary>Residual stream between attention and FFN of block L [batch, seq, dim].</summary>
    public static string ResidMid(int layer) => $"blocks.{layer}.resid_mid";
    /// <summary>FFN output of block L (dense MLP or MoE: routed + shared) [batch, seq, dim].</summary>
    public static string MlpOut(int layer) => $"blocks.{layer}.mlp.out";
    /// <summary>Residual stream after block L [batch, seq, dim] (the golden files' <c>hidden.L</c>).</summary>
    public static string ResidPost(int layer) => $"blocks.{layer}.resid_post";
    /// <summary>Gate scores of MoE block L: softmax or sigmoid of x·Wgᵀ, before bias [tokens, experts].</summary>
    public static string RouterScores(int layer) => $"blocks.{layer}.moe.router";
    /// <summary>Scores used for expert selection (router scores + selection bias) before group masking [tokens, experts]; replace to ablate experts.</summary>
    public static string SelectionScores(int layer) => $"blocks.{layer}.moe.selection";
    /// <summary>Selected experts per token in top-k order [tokens, k] (int64).</summary>
    public static string ExpertIndices(int layer) => $"blocks.{layer}.moe.indices";
    /// <summary>Routing weights of the selected experts, after normalisation and scaling [tokens, k].</summary>
    public static string ExpertWeights(int layer) => $"blocks.{layer}.moe.weights";
    /// <summary>Output of the shared experts of block L [tokens, dim].</summary>
    public static string SharedExpertsOut(int layer) => $"blocks.{layer}.moe.shared_out";
}
