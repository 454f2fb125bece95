using DeepSeekNotebooks.Model;

namespace DeepSeekNotebooks.Training.CaseStudies.Fraud;

/// <summary>
/// Case study 09 end to end: the data (<see cref="TransactionGenerator"/>), the classifier's architecture and recipe, and
/// the bundle under <c>data/case-studies/fraud</c> (data files + <c>classifier/</c>).
/// <c>deepseek-notebooks case-study fraud --out DIR</c> calls <see cref="Build"/>.
/// </summary>
public static class FraudCaseStudy
{
    public const string Name = "fraud";
    public const long DefaultDataSeed = 9;
    /// <summary>Training seeds: the first is the main classifier (<c>classifier/</c>), the others <c>classifier-seed{N}/</c>.</summary>
    public static readonly long[] DefaultModelSeeds = { 1 };
    public const int DefaultSteps = 500;
    /// <summary>The decision threshold on P(fraud) the case study fixes for recall and precision.</summary>
    public const double Threshold = 0.5;

    /// <summary>The classifier architecture: DeepSeek-V3 blocks at a tiny size (2 MoE blocks, 4 MLA heads with q/kv LoRA and
    /// decoupled RoPE, 8 routed experts top-2 + 1 shared, sigmoid gate with the aux-loss-free selection bias).</summary>
    public static DeepSeekConfig ClassifierConfig(int vocabSize) => new()
    {
        VocabSize = vocabSize, HiddenSize = 64, IntermediateSize = 128, MoeIntermediateSize = 48, NumHiddenLayers = 2, FirstKDenseReplace = 0,
        MoeLayerFreq = 1, NumAttentionHeads = 4, NRoutedExperts = 8, NSharedExperts = 1, NumExpertsPerTok = 2, NGroup = 1, TopkGroup = 1,
        ScoringFunc = ScoringFunc.Sigmoid, TopkMethod = TopkMethod.NoauxTc, NormTopkProb = true, RoutedScalingFactor = 1.0, QLoraRank = 32, KvLoraRank = 32,
        QkNopeHeadDim = 16, QkRopeHeadDim = 8, VHeadDim = 16, RopeTheta = 10000, RopeScaling = null, RmsNormEps = 1e-6,
        MaxPositionEmbeddings = 64, TieWordEmbeddings = false,
    };

    /// <summary>The training recipe of the bundled classifier for <paramref name="seed"/>.</summary>
    public static ClassifierTrainingOptions TrainingOptions(long seed, int steps = DefaultSteps) => new()
    {
        Model = ClassifierConfig(TransactionGenerator.TokenNames.Length + 1 + TransactionGenerator.Classes.Length),
        Steps = steps, BatchSize = 32, LearningRate = 3e-3, WarmupSteps = 30, Seed = seed, EvalEvery = 50,
    };

    /// <summary>Generates the data into <paramref name="directory"/> and trains one classifier per seed; returns the results.</summary>
    public static IReadOnlyList<ClassifierTrainingResult> Build(string directory, long dataSeed = DefaultDataSeed, IReadOnlyList<long>? modelSeeds = null,
        int steps = DefaultSteps, TransactionGeneratorOptions? options = null, Action<long, ClassifierStep>? progress = null)
    {
        modelSeeds ??= DefaultModelSeeds;
        if (modelSeeds.Count == 0) throw new ArgumentException("give at least one training seed", nameof(modelSeeds));
        var data = new TransactionGenerator(options).Write(dataSeed, directory);
        var results = new List<ClassifierTrainingResult>();
        for (int i = 0; i < modelSeeds.Count; i++)
        {
            long s = modelSeeds[i];
            var outDir = Path.Combine(directory, i == 0 ? CaseStudyData.ClassifierFolder : $"{CaseStudyData.ClassifierFolder}-seed{s}");
            results.Add(ClassifierTrainer.Train(data, TrainingOptions(s, steps), outDir, step => progress?.Invoke(s, step), directory));
        }
        return results;
    }

    /// <summary>Reads the data set in <paramref name="directory"/> (hashes verified).</summary>
    public static CaseStudyDataset Load(string directory)
    {
        var ds = CaseStudyDataset.Read(directory);
        if (ds.Name != Name) throw new CaseStudyException($"{directory} holds the case study '{ds.Name}', not '{Name}'");
        var odd = ds.Examples.FirstOrDefault(e => e.Tokens.Length != TransactionGenerator.Length);
        if (odd is not null)
            throw new CaseStudyException($"{directory}: example {odd.Id} has {odd.Tokens.Length} tokens; fraud accounts have {TransactionGenerator.Length} (1 + {TransactionGenerator.Transactions} × {TransactionGenerator.FieldsPerTransaction})");
        return ds;
    }

    /// <summary>
    /// Which classifier the notebook analyses: <paramref name="checkpointDirectory"/> when it is a fraud classifier (a
    /// <c>case_study.json</c> naming this case study, e.g. through <c>report --checkpoint</c>), else the bundled one;
    /// <paramref name="note"/> says which, in one line.
    /// </summary>
    public static string ResolveClassifier(string checkpointDirectory, out string note)
    {
        var file = Path.Combine(checkpointDirectory, ClassifierTrainer.CaseStudyFile);
        string? name = null;
        if (File.Exists(file))
            try { name = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(file))?["case_study"]?.GetValue<string>(); }
            catch (System.Text.Json.JsonException) { name = null; }
        if (name == Name)
        {
            note = $"Analysing the fraud classifier {Path.GetFileName(Path.GetFullPath(checkpointDirectory).TrimEnd('/'))} given as the checkpoint.";
            return checkpointDirectory;
        }
        var bundled = CaseStudyData.Classifier(Name);
        note = $"The checkpoint {Path.GetFileName(Path.GetFullPath(checkpointDirectory).TrimEnd('/'))} is not a fraud classifier" +
               (name is null ? "" : $" (it is the '{name}' case study's)") +
               ", so this case study analyses its own bundled classifier (data/case-studies/fraud/classifier); the checkpoint is the second model size in the latency section.";
        return bundled;
    }

    /// <summary>The bundled data set (<c>data/case-studies/fraud</c>).</summary>
    public static CaseStudyDataset LoadBundled() => Load(CaseStudyData.Directory(Name));
}

/// <summary>
/// Readable views of a fraud example for the analyses: attribution per field, the latest device swapped or shuffled,
/// and the features a surrogate tree splits on.
/// </summary>
public static class FraudFeatures
{
    /// <summary>The fields in <see cref="TransactionField"/> order (the attribution groups).</summary>
    public static readonly TransactionField[] Fields = Enum.GetValues<TransactionField>();

    /// <summary>
    /// Per-token scores (one per input position, [CLS] excluded or included as the last) summed per field over all
    /// transactions — "which kind of information drove the decision".
    /// </summary>
    /// <exception cref="ArgumentException">Fewer scores than input positions.</exception>
    public static double[] PerField(IReadOnlyList<double> positionScores)
    {
        ArgumentNullException.ThrowIfNull(positionScores);
        if (positionScores.Count is not (TransactionGenerator.Length or TransactionGenerator.Length + 1))
            throw new ArgumentException($"expected {TransactionGenerator.Length} position scores (or {TransactionGenerator.Length + 1} with [CLS]), got {positionScores.Count}", nameof(positionScores));
        var sums = new double[Fields.Length];
        for (int p = 0; p < TransactionGenerator.Length; p++) sums[(int)TransactionGenerator.FieldAt(p)] += positionScores[p];
        return sums;
    }

    /// <summary>The example with its latest device replaced by <paramref name="deviceToken"/> (same id, split and label).</summary>
    public static CaseStudyExample WithLatestDevice(CaseStudyExample example, int deviceToken)
    {
        if (TransactionGenerator.Decode(deviceToken).Field != TransactionField.Device)
            throw new ArgumentException($"token {deviceToken} ({TransactionGenerator.TokenNames[deviceToken]}) is not a device fingerprint", nameof(deviceToken));
        var tokens = (int[])example.Tokens.Clone();
        tokens[TransactionGenerator.LatestDevicePosition] = deviceToken;
        var facts = new Dictionary<string, double>(example.Facts) { ["shortcut_device"] = deviceToken == TransactionGenerator.Token(TransactionGenerator.ShortcutDevice) ? 1 : 0 };
        return example with { Tokens = tokens, Facts = facts };
    }

    /// <summary>
    /// The examples with their latest devices permuted among them (seeded): the device's marginal distribution is kept,
    /// its link to each account — and to the label — is broken (permutation feature importance, Breiman 2001).
    /// </summary>
    public static IReadOnlyList<CaseStudyExample> ShuffleLatestDevice(IReadOnlyList<CaseStudyExample> examples, int seed)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var devices = examples.Select(e => e.Tokens[TransactionGenerator.LatestDevicePosition]).ToArray();
        new Random(seed).Shuffle(devices);
        return examples.Select((e, i) => WithLatestDevice(e, devices[i])).ToArray();
    }

    /// <summary>Names of <see cref="Readable"/>'s features.</summary>
    public static readonly string[] ReadableNames =
    {
        "night", "abroad", "outside_home_region", "latest_amount_bucket", "merchant_electronics_or_gift_cards", "merchant_digital_crypto_atm",
        "fast_gaps_last3", "small_amounts_before_latest", "device_7f3a", "new_device", "account_age_bucket",
    };

    /// <summary>
    /// Features a person can read off the transactions (computed from the tokens, not from the generator's facts):
    /// <see cref="ReadableNames"/>.
    /// </summary>
    public static double[] Readable(CaseStudyExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        var t = example.Tokens;
        int last = TransactionGenerator.Transactions - 1;
        int V(int tx, TransactionField f) => TransactionGenerator.Decode(t[TransactionGenerator.Position(tx, f)]).Value;
        int hour = V(last, TransactionField.Hour), geo = V(last, TransactionField.Geography), merchant = V(last, TransactionField.Merchant);
        // Home region: the most frequent domestic region of the earlier transactions.
        var earlier = Enumerable.Range(0, last).Select(tx => V(tx, TransactionField.Geography)).Where(g => g < 6).ToArray();
        int home = earlier.Length == 0 ? -1 : earlier.GroupBy(g => g).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
        int device = V(last, TransactionField.Device);
        return new double[]
        {
            hour <= 1 ? 1 : 0,
            geo >= 6 ? 1 : 0,
            geo < 6 && geo != home ? 1 : 0,
            V(last, TransactionField.Amount),
            merchant is 5 or 6 ? 1 : 0,
            merchant is 7 or 8 or 9 ? 1 : 0,
            Enumerable.Range(last - 2, 3).Count(tx => V(tx, TransactionField.Gap) == 0),
            Enumerable.Range(last - 2, 2).Count(tx => V(tx, TransactionField.Amount) == 0),
            TransactionGenerator.Devices[device] == TransactionGenerator.ShortcutDevice ? 1 : 0,
            Enumerable.Range(0, last).Any(tx => V(tx, TransactionField.Device) == device) ? 0 : 1,
            TransactionGenerator.Decode(t[0]).Value,
        };
    }
}
