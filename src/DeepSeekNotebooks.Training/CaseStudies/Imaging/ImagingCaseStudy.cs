using DeepSeekNotebooks.Model;

namespace DeepSeekNotebooks.Training.CaseStudies.Imaging;

/// <summary>The imaging data set as read back: examples plus each example's pixels and lesion mask.</summary>
public sealed class ImagingData
{
    private readonly Dictionary<string, int> _index;

    internal ImagingData(string directory, CaseStudyDataset dataset, float[][] pixels, bool[][] lesions)
    {
        Directory = directory; Dataset = dataset; Pixels = pixels; Lesions = lesions;
        _index = dataset.Examples.Select((e, i) => (e.Id, i)).ToDictionary(t => t.Id, t => t.i);
    }

    public string Directory { get; }
    public CaseStudyDataset Dataset { get; }
    /// <summary>32×32 pixels in [0, 1] (row-major), one array per example in data-set order.</summary>
    public IReadOnlyList<float[]> Pixels { get; }
    /// <summary>Which of the 64 patches overlap a nodule, per example.</summary>
    public IReadOnlyList<bool[]> Lesions { get; }

    public IReadOnlyList<CaseStudyExample> Split(string split) => Dataset.Split(split);
    public float[] PixelsOf(CaseStudyExample e) => Pixels[IndexOf(e)];
    public bool[] LesionsOf(CaseStudyExample e) => Lesions[IndexOf(e)];

    private int IndexOf(CaseStudyExample e) => _index.TryGetValue(e.Id, out var i) ? i
        : throw new ArgumentException($"example {e.Id} is not part of the data set in {Directory}", nameof(e));
}

/// <summary>
/// Case study 08 end to end: the data (<see cref="ScanGenerator"/>), the classifier's architecture and recipe, and the
/// bundle under <c>data/case-studies/imaging</c> (data files + <c>classifier/</c> + one <c>classifier-seed{N}</c> per extra
/// training seed). <c>deepseek-notebooks case-study imaging --out DIR</c> calls <see cref="Build"/>.
/// </summary>
public static class ImagingCaseStudy
{
    public const string Name = "imaging";
    public const long DefaultDataSeed = 8;
    /// <summary>Training seeds: the first is the main classifier (<c>classifier/</c>), the others <c>classifier-seed{N}/</c>.</summary>
    public static readonly long[] DefaultModelSeeds = { 1, 2, 3 };

    /// <summary>The classifier architecture: DeepSeek-V3 blocks at a tiny size (2 MoE blocks, 4 MLA heads with q/kv LoRA and
    /// decoupled RoPE, 8 routed experts top-2 + 1 shared, sigmoid gate with the aux-loss-free selection bias).</summary>
    public static DeepSeekConfig ClassifierConfig(int vocabSize) => new()
    {
        VocabSize = vocabSize, HiddenSize = 64, IntermediateSize = 128, MoeIntermediateSize = 48, NumHiddenLayers = 2, FirstKDenseReplace = 0,
        MoeLayerFreq = 1, NumAttentionHeads = 4, NRoutedExperts = 8, NSharedExperts = 1, NumExpertsPerTok = 2, NGroup = 1, TopkGroup = 1,
        ScoringFunc = ScoringFunc.Sigmoid, TopkMethod = TopkMethod.NoauxTc, NormTopkProb = true, RoutedScalingFactor = 1.0, QLoraRank = 32, KvLoraRank = 32,
        QkNopeHeadDim = 16, QkRopeHeadDim = 8, VHeadDim = 16, RopeTheta = 10000, RopeScaling = null, RmsNormEps = 1e-6,
        MaxPositionEmbeddings = 128, TieWordEmbeddings = false,
    };

    /// <summary>The training recipe of the bundled classifier for <paramref name="seed"/>.</summary>
    public static ClassifierTrainingOptions TrainingOptions(long seed, int steps = 300) => new()
    {
        Model = ClassifierConfig(PatchCodebook.TokenNames.Length + 1 + ScanGenerator.Classes.Length),
        Steps = steps, BatchSize = 32, LearningRate = 3e-3, WarmupSteps = 30, Seed = seed, EvalEvery = 50,
    };

    /// <summary>Generates the data into <paramref name="directory"/> and trains one classifier per seed; returns the results.</summary>
    public static IReadOnlyList<ClassifierTrainingResult> Build(string directory, long dataSeed = DefaultDataSeed, IReadOnlyList<long>? modelSeeds = null,
        int steps = 300, ScanGeneratorOptions? options = null, Action<long, ClassifierStep>? progress = null)
    {
        modelSeeds ??= DefaultModelSeeds;
        if (modelSeeds.Count == 0) throw new ArgumentException("give at least one training seed", nameof(modelSeeds));
        var data = new ScanGenerator(options).Write(dataSeed, directory);
        var results = new List<ClassifierTrainingResult>();
        for (int i = 0; i < modelSeeds.Count; i++)
        {
            long s = modelSeeds[i];
            var outDir = Path.Combine(directory, i == 0 ? CaseStudyData.ClassifierFolder : $"{CaseStudyData.ClassifierFolder}-seed{s}");
            results.Add(ClassifierTrainer.Train(data, TrainingOptions(s, steps), outDir, step => progress?.Invoke(s, step), directory));
        }
        return results;
    }

    /// <summary>Sub-folder of the classifier trained on permuted labels (<see cref="TrainPermutedLabels"/>).</summary>
    public const string PermutedLabelsFolder = "classifier-permuted-labels";

    /// <summary>Steps of the permuted-label recipe: 5× the bundled 300, so the model memorises part of the random labels
    /// (labels it cannot predict from the scans) rather than staying at its initialisation.</summary>
    public const int PermutedLabelsSteps = 1500;

    /// <summary>
    /// Data randomisation (Adebayo et al. 2018): trains the bundled recipe (seed <paramref name="seed"/>) on the data in
    /// <paramref name="directory"/> with the train labels permuted by <paramref name="permutationSeed"/>
    /// (<see cref="ClassifierTrainingOptions.PermuteLabelsSeed"/>) and writes it to <c>classifier-permuted-labels/</c>.
    /// </summary>
    public static ClassifierTrainingResult TrainPermutedLabels(string directory, long seed = 1, long permutationSeed = 1, int steps = PermutedLabelsSteps,
        Action<ClassifierStep>? progress = null)
    {
        var data = Load(directory);
        return ClassifierTrainer.Train(data.Dataset, TrainingOptions(seed, steps) with { PermuteLabelsSeed = permutationSeed },
            Path.Combine(directory, PermutedLabelsFolder), progress, directory);
    }

    /// <summary>Reads the data set in <paramref name="directory"/> (hashes verified) with its scans.</summary>
    public static ImagingData Load(string directory)
    {
        var ds = CaseStudyDataset.Read(directory);
        if (ds.Name != Name) throw new CaseStudyException($"{directory} holds the case study '{ds.Name}', not '{Name}'");
        var (pixels, lesions) = ScanFile.Read(directory, ds.Examples.Count);
        return new ImagingData(directory, ds, pixels, lesions);
    }

    /// <summary>The bundled data set (<c>data/case-studies/imaging</c>).</summary>
    public static ImagingData LoadBundled() => Load(CaseStudyData.Directory(Name));
}
