using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.CaseStudies;

/// <summary>
/// A trained case-study classifier: an ordinary checkpoint (<see cref="Checkpoint"/>, analysed by every method of the kit)
/// plus its <c>case_study.json</c>, which names the class tokens read at the <c>[CLS]</c> position.
/// </summary>
public sealed class CaseStudyClassifier : IDisposable
{
    private CaseStudyClassifier(Checkpoint checkpoint, CaseStudyVocabulary vocabulary, string name, string? dataDirectory)
    {
        Checkpoint = checkpoint; Vocabulary = vocabulary; CaseStudy = name; DataDirectory = dataDirectory;
    }

    /// <summary>The loaded checkpoint (its model is a plain <see cref="DeepSeekModel"/>).</summary>
    public Checkpoint Checkpoint { get; }
    public DeepSeekModel Model => Checkpoint.Model;
    public CaseStudyVocabulary Vocabulary { get; }
    /// <summary>The case study's name (e.g. <c>imaging</c>).</summary>
    public string CaseStudy { get; }
    /// <summary>The data set it was trained on, when recorded and present.</summary>
    public string? DataDirectory { get; }

    /// <summary>True when <paramref name="directory"/> holds a case-study classifier (a <c>case_study.json</c>).</summary>
    public static bool IsClassifier(string directory) => File.Exists(Path.Combine(directory, ClassifierTrainer.CaseStudyFile));

    /// <summary>Loads the checkpoint and its class tokens; the error names what is missing or inconsistent.</summary>
    public static CaseStudyClassifier Load(string directory, CheckpointLoadOptions? options = null)
    {
        var file = Path.Combine(directory, ClassifierTrainer.CaseStudyFile);
        if (!File.Exists(file))
            throw new CaseStudyException($"{directory} is not a case-study classifier: {ClassifierTrainer.CaseStudyFile} is missing (train one with `deepseek-notebooks case-study <name> --out DIR`)");
        JsonObject j;
        try { j = JsonNode.Parse(File.ReadAllText(file))!.AsObject(); }
        catch (JsonException e) { throw new CaseStudyException($"{file}: not valid JSON ({e.Message})"); }
        var vocabulary = CaseStudyVocabulary.FromJson(j["vocabulary"], file);
        var checkpoint = Checkpoint.Load(directory, options);
        if (checkpoint.Config.VocabSize != vocabulary.VocabSize)
        {
            checkpoint.Dispose();
            throw new CaseStudyException($"{file}: the vocabulary has {vocabulary.VocabSize} tokens but the checkpoint's vocab_size is {checkpoint.Config.VocabSize}");
        }
        string? data = j["data_directory"]?.GetValue<string>() is { } rel ? Path.GetFullPath(Path.Combine(directory, rel)) : null;
        return new CaseStudyClassifier(checkpoint, vocabulary, j["case_study"]?.GetValue<string>() ?? "?", data is not null && Directory.Exists(data) ? data : null);
    }

    /// <summary>Model input [1, length + 1] for one example (its tokens, then [CLS]).</summary>
    public Tensor InputIds(CaseStudyExample example) => ClassifierTrainer.InputIds(new[] { example }, Vocabulary);

    /// <summary>Class logits [n][classes] (optionally with hooks, e.g. an ablated head).</summary>
    public float[][] ClassLogits(IReadOnlyList<CaseStudyExample> examples, IReadOnlyDictionary<string, HookFunction>? hooks = null) =>
        ClassifierTrainer.ClassLogits(Model, Vocabulary, examples, hooks: hooks);

    /// <summary>Predicted class per example.</summary>
    public int[] Predict(IReadOnlyList<CaseStudyExample> examples, IReadOnlyDictionary<string, HookFunction>? hooks = null) =>
        ClassLogits(examples, hooks).Select(ClassifierTrainer.ArgMax).ToArray();

    /// <summary>P(class <paramref name="positive"/>) per example: softmax over the class logits.</summary>
    public double[] Probability(IReadOnlyList<CaseStudyExample> examples, int positive = 1) =>
        ClassLogits(examples).Select(r =>
        {
            double max = r.Max(), sum = r.Sum(v => Math.Exp(v - max));
            return Math.Exp(r[positive] - max) / sum;
        }).ToArray();

    /// <summary>Share of correct predictions.</summary>
    public double Accuracy(IReadOnlyList<CaseStudyExample> examples, IReadOnlyDictionary<string, HookFunction>? hooks = null) =>
        examples.Count == 0 ? throw new ArgumentException("no examples given", nameof(examples))
        : Predict(examples, hooks).Select((p, i) => p == examples[i].Label ? 1.0 : 0.0).Average();

    /// <summary>
    /// The attribution target of a binary decision: logit(class <paramref name="positive"/>) − logit(class
    /// <paramref name="negative"/>) at the [CLS] position — the log-odds the classifier's softmax over its class tokens
    /// turns into P(positive) (Captum: a custom forward returning one scalar per row).
    /// </summary>
    public AttributionTarget LogOdds(int positive = 1, int negative = 0)
    {
        long p = Vocabulary.ClassToken(positive), n = Vocabulary.ClassToken(negative);
        return AttributionTarget.Custom(logits => logits.select(1, -1).select(1, p) - logits.select(1, -1).select(1, n), -1,
            $"logit[{Vocabulary.ClassNames[positive]}] - logit[{Vocabulary.ClassNames[negative]}] at [CLS]");
    }

    /// <summary>
    /// The attribution baseline "an input with nothing in it": <paramref name="inputToken"/> at each of the
    /// <paramref name="length"/> input positions, the [CLS] query kept (Captum's LLM attribution likewise keeps the
    /// template tokens out of the baseline), as embeddings for <see cref="Baseline.Custom"/>.
    /// </summary>
    public Baseline BlankInput(int inputToken, int length)
    {
        var tokens = Enumerable.Repeat(inputToken, length).ToArray();
        using var _ = no_grad();
        using var ids = tensor(Vocabulary.Sequence(tokens)).unsqueeze(0);
        return Baseline.Custom(Model.Embed(ids).detach());
    }

    public void Dispose() => Checkpoint.Dispose();
}

/// <summary>Finds the bundled case studies (<c>data/case-studies/NAME</c>) by walking up from the current and the application directory.</summary>
public static class CaseStudyData
{
    /// <summary>Sub-folder of a case study's directory that holds its trained classifier.</summary>
    public const string ClassifierFolder = "classifier";

    /// <summary><c>data/case-studies/<paramref name="name"/></c> (holding a manifest).</summary>
    public static string Directory(string name) =>
        BundledModel.FindInRepository(Path.Combine("data", "case-studies", name), CaseStudyDataset.ManifestFile)
        ?? throw new CaseStudyException($"the case study data/case-studies/{name} was not found above {System.IO.Directory.GetCurrentDirectory()} (generate it with `deepseek-notebooks case-study {name} --out data/case-studies/{name}`)");

    /// <summary>The classifier trained with <paramref name="seed"/> suffix folder (<c>classifier</c>, or <c>classifier-seed{N}</c>).</summary>
    public static string Classifier(string name, long? seed = null) =>
        Path.Combine(Directory(name), seed is null ? ClassifierFolder : $"{ClassifierFolder}-seed{seed}");
}
