using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DeepSeekNotebooks.Model;

/// <summary>YaRN context-extension settings (Hugging Face <c>rope_scaling</c>, Peng et al. 2023, as used by DeepSeek-V2/V3).</summary>
public sealed record RopeScaling
{
    /// <summary>Scaling type; only <c>"yarn"</c> is supported (DeepSeek-V2/V3 use it).</summary>
    public string Type { get; init; } = "yarn";
    /// <summary>Context extension factor s (DeepSeek-V3: 40).</summary>
    public double Factor { get; init; } = 40;
    /// <summary>Context length the model was pre-trained with (DeepSeek-V3: 4096).</summary>
    public int OriginalMaxPositionEmbeddings { get; init; } = 4096;
    /// <summary>Number of rotations above which a dimension is left unscaled (β_fast, default 32).</summary>
    public double BetaFast { get; init; } = 32;
    /// <summary>Number of rotations below which a dimension is fully interpolated (β_slow, default 1).</summary>
    public double BetaSlow { get; init; } = 1;
    /// <summary>Hugging Face <c>mscale</c> (scales cos/sin relative to <see cref="MscaleAllDim"/>; 1 for released checkpoints).</summary>
    public double Mscale { get; init; } = 1;
    /// <summary>Hugging Face <c>mscale_all_dim</c>: the official code's <c>mscale</c>, used for the softmax scale correction.</summary>
    public double MscaleAllDim { get; init; }
}

/// <summary>
/// A DeepSeek-V2/V3 model configuration, read from and written to Hugging Face <c>config.json</c>
/// (<c>DeepseekV3Config</c>) or the official inference code's <c>ModelArgs</c> JSON (<c>inference/configs/*.json</c>).
/// Every field is validated by <see cref="Validate"/>, which names the offending field.
/// </summary>
public sealed record DeepSeekConfig
{
    public int VocabSize { get; init; } = 129280;
    public int HiddenSize { get; init; } = 7168;
    public int IntermediateSize { get; init; } = 18432;
    public int MoeIntermediateSize { get; init; } = 2048;
    public int NumHiddenLayers { get; init; } = 61;
    public int FirstKDenseReplace { get; init; } = 3;
    public int MoeLayerFreq { get; init; } = 1;
    public int NumAttentionHeads { get; init; } = 128;
    /// <summary>Routed experts per MoE layer; 0 makes every layer dense.</summary>
    public int NRoutedExperts { get; init; } = 256;
    public int NSharedExperts { get; init; } = 1;
    public int NumExpertsPerTok { get; init; } = 8;
    public int NGroup { get; init; } = 8;
    public int TopkGroup { get; init; } = 4;
    /// <summary><c>softmax</c> (DeepSeek-V2) or <c>sigmoid</c> (DeepSeek-V3).</summary>
    public string ScoringFunc { get; init; } = "sigmoid";
    /// <summary><c>greedy</c>, <c>group_limited_greedy</c> (V2) or <c>noaux_tc</c> (V3: the gate has <c>e_score_correction_bias</c>).</summary>
    public string TopkMethod { get; init; } = "noaux_tc";
    public bool NormTopkProb { get; init; } = true;
    public double RoutedScalingFactor { get; init; } = 2.5;
    /// <summary>Rank of the low-rank query projection; null for a full-rank <c>q_proj</c> (V2-Lite).</summary>
    public int? QLoraRank { get; init; } = 1536;
    public int KvLoraRank { get; init; } = 512;
    public int QkNopeHeadDim { get; init; } = 128;
    public int QkRopeHeadDim { get; init; } = 64;
    public int VHeadDim { get; init; } = 128;
    public double RopeTheta { get; init; } = 10000;
    public RopeScaling? RopeScaling { get; init; } = new();
    public double RmsNormEps { get; init; } = 1e-6;
    public int MaxPositionEmbeddings { get; init; } = 163840;
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Fields of the source JSON this type does not model, written back unchanged by <see cref="ToJson"/>.</summary>
    public JsonObject? ExtraFields { get; init; }

    // ---- derived quantities ----
    /// <summary>Query/key head size: nope part + rope part.</summary>
    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;
    /// <summary>Whether block <paramref name="layer"/> is an MoE layer (else a dense SwiGLU MLP).</summary>
    public bool IsMoeLayer(int layer) => NRoutedExperts > 0 && layer >= FirstKDenseReplace && layer % MoeLayerFreq == 0;
    /// <summary>Whether the gate carries the auxiliary-loss-free selection bias (<c>e_score_correction_bias</c>).</summary>
    public bool HasGateBias => TopkMethod == "noaux_tc";
    /// <summary>YaRN is applied when the context length exceeds the original pre-training length (as the official code decides).</summary>
    public bool YarnActive => RopeScaling is { } r && MaxPositionEmbeddings > r.OriginalMaxPositionEmbeddings;
    /// <summary>Attention softmax scale: qk_head_dim^-0.5, times mscale² when YaRN is active (mscale = 0.1·m·ln(s) + 1).</summary>
    public double SoftmaxScale
    {
        get
        {
            var scale = Math.Pow(QkHeadDim, -0.5);
            if (YarnActive)
            {
                var mscale = 0.1 * RopeScaling!.MscaleAllDim * Math.Log(RopeScaling.Factor) + 1.0;
                scale *= mscale * mscale;
            }
            return scale;
        }
    }

    /// <summary>Checks every field; throws <see cref="ConfigException"/> naming the first bad field and what is allowed.</summary>
    public DeepSeekConfig Validate()
    {
        Positive(VocabSize, "vocab_size");
        Positive(HiddenSize, "hidden_size");
        Positive(IntermediateSize, "intermediate_size");
        Positive(NumHiddenLayers, "num_hidden_layers");
        Positive(NumAttentionHeads, "num_attention_heads");
        Positive(KvLoraRank, "kv_lora_rank");
        Positive(QkNopeHeadDim, "qk_nope_head_dim");
        Positive(VHeadDim, "v_head_dim");
        Positive(MaxPositionEmbeddings, "max_position_embeddings");
        Positive(MoeLayerFreq, "moe_layer_freq");
        if (QkRopeHeadDim <= 0 || QkRopeHeadDim % 2 != 0)
            throw new ConfigException("qk_rope_head_dim", $"must be a positive even number (RoPE rotates pairs), got {QkRopeHeadDim}");
        if (QLoraRank is { } q && q <= 0)
            throw new ConfigException("q_lora_rank", $"must be null (full-rank q_proj) or a positive integer, got {q}");
        if (FirstKDenseReplace < 0 || FirstKDenseReplace > NumHiddenLayers)
            throw new ConfigException("first_k_dense_replace", $"must be between 0 and num_hidden_layers ({NumHiddenLayers}), got {FirstKDenseReplace}");
        if (NRoutedExperts < 0)
            throw new ConfigException("n_routed_experts", $"must be >= 0, got {NRoutedExperts}");
        if (NRoutedExperts > 0)
        {
            Positive(MoeIntermediateSize, "moe_intermediate_size");
            if (NSharedExperts < 0) throw new ConfigException("n_shared_experts", $"must be >= 0, got {NSharedExperts}");
            if (NumExpertsPerTok < 1 || NumExpertsPerTok > NRoutedExperts)
                throw new ConfigException("num_experts_per_tok", $"must be between 1 and n_routed_experts ({NRoutedExperts}), got {NumExpertsPerTok}");
            if (NGroup < 1 || NRoutedExperts % NGroup != 0)
                throw new ConfigException("n_group", $"must be >= 1 and divide n_routed_experts ({NRoutedExperts}), got {NGroup}");
            if (TopkGroup < 1 || TopkGroup > NGroup)
                throw new ConfigException("topk_group", $"must be between 1 and n_group ({NGroup}), got {TopkGroup}");
            if (TopkGroup * (NRoutedExperts / NGroup) < NumExpertsPerTok)
                throw new ConfigException("topk_group", $"the {TopkGroup} selected group(s) of {NRoutedExperts / NGroup} experts hold fewer than num_experts_per_tok ({NumExpertsPerTok}) experts");
            if (HasGateBias && NGroup > 1 && NRoutedExperts / NGroup < 2)
                throw new ConfigException("n_group", "with topk_method noaux_tc a group's score is the sum of its top-2 experts, so each group needs at least 2 experts");
            if (ScoringFunc is not ("softmax" or "sigmoid"))
                throw new ConfigException("scoring_func", $"must be \"softmax\" or \"sigmoid\", got \"{ScoringFunc}\"");
            if (TopkMethod is not ("greedy" or "group_limited_greedy" or "noaux_tc"))
                throw new ConfigException("topk_method", $"must be \"greedy\", \"group_limited_greedy\" or \"noaux_tc\", got \"{TopkMethod}\"");
            if (!(RoutedScalingFactor > 0) || double.IsInfinity(RoutedScalingFactor))
                throw new ConfigException("routed_scaling_factor", $"must be a positive finite number, got {RoutedScalingFactor}");
        }
        if (!(RopeTheta > 0) || double.IsInfinity(RopeTheta)) throw new ConfigException("rope_theta", $"must be a positive finite number, got {RopeTheta}");
        if (!(RmsNormEps > 0) || RmsNormEps >= 1) throw new ConfigException("rms_norm_eps", $"must be in (0, 1), got {RmsNormEps}");
        if (RopeScaling is { } r)
        {
            if (r.Type != "yarn") throw new ConfigException("rope_scaling.type", $"only \"yarn\" is supported (DeepSeek-V2/V3), got \"{r.Type}\"");
            if (!(r.Factor >= 1)) throw new ConfigException("rope_scaling.factor", $"must be >= 1, got {r.Factor}");
            if (r.OriginalMaxPositionEmbeddings <= 0) throw new ConfigException("rope_scaling.original_max_position_embeddings", $"must be positive, got {r.OriginalMaxPositionEmbeddings}");
            if (!(r.BetaFast > r.BetaSlow) || !(r.BetaSlow > 0)) throw new ConfigException("rope_scaling.beta_fast", $"need beta_fast > beta_slow > 0, got beta_fast {r.BetaFast}, beta_slow {r.BetaSlow}");
            if (r.Mscale < 0 || r.MscaleAllDim < 0) throw new ConfigException("rope_scaling.mscale_all_dim", "mscale and mscale_all_dim must be >= 0");
        }
        return this;
    }

    private static void Positive(int value, string field)
    {
        if (value <= 0) throw new ConfigException(field, $"must be a positive integer, got {value}");
    }

    // ------------------------------------------------------------------ Hugging Face config.json

    private static readonly string[] KnownHfFields =
    {
        "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers", "first_k_dense_replace",
        "moe_layer_freq", "num_attention_heads", "n_routed_experts", "n_shared_experts", "num_experts_per_tok", "n_group", "topk_group",
        "scoring_func", "topk_method", "norm_topk_prob", "routed_scaling_factor", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
        "qk_rope_head_dim", "v_head_dim", "rope_theta", "rope_scaling", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings",
    };

    /// <summary>Parses a Hugging Face DeepSeek-V2/V3 <c>config.json</c> text and validates it.</summary>
    /// <exception cref="ConfigException">A field is missing, has the wrong JSON type, or an invalid value.</exception>
    public static DeepSeekConfig FromJson(string json)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new ConfigException("(root)", "config.json must be a JSON object"); }
        catch (JsonException e) { throw new ConfigException("(root)", $"config.json is not valid JSON: {e.Message}"); }

        string[] required = { "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim" };
        foreach (var f in required)
            if (o[f] is null) throw new ConfigException(f, "is required in a DeepSeek config.json but missing");

        var extra = new JsonObject();
        foreach (var (k, v) in o)
            if (Array.IndexOf(KnownHfFields, k) < 0) extra[k] = v?.DeepClone();

        var nRouted = OptInt(o, "n_routed_experts") ?? 0;
        var cfg = new DeepSeekConfig
        {
            VocabSize = Int(o, "vocab_size"),
            HiddenSize = Int(o, "hidden_size"),
            IntermediateSize = OptInt(o, "intermediate_size") ?? 4 * Int(o, "hidden_size"),
            MoeIntermediateSize = OptInt(o, "moe_intermediate_size") ?? 0,
            NumHiddenLayers = Int(o, "num_hidden_layers"),
            FirstKDenseReplace = OptInt(o, "first_k_dense_replace") ?? 0,
            MoeLayerFreq = OptInt(o, "moe_layer_freq") ?? 1,
            NumAttentionHeads = Int(o, "num_attention_heads"),
            NRoutedExperts = nRouted,
            NSharedExperts = OptInt(o, "n_shared_experts") ?? 0,
            NumExpertsPerTok = OptInt(o, "num_experts_per_tok") ?? (nRouted > 0 ? throw new ConfigException("num_experts_per_tok", "is required when n_routed_experts > 0") : 1),
            NGroup = OptInt(o, "n_group") ?? 1,
            TopkGroup = OptInt(o, "topk_group") ?? 1,
            ScoringFunc = OptString(o, "scoring_func") ?? "softmax",
            TopkMethod = OptString(o, "topk_method") ?? "greedy",
            NormTopkProb = OptBool(o, "norm_topk_prob") ?? false,
            RoutedScalingFactor = OptDouble(o, "routed_scaling_factor") ?? 1.0,
            QLoraRank = OptInt(o, "q_lora_rank"),
            KvLoraRank = Int(o, "kv_lora_rank"),
            QkNopeHeadDim = Int(o, "qk_nope_head_dim"),
            QkRopeHeadDim = Int(o, "qk_rope_head_dim"),
            VHeadDim = Int(o, "v_head_dim"),
            RopeTheta = OptDouble(o, "rope_theta") ?? 10000,
            RopeScaling = ParseRopeScaling(o["rope_scaling"]),
            RmsNormEps = OptDouble(o, "rms_norm_eps") ?? 1e-6,
            MaxPositionEmbeddings = OptInt(o, "max_position_embeddings") ?? 4096,
            TieWordEmbeddings = OptBool(o, "tie_word_embeddings") ?? false,
            ExtraFields = extra,
        };
        return cfg.Validate();
    }

    /// <summary>Reads and validates a Hugging Face <c>config.json</c> file.</summary>
    public static DeepSeekConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ConfigException("(file)", $"config file not found: {path}");
        try { return FromJson(File.ReadAllText(path)); }
        catch (ConfigException e) { throw new ConfigException(e.Field, e.Problem, path); }
    }

    private static RopeScaling? ParseRopeScaling(JsonNode? node)
    {
        if (node is null) return null;
        if (node is not JsonObject r) throw new ConfigException("rope_scaling", "must be null or an object");
        return new RopeScaling
        {
            Type = OptString(r, "type", "rope_scaling.") ?? OptString(r, "rope_type", "rope_scaling.") ?? "yarn",
            Factor = OptDouble(r, "factor", "rope_scaling.") ?? throw new ConfigException("rope_scaling.factor", "is required"),
            OriginalMaxPositionEmbeddings = OptInt(r, "original_max_position_embeddings", "rope_scaling.") ?? throw new ConfigException("rope_scaling.original_max_position_embeddings", "is required"),
            BetaFast = OptDouble(r, "beta_fast", "rope_scaling.") ?? 32,
            BetaSlow = OptDouble(r, "beta_slow", "rope_scaling.") ?? 1,
            Mscale = OptDouble(r, "mscale", "rope_scaling.") ?? 1,
            MscaleAllDim = OptDouble(r, "mscale_all_dim", "rope_scaling.") ?? 0,
        };
    }

    /// <summary>Writes this configuration as a Hugging Face <c>config.json</c> (<c>model_type: deepseek_v3</c>), keeping unknown source fields.</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("DeepseekV3ForCausalLM"),
            ["model_type"] = "deepseek_v3",
        };
        if (ExtraFields is not null)
            foreach (var (k, v) in ExtraFields) o[k] = v?.DeepClone();
        o["vocab_size"] = VocabSize;
        o["hidden_size"] = HiddenSize;
        o["intermediate_size"] = IntermediateSize;
        o["moe_intermediate_size"] = MoeIntermediateSize;
        o["num_hidden_layers"] = NumHiddenLayers;
        o["first_k_dense_replace"] = FirstKDenseReplace;
        o["moe_layer_freq"] = MoeLayerFreq;
        o["num_attention_heads"] = NumAttentionHeads;
        o["num_key_value_heads"] = NumAttentionHeads;
        o["n_routed_experts"] = NRoutedExperts;
        o["n_shared_experts"] = NSharedExperts;
        o["num_experts_per_tok"] = NumExpertsPerTok;
        o["n_group"] = NGroup;
        o["topk_group"] = TopkGroup;
        o["scoring_func"] = ScoringFunc;
        o["topk_method"] = TopkMethod;
        o["norm_topk_prob"] = NormTopkProb;
        o["routed_scaling_factor"] = RoutedScalingFactor;
        o["q_lora_rank"] = QLoraRank;
        o["kv_lora_rank"] = KvLoraRank;
        o["qk_nope_head_dim"] = QkNopeHeadDim;
        o["qk_rope_head_dim"] = QkRopeHeadDim;
        o["v_head_dim"] = VHeadDim;
        o["rope_theta"] = RopeTheta;
        o["rope_scaling"] = RopeScaling is null ? null : new JsonObject
        {
            ["type"] = RopeScaling.Type,
            ["factor"] = RopeScaling.Factor,
            ["original_max_position_embeddings"] = RopeScaling.OriginalMaxPositionEmbeddings,
            ["beta_fast"] = RopeScaling.BetaFast,
            ["beta_slow"] = RopeScaling.BetaSlow,
            ["mscale"] = RopeScaling.Mscale,
            ["mscale_all_dim"] = RopeScaling.MscaleAllDim,
        };
        o["rms_norm_eps"] = RmsNormEps;
        o["max_position_embeddings"] = MaxPositionEmbeddings;
        o["tie_word_embeddings"] = TieWordEmbeddings;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    // ------------------------------------------------------------------ official ModelArgs JSON

    /// <summary>
    /// Parses the official inference code's <c>ModelArgs</c> JSON (<c>inference/configs/*.json</c>); absent fields take
    /// the <c>ModelArgs</c> defaults of DeepSeek-V3's <c>inference/model.py</c>. <paramref name="hasGateBias"/> says whether
    /// the checkpoint holds <c>gate.bias</c> tensors (the official code creates them only when dim == 7168).
    /// </summary>
    public static DeepSeekConfig FromModelArgsJson(string json, bool? hasGateBias = null)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new ConfigException("(root)", "ModelArgs JSON must be an object"); }
        catch (JsonException e) { throw new ConfigException("(root)", $"ModelArgs JSON is not valid JSON: {e.Message}"); }
        int dim = OptInt(o, "dim") ?? 2048;
        int maxSeq = OptInt(o, "max_seq_len") ?? 4096 * 4;
        int qLora = OptInt(o, "q_lora_rank") ?? 0;
        string score = OptString(o, "score_func") ?? "softmax";
        bool bias = hasGateBias ?? dim == 7168;
        int nGroups = OptInt(o, "n_expert_groups") ?? 1;
        var cfg = new DeepSeekConfig
        {
            VocabSize = OptInt(o, "vocab_size") ?? 102400,
            HiddenSize = dim,
            IntermediateSize = OptInt(o, "inter_dim") ?? 10944,
            MoeIntermediateSize = OptInt(o, "moe_inter_dim") ?? 1408,
            NumHiddenLayers = OptInt(o, "n_layers") ?? 27,
            FirstKDenseReplace = OptInt(o, "n_dense_layers") ?? 1,
            NumAttentionHeads = OptInt(o, "n_heads") ?? 16,
            NRoutedExperts = OptInt(o, "n_routed_experts") ?? 64,
            NSharedExperts = OptInt(o, "n_shared_experts") ?? 2,
            NumExpertsPerTok = OptInt(o, "n_activated_experts") ?? 6,
            NGroup = nGroups,
            TopkGroup = OptInt(o, "n_limited_groups") ?? 1,
            ScoringFunc = score,
            TopkMethod = bias ? "noaux_tc" : nGroups > 1 ? "group_limited_greedy" : "greedy",
            NormTopkProb = score == "sigmoid",
            RoutedScalingFactor = OptDouble(o, "route_scale") ?? 1.0,
            QLoraRank = qLora == 0 ? null : qLora,
            KvLoraRank = OptInt(o, "kv_lora_rank") ?? 512,
            QkNopeHeadDim = OptInt(o, "qk_nope_head_dim") ?? 128,
            QkRopeHeadDim = OptInt(o, "qk_rope_head_dim") ?? 64,
            VHeadDim = OptInt(o, "v_head_dim") ?? 128,
            RopeTheta = OptDouble(o, "rope_theta") ?? 10000,
            RopeScaling = new RopeScaling
            {
                Factor = OptDouble(o, "rope_factor") ?? 40,
                OriginalMaxPositionEmbeddings = OptInt(o, "original_seq_len") ?? 4096,
                BetaFast = OptDouble(o, "beta_fast") ?? 32,
                BetaSlow = OptDouble(o, "beta_slow") ?? 1,
                Mscale = OptDouble(o, "mscale") ?? 1,
                MscaleAllDim = OptDouble(o, "mscale") ?? 1,
            },
            RmsNormEps = 1e-6,
            MaxPositionEmbeddings = maxSeq,
        };
        try { return cfg.Validate(); }
        catch (ConfigException e) when (ModelArgsNames.TryGetValue(e.Field, out var name))
        {
            // Validate names fields in the Hugging Face spelling; report them as this file spells them.
            throw new ConfigException(name, e.Problem);
        }
    }

    /// <summary>Hugging Face field name → official <c>ModelArgs</c> field name, where they differ.</summary>
    private static readonly Dictionary<string, string> ModelArgsNames = new()
    {
        ["hidden_size"] = "dim", ["intermediate_size"] = "inter_dim", ["moe_intermediate_size"] = "moe_inter_dim",
        ["num_hidden_layers"] = "n_layers", ["first_k_dense_replace"] = "n_dense_layers", ["num_attention_heads"] = "n_heads",
        ["num_experts_per_tok"] = "n_activated_experts", ["n_group"] = "n_expert_groups", ["topk_group"] = "n_limited_groups",
        ["scoring_func"] = "score_func", ["routed_scaling_factor"] = "route_scale", ["max_position_embeddings"] = "max_seq_len",
        ["rope_scaling.factor"] = "rope_factor", ["rope_scaling.original_max_position_embeddings"] = "original_seq_len",
        ["rope_scaling.beta_fast"] = "beta_fast", ["rope_scaling.mscale_all_dim"] = "mscale",
    };

    /// <summary>Writes this configuration in the official inference code's <c>ModelArgs</c> JSON form.</summary>
    public string ToModelArgsJson()
    {
        var r = RopeScaling ?? new RopeScaling { Factor = 1, OriginalMaxPositionEmbeddings = MaxPositionEmbeddings };
        var o = new JsonObject
        {
            ["max_seq_len"] = MaxPositionEmbeddings,
            ["vocab_size"] = VocabSize,
            ["dim"] = HiddenSize,
            ["inter_dim"] = IntermediateSize,
            ["moe_inter_dim"] = MoeIntermediateSize,
            ["n_layers"] = NumHiddenLayers,
            ["n_dense_layers"] = FirstKDenseReplace,
            ["n_heads"] = NumAttentionHeads,
            ["n_routed_experts"] = NRoutedExperts,
            ["n_shared_experts"] = NSharedExperts,
            ["n_activated_experts"] = NumExpertsPerTok,
            ["n_expert_groups"] = NGroup,
            ["n_limited_groups"] = TopkGroup,
            ["score_func"] = ScoringFunc,
            ["route_scale"] = RoutedScalingFactor,
            ["q_lora_rank"] = QLoraRank ?? 0,
            ["kv_lora_rank"] = KvLoraRank,
            ["qk_nope_head_dim"] = QkNopeHeadDim,
            ["qk_rope_head_dim"] = QkRopeHeadDim,
            ["v_head_dim"] = VHeadDim,
            ["original_seq_len"] = r.OriginalMaxPositionEmbeddings,
            ["rope_theta"] = RopeTheta,
            ["rope_factor"] = r.Factor,
            ["beta_fast"] = r.BetaFast,
            ["beta_slow"] = r.BetaSlow,
            ["mscale"] = r.MscaleAllDim,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    // ------------------------------------------------------------------ JSON helpers

    private static int Int(JsonObject o, string f) => OptInt(o, f) ?? throw new ConfigException(f, "is required but missing");

    private static int? OptInt(JsonObject o, string f, string prefix = "")
    {
        var n = o[f];
        if (n is null) return null;
        if (n is JsonValue v)
        {
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        }
        throw new ConfigException(prefix + f, $"must be an integer, got {n.ToJsonString()}");
    }

    private static double? OptDouble(JsonObject o, string f, string prefix = "")
    {
        var n = o[f];
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue<double>(out var d)) return d;
        throw new ConfigException(prefix + f, $"must be a number, got {n.ToJsonString()}");
    }

    private static bool? OptBool(JsonObject o, string f)
    {
        var n = o[f];
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue<bool>(out var b)) return b;
        throw new ConfigException(f, $"must be true or false, got {n.ToJsonString()}");
    }

    private static string? OptString(JsonObject o, string f, string prefix = "")
    {
        var n = o[f];
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s;
        throw new ConfigException(prefix + f, $"must be a string, got {n.ToJsonString()}");
    }

    /// <summary>A tiny configuration for tests and examples: every feature on (query LoRA, sigmoid gate with bias and groups, YaRN).</summary>
    public static DeepSeekConfig TinyFullFeatured => new()
    {
        VocabSize = 64, HiddenSize = 32, IntermediateSize = 64, MoeIntermediateSize = 16, NumHiddenLayers = 3, FirstKDenseReplace = 1,
        NumAttentionHeads = 2, NRoutedExperts = 8, NSharedExperts = 1, NumExpertsPerTok = 2, NGroup = 4, TopkGroup = 2,
        ScoringFunc = "sigmoid", TopkMethod = "noaux_tc", NormTopkProb = true, RoutedScalingFactor = 2.5, QLoraRank = 16, KvLoraRank = 16,
        QkNopeHeadDim = 8, QkRopeHeadDim = 4, VHeadDim = 8, RopeTheta = 10000,
        RopeScaling = new RopeScaling { Factor = 4, OriginalMaxPositionEmbeddings = 16, BetaFast = 32, BetaSlow = 1, Mscale = 1, MscaleAllDim = 1 },
        RmsNormEps = 1e-6, MaxPositionEmbeddings = 64,
    };
}

/// <summary>A configuration field is missing, mistyped or out of range.</summary>
public sealed class ConfigException : Exception
{
    /// <summary>The offending field, in the source file's spelling (e.g. <c>n_group</c>).</summary>
    public string Field { get; }
    /// <summary>What is wrong and what would be right.</summary>
    public string Problem { get; }

    public ConfigException(string field, string problem, string? file = null)
        : base($"{(file is null ? "" : file + ": ")}config field '{field}' {problem}")
    {
        Field = field;
        Problem = problem;
    }
}
