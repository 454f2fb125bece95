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

    /// <summary>
    /// DeepSeek-V4 under transformers' <c>DeepseekV4ForCausalLM</c> names (golden/v4 README table), longest prefix
    /// first; checked before <see cref="Parts"/> (the V4 indexer sits under <c>self_attn.compressor.indexer</c>).
    /// </summary>
    private static readonly (string Hf, string Official)[] V4Parts =
    {
        ("self_attn.compressor.indexer.q_b_proj", "attn.indexer.wq_b"), ("self_attn.compressor.indexer.weights_proj", "attn.indexer.weights_proj"),
        ("self_attn.compressor.indexer.kv_proj", "attn.indexer.compressor.wkv"), ("self_attn.compressor.indexer.gate_proj", "attn.indexer.compressor.wgate"),
        ("self_attn.compressor.indexer.kv_norm", "attn.indexer.compressor.norm"), ("self_attn.compressor.indexer.position_bias", "attn.indexer.compressor.ape"),
        ("self_attn.compressor.kv_proj", "attn.compressor.wkv"), ("self_attn.compressor.gate_proj", "attn.compressor.wgate"),
        ("self_attn.compressor.kv_norm", "attn.compressor.norm"), ("self_attn.compressor.position_bias", "attn.compressor.ape"),
        ("self_attn.q_a_norm", "attn.q_norm"), ("self_attn.kv_proj", "attn.wkv"), ("self_attn.kv_norm", "attn.kv_norm"),
        ("self_attn.o_a_proj", "attn.wo_a"), ("self_attn.o_b_proj", "attn.wo_b"), ("self_attn.sinks", "attn.attn_sink"),
        ("attn_hc.fn", "hc_attn_fn"), ("attn_hc.base", "hc_attn_base"), ("attn_hc.scale", "hc_attn_scale"),
        ("ffn_hc.fn", "hc_ffn_fn"), ("ffn_hc.base", "hc_ffn_base"), ("ffn_hc.scale", "hc_ffn_scale"),
        ("mlp.gate.tid2eid", "ffn.gate.tid2eid"),
    };

    /// <summary>transformers' packed routed experts of one layer: <c>gate_up_proj</c> [E, 2I, D] = [w1; w3] and <c>down_proj</c> [E, D, I] = w2.</summary>
    internal static readonly Regex PackedExperts = new(@"^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)$", RegexOptions.Compiled);

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
            case "model.hc_head.hc_fn": return "hc_head_fn";
            case "model.hc_head.hc_base": return "hc_head_base";
            case "model.hc_head.hc_scale": return "hc_head_scale";
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
        foreach (var (hf, official) in V4Parts.Concat(Parts))
        {
            if (rest == hf) return $"layers.{layer}.{official}";
            if (rest.StartsWith(hf + ".", StringComparison.Ordinal))
                return $"layers.{layer}.{official}.{Suffix(rest[(hf.Length + 1)..])}";
        }
        return null;
    }

    private static string Suffix(string s) => s == "weight_scale_inv" ? "scale" : s;

    /// <summary>Hugging Face name for one of the model's parameter names (inverse of <see cref="FromHuggingFace"/>).</summary>
    /// <remarks><paramref name="v4"/>: the DeepSeek-V4 model's names (its <c>attn.q_norm</c>/<c>attn.kv_norm</c> are transformers' <c>q_a_norm</c>/<c>kv_norm</c>, not V3's <c>*_layernorm</c>).</remarks>
    internal static string ToHuggingFace(string official, bool v4 = false)
    {
        switch (official)
        {
            case "embed.weight": return "model.embed_tokens.weight";
            case "norm.weight": return "model.norm.weight";
            case "head.weight": return "lm_head.weight";
            case "hc_head_fn": return "model.hc_head.hc_fn";
            case "hc_head_base": return "model.hc_head.hc_base";
            case "hc_head_scale": return "model.hc_head.hc_scale";
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
        foreach (var (hf, off) in (v4 ? V4Parts.Concat(Parts) : Parts).OrderByDescending(p => p.Official.Length))
        {
            if (rest == off) return $"model.layers.{m.Groups[1].Value}.{hf}";
            if (rest.StartsWith(off + ".", StringComparison.Ordinal))
                return $"model.layers.{m.Groups[1].Value}.{hf}.{rest[(off.Length + 1)..]}";
        }
        throw new ArgumentException($"not a DeepSeek parameter name: {official}");
    }
}
