using System.CommandLine;
using System.Diagnostics;
using DeepSeekNotebooks.Training;
using DeepSeekNotebooks.Training.Corpus;
using DeepSeekNotebooks.Training.Tokenization;
using DeepSeekNotebooks.Training.Training;
using DeepSeekNotebooks.Model.Tokenization;
using Spectre.Console;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>train</c>: generates (or reads) the corpus and tokenizer, then trains the tiny DeepSeek-V3 MoE in three stages
/// (base → domain → instruct), resumably, with telemetry, and writes the final checkpoint with training.json.
/// </summary>
public static class TrainCommand
{
    private sealed record StageFlags(Option<int?> Steps, Option<int?> Batch, Option<int?> Seq, Option<double?> Lr, Option<int?> Warmup, Option<double?> MinLr, Option<long?> Seed);

    public static Command Create()
    {
        var corpusDir = new Option<DirectoryInfo?>("--corpus-dir") { Description = "Corpus directory (corpus.jsonl, manifest.json, tokenizer.json). Default: data/corpus; generated when missing." };
        var regenerate = new Option<bool>("--regenerate-corpus") { Description = "Regenerate the corpus and retrain the tokenizer even if they exist." };
        var corpusSeed = new Option<int>("--corpus-seed") { Description = "Seed of the corpus generator.", DefaultValueFactory = _ => 1234 };
        var vocabSize = new Option<int>("--vocab-size") { Description = "Tokenizer vocabulary size when (re)training it.", DefaultValueFactory = _ => TrainingData.DefaultVocabSize };
        var workDir = new Option<DirectoryInfo?>("--work-dir") { Description = "Working directory for resumable state, per-stage checkpoints, telemetry and TensorBoard files. Default: artifacts/train/<model name> (deepseek-tiny-moe, or deepseek-tiny-v4 with --architecture v4). Re-running with the same directory resumes." };
        var outDir = new Option<DirectoryInfo?>("--out") { Description = "Final checkpoint directory. Default: data/checkpoints/deepseek-tiny-moe (v3) or data/checkpoints/deepseek-tiny-v4 (v4)." };
        var architecture = new Option<string>("--architecture") { Description = "Architecture to train: v3 (the default bundled model, DeepSeek-V3 MLA + MoE) or v4 (DeepSeek-V4: sliding window / CSA / HCA attention, 4 hyper-connection streams, one hash-routed layer; see TinyV4).", DefaultValueFactory = _ => "v3" };
        var seed = new Option<long>("--seed") { Description = "Seed of the model initialisation; stage sampling seeds default to seed+1..3.", DefaultValueFactory = _ => 1234 };
        var threads = new Option<int>("--threads") { Description = "Torch intra-op threads (results are reproducible for a fixed seed and thread count). Default 1: on the shared 2-core machine 2 threads were several times slower.", DefaultValueFactory = _ => 1 };
        var gamma = new Option<double>("--bias-update-speed") { Description = "Auxiliary-loss-free bias update speed gamma.", DefaultValueFactory = _ => 0.001 };
        var balance = new Option<string>("--balance-loss") { Description = "Balance loss: sequence (DeepSeek-V3), expert (DeepSeek-V2) or none.", DefaultValueFactory = _ => "sequence" };
        var alpha = new Option<double>("--balance-alpha") { Description = "Balance loss weight alpha.", DefaultValueFactory = _ => 1e-4 };
        var ckptEvery = new Option<int>("--checkpoint-every") { Description = "Write resumable state every N steps.", DefaultValueFactory = _ => 50 };
        var evalEvery = new Option<int>("--eval-every") { Description = "Validation loss every N steps.", DefaultValueFactory = _ => 50 };
        var noTb = new Option<bool>("--no-tensorboard") { Description = "Do not write TensorBoard event files." };
        var command = new Command("train", "Train a bundled tiny DeepSeek MoE (V3 by default, V4 with --architecture v4) in three stages (base, domain, instruct) with full telemetry; resumable.")
        {
            corpusDir, regenerate, corpusSeed, vocabSize, architecture, workDir, outDir, seed, threads, gamma, balance, alpha, ckptEvery, evalEvery, noTb,
        };
        var defaults = TrainingOptions.DefaultStages();
        var flags = new Dictionary<string, StageFlags>();
        foreach (var s in defaults)
        {
            var f = new StageFlags(
                new Option<int?>($"--{s.Name}-steps") { Description = $"Stage {s.Name}: optimizer steps (default {s.Steps}; with --architecture v4 {TinyV4.Stages().First(v => v.Name == s.Name).Steps})." },
                new Option<int?>($"--{s.Name}-batch-size") { Description = $"Stage {s.Name}: sequences per batch (default {s.BatchSize})." },
                new Option<int?>($"--{s.Name}-seq-len") { Description = $"Stage {s.Name}: tokens per sequence (default {s.SequenceLength})." },
                new Option<double?>($"--{s.Name}-lr") { Description = $"Stage {s.Name}: peak learning rate (default {s.LearningRate})." },
                new Option<int?>($"--{s.Name}-warmup") { Description = $"Stage {s.Name}: linear warmup steps (default {s.WarmupSteps})." },
                new Option<double?>($"--{s.Name}-min-lr-ratio") { Description = $"Stage {s.Name}: cosine floor as a fraction of the peak (default {s.MinLearningRateRatio})." },
                new Option<long?>($"--{s.Name}-seed") { Description = $"Stage {s.Name}: batch sampling seed (default seed+{Array.IndexOf(defaults.ToArray(), s) + 1})." });
            flags[s.Name] = f;
            command.Options.Add(f.Steps); command.Options.Add(f.Batch); command.Options.Add(f.Seq); command.Options.Add(f.Lr);
            command.Options.Add(f.Warmup); command.Options.Add(f.MinLr); command.Options.Add(f.Seed);
        }
        command.SetAction(parse => CliSupport.Run(() =>
        {
            var root = RepoRoot();
            long s = parse.GetValue(seed);
            var arch = parse.GetValue(architecture) switch
            {
                "v3" => Architecture.V3,
                "v4" => Architecture.V4,
                var other => throw new UsageException($"--architecture must be v3 or v4, got '{other}'"),
            };
            var recipe = arch == Architecture.V4 ? TinyV4.Stages(s) : TrainingOptions.DefaultStages(s);
            var stages = recipe.Select(st =>
            {
                var f = flags[st.Name];
                int steps = parse.GetValue(f.Steps) ?? st.Steps;
                return st with
                {
                    Steps = steps,
                    BatchSize = parse.GetValue(f.Batch) ?? st.BatchSize,
                    SequenceLength = parse.GetValue(f.Seq) ?? st.SequenceLength,
                    LearningRate = parse.GetValue(f.Lr) ?? st.LearningRate,
                    WarmupSteps = parse.GetValue(f.Warmup) ?? Math.Min(st.WarmupSteps, Math.Max(0, steps / 5)),
                    MinLearningRateRatio = parse.GetValue(f.MinLr) ?? st.MinLearningRateRatio,
                    Seed = parse.GetValue(f.Seed) ?? st.Seed,
                };
            }).ToArray();
            var kind = parse.GetValue(balance) switch
            {
                "sequence" => BalanceLossKind.SequenceWise,
                "expert" => BalanceLossKind.ExpertLevel,
                "none" => BalanceLossKind.None,
                var other => throw new UsageException($"--balance-loss must be sequence, expert or none, got '{other}'"),
            };
            var name = arch == Architecture.V4 ? TinyV4.Name : BundledModel.DefaultName;
            return Run(new Settings(
                parse.GetValue(corpusDir)?.FullName ?? Path.Combine(root, "data", "corpus"),
                parse.GetValue(regenerate), parse.GetValue(corpusSeed), parse.GetValue(vocabSize),
                parse.GetValue(workDir)?.FullName ?? Path.Combine(root, "artifacts", "train", name),
                parse.GetValue(outDir)?.FullName ?? Path.Combine(root, "data", "checkpoints", name),
                s, parse.GetValue(threads), parse.GetValue(gamma), kind, parse.GetValue(alpha), parse.GetValue(ckptEvery),
                parse.GetValue(evalEvery), !parse.GetValue(noTb), stages,
                "deepseek-notebooks " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)), arch));
        }));
        return command;
    }

    internal sealed record Settings(string CorpusDir, bool Regenerate, int CorpusSeed, int VocabSize, string WorkDir, string OutDir, long Seed,
        int Threads, double Gamma, BalanceLossKind BalanceLoss, double Alpha, int CheckpointEvery, int EvalEvery, bool TensorBoard,
        IReadOnlyList<StageOptions> Stages, string CommandLine, Architecture Architecture = Architecture.V3);

    /// <summary>Which bundled architecture <c>train</c> builds.</summary>
    internal enum Architecture { V3, V4 }

    internal static int Run(Settings s)
    {
        var corpusFile = Path.Combine(s.CorpusDir, CorpusFile.FileName);
        var tokenizerPath = Path.Combine(s.CorpusDir, "tokenizer.json");
        IReadOnlyList<CorpusDocument> docs;
        if (s.Regenerate || !File.Exists(corpusFile))
        {
            AnsiConsole.MarkupLine($"generating corpus (seed {s.CorpusSeed}) and training a {s.VocabSize}-token BPE tokenizer in [blue]{Markup.Escape(s.CorpusDir)}[/]");
            (docs, tokenizerPath) = TrainingData.Prepare(s.CorpusDir, new CorpusGeneratorOptions { Seed = s.CorpusSeed }, s.VocabSize);
        }
        else
        {
            docs = CorpusFile.Read(corpusFile);
            if (!File.Exists(tokenizerPath))
            {
                var vocab = ByteLevelBpeTrainer.Train(docs.Where(d => d.Split == Splits.Train).Select(d => d.Text), s.VocabSize);
                DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(tokenizerPath, ByteLevelBpeTrainer.ToTokenizerJson(vocab));
            }
        }
        int vocabSize;
        using (var tok = DeepSeekTokenizer.FromFile(tokenizerPath)) vocabSize = tok.VocabularySize;
        var options = new TrainingOptions
        {
            Model = s.Architecture == Architecture.V4 ? TinyV4.Config(vocabSize) : TrainingOptions.TinyMoeConfig(vocabSize),
            ModelName = s.Architecture == Architecture.V4 ? TinyV4.Name : BundledModel.DefaultName, Stages = s.Stages, Seed = s.Seed, Threads = s.Threads, BiasUpdateSpeed = s.Gamma,
            BalanceLoss = s.BalanceLoss, BalanceAlpha = s.Alpha, CheckpointEvery = s.CheckpointEvery, EvalEvery = s.EvalEvery, TensorBoard = s.TensorBoard,
        };
        var metadata = new Dictionary<string, string>
        {
            ["command"] = s.CommandLine,
            ["git_commit"] = Git("rev-parse HEAD"),
            ["git_tracked_changes"] = Git("status --porcelain --untracked-files=no") is var dirty && dirty.Length == 0 ? "none" : dirty.Replace('\n', ';'),
            ["corpus_manifest_sha256"] = TryManifestHash(s.CorpusDir),
            ["started_utc"] = DateTime.UtcNow.ToString("o"),
        };
        var run = new TrainingRun { Options = options, Corpus = docs, TokenizerPath = tokenizerPath, WorkDirectory = s.WorkDir, OutputDirectory = s.OutDir, Metadata = metadata };
        var wall = Stopwatch.StartNew();
        TrainingResult result = null!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var observer = new ProgressObserver(ctx);
                result = Trainer.Run(run, observer);
            });
        var m = result.Metrics;
        AnsiConsole.MarkupLine($"done: {result.GlobalStep} steps in {wall.Elapsed.TotalMinutes:F1} min (wall, including evaluation); checkpoint in [blue]{Markup.Escape(s.OutDir)}[/]");
        if (m["final"]?["validation_loss_by_domain"] is System.Text.Json.Nodes.JsonObject losses)
        {
            var table = new Table().AddColumns("domain", "model", "unigram (domain)", "unigram (global)");
            foreach (var (d, v) in losses)
                table.AddRow(d, $"{v!["model"]!.GetValue<double>():F3}", $"{v["unigram_domain"]!.GetValue<double>():F3}", $"{v["unigram_global"]!.GetValue<double>():F3}");
            AnsiConsole.Write(table);
        }
        AnsiConsole.WriteLine($"exact match before instruct: {m["exact_match_before_instruct"]?["accuracy"]}, after: {m["final"]?["exact_match_after_instruct"]?["accuracy"]}");
        return 0;
    }

    private sealed class ProgressObserver(ProgressContext ctx) : ITrainingObserver
    {
        private ProgressTask? _task;

        public void StageStarted(int stageIndex, StageOptions stage, int completedSteps)
        {
            _task?.StopTask();
            _task = ctx.AddTask($"stage {stageIndex + 1} {stage.Name}", maxValue: stage.Steps);
            _task.Value = completedSteps;
        }

        public void Step(StepRecord r)
        {
            if (_task is null) return;
            _task.Value = r.StageStep;
            var val = r.ValidationLoss is { } v ? $" val {v:F3}" : "";
            _task.Description = $"{r.Stage} loss {r.LmLoss:F3}{val} {r.TokensPerSecond:F0} tok/s";
        }

        public void Message(string text) => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(text)}[/]");
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "DeepSeekNotebooks.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }

    private static string Git(string arguments)
    {
        try
        {
            var psi = new ProcessStartInfo("git", arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            var text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? text : "unknown";
        }
        catch { return "unknown"; }
    }

    private static string TryManifestHash(string corpusDir)
    {
        try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(corpusDir, CorpusFile.ManifestName)))?["sha256"]?.GetValue<string>() ?? "unknown"; }
        catch { return "unknown"; }
    }
}
