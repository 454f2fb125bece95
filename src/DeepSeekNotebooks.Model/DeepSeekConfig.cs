using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DeepSeekNotebooks.Model;

/// <summary>YaRN context-extension settings (Hugging Face <c>rope_scaling</c>, Peng et al. 2023, as used by DeepSeek-V2/V3).</summary>
public sealed record RopeScaling
{
    /// <summary>Scaling type; only <c>"yarn"</c> is supported (DeepSeek-V2/V3 use it).</summary>
    public string Type { get; init; } = "yarn";
    /// <summary>Context extension factor s (DeepSeek-V2/V3: 40); required, as in <c>config.json</c>.</summary>
    public required double Factor { get; init; }
    /// <summary>Context length the model was pre-trained with (DeepSeek-V2/V3: 4096); required, as in <c>config.json</c>.</summary>
    public required int OriginalMaxPositionEmbeddings { get; init; }
    /// <summary>Number of rotations above which a dimension is left unscaled (β_fast, default 32).</summary>
    public double BetaFast { get; init; } = 32;
    /// <summary>Number of rotations below which a dimension is fully interpolated (β_slow, default 1).</summary>
    public double BetaSlow { get; init; } = 1;
    /// <summary>Hugging Face <c>mscale</c> (scales cos/sin relative to <see cref="MscaleAllDim"/>; 1 for released checkpoints).</summary>
    public double Mscale { get; init; } = 1;
    /// <summary>Hugging Face <c>mscale_all_dim</c>: the official code's <c>mscale</c>, used for the softmax scale correction (absent: 0).</summary>
    public double MscaleAllDim { get; init; }
}

/// <summary>
/// Hugging Face <c>quantization_config</c> of an FP8 checkpoint (DeepSeek-V3, Kimi K2): linear weights stored as FP8
/// with one float32 inverse scale (<c>weight_scale_inv</c>) per <see cref="WeightBlockSize"/> block.
/// </summary>
public sealed record QuantizationConfig
{
    /// <summary><c>quant_method</c>; only <c>"fp8"</c> is read (the loader dequantizes FP8 block-scaled weights).</summary>
    public string QuantMethod { get; init; } = "fp8";
    /// <summary><c>fmt</c>: FP8 flavour, <c>"e4m3"</c> for DeepSeek-V3 (null when absent).</summary>
    public string? Fmt { get; init; }
    /// <summary><c>activation_scheme</c>, <c>"dynamic"</c> for DeepSeek-V3 (null when absent).</summary>
    public string? ActivationScheme { get; init; }
    /// <summary><c>weight_block_size</c> [rows, columns] of one scale block (DeepSeek-V3: [128, 128]).</summary>
    public required int WeightBlockRows { get; init; }
    /// <summary>Columns of one scale block (see <see cref="WeightBlockRows"/>).</summary>
    public required int WeightBlockColumns { get; init; }
}

/// <summary>
/// DeepSeek-V3.2's lightning indexer (DeepSeek Sparse Attention, the <c>Indexer</c> of the official V3.2-Exp
/// <c>inference/model.py</c>): a few small heads score every visible key for every query, and MLA attends only to
/// the <see cref="Topk"/> best keys. Present only in V3.2 configurations (<c>model_type: deepseek_v32</c>).
/// </summary>
public sealed record LightningIndexerConfig
{
    /// <summary><c>index_n_heads</c>: indexer heads (DeepSeek-V3.2: 64).</summary>
    public required int NHeads { get; init; }
    /// <summary><c>index_head_dim</c>: size of one indexer query/key vector, rope part first (DeepSeek-V3.2: 128).</summary>
    public required int HeadDim { get; init; }
    /// <summary><c>index_topk</c>: keys each query attends to (DeepSeek-V3.2: 2048).</summary>
    public required int Topk { get; init; }
}

/// <summary>
/// How the FP8 activation quantisation (<c>act_quant</c> of the official code) picks a block's scale: <c>scale_fmt</c>
/// of the official <c>ModelArgs</c> (Hugging Face: <c>quantization_config.scale_fmt</c>).
/// </summary>
public enum ScaleFormat
{
    /// <summary><c>scale_fmt = None</c> (the <c>ModelArgs</c> default): scale = amax / 448.</summary>
    Float,
    /// <summary><c>"ue8m0"</c> (DeepSeek-V3.2's <c>config_671B_v3.2.json</c>): scale = 2^ceil(log2(amax / 448)), a power of two.</summary>
    Ue8m0,
}

/// <summary>How the gate turns router logits into scores: <c>scoring_func</c> (official code: <c>score_func</c>).</summary>
public enum ScoringFunc
{
    /// <summary><c>"softmax"</c> over the experts (DeepSeek-V2).</summary>
    Softmax,
    /// <summary><c>"sigmoid"</c> per expert, weights renormalised over the chosen ones (DeepSeek-V3).</summary>
    Sigmoid,
    /// <summary><c>"sqrtsoftplus"</c>: sqrt(softplus(x·Wgᵀ)) per expert, weights renormalised over the chosen ones (DeepSeek-V4's official <c>Gate</c>).</summary>
    SqrtSoftplus,
}

/// <summary>How the gate picks experts: <c>topk_method</c> of Hugging Face <c>config.json</c>.</summary>
public enum TopkMethod
{
    /// <summary><c>"greedy"</c>: top-k over all experts (DeepSeek-V2-Lite).</summary>
    Greedy,
    /// <summary><c>"group_limited_greedy"</c>: top-k within the best <c>topk_group</c> groups, group score = max (DeepSeek-V2).</summary>
    GroupLimitedGreedy,
    /// <summary><c>"noaux_tc"</c>: selection bias <c>e_score_correction_bias</c>, group score = sum of top-2 (DeepSeek-V3).</summary>
    NoauxTc,
}

/// <summary>The JSON spellings of <see cref="ScoringFunc"/> and <see cref="TopkMethod"/> (the only place that knows them).</summary>
public static class ConfigSpellings
{
    private static readonly (ScoringFunc Value, string Json)[] Scoring = { (ScoringFunc.Softmax, "softmax"), (ScoringFunc.Sigmoid, "sigmoid"), (ScoringFunc.SqrtSoftplus, "sqrtsoftplus") };
    private static readonly (TopkMethod Value, string Json)[] Topk =
        { (TopkMethod.Greedy, "greedy"), (TopkMethod.GroupLimitedGreedy, "group_limited_greedy"), (TopkMethod.NoauxTc, "noaux_tc") };

    /// <summary>The config spelling, e.g. <c>"sigmoid"</c>.</summary>
    public static string ToJsonName(this ScoringFunc value) => Lookup(Scoring, value, "scoring_func");
    /// <summary>The config spelling, e.g. <c>"noaux_tc"</c>.</summary>
    public static string ToJsonName(this TopkMethod value) => Lookup(Topk, value, "topk_method");

    /// <summary>Parses a <c>scoring_func</c> spelling (exact, lower case); <paramref name="field"/> names it in the error.</summary>
    /// <exception cref="ConfigException">Not one of the valid spellings (listed in the message).</exception>
    public static ScoringFunc ParseScoringFunc(string text, string field = "scoring_func") => Parse(Scoring, text, field);
    /// <summary>Parses a <c>topk_method</c> spelling (exact, lower case).</summary>
    /// <exception cref="ConfigException">Not one of the valid spellings (listed in the message).</exception>
    public static TopkMethod ParseTopkMethod(string text, string field = "topk_method") => Parse(Topk, text, field);

    internal static string Valid<T>((T Value, string Json)[] table) =>
        string.Join(", ", table[..^1].Select(t => $"\"{t.Json}\"")) + $" or \"{table[^1].Json}\"";
    internal static string ValidScoring => Valid(Scoring);
    internal static string ValidTopk => Valid(Topk);
    internal static bool IsDefined(ScoringFunc v) => Scoring.Any(t => t.Value == v);
    internal static bool IsDefined(TopkMethod v) => Topk.Any(t => t.Value == v);

    private static string Lookup<T>((T Value, string Json)[] table, T value, string field) where T : struct, Enum
    {
        foreach (var t in table) if (EqualityComparer<T>.Default.Equals(t.Value, value)) return t.Json;
        throw new ConfigException(field, $"has no value {value}; must be {Valid(table)}");
    }

    private static T Parse<T>((T Value, string Json)[] table, string text, string field)
    {
        foreach (var t in table) if (t.Json == text) return t.Value;
        throw new ConfigException(field, $"must be {Valid(table)}, got \"{text}\"");
    }
}

/// <summary>
/// A DeepSeek-V2/V3 model configuration, read from and written to Hugging Face <c>config.json</c>
/// (<c>DeepseekV3Config</c>) or the official inference code's <c>ModelArgs</c> JSON (<c>inference/configs/*.json</c>).
/// Every field is validated by <see cref="Validate"/>, which names the offending field.
/// </summary>
/// <remarks>
/// The shape fields (<c>required</c>) have no default. Every other property's initial value is the value a Hugging Face
/// <c>config.json</c> field takes when it is absent (<see cref="FromJson"/> reads absent fields from these initialisers,
/// so there is one set of defaults): no MoE, no groups, softmax/greedy routing, full-rank queries, no YaRN, a 4096-token
/// context. Real models are named presets: <see cref="DeepSeekV3"/>, <see cref="DeepSeekV2"/>, <see cref="DeepSeekV2Lite"/>.
/// The official <c>ModelArgs</c> format has its own documented defaults (its dataclass), applied by <see cref="FromModelArgsJson"/>.
/// </remarks>
public sealed partial record DeepSeekConfig
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    /// <summary>Width of the dense SwiGLU MLP of the first <see cref="FirstKDenseReplace"/> blocks.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Width of one routed expert (required in <c>config.json</c> when <see cref="NRoutedExperts"/> &gt; 0).</summary>
    public int MoeIntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public int FirstKDenseReplace { get; init; }
    public int MoeLayerFreq { get; init; } = 1;
    public required int NumAttentionHeads { get; init; }
    /// <summary>Routed experts per MoE layer; 0 makes every layer dense.</summary>
    public int NRoutedExperts { get; init; }
    public int NSharedExperts { get; init; }
    /// <summary>Experts chosen per token (required in <c>config.json</c> when <see cref="NRoutedExperts"/> &gt; 0).</summary>
    public int NumExpertsPerTok { get; init; } = 1;
    public int NGroup { get; init; } = 1;
    public int TopkGroup { get; init; } = 1;
    /// <summary><c>scoring_func</c>: <see cref="ScoringFunc.Softmax"/> (DeepSeek-V2) or <see cref="ScoringFunc.Sigmoid"/> (DeepSeek-V3).</summary>
    public ScoringFunc ScoringFunc { get; init; } = ScoringFunc.Softmax;
    /// <summary><c>topk_method</c>: greedy, group-limited greedy (V2) or <see cref="TopkMethod.NoauxTc"/> (V3: the gate has <c>e_score_correction_bias</c>).</summary>
    public TopkMethod TopkMethod { get; init; } = TopkMethod.Greedy;
    public bool NormTopkProb { get; init; }
    public double RoutedScalingFactor { get; init; } = 1.0;
    /// <summary>Rank of the low-rank query projection; null for a full-rank <c>q_proj</c> (V2-Lite).</summary>
    public int? QLoraRank { get; init; }
    public required int KvLoraRank { get; init; }
    public required int QkNopeHeadDim { get; init; }
    public required int QkRopeHeadDim { get; init; }
    public required int VHeadDim { get; init; }
    public double RopeTheta { get; init; } = 10000;
    /// <summary>YaRN settings; null for plain RoPE.</summary>
    public RopeScaling? RopeScaling { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public int MaxPositionEmbeddings { get; init; } = 4096;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>
    /// <c>num_nextn_predict_layers</c>: multi-token-prediction modules stored after the last block (DeepSeek-V3: 1) as
    /// <c>model.layers.{num_hidden_layers + i}</c>. The kit does not run them; the loader skips their tensors.
    /// </summary>
    public int NumNextnPredictLayers { get; init; }
    /// <summary><c>quantization_config</c>: FP8 block quantization of the stored weights; null for unquantized checkpoints.</summary>
    public QuantizationConfig? Quantization { get; init; }
    /// <summary><c>torch_dtype</c> (e.g. <c>"bfloat16"</c>): the storage dtype of unquantized tensors; null when absent.</summary>
    public string? TorchDtype { get; init; }
    /// <summary>
    /// DeepSeek-V3.2's lightning indexer (<c>index_n_heads</c>, <c>index_head_dim</c>, <c>index_topk</c>); null for
    /// V2/V3 (plain MLA). Its presence makes the attention kind "MLA + lightning indexer".
    /// </summary>
    public LightningIndexerConfig? Indexer { get; init; }
    /// <summary>
    /// <c>scale_fmt</c> of the FP8 activation quantisation the official V3.2 code simulates (indexer q/k, KV latent);
    /// <see cref="ScaleFormat.Float"/> (the <c>ModelArgs</c> default, None) when absent. Hugging Face files hold it as
    /// <c>quantization_config.scale_fmt</c>, so a float checkpoint's <c>config.json</c> cannot say it.
    /// </summary>
    public ScaleFormat ScaleFmt { get; init; } = ScaleFormat.Float;

    /// <summary>Fields of the source JSON this type does not model, written back unchanged by <see cref="ToJson"/>.</summary>
    public JsonObject? ExtraFields { get; init; }

    /// <summary><c>model_type</c> of the source file (e.g. <c>deepseek_v3</c>, <c>kimi_k2</c>); null when absent.</summary>
    public string? ModelType => ExtraFields?["model_type"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    /// <summary>
    /// Fields of the source file the kit neither models nor knows as Hugging Face bookkeeping (e.g. a field added by a
    /// newer model release): kept in <see cref="ExtraFields"/> and listed here so a caller can warn about them.
    /// </summary>
    public IReadOnlyList<string> UnknownFields =>
        ExtraFields is null ? Array.Empty<string>() : ExtraFields.Select(kv => kv.Key).Where(k => Array.IndexOf(RecognisedUnmodelledHfFields, k) < 0).Order(StringComparer.Ordinal).ToArray();

    // ---- derived quantities ----
    /// <summary>Query/key head size: nope part + rope part.</summary>
    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;
    /// <summary>Whether block <paramref name="layer"/> is an MoE layer (else a dense SwiGLU MLP).</summary>
    public bool IsMoeLayer(int layer) => NRoutedExperts > 0 && layer >= FirstKDenseReplace && layer % MoeLayerFreq == 0;
    /// <summary>Whether the gate carries the auxiliary-loss-free selection bias (<c>e_score_correction_bias</c>).</summary>
    public bool HasGateBias => TopkMethod == TopkMethod.NoauxTc;
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
            if (!ConfigSpellings.IsDefined(ScoringFunc))
                throw new ConfigException("scoring_func", $"must be {ConfigSpellings.ValidScoring}, got {ScoringFunc}");
            if (!ConfigSpellings.IsDefined(TopkMethod))
                throw new ConfigException("topk_method", $"must be {ConfigSpellings.ValidTopk}, got {TopkMethod}");
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
            if (!(r.BetaFast >= r.BetaSlow) || !(r.BetaSlow > 0)) throw new ConfigException("rope_scaling.beta_fast", $"need beta_fast >= beta_slow > 0, got beta_fast {r.BetaFast}, beta_slow {r.BetaSlow}");
            if (r.Mscale < 0 || r.MscaleAllDim < 0) throw new ConfigException("rope_scaling.mscale_all_dim", "mscale and mscale_all_dim must be >= 0");
        }
        if (NumNextnPredictLayers < 0)
            throw new ConfigException("num_nextn_predict_layers", $"must be >= 0 (number of multi-token-prediction modules), got {NumNextnPredictLayers}");
        if (Indexer is { } ix)
        {
            Positive(ix.NHeads, "index_n_heads");
            Positive(ix.Topk, "index_topk");
            if (ix.HeadDim <= QkRopeHeadDim || (ix.HeadDim & (ix.HeadDim - 1)) != 0)
                throw new ConfigException("index_head_dim",
                    $"must be a power of two (the indexer's Hadamard rotation) larger than qk_rope_head_dim ({QkRopeHeadDim}, its rope part), got {ix.HeadDim}");
            if (QLoraRank is null)
                throw new ConfigException("q_lora_rank", "must be set with a lightning indexer (index_n_heads etc.): the indexer's queries are computed from the q_lora_rank latent");
        }
        ValidateV4();
        if (!Enum.IsDefined(ScaleFmt))
            throw new ConfigException("scale_fmt", $"must be null or \"ue8m0\", got {ScaleFmt}");
        if (Quantization is { } qc)
        {
            if (qc.QuantMethod != "fp8")
                throw new ConfigException("quantization_config.quant_method", $"only \"fp8\" block quantization (DeepSeek-V3) is supported, got \"{qc.QuantMethod}\"");
            if (qc.WeightBlockRows <= 0 || qc.WeightBlockColumns <= 0)
                throw new ConfigException("quantization_config.weight_block_size", $"must be two positive integers [rows, columns], got [{qc.WeightBlockRows}, {qc.WeightBlockColumns}]");
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
        "num_nextn_predict_layers", "quantization_config", "torch_dtype", "index_n_heads", "index_head_dim", "index_topk",
    };

    /// <summary>
    /// Fields of real DeepSeek-family <c>config.json</c> files that carry no architecture (training, tokenizer and
    /// Transformers bookkeeping) or that the kit checks but does not model (<c>model_type</c>, <c>architectures</c>):
    /// kept in <see cref="ExtraFields"/>, not reported in <see cref="UnknownFields"/>.
    /// </summary>
    private static readonly string[] RecognisedUnmodelledHfFields =
    {
        "model_type", "architectures", "auto_map", "transformers_version", "_name_or_path", "dtype",
        "attention_bias", "attention_dropout", "aux_loss_alpha", "seq_aux", "ep_size", "hidden_act", "initializer_range",
        "pretraining_tp", "use_cache", "bos_token_id", "eos_token_id", "pad_token_id", "num_key_value_heads", "mlp_bias",
    };

    /// <summary>The Hugging Face architecture classes whose weights this kit's model reproduces.</summary>
    private static readonly string[] DeepSeekArchitectures = { "DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", V32Architecture };

    /// <summary>DeepSeek-V3.2's Hugging Face architecture class and <c>model_type</c> (lightning indexer).</summary>
    private const string V32Architecture = "DeepseekV32ForCausalLM", V32ModelType = "deepseek_v32";

    /// <summary>The <c>model_type</c> values of DeepSeek-V2/V3 files (Kimi K2 declares DeepseekV3ForCausalLM under its own type).</summary>
    private static readonly string[] DeepSeekModelTypes = { "deepseek_v2", "deepseek_v3", "kimi_k2", V32ModelType };

    /// <summary>
    /// The values of absent Hugging Face <c>config.json</c> fields: this record's initialisers (the shape fields are
    /// required in the file, so their placeholders here are never read).
    /// </summary>
    private static readonly DeepSeekConfig Absent = new()
    {
        VocabSize = 0, HiddenSize = 0, IntermediateSize = 0, NumHiddenLayers = 0, NumAttentionHeads = 0,
        KvLoraRank = 0, QkNopeHeadDim = 0, QkRopeHeadDim = 0, VHeadDim = 0,
    };

    /// <summary>Parses a Hugging Face DeepSeek-V2/V3 <c>config.json</c> text and validates it; absent optional fields take this record's initial values.</summary>
    /// <exception cref="ConfigException">A field is missing, has the wrong JSON type, or an invalid value.</exception>
    public static DeepSeekConfig FromJson(string json)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new ConfigException("(root)", "config.json must be a JSON object"); }
        catch (JsonException e) { throw new ConfigException("(root)", $"config.json is not valid JSON: {e.Message}"); }
        if (IsV4HfFile(o)) return FromV4Json(o);

        string[] required = { "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim" };
        foreach (var f in required)
            if (o[f] is null) throw new ConfigException(f, "is required in a DeepSeek config.json but missing");

        CheckArchitecture(o);
        if (OptString(o, "hidden_act") is { } act && act != "silu")
            throw new ConfigException("hidden_act", $"must be \"silu\" (DeepSeek's SwiGLU MLP), got \"{act}\"");

        var extra = new JsonObject();
        foreach (var (k, v) in o)
            if (Array.IndexOf(KnownHfFields, k) < 0) extra[k] = v?.DeepClone();

        var a = Absent;
        var indexer = ParseHfIndexer(o);
        var nRouted = OptInt(o, "n_routed_experts") ?? a.NRoutedExperts;
        var cfg = new DeepSeekConfig
        {
            VocabSize = Int(o, "vocab_size"),
            HiddenSize = Int(o, "hidden_size"),
            IntermediateSize = Int(o, "intermediate_size"),
            MoeIntermediateSize = OptInt(o, "moe_intermediate_size") ?? a.MoeIntermediateSize,
            NumHiddenLayers = Int(o, "num_hidden_layers"),
            FirstKDenseReplace = OptInt(o, "first_k_dense_replace") ?? a.FirstKDenseReplace,
            MoeLayerFreq = OptInt(o, "moe_layer_freq") ?? a.MoeLayerFreq,
            NumAttentionHeads = Int(o, "num_attention_heads"),
            NRoutedExperts = nRouted,
            NSharedExperts = OptInt(o, "n_shared_experts") ?? a.NSharedExperts,
            NumExpertsPerTok = OptInt(o, "num_experts_per_tok") ?? (nRouted > 0 ? throw new ConfigException("num_experts_per_tok", "is required when n_routed_experts > 0") : a.NumExpertsPerTok),
            NGroup = OptInt(o, "n_group") ?? a.NGroup,
            TopkGroup = OptInt(o, "topk_group") ?? a.TopkGroup,
            ScoringFunc = OptString(o, "scoring_func") is { } sf ? ConfigSpellings.ParseScoringFunc(sf) : a.ScoringFunc,
            TopkMethod = OptString(o, "topk_method") is { } tm ? ConfigSpellings.ParseTopkMethod(tm) : a.TopkMethod,
            NormTopkProb = OptBool(o, "norm_topk_prob") ?? a.NormTopkProb,
            RoutedScalingFactor = OptDouble(o, "routed_scaling_factor") ?? a.RoutedScalingFactor,
            QLoraRank = OptInt(o, "q_lora_rank") ?? a.QLoraRank,
            KvLoraRank = Int(o, "kv_lora_rank"),
            QkNopeHeadDim = Int(o, "qk_nope_head_dim"),
            QkRopeHeadDim = Int(o, "qk_rope_head_dim"),
            VHeadDim = Int(o, "v_head_dim"),
            RopeTheta = OptDouble(o, "rope_theta") ?? a.RopeTheta,
            RopeScaling = ParseRopeScaling(o["rope_scaling"]) ?? a.RopeScaling,
            RmsNormEps = OptDouble(o, "rms_norm_eps") ?? a.RmsNormEps,
            MaxPositionEmbeddings = OptInt(o, "max_position_embeddings") ?? a.MaxPositionEmbeddings,
            TieWordEmbeddings = OptBool(o, "tie_word_embeddings") ?? a.TieWordEmbeddings,
            NumNextnPredictLayers = OptInt(o, "num_nextn_predict_layers") ?? a.NumNextnPredictLayers,
            Quantization = ParseQuantization(o["quantization_config"]),
            TorchDtype = OptString(o, "torch_dtype") ?? a.TorchDtype,
            Indexer = indexer,
            ScaleFmt = ParseScaleFmt(o["quantization_config"] is JsonObject qco ? qco["scale_fmt"] : null, "quantization_config.scale_fmt") ?? a.ScaleFmt,
            ExtraFields = extra,
        };
        return cfg.Validate();
    }

    /// <summary>
    /// A file declaring an architecture must declare a DeepSeek-V2/V3 one: <c>architectures</c> containing
    /// DeepseekV2ForCausalLM or DeepseekV3ForCausalLM (whatever the <c>model_type</c>: Moonlight, Kimi K2), or, without
    /// <c>architectures</c>, a DeepSeek <c>model_type</c>. Files declaring neither are read as DeepSeek files.
    /// </summary>
    private static void CheckArchitecture(JsonObject o)
    {
        var modelType = OptString(o, "model_type");
        if (o["architectures"] is { } archNode)
        {
            if (archNode is not JsonArray arr || arr.Any(n => n is not JsonValue v || !v.TryGetValue<string>(out _)))
                throw new ConfigException("architectures", $"must be an array of class names, got {archNode.ToJsonString()}");
            var names = arr.Select(n => n!.GetValue<string>()).ToArray();
            if (!names.Any(n => Array.IndexOf(DeepSeekArchitectures, n) >= 0))
                throw new ConfigException("architectures",
                    $"must contain {string.Join(" or ", DeepSeekArchitectures)} (the model this kit runs), got [{string.Join(", ", names)}]{(modelType is null ? "" : $" (model_type \"{modelType}\")")}");
        }
        else if (modelType is not null && Array.IndexOf(DeepSeekModelTypes, modelType) < 0)
        {
            throw new ConfigException("model_type",
                $"must be {string.Join(", ", DeepSeekModelTypes.Select(t => $"\"{t}\""))} or the file must list DeepseekV2ForCausalLM/DeepseekV3ForCausalLM/DeepseekV32ForCausalLM in \"architectures\", got \"{modelType}\"");
        }
    }

    /// <summary>The index fields, all three or none; a V3.2 file (model_type or architecture) must have them, others must not.</summary>
    private static LightningIndexerConfig? ParseHfIndexer(JsonObject o)
    {
        string[] fields = { "index_n_heads", "index_head_dim", "index_topk" };
        var present = fields.Where(f => o[f] is not null).ToArray();
        bool v32 = OptString(o, "model_type") == V32ModelType
                   || (o["architectures"] is JsonArray arr && arr.Any(n => n is JsonValue v && v.TryGetValue<string>(out var s) && s == V32Architecture));
        if (present.Length == 0)
        {
            if (v32) throw new ConfigException("index_n_heads", $"is required for DeepSeek-V3.2 (model_type \"{V32ModelType}\" / {V32Architecture}): give index_n_heads, index_head_dim and index_topk");
            return null;
        }
        if (!v32)
            throw new ConfigException(present[0], $"belongs to DeepSeek-V3.2's lightning indexer, but the file declares neither model_type \"{V32ModelType}\" nor {V32Architecture}");
        var missing = fields.FirstOrDefault(f => o[f] is null);
        if (missing is not null)
            throw new ConfigException(missing, "is required with the other index_* fields (a lightning indexer needs index_n_heads, index_head_dim and index_topk)");
        return new LightningIndexerConfig { NHeads = Int(o, "index_n_heads"), HeadDim = Int(o, "index_head_dim"), Topk = Int(o, "index_topk") };
    }

    /// <summary><c>scale_fmt</c>: JSON null or absent → null (caller's default), <c>"ue8m0"</c>; anything else names the field.</summary>
    private static ScaleFormat? ParseScaleFmt(JsonNode? node, string field)
    {
        if (node is null) return null;
        if (node is JsonValue v && v.TryGetValue<string>(out var s) && s == "ue8m0") return ScaleFormat.Ue8m0;
        throw new ConfigException(field, $"must be null (scale = amax/448) or \"ue8m0\" (power-of-two scales), got {node.ToJsonString()}");
    }

    private static QuantizationConfig? ParseQuantization(JsonNode? node)
    {
        if (node is null) return null;
        if (node is not JsonObject q) throw new ConfigException("quantization_config", $"must be null or an object, got {node.ToJsonString()}");
        const string p = "quantization_config.";
        var method = OptString(q, "quant_method", p) ?? throw new ConfigException(p + "quant_method", "is required (\"fp8\" for DeepSeek-V3 checkpoints)");
        if (method != "fp8")
            throw new ConfigException(p + "quant_method", $"only \"fp8\" block quantization (DeepSeek-V3) is supported, got \"{method}\"");
        if (q["weight_block_size"] is not JsonArray block || block.Count != 2
            || block.Any(b => b is not JsonValue bv || !bv.TryGetValue<int>(out var bi) || bi <= 0))
            throw new ConfigException(p + "weight_block_size", $"must be two positive integers [rows, columns] (DeepSeek-V3: [128, 128]), got {q["weight_block_size"]?.ToJsonString() ?? "nothing"}");
        return new QuantizationConfig
        {
            QuantMethod = method,
            Fmt = OptString(q, "fmt", p),
            ActivationScheme = OptString(q, "activation_scheme", p),
            WeightBlockRows = block[0]!.GetValue<int>(),
            WeightBlockColumns = block[1]!.GetValue<int>(),
        };
    }

    /// <summary>Reads and validates a Hugging Face <c>config.json</c> file.</summary>
    public static DeepSeekConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ConfigException("(file)", $"config file not found: {path}");
        try { return FromJson(File.ReadAllText(path)); }
        catch (ConfigException e) { throw new ConfigException(e.Field, e.Problem, path); }
    }

    /// <summary>The values of absent <c>rope_scaling</c> fields: <see cref="Model.RopeScaling"/>'s initialisers.</summary>
    private static readonly RopeScaling AbsentRope = new() { Factor = 0, OriginalMaxPositionEmbeddings = 0 };

    private static RopeScaling? ParseRopeScaling(JsonNode? node)
    {
        if (node is null) return null;
        if (node is not JsonObject r) throw new ConfigException("rope_scaling", "must be null or an object");
        return new RopeScaling
        {
            Type = OptString(r, "type", "rope_scaling.") ?? OptString(r, "rope_type", "rope_scaling.") ?? AbsentRope.Type,
            Factor = OptDouble(r, "factor", "rope_scaling.") ?? throw new ConfigException("rope_scaling.factor", "is required"),
            OriginalMaxPositionEmbeddings = OptInt(r, "original_max_position_embeddings", "rope_scaling.") ?? throw new ConfigException("rope_scaling.original_max_position_embeddings", "is required"),
            BetaFast = OptDouble(r, "beta_fast", "rope_scaling.") ?? AbsentRope.BetaFast,
            BetaSlow = OptDouble(r, "beta_slow", "rope_scaling.") ?? AbsentRope.BetaSlow,
            Mscale = OptDouble(r, "mscale", "rope_scaling.") ?? AbsentRope.Mscale,
            MscaleAllDim = OptDouble(r, "mscale_all_dim", "rope_scaling.") ?? AbsentRope.MscaleAllDim,
        };
    }

    /// <summary>Writes this configuration as a Hugging Face <c>config.json</c> (<c>model_type: deepseek_v3</c>), keeping unknown source fields.</summary>
    public string ToJson()
    {
        if (CompressedAttention is not null) return ToV4Json();
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(Indexer is null ? "DeepseekV3ForCausalLM" : V32Architecture),
            ["model_type"] = Indexer is null ? "deepseek_v3" : V32ModelType,
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
        o["scoring_func"] = ScoringFunc.ToJsonName();
        o["topk_method"] = TopkMethod.ToJsonName();
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
        o["num_nextn_predict_layers"] = NumNextnPredictLayers;
        if (Quantization is { } q)
        {
            var qo = new JsonObject { ["quant_method"] = q.QuantMethod };
            if (q.Fmt is not null) qo["fmt"] = q.Fmt;
            if (q.ActivationScheme is not null) qo["activation_scheme"] = q.ActivationScheme;
            qo["weight_block_size"] = new JsonArray(q.WeightBlockRows, q.WeightBlockColumns);
            o["quantization_config"] = qo;
        }
        if (TorchDtype is not null) o["torch_dtype"] = TorchDtype;
        if (Indexer is { } ix)
        {
            o["index_n_heads"] = ix.NHeads;
            o["index_head_dim"] = ix.HeadDim;
            o["index_topk"] = ix.Topk;
        }
        // Hugging Face files carry scale_fmt inside quantization_config, so it survives only with FP8 weights.
        if (ScaleFmt == ScaleFormat.Ue8m0 && o["quantization_config"] is JsonObject qo2) qo2["scale_fmt"] = "ue8m0";
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    // ------------------------------------------------------------------ official ModelArgs JSON

    /// <summary>
    /// Parses the official inference code's <c>ModelArgs</c> JSON (<c>inference/configs/*.json</c>); absent fields take
    /// the <c>ModelArgs</c> dataclass defaults of DeepSeek-V3's <c>inference/model.py</c> (this method is the one place
    /// that holds them; they describe a DeepSeek-V2-Lite-sized model). <paramref name="hasGateBias"/> says whether
    /// the checkpoint holds <c>gate.bias</c> tensors (the official code creates them only when dim == 7168).
    /// </summary>
    public static DeepSeekConfig FromModelArgsJson(string json, bool? hasGateBias = null)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new ConfigException("(root)", "ModelArgs JSON must be an object"); }
        catch (JsonException e) { throw new ConfigException("(root)", $"ModelArgs JSON is not valid JSON: {e.Message}"); }
        if (IsV4ModelArgs(o)) return FromV4ModelArgs(o);
        int dim = OptInt(o, "dim") ?? 2048;
        int maxSeq = OptInt(o, "max_seq_len") ?? 4096 * 4;
        int qLora = OptInt(o, "q_lora_rank") ?? 0;
        var score = OptString(o, "score_func") is { } sf ? ConfigSpellings.ParseScoringFunc(sf, "score_func") : ScoringFunc.Softmax;
        bool bias = hasGateBias ?? dim == 7168;
        int nGroups = OptInt(o, "n_expert_groups") ?? 1;
        // dtype: "bf16" or "fp8" (FP8 weights with one scale per 128x128 block: the official kernel's block_size).
        // Absent, the storage dtype is left unknown (null): it is the file's, not the architecture's.
        var dtype = OptString(o, "dtype");
        if (dtype is not null and not "bf16" and not "fp8")
            throw new ConfigException("dtype", $"must be \"bf16\" or \"fp8\", got \"{dtype}\"");
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
            TopkMethod = bias ? TopkMethod.NoauxTc : nGroups > 1 ? TopkMethod.GroupLimitedGreedy : TopkMethod.Greedy,
            NormTopkProb = score == ScoringFunc.Sigmoid,
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
            TorchDtype = dtype is null ? null : "bfloat16",
            Quantization = dtype == "fp8" ? new QuantizationConfig { Fmt = "e4m3", WeightBlockRows = 128, WeightBlockColumns = 128 } : null,
            ScaleFmt = ParseScaleFmt(o["scale_fmt"], "scale_fmt") ?? ScaleFormat.Float,
            // V3.2-Exp's ModelArgs: index_n_heads 64, index_head_dim 128, index_topk 2048; a V3 ModelArgs has none of them.
            Indexer = o["index_n_heads"] is null && o["index_head_dim"] is null && o["index_topk"] is null ? null : new LightningIndexerConfig
            {
                NHeads = OptInt(o, "index_n_heads") ?? 64,
                HeadDim = OptInt(o, "index_head_dim") ?? 128,
                Topk = OptInt(o, "index_topk") ?? 2048,
            },
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
        if (CompressedAttention is not null) return ToV4ModelArgsJson();
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
            ["score_func"] = ScoringFunc.ToJsonName(),
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
        if (Quantization is not null) o["dtype"] = "fp8";
        else if (TorchDtype == "bfloat16") o["dtype"] = "bf16";
        if (ScaleFmt == ScaleFormat.Ue8m0) o["scale_fmt"] = "ue8m0";
        if (Indexer is { } ix)
        {
            o["index_n_heads"] = ix.NHeads;
            o["index_head_dim"] = ix.HeadDim;
            o["index_topk"] = ix.Topk;
        }
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

    // ------------------------------------------------------------------ named presets

    /// <summary>
    /// DeepSeek-V3 (671B total, 37B active; also DeepSeek-R1 and V3.1's shape): the <c>config.json</c> of
    /// deepseek-ai/DeepSeek-V3 (= the official <c>inference/configs/config_671B.json</c>).
    /// </summary>
    public static DeepSeekConfig DeepSeekV3 => new()
    {
        VocabSize = 129280, HiddenSize = 7168, IntermediateSize = 18432, MoeIntermediateSize = 2048, NumHiddenLayers = 61,
        FirstKDenseReplace = 3, MoeLayerFreq = 1, NumAttentionHeads = 128, NRoutedExperts = 256, NSharedExperts = 1, NumExpertsPerTok = 8,
        NGroup = 8, TopkGroup = 4, ScoringFunc = ScoringFunc.Sigmoid, TopkMethod = TopkMethod.NoauxTc, NormTopkProb = true,
        RoutedScalingFactor = 2.5, QLoraRank = 1536, KvLoraRank = 512, QkNopeHeadDim = 128, QkRopeHeadDim = 64, VHeadDim = 128,
        RopeTheta = 10000,
        RopeScaling = new RopeScaling { Factor = 40, OriginalMaxPositionEmbeddings = 4096, BetaFast = 32, BetaSlow = 1, Mscale = 1.0, MscaleAllDim = 1.0 },
        RmsNormEps = 1e-6, MaxPositionEmbeddings = 163840, TieWordEmbeddings = false,
    };

    /// <summary>DeepSeek-V2 (236B total, 21B active): the <c>config.json</c> of deepseek-ai/DeepSeek-V2 (<c>config_236B.json</c>).</summary>
    public static DeepSeekConfig DeepSeekV2 => new()
    {
        VocabSize = 102400, HiddenSize = 5120, IntermediateSize = 12288, MoeIntermediateSize = 1536, NumHiddenLayers = 60,
        FirstKDenseReplace = 1, MoeLayerFreq = 1, NumAttentionHeads = 128, NRoutedExperts = 160, NSharedExperts = 2, NumExpertsPerTok = 6,
        NGroup = 8, TopkGroup = 3, ScoringFunc = ScoringFunc.Softmax, TopkMethod = TopkMethod.GroupLimitedGreedy, NormTopkProb = false,
        RoutedScalingFactor = 16.0, QLoraRank = 1536, KvLoraRank = 512, QkNopeHeadDim = 128, QkRopeHeadDim = 64, VHeadDim = 128,
        RopeTheta = 10000,
        RopeScaling = new RopeScaling { Factor = 40, OriginalMaxPositionEmbeddings = 4096, BetaFast = 32, BetaSlow = 1, Mscale = 0.707, MscaleAllDim = 0.707 },
        RmsNormEps = 1e-6, MaxPositionEmbeddings = 163840, TieWordEmbeddings = false,
    };

    /// <summary>
    /// DeepSeek-V2-Lite (16B total, 2.4B active; full-rank queries): the <c>config.json</c> of deepseek-ai/DeepSeek-V2-Lite
    /// (<c>config_16B.json</c>).
    /// </summary>
    public static DeepSeekConfig DeepSeekV2Lite => new()
    {
        VocabSize = 102400, HiddenSize = 2048, IntermediateSize = 10944, MoeIntermediateSize = 1408, NumHiddenLayers = 27,
        FirstKDenseReplace = 1, MoeLayerFreq = 1, NumAttentionHeads = 16, NRoutedExperts = 64, NSharedExperts = 2, NumExpertsPerTok = 6,
        NGroup = 1, TopkGroup = 1, ScoringFunc = ScoringFunc.Softmax, TopkMethod = TopkMethod.Greedy, NormTopkProb = false,
        RoutedScalingFactor = 1.0, QLoraRank = null, KvLoraRank = 512, QkNopeHeadDim = 128, QkRopeHeadDim = 64, VHeadDim = 128,
        RopeTheta = 10000,
        RopeScaling = new RopeScaling { Factor = 40, OriginalMaxPositionEmbeddings = 4096, BetaFast = 32, BetaSlow = 1, Mscale = 0.707, MscaleAllDim = 0.707 },
        RmsNormEps = 1e-6, MaxPositionEmbeddings = 163840, TieWordEmbeddings = false,
    };

    /// <summary>A tiny configuration for tests and examples: every feature on (query LoRA, sigmoid gate with bias and groups, YaRN).</summary>
    public static DeepSeekConfig TinyFullFeatured => new()
    {
        VocabSize = 64, HiddenSize = 32, IntermediateSize = 64, MoeIntermediateSize = 16, NumHiddenLayers = 3, FirstKDenseReplace = 1,
        NumAttentionHeads = 2, NRoutedExperts = 8, NSharedExperts = 1, NumExpertsPerTok = 2, NGroup = 4, TopkGroup = 2,
        ScoringFunc = ScoringFunc.Sigmoid, TopkMethod = TopkMethod.NoauxTc, NormTopkProb = true, RoutedScalingFactor = 2.5, QLoraRank = 16, KvLoraRank = 16,
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
