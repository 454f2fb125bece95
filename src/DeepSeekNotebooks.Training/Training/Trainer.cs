using Stopwatch = System.Diagnostics.Stopwatch;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Model.Tokenization;
using DeepSeekNotebooks.Model.Tracing;
using DeepSeekNotebooks.Training.Corpus;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.Training;

/// <summary>Receives progress from a training run (the CLI draws a progress bar from it).</summary>
public interface ITrainingObserver
{
    void StageStarted(int stageIndex, StageOptions stage, int completedSteps) { }
    void Step(StepRecord record) { }
    void Message(string text) { }
}

/// <summary>What to train on and where to write.</summary>
public sealed record TrainingRun
{
    public required TrainingOptions Options { get; init; }
    public required IReadOnlyList<CorpusDocument> Corpus { get; init; }
    /// <summary>Path of the tokenizer.json to train with (copied into the final checkpoint).</summary>
    public required string TokenizerPath { get; init; }
    /// <summary>Working directory: resumable state, per-stage checkpoints, telemetry.</summary>
    public required string WorkDirectory { get; init; }
    /// <summary>Final checkpoint directory (config.json, model.safetensors, tokenizer.json, training.json, telemetry/); null to skip.</summary>
    public string? OutputDirectory { get; init; }
    /// <summary>Extra facts recorded in training.json (command line, git commit, …).</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
    /// <summary>Stop (as if interrupted) after this many optimizer steps in this invocation; for tests.</summary>
    public int? StopAfterSteps { get; init; }
    /// <summary>Run the final evaluation (per-domain losses, expert tables, exact match) and write the final checkpoint.</summary>
    public bool FinalEvaluation { get; init; } = true;
    /// <summary>Held-out instruction prompts scored for exact match (before and after the instruct stage).</summary>
    public int ExactMatchPrompts { get; init; } = 100;
    /// <summary>Validation windows per domain in the final evaluation.</summary>
    public int FinalEvalWindows { get; init; } = 16;
}

/// <summary>Outcome of <see cref="Trainer.Run"/>.</summary>
public sealed record TrainingResult(bool Completed, int GlobalStep, IReadOnlyList<double> Losses, JsonObject Metrics);

/// <summary>
/// Three-stage trainer for the tiny DeepSeek-V3 MoE. Each step: traced forward (<see cref="DeepSeekModel.RunWithCache"/> with
/// <c>KeepGraph</c>, recording logits and the gate's scores and selections), masked next-token cross-entropy plus the balance
/// loss, backward, per-group gradient norms, global-norm clipping, AdamW with warmup + cosine learning rate, then the
/// auxiliary-loss-free bias update from the step's expert loads. All inside one dispose scope per step.
/// Resumable: every N steps the model, optimizer state, stage and step are written to <c>state/</c> atomically (new folder,
/// then renamed); a new run with the same work directory continues from there. Batches depend only on (stage seed, step).
/// </summary>
public static class Trainer
{
    private const string StateDir = "state";

    public static TrainingResult Run(TrainingRun run, ITrainingObserver? observer = null, CancellationToken cancel = default)
    {
        observer ??= new NullObserver();
        var o = run.Options;
        // ---- validate everything before any training ----
        o.Validate();
        if (run.Corpus.Count == 0) throw new CorpusException("the corpus is empty: nothing to train on");
        CorpusFile.Validate(run.Corpus);
        foreach (var stage in o.Stages)
            foreach (var (domain, w) in stage.DomainWeights)
                if (w > 0 && !run.Corpus.Any(d => d.Domain == domain && d.Split == Splits.Train))
                    throw new CorpusException($"stage {stage.Name} samples domain '{domain}' but the corpus has no training documents for it");
        TorchRuntime.EnsureLoaded();
        using var tokenizer = DeepSeekTokenizer.FromFile(run.TokenizerPath);
        if (tokenizer.VocabularySize != o.Model.VocabSize)
            throw new TrainingOptionsException($"tokenizer {run.TokenizerPath} has {tokenizer.VocabularySize} tokens but the model config's vocab_size is {o.Model.VocabSize}");
        var data = new TokenizedCorpus(run.Corpus, tokenizer, TokenizedCorpus.EosIdOf(tokenizer));
        data.CheckVocabulary(o.Model.VocabSize);

        torch.set_num_threads(o.Threads);
        Directory.CreateDirectory(run.WorkDirectory);
        var telemetryDir = Path.Combine(run.WorkDirectory, "telemetry");
        using var model = DeepSeekModel.Create(o.Model, o.Seed);
        // Plain float: the official V4 FP8/FP4 activation rounding (QAT simulation) rounds with round(), whose gradient is
        // zero, so training through it would freeze what feeds the rounded activations. No effect on V2/V3 models.
        model.Quantisation = QuantisationSimulation.Off;
        model.train();
        var state = LoadState(run.WorkDirectory, model, o, out var optimizerPath);
        int stageIndex = state.StageIndex, stageStep = state.StageStep, globalStep = state.GlobalStep;
        var metrics = state.Metrics;
        if (globalStep > 0) observer.Message($"resuming at stage {o.Stages[Math.Min(stageIndex, o.Stages.Count - 1)].Name}, step {stageStep} (global step {globalStep})");
        TelemetryWriter.TruncateAfter(telemetryDir, globalStep);
        using var telemetry = new TelemetryWriter(telemetryDir, o.Model, Domains.All.Where(d => data.Domains.Contains(d)).ToArray(), o.TensorBoard,
            Path.Combine(run.WorkDirectory, "tensorboard"));

        var losses = new List<double>();
        int stepsThisRun = 0;
        var clock = Stopwatch.StartNew();
        double elapsedBefore = state.ElapsedSeconds;
        var moeLayers = model.Layers.Where(b => b.Moe is not null).ToArray();

        while (stageIndex < o.Stages.Count)
        {
            var stage = o.Stages[stageIndex];
            if (stageStep == 0 && stage.AnswerOnlyLoss && run.FinalEvaluation && metrics["exact_match_before_instruct"] is null)
                metrics["exact_match_before_instruct"] = Evaluation.ExactMatch(model, data, tokenizer, run.ExactMatchPrompts).ToJson();
            observer.StageStarted(stageIndex, stage, stageStep);
            var trainable = model.parameters().Where(p => p.requires_grad).ToArray();
            // Disposed on every way out of the stage (end, StopAfterSteps, cancellation, errors): it holds native state tensors.
            using var optimizer = torch.optim.AdamW(trainable, stage.LearningRate, o.Beta1, o.Beta2, 1e-8, o.WeightDecay);
            if (stageStep > 0 && optimizerPath is not null && File.Exists(optimizerPath)) optimizer.load_state_dict(optimizerPath);
            optimizerPath = null;
            var named = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (Group: GroupOf(p.name), p.parameter)).ToArray();

            while (stageStep < stage.Steps)
            {
                cancel.ThrowIfCancellationRequested();
                if (run.StopAfterSteps is { } stop && stepsThisRun >= stop)
                    return new TrainingResult(false, globalStep, losses, metrics);
                var stepClock = Stopwatch.StartNew();
                double lr = LearningRateSchedule.At(stageStep, stage.Steps, stage.LearningRate, stage.WarmupSteps, stage.MinLearningRateRatio);
                foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
                var batch = data.SampleTrain(stage, stageStep);
                double loss, lmLoss, balLoss, gradNorm;
                var groupNorms = new Dictionary<string, double>();
                var loads = new Dictionary<int, double[]>();
                using (var scope = NewDisposeScope())
                {
                    var ids = tensor(batch.Inputs, new long[] { batch.BatchSize, batch.SequenceLength });
                    var targets = tensor(batch.Targets, new long[] { batch.BatchSize * batch.SequenceLength });
                    var mask = tensor(batch.Mask, new long[] { batch.BatchSize * batch.SequenceLength });
                    using var trace = model.RunWithCache(ids, TrainingTrace);
                    var logits = trace.Logits.reshape(-1, o.Model.VocabSize);
                    var ce = nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.None);
                    var lm = (ce * mask).sum() / mask.sum().clamp_min(1);
                    Tensor bal = zeros(1).squeeze();
                    foreach (var block in moeLayers)
                    {
                        int l = block.Layer;
                        var scores = trace.RouterScores(l);
                        var idx = trace.ExpertIndices(l);
                        // A hash-routed layer (DeepSeek-V4 tid2eid) picks experts by token id: no balance loss can move its load.
                        if (o.Model.IsHashLayer(l)) { loads[l] = LoadBalancing.ExpertLoad(idx, o.Model.NRoutedExperts); continue; }
                        if (o.BalanceLoss == BalanceLossKind.SequenceWise) bal = bal + LoadBalancing.SequenceWiseLoss(scores, idx, batch.BatchSize, o.BalanceAlpha);
                        else if (o.BalanceLoss == BalanceLossKind.ExpertLevel) bal = bal + LoadBalancing.ExpertLevelLoss(scores, idx, o.BalanceAlpha);
                        loads[l] = LoadBalancing.ExpertLoad(idx, o.Model.NRoutedExperts);
                    }
                    var total = lm + bal;
                    optimizer.zero_grad();
                    total.backward();
                    foreach (var grp in named.GroupBy(n => n.Group))
                    {
                        double sq = 0;
                        foreach (var (_, p) in grp)
                            if (p.grad is { } gr) sq += gr.pow(2).sum().item<float>();
                        groupNorms[grp.Key] = Math.Sqrt(sq);
                    }
                    gradNorm = nn.utils.clip_grad_norm_(trainable, o.GradClip);
                    optimizer.step();
                    loss = total.item<float>();
                    lmLoss = lm.item<float>();
                    balLoss = bal.item<float>();
                }
                var biases = new Dictionary<int, float[]>();
                foreach (var block in moeLayers)
                {
                    var bias = block.Moe!.Gate.SelectionBias;
                    if (bias is null) continue;
                    LoadBalancing.UpdateBias(bias, loads[block.Layer], o.BiasUpdateSpeed);
                    biases[block.Layer] = bias.data<float>().ToArray();
                }
                stageStep++;
                globalStep++;
                stepsThisRun++;
                losses.Add(loss);
                double seconds = stepClock.Elapsed.TotalSeconds;

                Dictionary<string, double>? val = null;
                if (stageStep % o.EvalEvery == 0 || stageStep == stage.Steps)
                    val = Evaluation.ValidationLoss(model, data, Splits.Validation, o.EvalWindows, Math.Min(128, o.Model.MaxPositionEmbeddings));
                var record = new StepRecord
                {
                    GlobalStep = globalStep, Stage = stage.Name, StageStep = stageStep, StageSteps = stage.Steps, LearningRate = lr,
                    Loss = loss, LmLoss = lmLoss, BalanceLoss = balLoss, GradNorm = gradNorm, GroupGradNorms = groupNorms,
                    ValidationLoss = val is null ? null : val.Values.Average(), ValidationLossByDomain = val,
                    TokensPerSecond = batch.BatchSize * batch.SequenceLength / Math.Max(1e-9, seconds),
                    ElapsedSeconds = elapsedBefore + clock.Elapsed.TotalSeconds, ExpertLoad = loads, SelectionBias = biases,
                };
                telemetry.Write(record);
                observer.Step(record);

                bool stageDone = stageStep == stage.Steps;
                if (stageDone)
                {
                    Checkpoint.Save(model, Path.Combine(run.WorkDirectory, "stages", stage.Name), tokenizerJson: run.TokenizerPath,
                        metadata: new Dictionary<string, string> { ["stage"] = stage.Name, ["global_step"] = globalStep.ToString(CultureInfo.InvariantCulture) });
                    SaveState(run.WorkDirectory, model, null, new TrainState(stageIndex + 1, 0, globalStep, elapsedBefore + clock.Elapsed.TotalSeconds, metrics), o);
                }
                else if (stageStep % o.CheckpointEvery == 0)
                    SaveState(run.WorkDirectory, model, optimizer, new TrainState(stageIndex, stageStep, globalStep, elapsedBefore + clock.Elapsed.TotalSeconds, metrics), o);
            }
            stageIndex++;
            stageStep = 0;
        }

        if (run.FinalEvaluation && metrics["final"] is null)
        {
            observer.Message("final evaluation");
            model.eval();
            var final = Evaluation.Final(model, data, tokenizer, run);
            final["exact_match_after_instruct"] = Evaluation.ExactMatch(model, data, tokenizer, run.ExactMatchPrompts).ToJson();
            metrics["final"] = final;
            metrics["train_seconds"] = elapsedBefore + clock.Elapsed.TotalSeconds;
            if (run.OutputDirectory is { } outDir) WriteFinalCheckpoint(run, model, metrics, globalStep, telemetryDir, outDir);
        }
        return new TrainingResult(true, globalStep, losses, metrics);
    }

    /// <summary>What the training forward records: logits and routing (scores, indices, weights), attached to the graph.</summary>
    private static readonly TraceOptions TrainingTrace = new()
    {
        AttentionPatterns = false, HiddenStates = false, Logits = true, Routing = true, KeepGraph = true,
    };

    /// <summary>Gradient-norm group of a parameter (official-code names: embed, layers.i.attn.*, layers.i.ffn.gate.*, …).</summary>
    public static string GroupOf(string name)
    {
        if (name.StartsWith("embed", StringComparison.Ordinal)) return "embeddings";
        if (name.StartsWith("head", StringComparison.Ordinal)) return "head";
        if (name.Contains(".ffn.gate.", StringComparison.Ordinal)) return "router";
        if (name.Contains(".ffn.experts.", StringComparison.Ordinal)) return "routed_experts";
        if (name.Contains(".ffn.shared_experts.", StringComparison.Ordinal)) return "shared_experts";
        if (name.Contains("norm", StringComparison.Ordinal)) return "norms";
        // DeepSeek-V4 hyper-connection mixing (layers.i.hc_attn_*, hc_ffn_*, hc_head_*): gains and mixing of the streams, with the norms.
        if (name.StartsWith("hc_", StringComparison.Ordinal) || name.Contains(".hc_", StringComparison.Ordinal)) return "norms";
        if (name.Contains(".attn.", StringComparison.Ordinal)) return "attention";
        if (name.Contains(".ffn.", StringComparison.Ordinal)) return "dense_mlp";
        return "norms";
    }

    private static void WriteFinalCheckpoint(TrainingRun run, DeepSeekModel model, JsonObject metrics, int globalStep, string telemetryDir, string outDir)
    {
        var o = run.Options;
        var tmp = outDir.TrimEnd('/') + $".tmp-{Environment.ProcessId}";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Checkpoint.Save(model, tmp, tokenizerJson: run.TokenizerPath,
            metadata: new Dictionary<string, string> { ["trained_by"] = "DeepSeekNotebooks.Training", ["global_step"] = globalStep.ToString(CultureInfo.InvariantCulture) });
        var training = new JsonObject
        {
            ["model"] = o.ModelName,
            ["quantisation_during_training"] = "off",
            ["seed"] = o.Seed,
            ["threads"] = o.Threads,
            ["global_steps"] = globalStep,
            ["stages"] = new JsonArray(o.Stages.Select(s => (JsonNode?)new JsonObject
            {
                ["name"] = s.Name, ["steps"] = s.Steps, ["batch_size"] = s.BatchSize, ["sequence_length"] = s.SequenceLength, ["lr"] = s.LearningRate,
                ["warmup_steps"] = s.WarmupSteps, ["min_lr_ratio"] = s.MinLearningRateRatio, ["seed"] = s.Seed, ["answer_only_loss"] = s.AnswerOnlyLoss,
                ["domain_weights"] = new JsonObject(s.DomainWeights.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            }).ToArray()),
            ["optimizer"] = new JsonObject { ["type"] = "AdamW", ["beta1"] = o.Beta1, ["beta2"] = o.Beta2, ["weight_decay"] = o.WeightDecay, ["grad_clip"] = o.GradClip },
            ["load_balancing"] = new JsonObject { ["bias_update_speed"] = o.BiasUpdateSpeed, ["balance_loss"] = o.BalanceLoss.ToString(), ["alpha"] = o.BalanceAlpha },
            ["metrics"] = metrics.DeepClone(),
        };
        if (run.Metadata is not null) foreach (var (k, v) in run.Metadata) training[k] = v;
        File.WriteAllText(Path.Combine(tmp, "training.json"), training.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var tel = Path.Combine(tmp, "telemetry");
        Directory.CreateDirectory(tel);
        foreach (var f in new[] { "steps.csv", "steps.jsonl" })
            if (File.Exists(Path.Combine(telemetryDir, f))) File.Copy(Path.Combine(telemetryDir, f), Path.Combine(tel, f));
        File.WriteAllText(Path.Combine(tel, "README.md"), TelemetryReadme);
        if (Directory.Exists(outDir)) Directory.Delete(outDir, true);
        Directory.Move(tmp, outDir);
    }

    internal const string TelemetryReadme = """
        # Training telemetry

        `steps.csv` and `steps.jsonl` hold one row per optimizer step (same content; JSONL nests per-layer arrays).

        | column | meaning |
        |---|---|
        | global_step | step across all stages (1-based) |
        | stage, stage_step | stage name (base, domain, instruct) and 1-based step within it |
        | lr | learning rate used (linear warmup, cosine decay) |
        | loss | lm_loss + balance_loss (what was back-propagated) |
        | lm_loss | masked next-token cross-entropy (nats/token) on the step's batch |
        | balance_loss | DeepSeek-V3 sequence-wise balance loss summed over MoE layers (times alpha); hash-routed layers (tid2eid) have none |
        | val_loss, val_loss_{domain} | validation cross-entropy (mean over domains, and per domain); empty when not evaluated at this step |
        | grad_norm | global L2 gradient norm before clipping |
        | grad_norm_{group} | L2 norm of the gradients of: embeddings, attention, router, routed_experts, shared_experts, dense_mlp, norms (with DeepSeek-V4's hyper-connection mixing parameters), head |
        | tokens_per_s | batch tokens / step wall time |
        | elapsed_s | training wall time so far (excluding final evaluation) |
        | maxvio_L{L} | (max load - mean load) / mean load of MoE layer L on the step's batch |
        | load_L{L}_e{i} | tokens routed to expert i of layer L in the step's batch |
        | bias_L{L}_e{i} | selection bias (e_score_correction_bias) of expert i after the step's update |

        TensorBoard event files are written to the work directory (`artifacts/train/.../tensorboard`), not committed.
        """;

    // ------------------------------------------------------------------ resumable state

    private sealed record TrainState(int StageIndex, int StageStep, int GlobalStep, double ElapsedSeconds, JsonObject Metrics);

    private static void SaveState(string workDir, DeepSeekModel model, OptimizerHelper? optimizer, TrainState s, TrainingOptions o)
    {
        var final = Path.Combine(workDir, StateDir);
        var fresh = Path.Combine(workDir, StateDir + ".new");
        var old = Path.Combine(workDir, StateDir + ".old");
        if (Directory.Exists(fresh)) Directory.Delete(fresh, true);
        Directory.CreateDirectory(fresh);
        model.save(Path.Combine(fresh, "model.bin"));
        optimizer?.save_state_dict(Path.Combine(fresh, "optimizer.bin"));
        var json = new JsonObject
        {
            ["stage_index"] = s.StageIndex, ["stage"] = s.StageIndex < o.Stages.Count ? o.Stages[s.StageIndex].Name : "done",
            ["stage_step"] = s.StageStep, ["global_step"] = s.GlobalStep, ["elapsed_s"] = s.ElapsedSeconds, ["seed"] = o.Seed,
            ["stage_seeds"] = new JsonArray(o.Stages.Select(x => (JsonNode?)x.Seed).ToArray()), ["fingerprint"] = Fingerprint(o),
            ["metrics"] = s.Metrics.DeepClone(),
        };
        File.WriteAllText(Path.Combine(fresh, "state.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (Directory.Exists(old)) Directory.Delete(old, true);
        if (Directory.Exists(final)) Directory.Move(final, old);
        Directory.Move(fresh, final);
        if (Directory.Exists(old)) Directory.Delete(old, true);
    }

    private static TrainState LoadState(string workDir, DeepSeekModel model, TrainingOptions o, out string? optimizerPath)
    {
        optimizerPath = null;
        var dir = Path.Combine(workDir, StateDir);
        if (!Directory.Exists(dir) && Directory.Exists(dir + ".old")) dir += ".old"; // interrupted between the two renames
        var stateFile = Path.Combine(dir, "state.json");
        if (!File.Exists(stateFile)) return new TrainState(0, 0, 0, 0, new JsonObject());
        var j = JsonNode.Parse(File.ReadAllText(stateFile))!.AsObject();
        var fp = j["fingerprint"]?.GetValue<string>();
        if (fp != Fingerprint(o))
            throw new TrainingOptionsException($"{workDir} holds a run with different settings (fingerprint {fp}); use another --work-dir or delete it to start over");
        model.load(Path.Combine(dir, "model.bin"));
        var opt = Path.Combine(dir, "optimizer.bin");
        if (File.Exists(opt)) optimizerPath = opt;
        return new TrainState(j["stage_index"]!.GetValue<int>(), j["stage_step"]!.GetValue<int>(), j["global_step"]!.GetValue<int>(),
            j["elapsed_s"]?.GetValue<double>() ?? 0, j["metrics"]?.AsObject().DeepClone().AsObject() ?? new JsonObject());
    }

    /// <summary>Identifies the settings a work directory was trained with (a resume must use the same ones).</summary>
    private static string Fingerprint(TrainingOptions o)
    {
        var text = string.Join("|", o.Model.ToJson(), o.Seed, o.BiasUpdateSpeed, o.BalanceLoss, o.BalanceAlpha, o.WeightDecay, o.GradClip,
            string.Join(";", o.Stages.Select(s => $"{s.Name},{s.Steps},{s.BatchSize},{s.SequenceLength},{s.LearningRate},{s.WarmupSteps},{s.MinLearningRateRatio},{s.Seed},{s.AnswerOnlyLoss},{string.Join("/", s.DomainWeights.OrderBy(k => k.Key).Select(k => $"{k.Key}={k.Value}"))}")));
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)))[..16];
    }

    private sealed class NullObserver : ITrainingObserver;
}
