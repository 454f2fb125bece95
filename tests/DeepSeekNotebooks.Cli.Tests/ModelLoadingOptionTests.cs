using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Training;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// <c>--residency auto|memory|stream</c>, <c>--dtype f32|bf16</c> and <c>--device cpu|cuda[:n]</c> are on every verb that
/// loads a model (issue 12 §1): a bad value is a usage error naming the option and the accepted values, before anything is
/// loaded or written; CUDA on this CPU-only build says which package to change; a good value runs and the verb prints the
/// checkpoint's residency line to stderr, never to stdout (generate prints JSON there).
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class ModelLoadingOptionTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("model-loading-opt").FullName;
    private string Output => Path.Combine(_tmp, "out.bin");

    public void Dispose() => Directory.Delete(_tmp, true);

    /// <summary>Every verb that loads a model, with arguments that make it run on the bundled checkpoint.</summary>
    public static TheoryData<string[]> Verbs => new()
    {
        new[] { "trace", "--input-ids", "1,2,3", "--out", "{out}" },
        new[] { "attribute", "--input-ids", "1,2,3", "--method", "saliency", "--target-position", "-1", "--out", "{out}" },
        new[] { "rollout", "--input-ids", "1,2,3", "--out", "{out}" },
        new[] { "dashboard", "--input-ids", "1,2,3", "--out", "{out}" },
        new[] { "generate", "--input-ids", "1,2,3", "--max-new-tokens", "2" },
        new[] { "sanity", "--input-ids", "1,2,3", "--methods", "saliency", "--checks", "faithfulness", "--random-orders", "2", "--out", "{out}" },
        new[] { "collect", "--dataset", "{dataset}", "--out", "{out}" },
        new[] { "soak", "--iterations", "51", "--input-ids", "1,2,3", "--report-every", "0", "--max-growth-mb", "100000" },
    };

    private (int Rc, string Out, string Err) Run(string[] args, params string[] extra)
    {
        var dataset = Path.Combine(_tmp, "data.jsonl");
        if (!File.Exists(dataset)) File.WriteAllText(dataset, "{\"input_ids\": [1, 2, 3, 4]}\n{\"input_ids\": [5, 6, 7]}\n");
        var full = args.Select(a => a == "{out}" ? Output : a == "{dataset}" ? dataset : a).Concat(extra).ToArray();
        var err = new StringWriter();
        var output = new StringWriter();
        var (savedErr, savedOut) = (Console.Error, Console.Out);
        Console.SetError(err);
        Console.SetOut(output);
        try { return (Program.Run(full), output.ToString(), err.ToString()); }
        finally { Console.SetError(savedErr); Console.SetOut(savedOut); }
    }

    [Theory]
    [MemberData(nameof(Verbs))]
    public void EveryModelVerb_RefusesABadResidency_NamingTheValues(string[] args)
    {
        var (rc, _, err) = Run(args, "--residency", "disk");
        Assert.Equal(2, rc);
        Assert.Contains("--residency must be auto, memory or stream, got 'disk'", err);
        Assert.False(File.Exists(Output));
    }

    [Theory]
    [MemberData(nameof(Verbs))]
    public void EveryModelVerb_RefusesABadDType_NamingTheValues(string[] args)
    {
        var (rc, _, err) = Run(args, "--dtype", "f16");
        Assert.Equal(2, rc);
        Assert.Contains("--dtype must be f32 or bf16, got 'f16'", err);
        Assert.False(File.Exists(Output));
    }

    [Theory]
    [MemberData(nameof(Verbs))]
    public void EveryModelVerb_RefusesABadDevice_NamingTheForms(string[] args)
    {
        foreach (var bad in new[] { "gpu", "cuda:x", "cuda:-1" })
        {
            var (rc, _, err) = Run(args, "--device", bad);
            Assert.Equal(2, rc);
            Assert.Contains($"--device must be cpu, cuda or cuda:N (N a device index, e.g. cuda:0), got '{bad}'", err);
            Assert.False(File.Exists(Output));
        }
    }

    [Theory]
    [MemberData(nameof(Verbs))]
    public void EveryModelVerb_Cuda_OnTheCpuBuild_SaysWhichPackageToChange(string[] args)
    {
        Model.Native.TorchRuntime.EnsureLoaded();
        Assert.False(TorchSharp.torch.cuda.is_available(), "this repository builds against TorchSharp-cpu: CUDA cannot be available");
        var (rc, _, err) = Run(args, "--device", "cuda:0");
        Assert.Equal(1, rc);
        Assert.Contains("--device cuda:0: TorchSharp's CUDA runtime is not available in this build", err);
        Assert.Contains("replace TorchSharp-cpu by TorchSharp-cuda-linux", err);
        Assert.Contains("Directory.Packages.props", err);
        Assert.False(File.Exists(Output));
    }

    [Theory]
    [MemberData(nameof(Verbs))]
    public void EveryModelVerb_AcceptsTheOptions_AndPrintsTheResidencyLineToStderr(string[] args)
    {
        var options = new CheckpointLoadOptions { Residency = Residency.Memory, DType = TorchSharp.torch.ScalarType.BFloat16 };
        string expected;
        using (var ckpt = Checkpoint.Load(BundledModel.DefaultCheckpoint(), options)) expected = ckpt.ResidencyReason;
        Assert.StartsWith("residency: memory", expected);

        var (rc, stdout, err) = Run(args, "--residency", "memory", "--dtype", "bf16", "--device", "cpu");
        Assert.True(rc == 0, $"exit code {rc}: {err}");
        Assert.Contains(expected + Environment.NewLine, err);
        Assert.DoesNotContain("residency:", stdout);
        if (args[0] == "generate") System.Text.Json.Nodes.JsonNode.Parse(stdout); // stdout is JSON only
        else if (args.Contains("{out}")) Assert.True(File.Exists(Output));
    }
}

/// <summary>
/// <c>--residency stream</c> reaches the loader: trace and attribute streamed write what they write in memory (issue 12:
/// logits within 1e-6 relative, routing identical, gradients within 1e-5), and the residency line says stream.
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class StreamResidencyVerbTests : IDisposable
{
    private const string Ids = "357,292,64,83,281,64,83,319,77,267,335,64,83,449,309,298,265,411,13";
    private readonly string _tmp = Directory.CreateTempSubdirectory("stream-verbs").FullName;

    public void Dispose() => Directory.Delete(_tmp, true);

    private string RunBoth(string verb, string[] args, out string streamedPath, out string memoryPath)
    {
        var paths = new[] { "stream", "memory" }.ToDictionary(r => r, r => Path.Combine(_tmp, $"{verb}-{r}.safetensors"));
        string streamErr = "";
        foreach (var (residency, path) in paths)
        {
            var err = new StringWriter();
            var saved = Console.Error;
            Console.SetError(err);
            int rc;
            try { rc = Program.Run(new[] { verb }.Concat(args).Concat(new[] { "--out", path, "--residency", residency }).ToArray()); }
            finally { Console.SetError(saved); }
            Assert.True(rc == 0, $"{verb} --residency {residency} failed ({rc}): {err}");
            if (residency == "stream") streamErr = err.ToString();
        }
        (streamedPath, memoryPath) = (paths["stream"], paths["memory"]);
        return streamErr;
    }

    private static double RelativeMaxError(float[] got, float[] want) =>
        got.Zip(want, (a, b) => Math.Abs((double)a - b)).Max() / Math.Max(1e-30, want.Max(v => Math.Abs((double)v)));

    [Fact]
    public void Trace_Streamed_WritesTheInMemoryTensors()
    {
        var err = RunBoth("trace", new[] { "--input-ids", Ids }, out var s, out var m);
        Assert.Contains("residency: stream", err);
        using var streamed = SafetensorsFile.Open(s);
        using var memory = SafetensorsFile.Open(m);
        Assert.Equal(memory.Tensors.Select(t => t.Name).Order(), streamed.Tensors.Select(t => t.Name).Order());
        foreach (var t in memory.Tensors)
        {
            if (t.DType == SafetensorsDType.I64)
            {
                var (a, b) = (new byte[t.ByteLength], new byte[t.ByteLength]);
                memory.ReadBytes(t.Name, a);
                streamed.ReadBytes(t.Name, b);
                Assert.True(a.AsSpan().SequenceEqual(b), $"{t.Name}: streamed routing differs from memory");
            }
            else
            {
                double e = RelativeMaxError(streamed.ReadAsFloat32(t.Name), memory.ReadAsFloat32(t.Name));
                Assert.True(e <= 1e-6, $"{t.Name}: streamed differs from memory by {e:G3} (relative)");
            }
        }
    }

    [Fact]
    public void Attribute_Streamed_GivesTheInMemoryGradients()
    {
        RunBoth("attribute", new[] { "--input-ids", Ids, "--method", "saliency", "--target-position", "-1" }, out var s, out var m);
        using var streamed = SafetensorsFile.Open(s);
        using var memory = SafetensorsFile.Open(m);
        double e = RelativeMaxError(streamed.ReadAsFloat32("attributions"), memory.ReadAsFloat32("attributions"));
        Assert.True(e <= 1e-5, $"streamed saliency differs from memory by {e:G3} (relative)");
    }
}
