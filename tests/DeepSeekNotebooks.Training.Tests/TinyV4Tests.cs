using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Training.Corpus;
using DeepSeekNotebooks.Training.Training;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.Tests;

public partial class TrainerTests
{
    /// <summary>TinyV4's architecture narrowed for a test (same layer kinds, streams and hash layer; the tokenizer's 320 ids).</summary>
    private static DeepSeekConfig NarrowV4()
    {
        var o = JsonNode.Parse(TinyV4.ConfigJson(320))!.AsObject();
        o["hidden_size"] = 32; o["moe_intermediate_size"] = 16; o["q_lora_rank"] = 16; o["o_lora_rank"] = 8; o["index_n_heads"] = 2;
        o["num_attention_heads"] = 2; o["o_groups"] = 1;
        return DeepSeekConfig.FromJson(o.ToJsonString());
    }

    [Fact]
    public void V4_run_reproduces_and_trains_what_the_QAT_rounding_would_freeze()
    {
        var o = Tiny(2) with { Model = NarrowV4(), ModelName = TinyV4.Name };
        var output = Path.Combine(Temp(), TinyV4.Name);
        var a = Trainer.Run(Run(o, Temp(), output, final: true));
        var b = Trainer.Run(Run(o, Temp()));
        Assert.True(a.Completed);
        Assert.All(a.Losses, l => Assert.True(double.IsFinite(l)));
        Assert.True(a.Losses.SequenceEqual(b.Losses), "same seed and threads, same V4 losses");

        using var ckpt = Checkpoint.Load(output);
        using var init = DeepSeekModel.Create(o.Model, o.Seed);
        var trained = ckpt.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        // Trained in plain float: the shared key = value projection feeds the FP8-rounded KV (zero gradient under the
        // official rounding), the compressor and indexer feed rounded entries, the mHC parameters mix the streams.
        foreach (var name in new[] { "layers.1.attn.wkv.weight", "layers.1.attn.compressor.wkv.weight",
                     "layers.2.attn.compressor.wgate.weight", "layers.0.hc_attn_fn", "hc_head_fn", "layers.0.attn.attn_sink" })
        {
            using var before = init.named_parameters().First(p => p.name == name).parameter.detach();
            Assert.True(trained[name].ne(before).any().item<bool>(), $"{name} did not move in training");
        }
        // The CSA indexer only selects entries (a piecewise-constant top-k): no gradient of the language-modelling loss
        // reaches it. DeepSeek trains it with a separate KL loss towards the attention (DSA), which this trainer does not
        // have, so the indexer keeps its initial weights (AdamW's weight decay aside, which only acts with a gradient).
        foreach (var name in new[] { "layers.1.attn.indexer.wq_b.weight", "layers.1.attn.indexer.weights_proj.weight" })
        {
            using var before = init.named_parameters().First(p => p.name == name).parameter.detach();
            Assert.True(trained[name].eq(before).all().item<bool>(), $"{name} moved: something now back-propagates into the indexer");
        }
        // The hash table is a fixed routing table, not a trained parameter; hash layers have no selection bias.
        using (var table = init.named_parameters().First(p => p.name == "layers.0.ffn.gate.tid2eid").parameter.detach())
            Assert.True(trained["layers.0.ffn.gate.tid2eid"].eq(table).all().item<bool>(), "tid2eid is not trained");
        Assert.DoesNotContain("layers.0.ffn.gate.bias", trained.Keys);
        var training = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "training.json")))!;
        Assert.Equal(TinyV4.Name, training["model"]!.GetValue<string>());
        Assert.Equal("off", training["quantisation_during_training"]!.GetValue<string>());
    }
}

public class BundledV4CheckpointTests
{
    private static string Dir => Path.Combine(TestPaths.RepoRoot, "data", "checkpoints", BundledModel.V4Name);

    [Fact]
    public void Bundled_V4_checkpoint_is_the_TinyV4_recipe_and_records_its_training()
    {
        Assert.Equal(Dir, BundledModel.Checkpoint(BundledModel.V4Name));
        long bytes = Directory.EnumerateFiles(Dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Assert.True(bytes <= 20L * 1024 * 1024, $"checkpoint is {bytes} bytes");
        using var ckpt = Checkpoint.Load(Dir);
        Assert.NotNull(ckpt.Tokenizer);
        var recipe = TinyV4.Config(ckpt.Tokenizer!.VocabularySize);
        var c = ckpt.Config;
        Assert.Equal(Enumerable.Range(0, recipe.NumHiddenLayers).Select(recipe.AttentionKindOf), Enumerable.Range(0, c.NumHiddenLayers).Select(c.AttentionKindOf));
        Assert.Equal(new[] { AttentionKind.SlidingWindow, AttentionKind.CompressedSparse, AttentionKind.HeavilyCompressed, AttentionKind.CompressedSparse },
            Enumerable.Range(0, c.NumHiddenLayers).Select(c.AttentionKindOf));
        Assert.Equal(4, c.HyperConnections!.Mult);
        Assert.Equal(1, c.NumHashLayers);
        Assert.Equal(ScoringFunc.SqrtSoftplus, c.ScoringFunc);
        Assert.Equal(ArchitectureCost.FromConfig(recipe).TotalParameters, ckpt.Model.parameters().Sum(p => p.numel()));

        var training = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "training.json")))!;
        Assert.Equal(BundledModel.V4Name, training["model"]!.GetValue<string>());
        Assert.Contains("--architecture v4", training["command"]!.GetValue<string>());
        var stages = training["stages"]!.AsArray();
        var expected = TinyV4.Stages(training["seed"]!.GetValue<long>());
        Assert.Equal(expected.Select(s => (s.Name, s.Steps, s.BatchSize, s.SequenceLength, s.Seed)),
            stages.Select(s => (s!["name"]!.GetValue<string>(), s["steps"]!.GetValue<int>(), s["batch_size"]!.GetValue<int>(), s["sequence_length"]!.GetValue<int>(), s["seed"]!.GetValue<long>())));
        var header = File.ReadLines(Path.Combine(Dir, "telemetry", "steps.csv")).First().Split(',');
        Assert.Contains("maxvio_L0", header);   // the hash-routed block's load is logged too
        foreach (var (domain, v) in training["metrics"]!["final"]!["validation_loss_by_domain"]!.AsObject())
            Assert.True(v!["model"]!.GetValue<double>() < v["unigram_domain"]!.GetValue<double>(), $"{domain}: model must beat the unigram baseline");
    }

    /// <summary>The trainer's exact-match record, re-measured on the shipped V4 checkpoint in plain float (as it was evaluated).</summary>
    [Fact]
    public void ExactMatch_OnTheBundledV4Checkpoint_ReproducesTheTrainersRecord()
    {
        using var ckpt = Checkpoint.Load(Dir);
        ckpt.Model.Quantisation = QuantisationSimulation.Off;
        var tokenizer = ckpt.Tokenizer!;
        var data = new TokenizedCorpus(CorpusFile.Read(Path.Combine(TestPaths.RepoRoot, "data", "corpus", "corpus.jsonl")), tokenizer, TokenizedCorpus.EosIdOf(tokenizer));
        var recorded = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "training.json")))!["metrics"]!["final"]!["exact_match_after_instruct"]!;
        var result = Evaluation.ExactMatch(ckpt.Model, data, tokenizer, recorded["total"]!.GetValue<int>());
        Assert.Equal(recorded["correct"]!.GetValue<int>(), result.Correct);
    }
}
