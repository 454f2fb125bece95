using DeepSeekNotebooks.Cli.Commands;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Tests;

public class TraceCommandTests : IDisposable
{
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private static string Golden => Path.Combine(Root, "tests", "fixtures", "golden", "public.outputs.safetensors");
    private readonly string _tmp = Directory.CreateTempSubdirectory("trace-tests").FullName;

    private static int Cli(params string[] args) => Program.Run(args);

    [Theory]
    [InlineData("golden-tiny-hf")]
    [InlineData("golden-tiny-official")]
    public void Trace_WritesTheGoldenTensors(string checkpoint)
    {
        var output = Path.Combine(_tmp, "trace.safetensors");
        int rc = Cli("trace", "--checkpoint", Path.Combine(Root, "data", "checkpoints", checkpoint),
            "--input-ids", "303,211,294,53,204,372,152,505,143,177,279,233",
            "--input-ids", "154,30,171,158,236,380,282,374,442,120,368,476",
            "--out", output);
        Assert.Equal(0, rc);

        using var got = SafetensorsFile.Open(output);
        using var want = SafetensorsFile.Open(Golden);
        var expectedNames = new[] { "logits", "hidden.0", "hidden.1", "hidden.2", "attn_probs.0", "attn_probs.1", "attn_probs.2",
            "moe.1.indices", "moe.1.weights", "moe.2.indices", "moe.2.weights" };
        Assert.Equal(expectedNames.Order(), got.Tensors.Select(t => t.Name).Order());
        foreach (var name in expectedNames)
        {
            var g = got.GetTensor(name);
            Assert.Equal(want.GetTensor(name).Shape, g.Shape);
            if (name.EndsWith("indices"))
            {
                Assert.Equal(SafetensorsDType.I64, g.DType);
                var a = new byte[g.ByteLength]; got.ReadBytes(name, a);
                var b = new byte[g.ByteLength]; want.ReadBytes(name, b);
                Assert.Equal(b, a);
                continue;
            }
            Assert.Equal(SafetensorsDType.F32, g.DType);
            var diff = got.ReadAsFloat32(name).Zip(want.ReadAsFloat32(name), (x, y) => Math.Abs(x - y)).Max();
            Assert.True(diff < 1e-4, $"{name} differs from the reference by {diff}");
        }
    }

    [Theory]
    [InlineData(2, "--input-ids", "1,2,x")]          // not an integer
    [InlineData(2, "--input-ids", "1,2", "--input-ids", "3")]  // ragged batch
    [InlineData(1, "--input-ids", "1,2,512")]        // id out of range for vocab 512
    [InlineData(1, "--input-ids", "1,-1")]            // negative id
    public void Trace_BadInput_FailsWithoutWriting(int expectedCode, params string[] args)
    {
        var output = Path.Combine(_tmp, "bad.safetensors");
        var all = new[] { "trace", "--checkpoint", Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf"), "--out", output }.Concat(args).ToArray();
        Assert.Equal(expectedCode, Cli(all));
        Assert.Empty(Directory.GetFiles(_tmp));
    }

    [Fact]
    public void Trace_TooLongSequence_IsRefused()
    {
        var output = Path.Combine(_tmp, "long.safetensors");
        var ids = string.Join(',', Enumerable.Range(0, 65)); // golden max_position_embeddings is 64
        Assert.Equal(1, Cli("trace", "--checkpoint", Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf"), "--input-ids", ids, "--out", output));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Trace_MissingCheckpoint_Fails()
    {
        var output = Path.Combine(_tmp, "x.safetensors");
        Assert.Equal(1, Cli("trace", "--checkpoint", Path.Combine(_tmp, "nope"), "--input-ids", "1,2", "--out", output));
        Assert.False(File.Exists(output));
    }

    public void Dispose() => Directory.Delete(_tmp, recursive: true);
}

/// <summary>
/// <c>trace --list-hooks</c> lists what the checkpoint's model offers. The expectation is built from the checkpoint's own
/// config.json with the rule of DeepSeek's Hugging Face modeling code (a block is MoE when n_routed_experts &gt; 0,
/// layer ≥ first_k_dense_replace and layer % moe_layer_freq == 0), not through the kit's config or registry.
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class TraceListHooksTests : IDisposable
{
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private readonly string _tmp = Directory.CreateTempSubdirectory("trace-hooks-tests").FullName;

    private static (int Code, string Out, string Error) Cli(params string[] args)
    {
        var (out_, err) = (new StringWriter(), new StringWriter());
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        Console.SetOut(out_);
        Console.SetError(err);
        try { return (Program.BuildRootCommand().Parse(args).Invoke(), out_.ToString(), err.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    /// <summary>The names the checkpoint should offer, from its config.json: embed, per block 6 + MLA's 7 per-head points (+4 on MoE blocks, +1 more with shared experts), ln_final, logits.</summary>
    private static List<string> Expected(string checkpointDir)
    {
        var c = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpointDir, "config.json")))!.AsObject();
        int layers = (int)c["num_hidden_layers"]!, firstDense = (int?)c["first_k_dense_replace"] ?? 0, freq = (int?)c["moe_layer_freq"] ?? 1;
        int routed = (int?)c["n_routed_experts"] ?? 0, shared = (int?)c["n_shared_experts"] ?? 0;
        var names = new List<string> { "embed" };
        for (int l = 0; l < layers; l++)
        {
            names.AddRange(new[] { "resid_pre", "attn.q_nope", "attn.q_rope", "attn.k_rope", "attn.kv_latent", "attn.k_nope", "attn.v",
                "attn.pattern", "attn.z", "attn.out", "resid_mid" }.Select(s => $"blocks.{l}.{s}"));
            if (routed > 0 && l >= firstDense && l % freq == 0)
            {
                names.AddRange(new[] { "moe.router", "moe.selection", "moe.indices", "moe.weights" }.Select(s => $"blocks.{l}.{s}"));
                if (shared > 0) names.Add($"blocks.{l}.moe.shared_out");
            }
            names.AddRange(new[] { "mlp.out", "resid_post" }.Select(s => $"blocks.{l}.{s}"));
        }
        names.Add("ln_final");
        names.Add("logits");
        return names;
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Fact]
    public void List_hooks_prints_every_hook_point_of_the_golden_checkpoint_one_per_line()
    {
        var dir = Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf");
        var (code, output, error) = Cli("trace", "--checkpoint", dir, "--list-hooks");
        Assert.True(code == 0, error);
        var lines = Lines(output);
        var expected = Expected(dir);
        // golden-tiny-hf: 3 blocks, block 0 dense, blocks 1-2 MoE with shared experts → 1 + 3·(6 + 7 MLA per-head) + 2·5 + 2 = 52 names.
        Assert.Equal(52, expected.Count);
        Assert.Equal(expected, lines);
        Assert.DoesNotContain("blocks.0.moe.router", lines);
        Assert.Empty(Directory.GetFiles(_tmp)); // nothing written
    }

    [Fact]
    public void List_hooks_on_a_dense_only_model_without_shared_experts_lists_no_moe_point()
    {
        var dir = Path.Combine(_tmp, "dense");
        var config = DeepSeekConfig.TinyFullFeatured with { NumHiddenLayers = 2, FirstKDenseReplace = 2, NSharedExperts = 0, VocabSize = 64, MaxPositionEmbeddings = 32 };
        using (var model = DeepSeekModel.Create(config, seed: 3)) Checkpoint.Save(model, dir);
        var (code, output, error) = Cli("trace", "--checkpoint", dir, "--list-hooks");
        Assert.True(code == 0, error);
        var lines = Lines(output);
        Assert.Equal(Expected(dir), lines);
        Assert.Equal(1 + 2 * (6 + 7) + 2, lines.Length);
        Assert.DoesNotContain(lines, l => l.Contains(".moe."));
    }

    [Theory]
    [InlineData("--input-ids is required", "trace")]
    [InlineData("--out is required", "trace", "--input-ids", "1,2")]
    [InlineData("leave out --input-ids and --out", "trace", "--list-hooks", "--input-ids", "1,2")]
    [InlineData("leave out --input-ids and --out", "trace", "--list-hooks", "--out", "x.safetensors")]
    public void Missing_or_conflicting_options_are_usage_errors_that_say_what_is_needed(string message, params string[] args)
    {
        var (code, _, error) = Cli([.. args, "--checkpoint", Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf")]);
        Assert.Equal(2, code);
        Assert.Contains(message, error);
    }

    public void Dispose() => Directory.Delete(_tmp, recursive: true);
}
