using Stopwatch = System.Diagnostics.Stopwatch;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.IO;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Model.Tracing;
using DeepSeekNotebooks.Training.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.CaseStudies;

/// <summary>
/// The classification objective of a case-study classifier: the logits at the final (<c>[CLS]</c>) position restricted to
/// the class tokens, and their cross-entropy with the labels — as BERT's sequence classification reads the [CLS] state,
/// here through the model's own LM head so the checkpoint stays an ordinary <c>DeepSeekModel</c>.
/// </summary>
public static class ClassificationObjective
{
    /// <summary>Class logits [batch, classes] from LM logits [batch, seq, vocab]: row −1, columns = class tokens.</summary>
    public static Tensor ClassLogits(Tensor logits, CaseStudyVocabulary vocabulary)
    {
        using var idx = tensor(vocabulary.ClassTokens, device: logits.device);
        return logits.select(1, -1).index_select(-1, idx);
    }

    /// <summary>Mean cross-entropy of <see cref="ClassLogits"/> against <paramref name="labels"/> (int64 [batch]).</summary>
    public static Tensor Loss(Tensor logits, Tensor labels, CaseStudyVocabulary vocabulary)
    {
        using var scope = NewDisposeScope();
        return nn.functional.cross_entropy(ClassLogits(logits, vocabulary), labels).MoveToOuterDisposeScope();
    }
}

/// <summary>Hyperparameters of <see cref="ClassifierTrainer.Train"/>.</summary>
public sealed record ClassifierTrainingOptions
{
    /// <summary>Architecture; <c>vocab_size</c> must equal the data set's <see cref="CaseStudyVocabulary.VocabSize"/>.</summary>
    public required DeepSeekConfig Model { get; init; }
    public int Steps { get; init; } = 600;
    public int BatchSize { get; init; } = 32;
    public double LearningRate { get; init; } = 3e-3;
    public int WarmupSteps { get; init; } = 30;
    public double MinLearningRateRatio { get; init; } = 0.1;
    /// <summary>Seed of the initialisation and of the batch order.</summary>
    public long Seed { get; init; } = 1;
    public double WeightDecay { get; init; } = 0.01;
    public double GradClip { get; init; } = 1.0;
    /// <summary>Auxiliary-loss-free bias update speed γ (DeepSeek-V3 §2.1.2; <see cref="LoadBalancing.UpdateBias"/>).</summary>
    public double BiasUpdateSpeed { get; init; } = 0.001;
    /// <summary>Weight α of the sequence-wise balance loss (<see cref="LoadBalancing.SequenceWiseLoss"/>).</summary>
    public double BalanceAlpha { get; init; } = 1e-4;
    /// <summary>Validation accuracy every this many steps (and at the last).</summary>
    public int EvalEvery { get; init; } = 50;
    public int Threads { get; init; } = 1;
    /// <summary>
    /// Data randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", §4): when set, the train split's labels
    /// are randomly permuted with this seed before training (the inputs, the label frequencies and the recipe stay the
    /// same), so the model can only memorise; explanations of such a model should differ from those of the model trained
    /// on the true labels. Validation accuracy is still measured against the true labels. Null (default): true labels.
    /// </summary>
    public long? PermuteLabelsSeed { get; init; }

    public void Validate(CaseStudyVocabulary vocabulary, int sequenceLength)
    {
        try { Model.Validate(); }
        catch (ConfigException e) { throw new TrainingOptionsException($"model configuration: {e.Message}"); }
        if (Model.VocabSize != vocabulary.VocabSize)
            throw new TrainingOptionsException($"vocab_size is {Model.VocabSize} but the case study needs {vocabulary.VocabSize} ({vocabulary.InputTokens.Count} inputs + [CLS] + {vocabulary.ClassNames.Count} classes)");
        if (sequenceLength > Model.MaxPositionEmbeddings)
            throw new TrainingOptionsException($"inputs are {sequenceLength} tokens with [CLS] but max_position_embeddings is {Model.MaxPositionEmbeddings}");
        if (Steps < 1) throw new TrainingOptionsException($"steps must be >= 1, got {Steps}");
        if (BatchSize < 1) throw new TrainingOptionsException($"batch size must be >= 1, got {BatchSize}");
        if (!(LearningRate > 0 && LearningRate <= 1)) throw new TrainingOptionsException($"learning rate must be in (0, 1], got {LearningRate}");
        if (WarmupSteps < 0) throw new TrainingOptionsException($"warmup steps must be >= 0, got {WarmupSteps}");
        if (!(MinLearningRateRatio is >= 0 and <= 1)) throw new TrainingOptionsException($"min lr ratio must be in [0, 1], got {MinLearningRateRatio}");
        if (!(WeightDecay is >= 0 and < 1)) throw new TrainingOptionsException($"weight decay must be in [0, 1), got {WeightDecay}");
        if (!(GradClip > 0)) throw new TrainingOptionsException($"gradient clip must be > 0, got {GradClip}");
        if (!(BiasUpdateSpeed is >= 0 and < 1)) throw new TrainingOptionsException($"bias update speed gamma must be in [0, 1), got {BiasUpdateSpeed}");
        if (!(BalanceAlpha is >= 0 and < 1)) throw new TrainingOptionsException($"balance alpha must be in [0, 1), got {BalanceAlpha}");
        if (EvalEvery < 1) throw new TrainingOptionsException($"eval interval must be >= 1, got {EvalEvery}");
        if (Threads < 1) throw new TrainingOptionsException($"threads must be >= 1, got {Threads}");
    }
}

/// <summary>One logged step of classifier training (a line of <c>training_log.jsonl</c>).</summary>
public sealed record ClassifierStep(int Step, double LearningRate, double Loss, double ClassLoss, double BalanceLoss, double GradNorm,
    double BatchAccuracy, double? ValidationAccuracy, double ElapsedSeconds);

/// <summary>Outcome of <see cref="ClassifierTrainer.Train"/>.</summary>
public sealed record ClassifierTrainingResult(IReadOnlyList<ClassifierStep> Log, double ValidationAccuracy, double TrainSeconds, string? OutputDirectory);

/// <summary>
/// Trains a case-study classifier: a <see cref="DeepSeekModel"/> (MLA + DeepSeekMoE with the real gate, routed and shared
/// experts) with the <see cref="ClassificationObjective"/> at the <c>[CLS]</c> position, using the kit's training pieces —
/// the traced forward the language-model <see cref="Trainer"/> uses, DeepSeek-V3's sequence-wise balance loss and
/// auxiliary-loss-free bias update (<see cref="LoadBalancing"/>), AdamW with warmup + cosine decay
/// (<see cref="LearningRateSchedule"/>) and global-norm clipping. The checkpoint it writes loads with
/// <see cref="Checkpoint.Load"/> like any other; <c>case_study.json</c> beside it says which tokens are the classes.
/// </summary>
public static class ClassifierTrainer
{
    public const string CaseStudyFile = "case_study.json";
    public const string TrainingFile = "training.json";
    public const string LogFile = "training_log.jsonl";

    private static readonly TraceOptions TrainingTrace = new()
    {
        AttentionPatterns = false, HiddenStates = false, Logits = true, Routing = true, KeepGraph = true,
    };

    /// <summary>Trains on <paramref name="data"/>'s train split and, when <paramref name="outputDirectory"/> is given, writes
    /// the checkpoint (config.json, model.safetensors, case_study.json, training.json, training_log.jsonl) atomically.
    /// <paramref name="dataDirectory"/> (optional) is recorded as the data's location, relative to the output.</summary>
    public static ClassifierTrainingResult Train(CaseStudyDataset data, ClassifierTrainingOptions options, string? outputDirectory = null,
        Action<ClassifierStep>? progress = null, string? dataDirectory = null)
    {
        data.Validate();
        var train = data.Split(CaseStudySplits.Train);
        var validation = data.Split(CaseStudySplits.Validation);
        var trainLabels = TrainLabels(train, options.PermuteLabelsSeed);
        int length = train[0].Tokens.Length;
        var odd = data.Examples.FirstOrDefault(e => e.Tokens.Length != length);
        if (odd is not null) throw new CaseStudyException($"{data.Name}: every example must have {length} tokens (a fixed-length input); {odd.Id} has {odd.Tokens.Length}");
        options.Validate(data.Vocabulary, length + 1);
        TorchRuntime.EnsureLoaded();
        int threadsBefore = torch.get_num_threads();
        torch.set_num_threads(options.Threads);
        try
        {
            using var model = DeepSeekModel.Create(options.Model, options.Seed);
            model.train();
            var trainable = model.parameters().Where(p => p.requires_grad).ToArray();
            using var optimizer = torch.optim.AdamW(trainable, options.LearningRate, 0.9, 0.95, 1e-8, options.WeightDecay);
            var moeLayers = model.Layers.Where(b => b.Moe is not null).ToArray();
            var log = new List<ClassifierStep>();
            var clock = Stopwatch.StartNew();
            var order = new Random(unchecked((int)(options.Seed * 7919 + 17)));
            double valAcc = double.NaN;
            for (int step = 0; step < options.Steps; step++)
            {
                double lr = LearningRateSchedule.At(step, options.Steps, options.LearningRate, options.WarmupSteps, options.MinLearningRateRatio);
                foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
                var picks = Enumerable.Range(0, options.BatchSize).Select(_ => order.Next(train.Count)).ToArray();
                var batch = picks.Select(i => train[i]).ToArray();
                double loss, ce, bal, gradNorm, acc;
                var loads = new Dictionary<int, double[]>();
                using (var scope = NewDisposeScope())
                {
                    var ids = InputIds(batch, data.Vocabulary);
                    var labels = tensor(picks.Select(i => (long)trainLabels[i]).ToArray());
                    using var trace = model.RunWithCache(ids, TrainingTrace);
                    var classLoss = ClassificationObjective.Loss(trace.Logits, labels, data.Vocabulary);
                    Tensor balance = zeros(1).squeeze();
                    foreach (var block in moeLayers)
                    {
                        var idx = trace.ExpertIndices(block.Layer);
                        balance = balance + LoadBalancing.SequenceWiseLoss(trace.RouterScores(block.Layer), idx, batch.Length, options.BalanceAlpha);
                        loads[block.Layer] = LoadBalancing.ExpertLoad(idx, options.Model.NRoutedExperts);
                    }
                    var total = classLoss + balance;
                    optimizer.zero_grad();
                    total.backward();
                    gradNorm = nn.utils.clip_grad_norm_(trainable, options.GradClip);
                    optimizer.step();
                    loss = total.item<float>();
                    ce = classLoss.item<float>();
                    bal = balance.item<float>();
                    using (no_grad())
                        acc = ClassificationObjective.ClassLogits(trace.Logits, data.Vocabulary).argmax(-1).eq(labels).to(float64).mean().item<double>();
                }
                foreach (var block in moeLayers)
                    if (block.Moe!.Gate.SelectionBias is { } bias) LoadBalancing.UpdateBias(bias, loads[block.Layer], options.BiasUpdateSpeed);
                double? v = null;
                if ((step + 1) % options.EvalEvery == 0 || step + 1 == options.Steps)
                {
                    model.eval();
                    v = valAcc = Accuracy(model, data.Vocabulary, validation);
                    model.train();
                }
                var record = new ClassifierStep(step + 1, lr, loss, ce, bal, gradNorm, acc, v, clock.Elapsed.TotalSeconds);
                log.Add(record);
                progress?.Invoke(record);
            }
            double seconds = clock.Elapsed.TotalSeconds;
            model.eval();
            if (outputDirectory is not null) Write(model, data, options, log, valAcc, seconds, outputDirectory, dataDirectory);
            return new ClassifierTrainingResult(log, valAcc, seconds, outputDirectory);
        }
        finally
        {
            torch.set_num_threads(threadsBefore);
        }
    }

    /// <summary>The labels training uses for <paramref name="train"/>: its own, or (data randomisation) a seeded Fisher–Yates permutation of them.</summary>
    internal static int[] TrainLabels(IReadOnlyList<CaseStudyExample> train, long? permutationSeed)
    {
        var labels = train.Select(e => e.Label).ToArray();
        if (permutationSeed is not { } seed) return labels;
        var shuffle = new Random(unchecked((int)(seed * 104729 + 3)));
        for (int i = labels.Length - 1; i > 0; i--) { int j = shuffle.Next(i + 1); (labels[i], labels[j]) = (labels[j], labels[i]); }
        return labels;
    }

    /// <summary>Model inputs [n, length + 1] (tokens then [CLS]) for <paramref name="examples"/>.</summary>
    public static Tensor InputIds(IReadOnlyList<CaseStudyExample> examples, CaseStudyVocabulary vocabulary)
    {
        if (examples.Count == 0) throw new ArgumentException("no examples given", nameof(examples));
        int length = examples[0].Tokens.Length + 1;
        var flat = new long[examples.Count * length];
        for (int i = 0; i < examples.Count; i++)
        {
            var seq = vocabulary.Sequence(examples[i].Tokens);
            if (seq.Length != length) throw new ArgumentException($"examples must share one length: {examples[0].Id} has {length - 1} tokens, {examples[i].Id} has {seq.Length - 1}", nameof(examples));
            Array.Copy(seq, 0, flat, i * length, length);
        }
        return tensor(flat, new long[] { examples.Count, length });
    }

    /// <summary>Class logits [n, classes] of <paramref name="examples"/> (no gradient; batches of <paramref name="batchSize"/>).</summary>
    public static float[][] ClassLogits(DeepSeekModel model, CaseStudyVocabulary vocabulary, IReadOnlyList<CaseStudyExample> examples, int batchSize = 64,
        IReadOnlyDictionary<string, HookFunction>? hooks = null)
    {
        var result = new List<float[]>(examples.Count);
        using var _ = no_grad();
        for (int start = 0; start < examples.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(start).Take(batchSize).ToArray();
            var ids = InputIds(chunk, vocabulary);
            var logits = hooks is null ? model.forward(ids) : model.RunWithHooks(ids, hooks);
            var cls = ClassificationObjective.ClassLogits(logits, vocabulary).contiguous().data<float>().ToArray();
            int c = vocabulary.ClassNames.Count;
            for (int i = 0; i < chunk.Length; i++) result.Add(cls.AsSpan(i * c, c).ToArray());
        }
        return result.ToArray();
    }

    /// <summary>Share of <paramref name="examples"/> whose argmax class logit is the label.</summary>
    public static double Accuracy(DeepSeekModel model, CaseStudyVocabulary vocabulary, IReadOnlyList<CaseStudyExample> examples,
        IReadOnlyDictionary<string, HookFunction>? hooks = null)
    {
        var logits = ClassLogits(model, vocabulary, examples, hooks: hooks);
        return examples.Select((e, i) => ArgMax(logits[i]) == e.Label ? 1.0 : 0.0).Average();
    }

    internal static int ArgMax(float[] row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    private static void Write(DeepSeekModel model, CaseStudyDataset data, ClassifierTrainingOptions o, IReadOnlyList<ClassifierStep> log,
        double valAcc, double seconds, string outDir, string? dataDirectory)
    {
        var full = Path.GetFullPath(outDir).TrimEnd('/');
        var tmp = full + $".tmp-{Environment.ProcessId}";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        try
        {
            Checkpoint.Save(model, tmp, metadata: new Dictionary<string, string>
            {
                ["trained_by"] = "DeepSeekNotebooks.Training.CaseStudies.ClassifierTrainer", ["case_study"] = data.Name,
                ["steps"] = o.Steps.ToString(CultureInfo.InvariantCulture),
            });
            var caseStudy = new JsonObject
            {
                ["case_study"] = data.Name, ["generator"] = data.Generator, ["generator_version"] = data.Version, ["data_seed"] = data.Seed,
                ["data_directory"] = dataDirectory is null ? null : Path.GetRelativePath(full, Path.GetFullPath(dataDirectory)),
                ["examples_sha256"] = dataDirectory is null ? null : CaseStudyDataset.ExamplesHash(dataDirectory),
                ["objective"] = "cross-entropy of the logits at the final [CLS] position restricted to the class tokens",
                ["vocabulary"] = data.Vocabulary.ToJson(),
            };
            AtomicFile.WriteAllText(Path.Combine(tmp, CaseStudyFile), caseStudy.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            var (total, active) = model.ParameterCounts();
            var training = new JsonObject
            {
                ["model"] = $"{data.Name}-classifier", ["seed"] = o.Seed, ["threads"] = o.Threads, ["steps"] = o.Steps, ["batch_size"] = o.BatchSize,
                ["lr"] = o.LearningRate, ["warmup_steps"] = o.WarmupSteps, ["min_lr_ratio"] = o.MinLearningRateRatio,
                ["optimizer"] = new JsonObject { ["type"] = "AdamW", ["beta1"] = 0.9, ["beta2"] = 0.95, ["weight_decay"] = o.WeightDecay, ["grad_clip"] = o.GradClip },
                ["load_balancing"] = new JsonObject { ["bias_update_speed"] = o.BiasUpdateSpeed, ["balance_loss"] = "SequenceWise", ["alpha"] = o.BalanceAlpha },
                ["parameters"] = total, ["active_parameters_per_token"] = active,
                ["train_seconds"] = Math.Round(seconds, 2), ["final_validation_accuracy"] = valAcc,
                ["permuted_labels_seed"] = o.PermuteLabelsSeed,
                ["train_examples"] = data.Split(CaseStudySplits.Train).Count, ["validation_examples"] = data.Split(CaseStudySplits.Validation).Count,
            };
            AtomicFile.WriteAllText(Path.Combine(tmp, TrainingFile), training.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            var sb = new StringBuilder();
            foreach (var s in log) sb.Append(JsonSerializer.Serialize(s, LogJson)).Append('\n');
            AtomicFile.WriteAllText(Path.Combine(tmp, LogFile), sb.ToString());
            if (Directory.Exists(full)) Directory.Delete(full, true);
            Directory.Move(tmp, full);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        }
    }

    private static readonly JsonSerializerOptions LogJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}
