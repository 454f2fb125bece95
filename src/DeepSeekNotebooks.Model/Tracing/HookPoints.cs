using System.Text;

namespace DeepSeekNotebooks.Model.Tracing;

/// <summary>
/// Names of the model's hook points, in the style of TransformerLens (<c>blocks.{L}.attn.pattern</c>, …), and the one
/// registry of which names a model offers (<see cref="All"/>, <see cref="Validate"/>): every block has the residual,
/// attention and FFN points; only MoE blocks have the <c>moe.*</c> points (and <c>moe.shared_out</c> only with shared
/// experts). Each names a tensor computed during the forward pass that a trace can record and a hook can read or replace.
/// </summary>
public static partial class HookPoints
{
    /// <summary>Token embeddings [batch, seq, dim].</summary>
    public const string Embed = "embed";
    /// <summary>Output of the final RMSNorm [batch, seq, dim].</summary>
    public const string FinalNorm = "ln_final";
    /// <summary>Logits for every position [batch, seq, vocab].</summary>
    public const string Logits = "logits";

    // Per-block suffixes (after "blocks.{L}."), in forward order. The factories below and the registry share them.
    internal const string ResidPreSuffix = "resid_pre", AttnPatternSuffix = "attn.pattern", AttnOutSuffix = "attn.out",
        ResidMidSuffix = "resid_mid", MlpOutSuffix = "mlp.out", ResidPostSuffix = "resid_post",
        RouterSuffix = "moe.router", SelectionSuffix = "moe.selection", IndicesSuffix = "moe.indices",
        WeightsSuffix = "moe.weights", SharedOutSuffix = "moe.shared_out",
        IndexerScoresSuffix = "attn.indexer.scores", IndexerTopkSuffix = "attn.indexer.topk";
    // MLA's per-head points (TransformerLens hook_q / hook_k / hook_v / hook_z, split into DeepSeek's nope and rope parts).
    internal const string AttnQNopeSuffix = "attn.q_nope", AttnQRopeSuffix = "attn.q_rope", AttnKRopeSuffix = "attn.k_rope",
        AttnKvLatentSuffix = "attn.kv_latent", AttnKNopeSuffix = "attn.k_nope", AttnVSuffix = "attn.v", AttnZSuffix = "attn.z";

    /// <summary>Per-head queries of block L, the part without position [batch, seq, heads, qk_nope_head_dim] (TransformerLens <c>hook_q</c>, nope part).</summary>
    public static string AttnQNope(int layer) => Block(layer, AttnQNopeSuffix);
    /// <summary>Per-head queries of block L, the decoupled RoPE part after rotation [batch, seq, heads, qk_rope_head_dim] (TransformerLens <c>hook_rot_q</c>).</summary>
    public static string AttnQRope(int layer) => Block(layer, AttnQRopeSuffix);
    /// <summary>
    /// MLA's one rope key of block L, shared by every head, after rotation [batch, seq, qk_rope_head_dim] (the second part
    /// of <c>wkv_a</c>'s output; DeepSeek-V2 §2.1.3 "decoupled rotary position embedding").
    /// </summary>
    public static string AttnKRope(int layer) => Block(layer, AttnKRopeSuffix);
    /// <summary>
    /// MLA's compressed key/value latent of block L after <c>kv_norm</c> [batch, seq, kv_lora_rank] (c<sup>KV</sup> in
    /// DeepSeek-V2 §2.1.2, what the KV cache stores; with the V3.2 FP8 simulation, after its rounding).
    /// </summary>
    public static string AttnKvLatent(int layer) => Block(layer, AttnKvLatentSuffix);
    /// <summary>Per-head keys of block L, the part without position (<c>wkv_b</c> of the latent) [batch, seq, heads, qk_nope_head_dim] (TransformerLens <c>hook_k</c>, nope part).</summary>
    public static string AttnKNope(int layer) => Block(layer, AttnKNopeSuffix);
    /// <summary>Per-head values of block L (<c>wkv_b</c> of the latent) [batch, seq, heads, v_head_dim] (TransformerLens <c>hook_v</c>).</summary>
    public static string AttnV(int layer) => Block(layer, AttnVSuffix);
    /// <summary>
    /// Per-head attention output of block L before the output projection <c>wo</c> [batch, seq, heads, v_head_dim]
    /// (TransformerLens <c>hook_z</c>): replace a head's slice to patch or ablate that head.
    /// </summary>
    public static string AttnZ(int layer) => Block(layer, AttnZSuffix);

    /// <summary>Residual stream entering block L [batch, seq, dim].</summary>
    public static string ResidPre(int layer) => Block(layer, ResidPreSuffix);
    /// <summary>
    /// Lightning-indexer scores of block L (DeepSeek-V3.2) [batch, query, key] before the top-k selection, −∞ at future
    /// keys; replace to steer which keys MLA attends to.
    /// </summary>
    public static string IndexerScores(int layer) => Block(layer, IndexerScoresSuffix);
    /// <summary>Keys the lightning indexer of block L selected (DeepSeek-V3.2) [batch, query, key] (bool; true = attended).</summary>
    public static string IndexerTopk(int layer) => Block(layer, IndexerTopkSuffix);
    /// <summary>Attention probabilities of block L after softmax [batch, heads, query, key].</summary>
    public static string AttnPattern(int layer) => Block(layer, AttnPatternSuffix);
    /// <summary>Attention output of block L after <c>wo</c> [batch, seq, dim].</summary>
    public static string AttnOut(int layer) => Block(layer, AttnOutSuffix);
    /// <summary>Residual stream between attention and FFN of block L [batch, seq, dim].</summary>
    public static string ResidMid(int layer) => Block(layer, ResidMidSuffix);
    /// <summary>FFN output of block L (dense MLP or MoE: routed + shared) [batch, seq, dim].</summary>
    public static string MlpOut(int layer) => Block(layer, MlpOutSuffix);
    /// <summary>Residual stream after block L [batch, seq, dim] (the golden files' <c>hidden.L</c>).</summary>
    public static string ResidPost(int layer) => Block(layer, ResidPostSuffix);
    /// <summary>Gate scores of MoE block L: softmax or sigmoid of x·Wgᵀ, before bias [tokens, experts].</summary>
    public static string RouterScores(int layer) => Block(layer, RouterSuffix);
    /// <summary>Scores used for expert selection (router scores + selection bias) before group masking [tokens, experts]; replace to ablate experts.</summary>
    public static string SelectionScores(int layer) => Block(layer, SelectionSuffix);
    /// <summary>Selected experts per token in top-k order [tokens, k] (int64).</summary>
    public static string ExpertIndices(int layer) => Block(layer, IndicesSuffix);
    /// <summary>Routing weights of the selected experts, after normalisation and scaling [tokens, k].</summary>
    public static string ExpertWeights(int layer) => Block(layer, WeightsSuffix);
    /// <summary>Output of the shared experts of block L [tokens, dim].</summary>
    public static string SharedExpertsOut(int layer) => Block(layer, SharedOutSuffix);

    private static string Block(int layer, string suffix) => $"blocks.{layer}.{suffix}";

    private static readonly string[] EveryBlock = { ResidPreSuffix, AttnPatternSuffix, AttnOutSuffix, ResidMidSuffix };
    private static readonly string[] IndexerBlock = { IndexerScoresSuffix, IndexerTopkSuffix };

    private static readonly string[] MlaHeadBlock = { AttnQNopeSuffix, AttnQRopeSuffix, AttnKRopeSuffix, AttnKvLatentSuffix, AttnKNopeSuffix, AttnVSuffix };

    /// <summary>The per-block points before the FFN, in forward order (MLA's queries/keys/latent, the indexer's, attn.pattern, attn.z).</summary>
    private static IEnumerable<string> AttentionSuffixes(DeepSeekConfig config)
    {
        yield return ResidPreSuffix;
        foreach (var s in MlaHeadBlock) yield return s;
        if (config.Indexer is not null)
            foreach (var s in IndexerBlock) yield return s;
        foreach (var s in EveryBlock.Skip(1))
        {
            yield return s;
            if (s == AttnPatternSuffix) yield return AttnZSuffix;
        }
    }
    private static readonly string[] EveryBlockAfterFfn = { MlpOutSuffix, ResidPostSuffix };
    private static readonly string[] MoeBlock = { RouterSuffix, SelectionSuffix, IndicesSuffix, WeightsSuffix };

    private static IEnumerable<string> SuffixesOf(DeepSeekConfig config, int layer)
    {
        if (IsV4(config))
        {
            foreach (var s in V4SuffixesOf(config, layer)) yield return s;
            yield break;
        }
        foreach (var s in AttentionSuffixes(config)) yield return s;
        if (config.IsMoeLayer(layer))
        {
            foreach (var s in MoeBlock) yield return s;
            if (config.NSharedExperts > 0) yield return SharedOutSuffix;
        }
        foreach (var s in EveryBlockAfterFfn) yield return s;
    }

    /// <summary>
    /// Every hook point a model of this configuration offers, in forward order: <c>embed</c>, then per block
    /// <c>resid_pre</c>, MLA's <c>attn.q_nope, attn.q_rope, attn.k_rope, attn.kv_latent, attn.k_nope, attn.v</c>, with a
    /// lightning indexer (DeepSeek-V3.2) <c>attn.indexer.scores, attn.indexer.topk</c>, then
    /// <c>attn.pattern, attn.z, attn.out, resid_mid</c>, on MoE blocks <c>moe.router, moe.selection, moe.indices,
    /// moe.weights</c> (and <c>moe.shared_out</c> with shared experts), <c>mlp.out, resid_post</c>; then <c>ln_final</c>, <c>logits</c>.
    /// </summary>
    public static IReadOnlyList<string> All(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var names = new List<string> { Embed };
        for (int l = 0; l < config.NumHiddenLayers; l++)
            foreach (var s in SuffixesOf(config, l)) names.Add(Block(l, s));
        if (config.HyperConnections is not null) names.AddRange(HcHeadPoints);
        names.Add(FinalNorm);
        names.Add(Logits);
        return names;
    }

    /// <summary>Whether <paramref name="name"/> is a hook point of a model of this configuration (exact, case-sensitive).</summary>
    public static bool Exists(string name, DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (name is Embed or FinalNorm or Logits) return true;
        if (config.HyperConnections is not null && Array.IndexOf(HcHeadPoints, name) >= 0) return true;
        if (!TryParseBlock(name, out int layer, out var suffix) || layer >= config.NumHiddenLayers) return false;
        return SuffixesOf(config, layer).Contains(suffix);
    }

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> unless <paramref name="name"/> is a hook point of a model of this
    /// configuration; the message says why (no such block, MoE point on a dense block, misspelling), lists the closest
    /// valid names and the name patterns the model offers (or every name when there are few).
    /// </summary>
    public static void Validate(string name, DeepSeekConfig config, string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (name is not null && Exists(name, config)) return;
        throw new ArgumentException(UnknownNameMessage(name, config), paramName);
    }

    internal static string UnknownNameMessage(string? name, DeepSeekConfig config)
    {
        var all = All(config);
        var sb = new StringBuilder($"'{name}' is not a hook point of this model");
        if (name is not null && TryParseBlock(name, out int layer, out var suffix))
        {
            if (layer >= config.NumHiddenLayers)
                sb.Append($": the model has blocks 0..{config.NumHiddenLayers - 1}");
            else if (IsV4(config) && V4Why(config, layer, suffix) is { } why)
                sb.Append(why);
            else if (Array.IndexOf(IndexerBlock, suffix) >= 0 && config.Indexer is null)
                sb.Append(": the model has no lightning indexer (a DeepSeek-V3.2 feature: index_n_heads, index_head_dim, index_topk)");
            else if (Array.IndexOf(MoeBlock, suffix) >= 0 || suffix == SharedOutSuffix)
            {
                var moe = MoeLayers(config);
                sb.Append(!config.IsMoeLayer(layer)
                    ? $": block {layer} is a dense block (MoE hook points exist on {(moe.Count == 0 ? "no block: the model has no MoE layers" : "blocks " + Ranges(moe))})"
                    : ": the model has no shared experts (n_shared_experts = 0)");
            }
        }
        if (name is not null)
        {
            var close = all.Select(n => (n, d: EditDistance(name, n))).Where(t => t.d <= Math.Max(2, name.Length / 4))
                .OrderBy(t => t.d).ThenBy(t => t.n, StringComparer.Ordinal).Take(5).Select(t => t.n).ToList();
            if (close.Count > 0) sb.Append($". Did you mean {string.Join(", ", close.Select(n => $"'{n}'"))}?");
            else sb.Append('.');
        }
        sb.Append(all.Count <= 64
            ? $" Valid names: {string.Join(", ", all)}"
            : $" Valid names ({all.Count}): {string.Join(", ", Patterns(config))}");
        return sb.ToString();
    }

    /// <summary>
    /// The hook points of this configuration as compact patterns, e.g. <c>blocks.{0..60}.resid_pre</c>,
    /// <c>blocks.{3..60}.moe.router</c> (what <see cref="All"/> holds, readable for a 61-block model).
    /// </summary>
    public static IReadOnlyList<string> Patterns(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (IsV4(config)) return V4Patterns(config);
        var every = Enumerable.Range(0, config.NumHiddenLayers).ToList();
        var moe = MoeLayers(config);
        var patterns = new List<string> { Embed };
        patterns.AddRange(AttentionSuffixes(config).Select(s => $"blocks.{{{Ranges(every)}}}.{s}"));
        if (moe.Count > 0)
        {
            patterns.AddRange(MoeBlock.Select(s => $"blocks.{{{Ranges(moe)}}}.{s}"));
            if (config.NSharedExperts > 0) patterns.Add($"blocks.{{{Ranges(moe)}}}.{SharedOutSuffix}");
        }
        patterns.AddRange(EveryBlockAfterFfn.Select(s => $"blocks.{{{Ranges(every)}}}.{s}"));
        patterns.Add(FinalNorm);
        patterns.Add(Logits);
        return patterns;
    }

    private static List<int> MoeLayers(DeepSeekConfig c) => Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsMoeLayer).ToList();

    /// <summary>"0..2,4,6..8" for [0,1,2,4,6,7,8].</summary>
    private static string Ranges(IReadOnlyList<int> xs)
    {
        var parts = new List<string>();
        for (int i = 0; i < xs.Count;)
        {
            int j = i;
            while (j + 1 < xs.Count && xs[j + 1] == xs[j] + 1) j++;
            parts.Add(j == i ? $"{xs[i]}" : $"{xs[i]}..{xs[j]}");
            i = j + 1;
        }
        return string.Join(",", parts);
    }

    /// <summary>Splits "blocks.{L}.{suffix}" (L a non-negative decimal without leading zeros).</summary>
    internal static bool TryParseBlock(string name, out int layer, out string suffix)
    {
        layer = -1;
        suffix = "";
        const string prefix = "blocks.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return false;
        int dot = name.IndexOf('.', prefix.Length);
        if (dot < 0) return false;
        var digits = name.AsSpan(prefix.Length, dot - prefix.Length);
        if (digits.Length == 0 || (digits.Length > 1 && digits[0] == '0')) return false;
        foreach (var ch in digits) if (ch is < '0' or > '9') return false;
        if (!int.TryParse(digits, out layer)) return false;
        suffix = name[(dot + 1)..];
        return true;
    }

    private static int EditDistance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
