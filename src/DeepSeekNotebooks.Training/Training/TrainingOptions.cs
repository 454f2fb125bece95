using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Training.Corpus;

namespace DeepSeekNotebooks.Training.Training;

/// <summary>Hyperparameters are out of range (named, with the allowed range).</summary>
public sealed class TrainingOptionsException(string message) : Exception(message);

/// <summary>Which auxiliary balance loss is added to the language-modelling loss.</summary>
public enum BalanceLossKind
{
    /// <summary>None (rely on the auxiliary-loss-free bias only).</summary>
    None,
    /// <summary>DeepSeek-V3 complementary sequence-wise balance loss (eq. 17–20), computed per sequence and averaged.</summary>
    SequenceWise,
    /// <summary>DeepSeek-V2 expert-level balance loss, computed over the whole batch.</summary>
    ExpertLevel,
}

/// <summary>One training stage.</summary>
public sealed record StageOptions
{
    /// <summary>Stage name: <c>base</c>, <c>domain</c> or <c>instruct</c> (also the checkpoint sub-folder).</summary>
    public required string Name { get; init; }
    public int Steps { get; init; } = 100;
    public int BatchSize { get; init; } = 16;
    public int SequenceLength { get; init; } = 128;
    /// <summary>Peak learning rate (after warmup); cosine-decays to <see cref="MinLearningRateRatio"/> × peak.</summary>
    public double LearningRate { get; init; } = 3e-3;
    public int WarmupSteps { get; init; } = 20;
    public double MinLearningRateRatio { get; init; } = 0.1;
    /// <summary>Sampling weight of each domain's training stream.</summary>
    public IReadOnlyDictionary<string, double> DomainWeights { get; init; } = new Dictionary<string, double>();
    /// <summary>Loss only on instruction answers for instruct rows (stage 3); otherwise every next token.</summary>
    public bool AnswerOnlyLoss { get; init; }
    public long Seed { get; init; } = 1;

    /// <summary>Throws <see cref="TrainingOptionsException"/> naming the first bad value.</summary>
    public void Validate(int maxPositions)
    {
        if (Steps < 1) throw new TrainingOptionsException($"stage {Name}: steps must be >= 1, got {Steps}");
        if (BatchSize < 1) throw new TrainingOptionsException($"stage {Name}: batch size must be >= 1, got {BatchSize}");
        if (SequenceLength < 8 || SequenceLength > maxPositions)
            throw new TrainingOptionsException($"stage {Name}: sequence length must be in [8, {maxPositions}] (max_position_embeddings), got {SequenceLength}");
        if (!(LearningRate > 0) || LearningRate > 1 || double.IsNaN(LearningRate))
            throw new TrainingOptionsException($"stage {Name}: learning rate must be in (0, 1], got {LearningRate}");
        if (WarmupSteps < 0) throw new TrainingOptionsException($"stage {Name}: warmup steps must be >= 0, got {WarmupSteps}");
        if (!(MinLearningRateRatio >= 0 && MinLearningRateRatio <= 1))
            throw new TrainingOptionsException($"stage {Name}: min lr ratio must be in [0, 1], got {MinLearningRateRatio}");
        if (DomainWeights.Count == 0 || DomainWeights.Values.Any(w => !(w >= 0)) || DomainWeights.Values.Sum() <= 0)
            throw new TrainingOptionsException($"stage {Name}: domain weights must be non-negative with a positive sum");
    }
}

/// <summary>Everything one training run needs; <see cref="DefaultStages"/> and <see cref="TinyMoeConfig"/> give the bundled model's recipe.</summary>
public sealed record TrainingOptions
{
    public required DeepSeekConfig Model { get; init; }
    public required IReadOnlyList<StageOptions> Stages { get; init; }
    /// <summary>Seed of the model initialisation (the stages' seeds drive batch sampling).</summary>
    public long Seed { get; init; } = 1234;
    public double WeightDecay { get; init; } = 0.01;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    /// <summary>Global gradient-norm clip.</summary>
    public double GradClip { get; init; } = 1.0;
    /// <summary>Auxiliary-loss-free bias update speed γ (b_i += γ·sign(mean load − load_i) after each step); 0 disables it.</summary>
    public double BiasUpdateSpeed { get; init; } = 0.001;
    public BalanceLossKind BalanceLoss { get; init; } = BalanceLossKind.SequenceWise;
    /// <summary>Balance-loss weight α (DeepSeek-V3 uses an extremely small value).</summary>
    public double BalanceAlpha { get; init; } = 1e-4;
    /// <summary>Write a resumable checkpoint every this many steps (and at the end of each stage).</summary>
    public int CheckpointEvery { get; init; } = 50;
    /// <summary>Compute validation loss every this many steps (and at the end of each stage).</summary>
    public int EvalEvery { get; init; } = 50;
    /// <summary>Validation windows per domain for the periodic validation loss.</summary>
    public int EvalWindows { get; init; } = 4;
    /// <summary>Torch intra-op threads (recorded; results are reproducible for a fixed seed and thread count).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Write TensorBoard event files (besides CSV/JSONL).</summary>
    public bool TensorBoard { get; init; } = true;
    /// <summary>Name recorded as <c>model</c> in training.json (the bundled folder name: <c>deepseek-tiny-moe</c>, <c>deepseek-tiny-v4</c>).</summary>
    public string ModelName { get; init; } = BundledModel.DefaultName;

    /// <summary>Checks every hyperparameter and the model configuration before anything is trained.</summary>
    public void Validate()
    {
        try { Model.Validate(); }
        catch (ConfigException e) { throw new TrainingOptionsException($"model configuration: {e.Message}"); }
        if (Stages.Count == 0) throw new TrainingOptionsException("at least one stage is required");
        foreach (var s in Stages) s.Validate(Model.MaxPositionEmbeddings);
        if (Stages.Select(s => s.Name).Distinct().Count() != Stages.Count) throw new TrainingOptionsException("stage names must be unique");
        if (!(WeightDecay >= 0 && WeightDecay < 1)) throw new TrainingOptionsException($"weight decay must be in [0, 1), got {WeightDecay}");
        if (!(Beta1 is >= 0 and < 1) || !(Beta2 is >= 0 and < 1)) throw new TrainingOptionsException($"betas must be in [0, 1), got {Beta1}, {Beta2}");
        if (!(GradClip > 0)) throw new TrainingOptionsException($"gradient clip must be > 0, got {GradClip}");
        if (!(BiasUpdateSpeed >= 0 && BiasUpdateSpeed < 1)) throw new TrainingOptionsException($"bias update speed gamma must be in [0, 1), got {BiasUpdateSpeed}");
        if (!(BalanceAlpha >= 0 && BalanceAlpha < 1)) throw new TrainingOptionsException($"balance alpha must be in [0, 1), got {BalanceAlpha}");
        if (CheckpointEvery < 1) throw new TrainingOptionsException($"checkpoint interval must be >= 1, got {CheckpointEvery}");
        if (EvalEvery < 1) throw new TrainingOptionsException($"eval interval must be >= 1, got {EvalEvery}");
        if (EvalWindows < 1) throw new TrainingOptionsException($"eval windows must be >= 1, got {EvalWindows}");
        if (Threads < 1) throw new TrainingOptionsException($"threads must be >= 1, got {Threads}");
        if (string.IsNullOrWhiteSpace(ModelName)) throw new TrainingOptionsException("model name must not be empty");
    }

    /// <summary>The bundled model's architecture: DeepSeek-V3 at a tiny size (≈ 2.6 M parameters, ≈ 10 MB float32).</summary>
    public static DeepSeekConfig TinyMoeConfig(int vocabSize) => new()
    {
        VocabSize = vocabSize, HiddenSize = 128, IntermediateSize = 384, MoeIntermediateSize = 96, NumHiddenLayers = 4, FirstKDenseReplace = 1,
        MoeLayerFreq = 1, NumAttentionHeads = 4, NRoutedExperts = 8, NSharedExperts = 1, NumExpertsPerTok = 2, NGroup = 2, TopkGroup = 1,
        ScoringFunc = ScoringFunc.Sigmoid, TopkMethod = TopkMethod.NoauxTc, NormTopkProb = true, RoutedScalingFactor = 1.0, QLoraRank = 64, KvLoraRank = 32,
        QkNopeHeadDim = 32, QkRopeHeadDim = 16, VHeadDim = 32, RopeTheta = 10000, RopeScaling = null, RmsNormEps = 1e-6,
        MaxPositionEmbeddings = 256, TieWordEmbeddings = false,
    };

    /// <summary>The default three-stage recipe (base → domain → instruct).</summary>
    public static IReadOnlyList<StageOptions> DefaultStages(long seed = 1234, int baseSteps = 1000, int domainSteps = 250, int instructSteps = 600) => new[]
    {
        new StageOptions
        {
            Name = "base", Steps = baseSteps, BatchSize = 16, SequenceLength = 64, LearningRate = 3e-3, WarmupSteps = Math.Min(30, baseSteps / 5),
            DomainWeights = new Dictionary<string, double> { [Domains.Prose] = 1, [Domains.Arithmetic] = 1, [Domains.Code] = 1, [Domains.Records] = 1 },
            Seed = seed + 1,
        },
        new StageOptions
        {
            Name = "domain", Steps = domainSteps, BatchSize = 16, SequenceLength = 64, LearningRate = 1e-3, WarmupSteps = Math.Min(10, domainSteps / 5),
            DomainWeights = new Dictionary<string, double> { [Domains.Prose] = 0.1, [Domains.Arithmetic] = 0.1, [Domains.Code] = 0.4, [Domains.Records] = 0.4 },
            Seed = seed + 2,
        },
        new StageOptions
        {
            Name = "instruct", Steps = instructSteps, BatchSize = 16, SequenceLength = 48, LearningRate = 2e-3, WarmupSteps = Math.Min(10, instructSteps / 5),
            DomainWeights = new Dictionary<string, double> { [Domains.Instruct] = 0.8, [Domains.Prose] = 0.05, [Domains.Arithmetic] = 0.05, [Domains.Code] = 0.05, [Domains.Records] = 0.05 },
            AnswerOnlyLoss = true, Seed = seed + 3,
        },
    };
}
