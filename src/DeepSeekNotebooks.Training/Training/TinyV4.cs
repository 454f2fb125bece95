using System.Globalization;
using DeepSeekNotebooks.Model;

namespace DeepSeekNotebooks.Training.Training;

/// <summary>
/// The second bundled model's architecture: DeepSeek-V4 (official <c>inference/model.py</c> of DeepSeek-V4) at the size of
/// the bundled V3 model, trained by the same pipeline on the same corpus and tokenizer (folder <see cref="Name"/>).
/// </summary>
/// <remarks>
/// Every V4 layer kind appears: layer 0 sliding window only (<c>compress_ratio</c> 0) with a hash-routed MoE
/// (<c>num_hash_layers</c> 1, <c>tid2eid</c>), layers 1 and 3 CSA (ratio 4, overlapping windows + lightning indexer, top-4
/// entries), layer 2 HCA (ratio 8), 4 hyper-connection streams, sqrt(softplus) scores with the selection bias, clamped SwiGLU.
/// V4-Flash pairs a 128-token window with HCA ratio 128, which on this corpus's prompts (instruction prompts ≈ 12 tokens,
/// training windows 48–64) would never complete one compressed entry; a window of 8 and HCA ratio 8 (the official golden
/// fixture's choices) make compressed entries appear after 4 (CSA) and 8 (HCA) tokens, so every prompt longer than the
/// window reaches raw tokens only through them. Ratio 8 is valid in the official code (any ratio other than 4 is HCA; ratio 4
/// is the only overlapping one). <c>head_dim</c> = 16 rope + 64, the smallest the official FP8 blocks allow.
/// </remarks>
public static class TinyV4
{
    /// <summary>Folder of the trained checkpoint under <c>data/checkpoints</c>.</summary>
    public const string Name = BundledModel.V4Name;

    /// <summary>The architecture as a DeepSeek-V4 <c>config.json</c> (the form shipped with the official checkpoints), parsed by the kit's loader.</summary>
    public static DeepSeekConfig Config(int vocabSize) => DeepSeekConfig.FromJson(ConfigJson(vocabSize));

    /// <summary>
    /// The recipe: <see cref="TrainingOptions.DefaultStages"/> (same data mixtures, batch sizes, learning rates, seeds) with
    /// 400 / 100 / 250 steps instead of 1000 / 250 / 600, because a V4 step (4 streams, Sinkhorn mixing at 9 sites,
    /// compressors and indexers) cost 1.2–1.8 s on CPU here against 0.25 s for a V3 step (docs/training.md), and the run
    /// should stay near a quarter of an hour on two cores.
    /// </summary>
    public static IReadOnlyList<StageOptions> Stages(long seed = 1234) => TrainingOptions.DefaultStages(seed, baseSteps: 400, domainSteps: 100, instructSteps: 250);

    /// <summary>The <c>config.json</c> text of <see cref="Config"/>.</summary>
    public static string ConfigJson(int vocabSize) => $$"""
        {
          "architectures": ["DeepseekV4ForCausalLM"],
          "model_type": "deepseek_v4",
          "vocab_size": {{vocabSize.ToString(CultureInfo.InvariantCulture)}},
          "hidden_size": 128,
          "moe_intermediate_size": 96,
          "num_hidden_layers": 4,
          "num_attention_heads": 4,
          "num_key_value_heads": 1,
          "head_dim": 80,
          "qk_rope_head_dim": 16,
          "q_lora_rank": 64,
          "o_groups": 2,
          "o_lora_rank": 32,
          "sliding_window": 8,
          "compress_ratios": [0, 4, 8, 4],
          "compress_rope_theta": 40000,
          "rope_theta": 10000,
          "index_n_heads": 4,
          "index_head_dim": 32,
          "index_topk": 4,
          "n_routed_experts": 8,
          "n_shared_experts": 1,
          "num_experts_per_tok": 2,
          "num_hash_layers": 1,
          "scoring_func": "sqrtsoftplus",
          "topk_method": "noaux_tc",
          "norm_topk_prob": true,
          "routed_scaling_factor": 1.5,
          "swiglu_limit": 10.0,
          "hc_mult": 4,
          "hc_sinkhorn_iters": 20,
          "hc_eps": 1e-06,
          "num_nextn_predict_layers": 0,
          "max_position_embeddings": 256,
          "rms_norm_eps": 1e-06,
          "tie_word_embeddings": false,
          "hidden_act": "silu"
        }
        """;
}
