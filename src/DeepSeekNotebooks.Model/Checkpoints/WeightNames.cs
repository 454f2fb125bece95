using System.Text.RegularExpressions;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>The two on-disk naming schemes of DeepSeek checkpoints.</summary>
public enum CheckpointLayout
{
    /// <summary>Hugging Face <c>modeling_deepseek.py</c>: <c>config.json</c> + <c>model.safetensors</c> (or shards with an index), names <c>model.layers.{i}.self_attn.q_proj.weight</c>, ….</summary>
    HuggingFace,
    /// <summary>DeepSeek-V3's official inference code: <c>model0-mp1.safetensors</c> with names <c>layers.{i}.attn.wq.weight</c>, … and a <c>ModelArgs</c> JSON.</summary>
    Official,
}

/// <summary>Maps Hugging Face tensor names to the official inference code's names (the model's own parameter names).</summary>
internal static class WeightNames
{
    private static readonly (string Hf, string Official)[] Parts =
    {
        ("self_attn.q_proj", "attn.wq"), ("self_attn.q_a_proj", "attn.wq_a"), ("self_attn.q_a_layernorm", "attn.q_norm"),
        ("self_attn.q_b_proj", "attn.wq_b"), ("self_attn.kv_a_proj_with_mqa", "attn.wkv_a"), ("self_attn.kv_a_layernorm", "attn.kv_norm"),
        ("self_attn.kv_b_proj", "attn.wkv_b"), ("self_attn.o_proj", "attn.wo"),
        // DeepSeek-V3.2's lightning indexer keeps its official names under self_attn (wq_b, wk, k_norm, weights_proj).
        ("self_attn.indexer", "attn.indexer"),
        ("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm"),
        ("mlp.gate.e_score_correction_bias", "ffn.gate.bias"), ("mlp.gate.weight", "ffn.gate.weight"),
        ("mlp.gate_proj", "ffn.w1"), ("mlp.down_proj", "ffn.w2"), ("mlp.up_proj", "ffn.w3"),
        ("mlp.shared_experts.gate_proj", "ffn.shared_experts.w1"), ("mlp.shared_experts.down_proj", "ffn.shared_experts.w2"),
        ("mlp.shared_experts.up_proj", "ffn.shared_experts.w3"),
    };

    private static readonly Regex Layer = new(@"^model\.layers\.(\d+)\.(.+)$", RegexOptions.Compiled);
    private static readonly Regex Expert = new(@"^mlp\.experts\.(\d+)\.(gate_proj|down_proj|up_proj)\.(.+)$", RegexOptions.Compiled);

    /// <summary>
    /// Official name for a Hugging Face name (FP8 <c>weight_scale_inv</c> becomes <c>scale</c>, as the official
    /// <c>convert.py</c> does); null when the name is not part of a DeepSeek checkpoint. <paramref name="layer"/> is the
    /// block index for per-layer names (or −1).
    /// </summary>
    internal static string? FromHuggingFace(string name, out int layer)
    {
        layer = -1;
        switch (name)
        {
            case "model.embed_tokens.weight": return "embed.weight";
            case "model.norm.weight": return "norm.weight";
            case "lm_head.weight": return "head.weight";
            case "lm_head.weight_scale_inv": return "head.scale";
        }
        var m = Layer.Match(name);
        if (!m.Success) return null;
        layer = int.Parse(m.Groups[1].Value);
        var rest = m.Groups[2].Value;
        var e = Expert.Match(rest);
        if (e.Success)
        {
            var w = e.Groups[2].Value switch { "gate_proj" => "w1", "down_proj" => "w2", _ => "w3" };
            return $"layers.{layer}.ffn.experts.{e.Groups[1].Value}.{w}.{Suffix(e.Groups[3].Value)}";
        }
        foreach (var (hf, official) in Parts)
        {
            if (rest == hf) return $"layers.{layer}.{official}";
            if (rest.StartsWith(hf + ".", StringComparison.Ordinal))
                return $"layers.{layer}.{official}.{Suffix(rest[(hf.Length + 1)..])}";
        }
        return null;
    }

    private static string Suffix(string s) => s == "weight_scale_inv" ? "scale" : s;

    /// <summary>Hugging Face name for one of the model's parameter names (inverse of <see cref="FromHuggingFace"/>).</summary>
    internal static string ToHuggingFace(string official)
    {
        switch (official)
        {
            case "embed.weight": return "model.embed_tokens.weight";
            case "norm.weight": return "model.norm.weight";
            case "head.weight": return "lm_head.weight";
        }
        var m = Regex.Match(official, @"^layers\.(\d+)\.(.+)$");
        if (!m.Success) throw new ArgumentException($"not a DeepSeek parameter name: {official}");
        var rest = m.Groups[2].Value;
        var e = Regex.Match(rest, @"^ffn\.experts\.(\d+)\.(w1|w2|w3)\.(.+)$");
        if (e.Success)
        {
            var p = e.Groups[2].Value switch { "w1" => "gate_proj", "w2" => "down_proj", _ => "up_proj" };
            return $"model.layers.{m.Groups[1].Value}.mlp.experts.{e.Groups[1].Value}.{p}.{e.Groups[3].Value}";
        }
        // Longest official prefix first so "ffn.shared_experts.w1" wins over "ffn.w1".
        foreach (var (hf, off) in Parts.OrderByDescending(p => p.Official.Length))
        {
            if (rest == off) return $"model.layers.{m.Groups[1].Value}.{hf}";
            if (rest.StartsWith(off + ".", StringComparison.Ordinal))
                return $"model.layers.{m.Groups[1].Value}.{hf}.{rest[(off.Length + 1)..]}";
        }
        throw new ArgumentException($"not a DeepSeek parameter name: {official}");
    }
}
