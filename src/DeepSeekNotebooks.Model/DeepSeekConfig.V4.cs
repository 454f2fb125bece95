using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DeepSeekNotebooks.Model;

/// <summary>What a block's attention sub-layer is (the "attention kind" variant of a block).</summary>
public enum AttentionKind
{
    /// <summary>Multi-head Latent Attention over every earlier token (DeepSeek-V2/V3).</summary>
    Mla,
    /// <summary>MLA restricted to the keys a lightning indexer selects (DeepSeek-V3.2, DeepSeek Sparse Attention).</summary>
    MlaWithIndexer,
    /// <summary>DeepSeek-V4 sliding-window attention over one shared key = value head with learnable sinks (<c>compress_ratio</c> 0).</summary>
    SlidingWindow,
    /// <summary>DeepSeek-V4 compressed sparse attention (CSA, <c>compress_ratio</c> 4): window + indexer-selected compressed entries of overlapping windows.</summary>
    CompressedSparse,
    /// <summary>DeepSeek-V4 heavily compressed attention (HCA, any other <c>compress_ratio</c>): window + every completed compressed entry.</summary>
    HeavilyCompressed,
}

/// <summary>
/// DeepSeek-V4's attention (the <c>Attention</c> of the official V4 <c>inference/model.py</c>): <see cref="HeadDim"/>-wide
/// query heads over one shared key = value head, a sliding window of <see cref="SlidingWindow"/> raw tokens plus, per
/// layer, compressed entries pooling <see cref="CompressRatios"/>[layer] tokens each, a learnable sink per head, inverse
/// RoPE on the output and a grouped low-rank output projection (<c>wo_a</c> per group of heads, then <c>wo_b</c>).
/// </summary>
public sealed record CompressedAttentionConfig
{
    /// <summary><c>head_dim</c>: size of a query head and of the shared key = value head, rope part last (V4-Flash: 512).</summary>
    public required int HeadDim { get; init; }
    /// <summary><c>o_groups</c>: groups of heads sharing one low-rank output projection <c>wo_a</c> (V4-Flash: 8).</summary>
    public required int OGroups { get; init; }
    /// <summary><c>o_lora_rank</c>: rank of each group's output projection (V4-Flash: 1024).</summary>
    public required int OLoraRank { get; init; }
    /// <summary><c>sliding_window</c> (official <c>window_size</c>): raw tokens each query sees, itself included (V4-Flash: 128).</summary>
    public required int SlidingWindow { get; init; }
    /// <summary>
    /// <c>compress_ratios</c>: per block (then one entry per multi-token-prediction layer, as the checkpoints ship it),
    /// 0 = sliding window only, 4 = CSA (overlapping windows, indexer), anything else = HCA.
    /// </summary>
    public required IReadOnlyList<int> CompressRatios { get; init; }
    /// <summary><c>compress_rope_theta</c>: RoPE base of the compressed (CSA/HCA) layers (V4-Flash: 160000).</summary>
    public double CompressRopeTheta { get; init; } = 160000;

    public bool Equals(CompressedAttentionConfig? other) =>
        other is not null && HeadDim == other.HeadDim && OGroups == other.OGroups && OLoraRank == other.OLoraRank
        && SlidingWindow == other.SlidingWindow && CompressRatios.SequenceEqual(other.CompressRatios) && CompressRopeTheta.Equals(other.CompressRopeTheta);

    public override int GetHashCode() => HashCode.Combine(HeadDim, OGroups, OLoraRank, SlidingWindow, CompressRatios.Count, CompressRopeTheta);
}

/// <summary>
/// Manifold-constrained hyper-connections (mHC, DeepSeek-V4): the residual stream is <see cref="Mult"/> streams; each
/// sub-layer reads a mix of them (<c>pre</c>), writes its output into each (<c>post</c>) and mixes the streams with a
/// doubly-stochastic matrix (<c>comb</c>) from <see cref="SinkhornIters"/> Sinkhorn iterations (official <c>hc_pre</c>/<c>hc_post</c>).
/// </summary>
public sealed record HyperConnectionConfig
{
    /// <summary><c>hc_mult</c>: number of residual streams (V4: 4).</summary>
    public required int Mult { get; init; }
    /// <summary><c>hc_sinkhorn_iters</c>: Sinkhorn normalisations of the mixing matrix (V4: 20).</summary>
    public int SinkhornIters { get; init; } = 20;
    /// <summary><c>hc_eps</c>: added to pre weights and inside the Sinkhorn normalisations (V4: 1e-6).</summary>
    public double Eps { get; init; } = 1e-6;
}

public sealed partial record DeepSeekConfig
{
    /// <summary>DeepSeek-V4 attention (window / CSA / HCA over a shared key = value head with sinks); null for MLA (V2/V3/V3.2).</summary>
    public CompressedAttentionConfig? CompressedAttention { get; init; }
    /// <summary>Hyper-connection residual streams (DeepSeek-V4 mHC); null for the single residual stream.</summary>
    public HyperConnectionConfig? HyperConnections { get; init; }
    /// <summary>
    /// <c>num_hash_layers</c> (official <c>n_hash_layers</c>): the first blocks route by a fixed table <c>tid2eid</c>
    /// [vocab, k] of the token id instead of by score (DeepSeek-V4: 3); their gates have no selection bias.
    /// </summary>
    public int NumHashLayers { get; init; }
    /// <summary><c>swiglu_limit</c>: SwiGLU clamp, gate ≤ L and |up| ≤ L, of routed and shared experts (DeepSeek-V4: 10); 0 = none.</summary>
    public double SwigluLimit { get; init; }
    /// <summary><c>expert_dtype</c>: <c>"fp4"</c> when routed experts are stored as packed FP4 (e2m1) with ue8m0 scales per 32 inputs; null otherwise.</summary>
    public string? ExpertDtype { get; init; }

    /// <summary>The attention kind of block <paramref name="layer"/>.</summary>
    public AttentionKind AttentionKindOf(int layer)
    {
        if (CompressedAttention is null) return Indexer is null ? AttentionKind.Mla : AttentionKind.MlaWithIndexer;
        return CompressRatio(layer) switch { 0 => AttentionKind.SlidingWindow, 4 => AttentionKind.CompressedSparse, _ => AttentionKind.HeavilyCompressed };
    }

    /// <summary>The compress ratio of block <paramref name="layer"/> (0 without V4 attention or for a sliding-window block).</summary>
    public int CompressRatio(int layer) => CompressedAttention is { } a ? a.CompressRatios[layer] : 0;

    /// <summary>Whether MoE block <paramref name="layer"/> routes by the token-id table <c>tid2eid</c> (DeepSeek-V4's first <c>num_hash_layers</c>).</summary>
    public bool IsHashLayer(int layer) => layer < NumHashLayers && IsMoeLayer(layer);

    private void ValidateV4()
    {
        if (CompressedAttention is { } a)
        {
            if (a.HeadDim <= QkRopeHeadDim || (a.HeadDim - QkRopeHeadDim) % 64 != 0)
                throw new ConfigException("head_dim",
                    $"must be qk_rope_head_dim ({QkRopeHeadDim}) plus a positive multiple of 64 (the official FP8 simulation rounds the non-rope part in blocks of 64), got {a.HeadDim}");
            if (a.OGroups <= 0 || NumAttentionHeads % a.OGroups != 0)
                throw new ConfigException("o_groups", $"must be a positive divisor of num_attention_heads ({NumAttentionHeads}), got {a.OGroups}");
            Positive(a.OLoraRank, "o_lora_rank");
            Positive(a.SlidingWindow, "sliding_window");
            if (!(a.CompressRopeTheta > 0) || double.IsInfinity(a.CompressRopeTheta))
                throw new ConfigException("compress_rope_theta", $"must be a positive finite number, got {a.CompressRopeTheta}");
            int expected = NumHiddenLayers + NumNextnPredictLayers;
            if (a.CompressRatios.Count != expected)
                throw new ConfigException("compress_ratios",
                    $"must have one entry per layer plus one per MTP layer (num_hidden_layers {NumHiddenLayers} + num_nextn_predict_layers {NumNextnPredictLayers} = {expected}), got {a.CompressRatios.Count}");
            for (int i = 0; i < a.CompressRatios.Count; i++)
                if (a.CompressRatios[i] is < 0 or 1)
                    throw new ConfigException($"compress_ratios[{i}]", $"must be 0 (sliding window only), 4 (CSA) or another ratio >= 2 (HCA), got {a.CompressRatios[i]}");
            if (QLoraRank is null)
                throw new ConfigException("q_lora_rank", "is required for DeepSeek-V4 attention (queries come from the q_lora_rank latent)");
            int csa = Enumerable.Range(0, NumHiddenLayers).FirstOrDefault(l => a.CompressRatios[l] == 4, -1);
            if (csa >= 0 && Indexer is null)
                throw new ConfigException("index_n_heads", $"is required: layer {csa} is compressed sparse attention (compress ratio 4), whose entries a lightning indexer selects (give index_n_heads, index_head_dim, index_topk)");
        }
        if (HyperConnections is { } hc)
        {
            Positive(hc.Mult, "hc_mult");
            Positive(hc.SinkhornIters, "hc_sinkhorn_iters");
            if (!(hc.Eps >= 0) || double.IsInfinity(hc.Eps)) throw new ConfigException("hc_eps", $"must be a finite number >= 0, got {hc.Eps}");
        }
        if (NumHashLayers < 0 || NumHashLayers > NumHiddenLayers)
            throw new ConfigException("num_hash_layers", $"must be between 0 and num_hidden_layers ({NumHiddenLayers}), got {NumHashLayers}");
        if (NumHashLayers > 0 && NRoutedExperts == 0)
            throw new ConfigException("num_hash_layers", "needs routed experts (n_routed_experts > 0): hash layers route tokens to experts by token id");
        if (!(SwigluLimit >= 0) || double.IsInfinity(SwigluLimit))
            throw new ConfigException("swiglu_limit", $"must be a finite number >= 0 (0 = no clamp), got {SwigluLimit}");
        if (ExpertDtype is not null and not "fp4")
            throw new ConfigException("expert_dtype", $"must be null or \"fp4\", got \"{ExpertDtype}\"");
    }

    // ------------------------------------------------------------------ DeepSeek-V4 Hugging Face config.json

    private const string V4Architecture = "DeepseekV4ForCausalLM", V4ModelType = "deepseek_v4";

    /// <summary>Fields a V4 <c>config.json</c> may carry that carry no architecture the model uses (kept in <see cref="ExtraFields"/>).</summary>
    private static readonly string[] V4ConsumedFields =
    {
        "vocab_size", "hidden_size", "moe_intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "head_dim", "q_lora_rank", "qk_rope_head_dim", "partial_rotary_factor", "num_experts_per_tok", "n_routed_experts",
        "n_shared_experts", "scoring_func", "topk_method", "norm_topk_prob", "routed_scaling_factor", "n_group", "topk_group",
        "max_position_embeddings", "rope_theta", "rope_scaling", "rope_parameters", "layer_types", "compress_rates",
        "compress_ratios", "compress_rope_theta", "hc_mult", "hc_sinkhorn_iters", "hc_eps", "mlp_layer_types", "num_hash_layers",
        "swiglu_limit", "sliding_window", "o_groups", "o_lora_rank", "index_n_heads", "index_head_dim", "index_topk",
        "num_nextn_predict_layers", "rms_norm_eps", "tie_word_embeddings", "quantization_config", "torch_dtype", "expert_dtype",
    };

    private static bool IsV4HfFile(JsonObject o) =>
        (o["model_type"] is JsonValue v && v.TryGetValue<string>(out var t) && t == V4ModelType)
        || (o["architectures"] is JsonArray arr && arr.Any(n => n is JsonValue a && a.TryGetValue<string>(out var s) && s == V4Architecture));

    /// <summary>
    /// A DeepSeek-V4 <c>config.json</c>, in either of its two forms: the one shipped with the checkpoints
    /// (<c>compress_ratios</c>, one entry more than layers for the MTP layer; <c>num_hash_layers</c>; <c>rope_theta</c>,
    /// <c>compress_rope_theta</c>, <c>rope_scaling</c>) or transformers' <c>DeepseekV4Config</c> serialisation
    /// (<c>layer_types</c> + <c>compress_rates</c>, <c>mlp_layer_types</c>, <c>rope_parameters</c> {main, compress}).
    /// When a file has both spellings of a quantity they must agree.
    /// </summary>
    private static DeepSeekConfig FromV4Json(JsonObject o)
    {
        string[] required = { "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim", "qk_rope_head_dim",
            "q_lora_rank", "o_groups", "o_lora_rank", "sliding_window", "hc_mult", "moe_intermediate_size", "n_routed_experts", "num_experts_per_tok" };
        foreach (var f in required)
            if (o[f] is null) throw new ConfigException(f, "is required in a DeepSeek-V4 config.json but missing");
        if (o["architectures"] is { } archNode)
        {
            if (archNode is not JsonArray arr || !arr.Any(n => n is JsonValue a && a.TryGetValue<string>(out var s) && s == V4Architecture))
                throw new ConfigException("architectures", $"must contain {V4Architecture} for model_type \"{V4ModelType}\", got {archNode.ToJsonString()}");
        }
        if (OptString(o, "model_type") is { } mt && mt != V4ModelType)
            throw new ConfigException("model_type", $"must be \"{V4ModelType}\" with architecture {V4Architecture}, got \"{mt}\"");
        if (OptString(o, "hidden_act") is { } act && act != "silu")
            throw new ConfigException("hidden_act", $"must be \"silu\" (DeepSeek's SwiGLU experts), got \"{act}\"");
        if (OptInt(o, "num_key_value_heads") is { } kvh && kvh != 1)
            throw new ConfigException("num_key_value_heads", $"must be 1: DeepSeek-V4 attention has one shared key = value head, got {kvh}");
        if (OptString(o, "topk_method") is { } tm && tm != "noaux_tc")
            throw new ConfigException("topk_method", $"must be \"noaux_tc\" (DeepSeek-V4's non-hash gates add a selection bias), got \"{tm}\"");
        if (OptInt(o, "n_group") is { } ng && ng != 1) throw new ConfigException("n_group", $"must be 1 (DeepSeek-V4 routes without expert groups), got {ng}");
        if (OptInt(o, "topk_group") is { } tg && tg != 1) throw new ConfigException("topk_group", $"must be 1 (DeepSeek-V4 routes without expert groups), got {tg}");

        int layers = Int(o, "num_hidden_layers");
        int mtp = OptInt(o, "num_nextn_predict_layers") ?? 0;
        int headDim = Int(o, "head_dim"), rope = Int(o, "qk_rope_head_dim");
        if (o["partial_rotary_factor"] is not null)
        {
            double prf = OptDouble(o, "partial_rotary_factor")!.Value;
            if (Math.Abs(prf * headDim - rope) > 1e-6)
                throw new ConfigException("partial_rotary_factor", $"must be qk_rope_head_dim / head_dim = {rope}/{headDim} = {(double)rope / headDim:R}, got {prf:R}");
        }
        var ratios = ParseV4CompressRatios(o, layers, mtp);
        int hashLayers = ParseV4HashLayers(o, layers);
        var (ropeTheta, compressTheta, yarn) = ParseV4Rope(o, headDim, rope);

        var extra = new JsonObject();
        foreach (var (k, v) in o)
            if (Array.IndexOf(V4ConsumedFields, k) < 0) extra[k] = v?.DeepClone();
        var moeInter = Int(o, "moe_intermediate_size");
        var score = OptString(o, "scoring_func") is { } sf ? ConfigSpellings.ParseScoringFunc(sf) : ScoringFunc.SqrtSoftplus;
        var cfg = new DeepSeekConfig
        {
            VocabSize = Int(o, "vocab_size"),
            HiddenSize = Int(o, "hidden_size"),
            // V4 has no dense blocks, no KV latent and one value width: the MLA shape fields are derived (see V4 remarks).
            IntermediateSize = moeInter,
            MoeIntermediateSize = moeInter,
            NumHiddenLayers = layers,
            FirstKDenseReplace = 0,
            NumAttentionHeads = Int(o, "num_attention_heads"),
            NRoutedExperts = Int(o, "n_routed_experts"),
            NSharedExperts = OptInt(o, "n_shared_experts") ?? 1,
            NumExpertsPerTok = Int(o, "num_experts_per_tok"),
            ScoringFunc = score,
            TopkMethod = TopkMethod.NoauxTc,
            NormTopkProb = OptBool(o, "norm_topk_prob") ?? true,
            RoutedScalingFactor = OptDouble(o, "routed_scaling_factor") ?? Absent.RoutedScalingFactor,
            QLoraRank = Int(o, "q_lora_rank"),
            KvLoraRank = headDim,
            QkNopeHeadDim = headDim - rope,
            QkRopeHeadDim = rope,
            VHeadDim = headDim,
            RopeTheta = ropeTheta,
            RopeScaling = yarn,
            RmsNormEps = OptDouble(o, "rms_norm_eps") ?? Absent.RmsNormEps,
            MaxPositionEmbeddings = OptInt(o, "max_position_embeddings") ?? Absent.MaxPositionEmbeddings,
            TieWordEmbeddings = OptBool(o, "tie_word_embeddings") ?? false,
            NumNextnPredictLayers = mtp,
            Quantization = ParseQuantization(o["quantization_config"]),
            TorchDtype = OptString(o, "torch_dtype"),
            ScaleFmt = ParseScaleFmt(o["quantization_config"] is JsonObject qco ? qco["scale_fmt"] : null, "quantization_config.scale_fmt") ?? ScaleFormat.Float,
            Indexer = ParseV4Indexer(o, ratios, layers),
            CompressedAttention = new CompressedAttentionConfig
            {
                HeadDim = headDim, OGroups = Int(o, "o_groups"), OLoraRank = Int(o, "o_lora_rank"), SlidingWindow = Int(o, "sliding_window"),
                CompressRatios = ratios, CompressRopeTheta = compressTheta,
            },
            HyperConnections = new HyperConnectionConfig
            {
                Mult = Int(o, "hc_mult"), SinkhornIters = OptInt(o, "hc_sinkhorn_iters") ?? 20, Eps = OptDouble(o, "hc_eps") ?? 1e-6,
            },
            NumHashLayers = hashLayers,
            SwigluLimit = OptDouble(o, "swiglu_limit") ?? 0,
            ExpertDtype = OptString(o, "expert_dtype"),
            ExtraFields = extra,
        };
        return cfg.Validate();
    }

    /// <summary>
    /// <c>compress_ratios</c> (shipped form) and/or <c>layer_types</c> + <c>compress_rates</c> (transformers form); the
    /// transformers form has no MTP entries, so those are taken as 0 (MTP layers are not run by the kit).
    /// </summary>
    private static IReadOnlyList<int> ParseV4CompressRatios(JsonObject o, int layers, int mtp)
    {
        int[]? shipped = null;
        if (o["compress_ratios"] is { } cr)
        {
            shipped = IntArray(cr, "compress_ratios");
            if (shipped.Length != layers + mtp)
                throw new ConfigException("compress_ratios",
                    $"must have num_hidden_layers + num_nextn_predict_layers = {layers} + {mtp} = {layers + mtp} entries (one per layer, then one per MTP layer), got {shipped.Length}");
        }
        int[]? typed = null;
        if (o["layer_types"] is { } lt)
        {
            if (lt is not JsonArray arr || arr.Count != layers)
                throw new ConfigException("layer_types", $"must be an array of num_hidden_layers ({layers}) layer type names, got {lt.ToJsonString()}");
            var rates = o["compress_rates"] as JsonObject;
            if (o["compress_rates"] is not null && rates is null)
                throw new ConfigException("compress_rates", $"must be an object {{layer type: ratio}}, got {o["compress_rates"]!.ToJsonString()}");
            typed = new int[layers + mtp];
            for (int i = 0; i < layers; i++)
            {
                var name = arr[i] is JsonValue v && v.TryGetValue<string>(out var s) ? s
                    : throw new ConfigException($"layer_types[{i}]", $"must be a string, got {arr[i]?.ToJsonString() ?? "null"}");
                typed[i] = name switch
                {
                    "sliding_attention" => 0,
                    "compressed_sparse_attention" or "heavily_compressed_attention" =>
                        rates is not null && OptInt(rates, name, "compress_rates.") is { } r ? r
                        : throw new ConfigException($"compress_rates.{name}", $"is required: layer {i} is \"{name}\""),
                    _ => throw new ConfigException($"layer_types[{i}]",
                        $"must be \"sliding_attention\", \"compressed_sparse_attention\" or \"heavily_compressed_attention\", got \"{name}\""),
                };
                if (name == "compressed_sparse_attention" && typed[i] != 4)
                    throw new ConfigException("compress_rates.compressed_sparse_attention", $"must be 4 (the official code overlaps windows and runs the indexer exactly at ratio 4), got {typed[i]}");
                if (name == "heavily_compressed_attention" && typed[i] is 4 or < 2)
                    throw new ConfigException("compress_rates.heavily_compressed_attention", $"must be a ratio >= 2 other than 4 (ratio 4 is CSA in the official code), got {typed[i]}");
            }
        }
        if (shipped is not null && typed is not null && !shipped.AsSpan(0, layers).SequenceEqual(typed.AsSpan(0, layers)))
            throw new ConfigException("compress_ratios", $"[{string.Join(", ", shipped)}] disagrees with layer_types/compress_rates ([{string.Join(", ", typed[..layers])}])");
        return shipped ?? typed ?? throw new ConfigException("compress_ratios", "is required in a DeepSeek-V4 config.json (or layer_types with compress_rates)");
    }

    /// <summary><c>num_hash_layers</c> and/or <c>mlp_layer_types</c> ("hash_moe" for the first layers, then "moe").</summary>
    private static int ParseV4HashLayers(JsonObject o, int layers)
    {
        int? count = OptInt(o, "num_hash_layers");
        if (o["mlp_layer_types"] is { } mlt)
        {
            if (mlt is not JsonArray arr || arr.Count != layers)
                throw new ConfigException("mlp_layer_types", $"must be an array of num_hidden_layers ({layers}) names, got {mlt.ToJsonString()}");
            int hashes = 0;
            for (int i = 0; i < layers; i++)
            {
                var name = arr[i] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
                if (name == "hash_moe")
                {
                    if (hashes != i) throw new ConfigException($"mlp_layer_types[{i}]", "is \"hash_moe\" after a \"moe\" layer: hash-routed layers must be the first layers (the official code hashes layers < n_hash_layers)");
                    hashes++;
                }
                else if (name != "moe")
                    throw new ConfigException($"mlp_layer_types[{i}]", $"must be \"hash_moe\" or \"moe\", got {arr[i]?.ToJsonString() ?? "null"}");
            }
            if (count is { } c && c != hashes)
                throw new ConfigException("num_hash_layers", $"is {c} but mlp_layer_types has {hashes} \"hash_moe\" layer(s)");
            return hashes;
        }
        return count ?? 0;
    }

    /// <summary>Main (sliding) and compressed RoPE bases, and YaRN of the compressed layers.</summary>
    private static (double Main, double Compress, RopeScaling? Yarn) ParseV4Rope(JsonObject o, int headDim, int rope)
    {
        double? theta = OptDouble(o, "rope_theta"), compressTheta = OptDouble(o, "compress_rope_theta");
        var yarn = ParseRopeScaling(o["rope_scaling"]);
        if (o["rope_parameters"] is { } rpNode)
        {
            if (rpNode is not JsonObject rp || rp["main"] is not JsonObject main || rp["compress"] is not JsonObject comp)
                throw new ConfigException("rope_parameters", $"must be an object with \"main\" and \"compress\" entries, got {rpNode.ToJsonString()}");
            double Theta(JsonObject p, string which) =>
                OptDouble(p, "rope_theta", $"rope_parameters.{which}.") ?? throw new ConfigException($"rope_parameters.{which}.rope_theta", "is required");
            foreach (var (p, which) in new[] { (main, "main"), (comp, "compress") })
                if (OptDouble(p, "partial_rotary_factor", $"rope_parameters.{which}.") is { } f && Math.Abs(f * headDim - rope) > 1e-6)
                    throw new ConfigException($"rope_parameters.{which}.partial_rotary_factor", $"must be qk_rope_head_dim / head_dim = {rope}/{headDim}, got {f:R}");
            var mainType = OptString(main, "rope_type", "rope_parameters.main.") ?? "default";
            if (mainType != "default")
                throw new ConfigException("rope_parameters.main.rope_type", $"must be \"default\": the official code never applies YaRN to sliding-window layers, got \"{mainType}\"");
            double m = Theta(main, "main"), c = Theta(comp, "compress");
            if (theta is { } t && t != m) throw new ConfigException("rope_theta", $"is {t:R} but rope_parameters.main.rope_theta is {m:R}");
            if (compressTheta is { } ct && ct != c) throw new ConfigException("compress_rope_theta", $"is {ct:R} but rope_parameters.compress.rope_theta is {c:R}");
            var compType = OptString(comp, "rope_type", "rope_parameters.compress.") ?? "default";
            RopeScaling? compYarn = compType switch
            {
                "default" => null,
                "yarn" => new RopeScaling
                {
                    Factor = OptDouble(comp, "factor", "rope_parameters.compress.") ?? throw new ConfigException("rope_parameters.compress.factor", "is required for YaRN"),
                    OriginalMaxPositionEmbeddings = OptInt(comp, "original_max_position_embeddings", "rope_parameters.compress.")
                        ?? throw new ConfigException("rope_parameters.compress.original_max_position_embeddings", "is required for YaRN"),
                    BetaFast = OptDouble(comp, "beta_fast", "rope_parameters.compress.") ?? 32,
                    BetaSlow = OptDouble(comp, "beta_slow", "rope_parameters.compress.") ?? 1,
                },
                _ => throw new ConfigException("rope_parameters.compress.rope_type", $"must be \"default\" or \"yarn\", got \"{compType}\""),
            };
            if (yarn is not null && compYarn is not null && yarn != compYarn)
                throw new ConfigException("rope_scaling", "disagrees with rope_parameters.compress (factor, original_max_position_embeddings, beta_fast, beta_slow)");
            return (m, c, compYarn ?? yarn);
        }
        return (theta ?? 10000, compressTheta ?? 160000, yarn);
    }

    /// <summary>The index fields: all three or none; required when a layer is CSA (ratio 4).</summary>
    private static LightningIndexerConfig? ParseV4Indexer(JsonObject o, IReadOnlyList<int> ratios, int layers)
    {
        string[] fields = { "index_n_heads", "index_head_dim", "index_topk" };
        var present = fields.Where(f => o[f] is not null).ToArray();
        if (present.Length == 0) return null;  // ValidateV4 says so if a CSA layer needs it
        var missing = fields.FirstOrDefault(f => o[f] is null);
        if (missing is not null)
            throw new ConfigException(missing, "is required with the other index_* fields (a lightning indexer needs index_n_heads, index_head_dim and index_topk)");
        return new LightningIndexerConfig { NHeads = Int(o, "index_n_heads"), HeadDim = Int(o, "index_head_dim"), Topk = Int(o, "index_topk") };
    }

    private static int[] IntArray(JsonNode node, string field)
    {
        if (node is not JsonArray arr) throw new ConfigException(field, $"must be an array of integers, got {node.ToJsonString()}");
        var result = new int[arr.Count];
        for (int i = 0; i < arr.Count; i++)
        {
            if (arr[i] is JsonValue v && v.TryGetValue<int>(out var x)) result[i] = x;
            else if (arr[i] is JsonValue d && d.TryGetValue<double>(out var y) && y == Math.Floor(y) && Math.Abs(y) <= int.MaxValue) result[i] = (int)y;
            else throw new ConfigException($"{field}[{i}]", $"must be an integer, got {arr[i]?.ToJsonString() ?? "null"}");
        }
        return result;
    }

    /// <summary>Writes a V4 configuration in the form shipped with the checkpoints (<c>compress_ratios</c>, <c>num_hash_layers</c>).</summary>
    private string ToV4Json()
    {
        var a = CompressedAttention!;
        var o = new JsonObject { ["architectures"] = new JsonArray(V4Architecture), ["model_type"] = V4ModelType };
        if (ExtraFields is not null)
            foreach (var (k, v) in ExtraFields) o[k] = v?.DeepClone();
        o["vocab_size"] = VocabSize;
        o["hidden_size"] = HiddenSize;
        o["moe_intermediate_size"] = MoeIntermediateSize;
        o["num_hidden_layers"] = NumHiddenLayers;
        o["num_attention_heads"] = NumAttentionHeads;
        o["num_key_value_heads"] = 1;
        o["head_dim"] = a.HeadDim;
        o["qk_rope_head_dim"] = QkRopeHeadDim;
        o["q_lora_rank"] = QLoraRank;
        o["o_groups"] = a.OGroups;
        o["o_lora_rank"] = a.OLoraRank;
        o["sliding_window"] = a.SlidingWindow;
        o["compress_ratios"] = new JsonArray(a.CompressRatios.Select(r => (JsonNode)r).ToArray());
        o["compress_rope_theta"] = a.CompressRopeTheta;
        o["rope_theta"] = RopeTheta;
        o["rope_scaling"] = RopeScaling is null ? null : new JsonObject
        {
            ["type"] = "yarn", ["factor"] = RopeScaling.Factor, ["original_max_position_embeddings"] = RopeScaling.OriginalMaxPositionEmbeddings,
            ["beta_fast"] = RopeScaling.BetaFast, ["beta_slow"] = RopeScaling.BetaSlow,
        };
        o["n_routed_experts"] = NRoutedExperts;
        o["n_shared_experts"] = NSharedExperts;
        o["num_experts_per_tok"] = NumExpertsPerTok;
        o["num_hash_layers"] = NumHashLayers;
        o["scoring_func"] = ScoringFunc.ToJsonName();
        o["topk_method"] = "noaux_tc";
        o["norm_topk_prob"] = NormTopkProb;
        o["routed_scaling_factor"] = RoutedScalingFactor;
        o["swiglu_limit"] = SwigluLimit;
        if (HyperConnections is { } hc)
        {
            o["hc_mult"] = hc.Mult;
            o["hc_sinkhorn_iters"] = hc.SinkhornIters;
            o["hc_eps"] = hc.Eps;
        }
        if (Indexer is { } ix)
        {
            o["index_n_heads"] = ix.NHeads;
            o["index_head_dim"] = ix.HeadDim;
            o["index_topk"] = ix.Topk;
        }
        o["rms_norm_eps"] = RmsNormEps;
        o["max_position_embeddings"] = MaxPositionEmbeddings;
        o["tie_word_embeddings"] = TieWordEmbeddings;
        o["num_nextn_predict_layers"] = NumNextnPredictLayers;
        if (Quantization is { } q)
        {
            var qo = new JsonObject { ["quant_method"] = q.QuantMethod };
            if (q.Fmt is not null) qo["fmt"] = q.Fmt;
            if (q.ActivationScheme is not null) qo["activation_scheme"] = q.ActivationScheme;
            if (ScaleFmt == ScaleFormat.Ue8m0) qo["scale_fmt"] = "ue8m0";
            qo["weight_block_size"] = new JsonArray(q.WeightBlockRows, q.WeightBlockColumns);
            o["quantization_config"] = qo;
        }
        if (TorchDtype is not null) o["torch_dtype"] = TorchDtype;
        if (ExpertDtype is not null) o["expert_dtype"] = ExpertDtype;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    // ------------------------------------------------------------------ DeepSeek-V4 official ModelArgs

    private static bool IsV4ModelArgs(JsonObject o) => o["hc_mult"] is not null || o["compress_ratios"] is not null || o["o_groups"] is not null;

    /// <summary>
    /// The official DeepSeek-V4 <c>ModelArgs</c> JSON (<c>inference/config.json</c>). Fields whose dataclass default the
    /// kit cannot vouch for are required; <c>n_mtp_layers</c>, when absent, is what <c>compress_ratios</c> holds beyond
    /// <c>n_layers</c>. Every non-hash gate has a selection bias; <c>original_seq_len</c> &gt; 0 turns on YaRN for the
    /// compressed layers.
    /// </summary>
    private static DeepSeekConfig FromV4ModelArgs(JsonObject o)
    {
        string[] required = { "vocab_size", "dim", "moe_inter_dim", "n_layers", "n_heads", "n_routed_experts", "n_activated_experts",
            "score_func", "route_scale", "q_lora_rank", "head_dim", "rope_head_dim", "o_groups", "o_lora_rank", "window_size",
            "compress_ratios", "compress_rope_theta", "hc_mult" };
        foreach (var f in required)
            if (o[f] is null) throw new ConfigException(f, "is required in a DeepSeek-V4 ModelArgs JSON (the kit does not assume its dataclass default)");
        int layers = Int(o, "n_layers");
        var ratios = IntArray(o["compress_ratios"]!, "compress_ratios");
        int mtp = OptInt(o, "n_mtp_layers") ?? ratios.Length - layers;
        if (mtp < 0 || ratios.Length != layers + mtp)
            throw new ConfigException("compress_ratios", $"must have n_layers + n_mtp_layers = {layers} + {Math.Max(mtp, 0)} entries, got {ratios.Length}");
        var dtype = OptString(o, "dtype");
        if (dtype is not null and not "bf16" and not "fp8")
            throw new ConfigException("dtype", $"must be \"bf16\" or \"fp8\", got \"{dtype}\"");
        int headDim = Int(o, "head_dim"), rope = Int(o, "rope_head_dim"), moeInter = Int(o, "moe_inter_dim");
        int original = OptInt(o, "original_seq_len") ?? 0;
        var score = ConfigSpellings.ParseScoringFunc(OptString(o, "score_func")!, "score_func");
        LightningIndexerConfig? indexer = o["index_n_heads"] is null && o["index_head_dim"] is null && o["index_topk"] is null ? null : new LightningIndexerConfig
        {
            NHeads = OptInt(o, "index_n_heads") ?? throw new ConfigException("index_n_heads", "is required with index_head_dim/index_topk"),
            HeadDim = OptInt(o, "index_head_dim") ?? throw new ConfigException("index_head_dim", "is required with index_n_heads/index_topk"),
            Topk = OptInt(o, "index_topk") ?? throw new ConfigException("index_topk", "is required with index_n_heads/index_head_dim"),
        };
        var cfg = new DeepSeekConfig
        {
            VocabSize = Int(o, "vocab_size"),
            HiddenSize = Int(o, "dim"),
            IntermediateSize = moeInter,
            MoeIntermediateSize = moeInter,
            NumHiddenLayers = layers,
            FirstKDenseReplace = 0,
            NumAttentionHeads = Int(o, "n_heads"),
            NRoutedExperts = Int(o, "n_routed_experts"),
            NSharedExperts = OptInt(o, "n_shared_experts") ?? 1,
            NumExpertsPerTok = Int(o, "n_activated_experts"),
            ScoringFunc = score,
            TopkMethod = TopkMethod.NoauxTc,
            NormTopkProb = score != ScoringFunc.Softmax,
            RoutedScalingFactor = OptDouble(o, "route_scale")!.Value,
            QLoraRank = Int(o, "q_lora_rank"),
            KvLoraRank = headDim,
            QkNopeHeadDim = headDim - rope,
            QkRopeHeadDim = rope,
            VHeadDim = headDim,
            RopeTheta = OptDouble(o, "rope_theta") ?? 10000,
            RopeScaling = original <= 0 ? null : new RopeScaling
            {
                Factor = OptDouble(o, "rope_factor") ?? 40,
                OriginalMaxPositionEmbeddings = original,
                BetaFast = OptDouble(o, "beta_fast") ?? 32,
                BetaSlow = OptDouble(o, "beta_slow") ?? 1,
            },
            RmsNormEps = OptDouble(o, "norm_eps") ?? 1e-6,
            MaxPositionEmbeddings = OptInt(o, "max_seq_len") ?? 4096 * 4,
            NumNextnPredictLayers = mtp,
            TorchDtype = dtype is null ? null : "bfloat16",
            Quantization = dtype == "fp8" ? new QuantizationConfig { Fmt = "e4m3", WeightBlockRows = 128, WeightBlockColumns = 128 } : null,
            ScaleFmt = ParseScaleFmt(o["scale_fmt"], "scale_fmt") ?? ScaleFormat.Float,
            Indexer = indexer,
            CompressedAttention = new CompressedAttentionConfig
            {
                HeadDim = headDim, OGroups = Int(o, "o_groups"), OLoraRank = Int(o, "o_lora_rank"), SlidingWindow = Int(o, "window_size"),
                CompressRatios = ratios, CompressRopeTheta = OptDouble(o, "compress_rope_theta")!.Value,
            },
            HyperConnections = new HyperConnectionConfig
            {
                Mult = Int(o, "hc_mult"), SinkhornIters = OptInt(o, "hc_sinkhorn_iters") ?? 20, Eps = OptDouble(o, "hc_eps") ?? 1e-6,
            },
            NumHashLayers = OptInt(o, "n_hash_layers") ?? 0,
            SwigluLimit = OptDouble(o, "swiglu_limit") ?? 0,
            ExpertDtype = OptString(o, "expert_dtype"),
        };
        try { return cfg.Validate(); }
        catch (ConfigException e) when (V4ModelArgsNames.TryGetValue(e.Field, out var name))
        {
            throw new ConfigException(name, e.Problem);
        }
    }

    private static readonly Dictionary<string, string> V4ModelArgsNames = new()
    {
        ["hidden_size"] = "dim", ["moe_intermediate_size"] = "moe_inter_dim", ["num_hidden_layers"] = "n_layers", ["num_attention_heads"] = "n_heads",
        ["num_experts_per_tok"] = "n_activated_experts", ["scoring_func"] = "score_func", ["routed_scaling_factor"] = "route_scale",
        ["max_position_embeddings"] = "max_seq_len", ["sliding_window"] = "window_size", ["num_hash_layers"] = "n_hash_layers",
        ["qk_rope_head_dim"] = "rope_head_dim", ["rms_norm_eps"] = "norm_eps", ["num_nextn_predict_layers"] = "n_mtp_layers",
    };

    /// <summary>Writes a V4 configuration as the official <c>ModelArgs</c> JSON.</summary>
    private string ToV4ModelArgsJson()
    {
        var a = CompressedAttention!;
        var o = new JsonObject
        {
            ["max_seq_len"] = MaxPositionEmbeddings, ["vocab_size"] = VocabSize, ["dim"] = HiddenSize, ["moe_inter_dim"] = MoeIntermediateSize,
            ["n_layers"] = NumHiddenLayers, ["n_hash_layers"] = NumHashLayers, ["n_mtp_layers"] = NumNextnPredictLayers, ["n_heads"] = NumAttentionHeads,
            ["n_routed_experts"] = NRoutedExperts, ["n_shared_experts"] = NSharedExperts, ["n_activated_experts"] = NumExpertsPerTok,
            ["score_func"] = ScoringFunc.ToJsonName(), ["route_scale"] = RoutedScalingFactor, ["swiglu_limit"] = SwigluLimit,
            ["q_lora_rank"] = QLoraRank, ["head_dim"] = a.HeadDim, ["rope_head_dim"] = QkRopeHeadDim, ["norm_eps"] = RmsNormEps,
            ["o_groups"] = a.OGroups, ["o_lora_rank"] = a.OLoraRank, ["window_size"] = a.SlidingWindow,
            ["compress_ratios"] = new JsonArray(a.CompressRatios.Select(r => (JsonNode)r).ToArray()), ["compress_rope_theta"] = a.CompressRopeTheta,
            ["original_seq_len"] = RopeScaling?.OriginalMaxPositionEmbeddings ?? 0, ["rope_theta"] = RopeTheta,
            ["rope_factor"] = RopeScaling?.Factor ?? 40, ["beta_fast"] = RopeScaling?.BetaFast ?? 32, ["beta_slow"] = RopeScaling?.BetaSlow ?? 1,
        };
        if (HyperConnections is { } hc)
        {
            o["hc_mult"] = hc.Mult;
            o["hc_sinkhorn_iters"] = hc.SinkhornIters;
            o["hc_eps"] = hc.Eps;
        }
        if (Indexer is { } ix)
        {
            o["index_n_heads"] = ix.NHeads;
            o["index_head_dim"] = ix.HeadDim;
            o["index_topk"] = ix.Topk;
        }
        if (Quantization is not null) o["dtype"] = "fp8";
        else if (TorchDtype == "bfloat16") o["dtype"] = "bf16";
        if (ScaleFmt == ScaleFormat.Ue8m0) o["scale_fmt"] = "ue8m0";
        if (ExpertDtype is not null) o["expert_dtype"] = ExpertDtype;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
