using System.Text.Json.Nodes;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Training.Corpus;
using DeepSeekNotebooks.Training.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.Tests;

public class LoadBalancingTests
{
    public LoadBalancingTests() => TorchRuntime.EnsureLoaded();

    [Fact]
    public void Bundled_training_json_MaxVio_and_NMI_agree_with_the_analysis_statistics()
    {
        // training.json was written by the trainer; the notebooks recompute balance with Analysis.Statistics. Both are the
        // one Balance.MaxVio now; the file's numbers must agree with it (and with the formula by hand for one layer).
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DeepSeekNotebooks.sln"))) dir = dir.Parent;
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir!.FullName, "data", "checkpoints", BundledModel.DefaultName, "training.json")))!;
        var layers = json["metrics"]!["final"]!["moe_layers"]!.AsObject();
        Assert.NotEmpty(layers);
        foreach (var (l, layer) in layers)
        {
            var load = layer!["load"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
            double byHand = (load.Max() - load.Average()) / load.Average();
            Assert.Equal(byHand, layer["maxvio"]!.GetValue<double>(), 12);
            Assert.Equal(Balance.MaxVio(load), layer["maxvio"]!.GetValue<double>(), 12);

            // NMI: the file keeps each domain's expert fractions (rounded to 1e-4) and the per-expert load, not the counts.
            // Recover each domain's selection total R_d by least squares (load_e = Σ_d R_d·f[d,e]), rebuild the counts and
            // recompute with the one NMI: it must match the trainer's number to the rounding of the fractions.
            var fractions = layer["domain_expert_fraction"]!.AsObject().Select(kv => kv.Value!.AsArray().Select(x => x!.GetValue<double>()).ToArray()).ToArray();
            int domains = fractions.Length, experts = load.Length;
            var normal = new double[domains, domains + 1];
            for (int i = 0; i < domains; i++)
            {
                for (int j = 0; j < domains; j++) normal[i, j] = Enumerable.Range(0, experts).Sum(e => fractions[i][e] * fractions[j][e]);
                normal[i, domains] = Enumerable.Range(0, experts).Sum(e => fractions[i][e] * load[e]);
            }
            var totals = SolveInPlace(normal, domains);
            var counts = new long[domains, experts];
            for (int d = 0; d < domains; d++)
                for (int e = 0; e < experts; e++) counts[d, e] = (long)Math.Round(totals[d] * fractions[d][e]);
            Assert.Equal(layer["nmi_domain_expert"]!.GetValue<double>(), Information.NormalisedMutualInformation(counts), 2e-4);
        }
    }

    [Fact]
    public void Telemetry_writes_MaxVio_as_missing_when_undefined_not_as_perfect_balance()
    {
        // Before issue 11 the trainer's own MaxVio returned 0 ("perfectly balanced") for a layer with no recorded or zero load.
        var config = DeepSeekConfig.TinyFullFeatured with { NumHiddenLayers = 4 };   // MoE blocks 1, 2, 3
        var moe = Enumerable.Range(0, config.NumHiddenLayers).Where(config.IsMoeLayer).ToArray();
        Assert.Equal(3, moe.Length);
        var dir = Directory.CreateTempSubdirectory("telemetry-maxvio").FullName;
        try
        {
            using (var w = new TelemetryWriter(dir, config, Array.Empty<string>(), tensorBoard: false))
                w.Write(new StepRecord
                {
                    Stage = "pretrain", GroupGradNorms = new Dictionary<string, double>(),
                    ExpertLoad = new Dictionary<int, double[]>
                    {
                        [moe[0]] = Enumerable.Range(0, config.NRoutedExperts).Select(e => e == 0 ? 3.0 : 1.0).ToArray(),
                        [moe[1]] = new double[config.NRoutedExperts],
                    },
                    SelectionBias = new Dictionary<int, float[]>(),
                });
            var lines = File.ReadAllLines(Path.Combine(dir, "steps.csv"));
            var header = lines[0].Split(',');
            var row = lines[1].Split(',');
            string Cell(string column) => row[Array.IndexOf(header, column)];
            double mean = (3.0 + config.NRoutedExperts - 1) / config.NRoutedExperts;
            Assert.Equal((3 - mean) / mean, double.Parse(Cell($"maxvio_L{moe[0]}"), System.Globalization.CultureInfo.InvariantCulture), 5);
            Assert.Equal("", Cell($"maxvio_L{moe[1]}"));                 // all-zero load: undefined
            var json = JsonNode.Parse(File.ReadAllLines(Path.Combine(dir, "steps.jsonl"))[0])!;
            Assert.Null(json["moe_layers"]![moe[1].ToString()]!["maxvio"]);
            Assert.Null(json["moe_layers"]![moe[2].ToString()]!["maxvio"]);   // not recorded
            Assert.Equal("", Cell($"maxvio_L{moe[2]}"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>Gauss–Jordan with partial pivoting on an n × (n+1) augmented matrix; returns the solution.</summary>
    private static double[] SolveInPlace(double[,] m, int n)
    {
        for (int c = 0; c < n; c++)
        {
            int p = Enumerable.Range(c, n - c).MaxBy(r => Math.Abs(m[r, c]));
            for (int j = 0; j <= n; j++) (m[c, j], m[p, j]) = (m[p, j], m[c, j]);
            for (int r = 0; r < n; r++)
            {
                if (r == c) continue;
                double f = m[r, c] / m[c, c];
                for (int j = 0; j <= n; j++) m[r, j] -= f * m[c, j];
            }
        }
        return Enumerable.Range(0, n).Select(i => m[i, n] / m[i, i]).ToArray();
    }

    [Fact]
    public void Sequence_wise_balance_loss_matches_a_hand_computation()
    {
        // One sequence, T = 2 tokens, N_r = 3 experts, K_r = 1.
        var scores = tensor(new float[] { 0.2f, 0.6f, 0.2f, 0.5f, 0.25f, 0.25f }, new long[] { 2, 3 });
        var indices = tensor(new long[] { 1, 0 }, new long[] { 2, 1 });
        // f_i = N_r/(K_r T) · count_i = 3/2 · [1, 1, 0]; s' already normalised; P = mean over tokens = [0.35, 0.425, 0.225]
        double expected = 0.01 * (1.5 * 0.35 + 1.5 * 0.425 + 0);
        Assert.Equal(expected, LoadBalancing.SequenceWiseLoss(scores, indices, 1, 0.01).item<float>(), 1e-6);

        // Two sequences: the loss is the mean of per-sequence losses (not the batch-level expert loss).
        var s2 = cat(new[] { scores, scores.flip(0) }, 0);
        var i2 = cat(new[] { indices, tensor(new long[] { 2, 2 }, new long[] { 2, 1 }) }, 0);
        double second = 0.01 * (3.0 / 2 * 2 * 0.225);
        Assert.Equal((expected + second) / 2, LoadBalancing.SequenceWiseLoss(s2, i2, 2, 0.01).item<float>(), 1e-6);
        // Uniform routing gives exactly alpha.
        var uniform = full(4, 4, 0.3f);
        var idx = tensor(new long[] { 0, 1, 2, 3 }, new long[] { 4, 1 });
        Assert.Equal(0.5, LoadBalancing.SequenceWiseLoss(uniform, idx, 1, 0.5).item<float>(), 1e-6);
    }

    [Fact]
    public void Balance_loss_has_gradient_towards_underloaded_experts()
    {
        var logits = tensor(new float[] { 2f, 0f, 1f, 0f }, new long[] { 2, 2 }).requires_grad_(true);
        var scores = logits.sigmoid();
        var idx = tensor(new long[] { 0, 0 }, new long[] { 2, 1 });
        LoadBalancing.SequenceWiseLoss(scores, idx, 1, 1.0).backward();
        var g = logits.grad!.data<float>().ToArray();
        Assert.True(g[0] > 0 && g[1] < 0, "loss pushes the overloaded expert 0 down and expert 1 up");
    }

    [Fact]
    public void Bias_update_moves_load_towards_uniform_on_a_toy_router()
    {
        // 4 experts, top-1 by (score + bias); expert 0 has the highest affinity for every token.
        var gen = new Generator(3);
        var scores = rand(new long[] { 512, 4 }, generator: gen) * 0.1 + tensor(new float[] { 0.1f, 0f, 0f, 0f });
        var bias = zeros(4);
        double Vio()
        {
            var idx = (scores + bias).argmax(1, keepdim: true);
            return Balance.MaxVio(LoadBalancing.ExpertLoad(idx, 4));
        }
        double before = Vio();
        for (int step = 0; step < 200; step++)
        {
            var idx = (scores + bias).argmax(1, keepdim: true);
            LoadBalancing.UpdateBias(bias, LoadBalancing.ExpertLoad(idx, 4), 0.002);
        }
        double after = Vio();
        Assert.True(before > 2, $"toy router starts imbalanced (MaxVio {before})");
        Assert.True(after < 0.3, $"MaxVio {before:F2} → {after:F2}");
        Assert.True(bias[0].item<float>() < bias[1].item<float>());
    }

    [Fact]
    public void Learning_rate_warms_up_then_decays_by_cosine()
    {
        Assert.Equal(0.25, LearningRateSchedule.At(0, 100, 1, 4, 0.1), 9);
        Assert.Equal(1, LearningRateSchedule.At(3, 100, 1, 4, 0.1), 9);
        Assert.Equal(1, LearningRateSchedule.At(4, 100, 1, 4, 0.1), 9);
        Assert.Equal(0.1, LearningRateSchedule.At(99, 100, 1, 4, 0.1), 9);
        Assert.True(LearningRateSchedule.At(50, 100, 1, 4, 0.1) is > 0.4 and < 0.7);
    }

    [Fact]
    public void Parameter_groups_cover_the_model()
    {
        using var model = DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, 1);
        var groups = model.named_parameters().Select(p => (p.name, Group: Trainer.GroupOf(p.name))).ToArray();
        foreach (var g in TelemetryWriter.GradGroups) Assert.Contains(groups, x => x.Group == g);
        Assert.Equal("router", groups.First(x => x.name.Contains("ffn.gate.weight")).Group);
        Assert.Equal("attention", groups.First(x => x.name.Contains("attn.wq_a")).Group);
    }
}

public partial class TrainerTests
{
    public TrainerTests() => TorchRuntime.EnsureLoaded();

    private static readonly Lazy<(IReadOnlyList<CorpusDocument> Docs, string Tokenizer)> Data = new(() =>
        TrainingData.Prepare(Directory.CreateTempSubdirectory("corpus").FullName,
            new CorpusGeneratorOptions { DocumentsPerDomain = 30, InstructionPairs = 200, Seed = 3 }, 320));

    private static TrainingOptions Tiny(int steps = 4) => new()
    {
        Model = TrainingOptions.TinyMoeConfig(320) with { HiddenSize = 32, IntermediateSize = 64, MoeIntermediateSize = 16, NumAttentionHeads = 2, QLoraRank = 16, KvLoraRank = 16, QkNopeHeadDim = 8, QkRopeHeadDim = 4, VHeadDim = 8 },
        Stages = TrainingOptions.DefaultStages(5, steps, steps, steps).Select(s => s with { BatchSize = 2, SequenceLength = 16, WarmupSteps = 1 }).ToArray(),
        Seed = 5, Threads = 1, CheckpointEvery = 2, EvalEvery = 3, EvalWindows = 1, TensorBoard = false, BiasUpdateSpeed = 0.01,
    };

    private static TrainingRun Run(TrainingOptions o, string work, string? output = null, bool final = false) => new()
    {
        Options = o, Corpus = Data.Value.Docs, TokenizerPath = Data.Value.Tokenizer, WorkDirectory = work, OutputDirectory = output,
        FinalEvaluation = final, ExactMatchPrompts = 3, FinalEvalWindows = 1,
    };

    private static string Temp() => Directory.CreateTempSubdirectory("train").FullName;

    [Fact]
    public void Three_stage_run_writes_checkpoint_metadata_and_telemetry()
    {
        var o = Tiny();
        var work = Temp();
        var output = Path.Combine(Temp(), "deepseek-tiny-moe");
        var result = Trainer.Run(Run(o, work, output, final: true));
        Assert.True(result.Completed);
        Assert.Equal(12, result.GlobalStep);
        Assert.All(result.Losses, l => Assert.True(double.IsFinite(l)));

        using var ckpt = Checkpoint.Load(output);
        Assert.NotNull(ckpt.Tokenizer);
        var training = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "training.json")))!;
        Assert.Equal(5, training["seed"]!.GetValue<long>());
        var final = training["metrics"]!["final"]!;
        Assert.NotNull(final["validation_loss_by_domain"]!["prose"]!["unigram_domain"]);
        Assert.NotNull(final["moe_layers"]!["1"]!["nmi_domain_expert"]);
        Assert.NotNull(final["moe_layers"]!["1"]!["maxvio"]);
        Assert.NotNull(training["metrics"]!["exact_match_before_instruct"]!["accuracy"]);
        Assert.NotNull(final["exact_match_after_instruct"]!["accuracy"]);

        var csv = File.ReadAllLines(Path.Combine(output, "telemetry", "steps.csv"));
        var header = csv[0].Split(',');
        foreach (var col in new[] { "global_step", "stage", "lr", "loss", "lm_loss", "balance_loss", "val_loss", "val_loss_code", "grad_norm",
                     "grad_norm_embeddings", "grad_norm_attention", "grad_norm_router", "grad_norm_routed_experts", "grad_norm_shared_experts",
                     "grad_norm_head", "tokens_per_s", "maxvio_L1", "load_L1_e0", "bias_L3_e7" })
            Assert.Contains(col, header);
        Assert.Equal(13, csv.Length);
        Assert.Equal(12, File.ReadAllLines(Path.Combine(output, "telemetry", "steps.jsonl")).Length);
        var row = csv[3].Split(',');
        Assert.NotEqual("", row[Array.IndexOf(header, "val_loss")]); // step 3: EvalEvery = 3
        Assert.True(double.Parse(row[Array.IndexOf(header, "grad_norm_router")], System.Globalization.CultureInfo.InvariantCulture) > 0);
        // the selection bias moved away from zero
        Assert.Contains(Enumerable.Range(0, 8), e => csv[^1].Split(',')[Array.IndexOf(header, $"bias_L1_e{e}")] != "0");
    }

    [Fact]
    public void Interrupted_run_resumes_to_the_same_losses()
    {
        var o = Tiny(5);
        var full = Trainer.Run(Run(o, Temp()));
        var work = Temp();
        var first = Trainer.Run(Run(o, work) with { StopAfterSteps = 8 });   // "interrupted" at global step 8 (last checkpoint: stage 2 step 2 = global 7)
        Assert.False(first.Completed);
        var resumed = Trainer.Run(Run(o, work));
        Assert.True(resumed.Completed);
        Assert.Equal(15, resumed.GlobalStep);
        Assert.Equal(8, resumed.Losses.Count);  // steps 8..15 re-run from the checkpoint at global step 7
        var fullTail = full.Losses.Skip(7).ToArray();
        for (int i = 0; i < fullTail.Length; i++) Assert.Equal(fullTail[i], resumed.Losses[i], 4);
        for (int i = 0; i < 7; i++) Assert.Equal(full.Losses[i], first.Losses[i], 6);
        var csv = File.ReadAllLines(Path.Combine(work, "telemetry", "steps.csv"));
        Assert.Equal(16, csv.Length); // header + 15 steps, no duplicates from the interrupted run
    }

    [Fact]
    public void Same_seed_and_threads_reproduce_the_losses()
    {
        var o = Tiny(3);
        var a = Trainer.Run(Run(o, Temp()));
        var b = Trainer.Run(Run(o, Temp()));
        Assert.Equal(a.Losses.Count, b.Losses.Count);
        Assert.True(a.Losses.SequenceEqual(b.Losses), string.Join(" ", a.Losses.Zip(b.Losses).Select(p => $"{p.First:F6}/{p.Second:F6}")));
        for (int i = 0; i < a.Losses.Count; i++) Assert.Equal(a.Losses[i], b.Losses[i], 5);
    }

    [Fact]
    public void Bad_inputs_fail_before_training()
    {
        var o = Tiny();
        var work = Temp();
        Assert.Contains("learning rate", Assert.Throws<TrainingOptionsException>(() => Trainer.Run(Run(o with { Stages = o.Stages.Select(s => s with { LearningRate = 0 }).ToArray() }, work))).Message);
        Assert.Contains("steps", Assert.Throws<TrainingOptionsException>(() => Trainer.Run(Run(o with { Stages = o.Stages.Select(s => s with { Steps = 0 }).ToArray() }, work))).Message);
        Assert.Contains("gamma", Assert.Throws<TrainingOptionsException>(() => Trainer.Run(Run(o with { BiasUpdateSpeed = -1 }, work))).Message);
        Assert.Contains("vocab_size", Assert.Throws<TrainingOptionsException>(() => Trainer.Run(Run(o with { Model = o.Model with { VocabSize = 300 } }, work))).Message);
        Assert.Throws<CorpusException>(() => Trainer.Run(Run(o, work) with { Corpus = Data.Value.Docs.Where(d => d.Domain != Domains.Code).ToArray() }));
        Assert.Throws<CorpusException>(() => Trainer.Run(Run(o, work) with { Corpus = Array.Empty<CorpusDocument>() }));
        Assert.False(Directory.Exists(Path.Combine(work, "state")));
        Assert.False(File.Exists(Path.Combine(work, "telemetry", "steps.csv")));
    }
}
