using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Fidelity;

/// <summary>
/// DeepSeek-V4 (mHC streams, sliding / CSA / HCA attention with sinks, hash routing, sqrt-softplus gate, clamped
/// SwiGLU) against the official V4 inference code (tests/fixtures/golden/v4, README there): every recorded internal
/// under the reference's names (<see cref="ReferenceTensorNames"/>) at the README's tolerances — logits and streams
/// 1e-5, attention probabilities 1e-6, selected positions and experts exactly.
/// </summary>
public class V4FidelityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static string V4Dir => V4KernelTests.V4Dir;

    internal sealed class FixtureCheckpoint : IDisposable
    {
        public string Directory { get; }
        public FixtureCheckpoint(CheckpointLayout layout, string? mutate = null)
        {
            Directory = Path.Combine(Path.GetTempPath(), $"v4-{layout}-{Guid.NewGuid():N}");
            System.IO.Directory.CreateDirectory(Directory);
            if (layout == CheckpointLayout.HuggingFace)
            {
                File.Copy(Path.Combine(V4Dir, "public.hf_config.json"), Path.Combine(Directory, "config.json"));
                File.Copy(Path.Combine(V4Dir, "public.weights_hf.safetensors"), Path.Combine(Directory, "model.safetensors"));
            }
            else
            {
                File.Copy(Path.Combine(V4Dir, "public.model_args.json"), Path.Combine(Directory, "config_public_v4.json"));
                File.Copy(Path.Combine(V4Dir, "public.weights.safetensors"), Path.Combine(Directory, "model0-mp1.safetensors"));
            }
        }
        public void Dispose() { try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { } }
    }

    internal static Checkpoint Load(CheckpointLayout layout)
    {
        using var dir = new FixtureCheckpoint(layout);
        return Checkpoint.Load(dir.Directory);
    }

    private static double MaxAbs(Tensor a, Tensor b) => (a.to(float64) - b.to(float64)).abs().max().item<double>();

    /// <summary>The README's tolerance for a reference tensor (null = exact, integer indices).</summary>
    internal static double? Tolerance(string reference) => reference switch
    {
        _ when reference.EndsWith("topk_idxs", StringComparison.Ordinal) || reference.EndsWith("indexer.topk", StringComparison.Ordinal)
            || reference.EndsWith("moe.indices", StringComparison.Ordinal) => null,
        _ when reference.EndsWith("attn.probs", StringComparison.Ordinal) || reference.EndsWith("sink_prob", StringComparison.Ordinal)
            || reference.EndsWith("probs_dense", StringComparison.Ordinal) => 1e-6,
        _ => 1e-5,
    };

    /// <summary>Compares every reference tensor present in the file; returns the names compared.</summary>
    internal static List<string> CompareAll(ModelTrace trace, DeepSeekConfig config, string outputs, Func<string, double?> tolerance,
        Xunit.Abstractions.ITestOutputHelper? log = null)
    {
        var compared = new List<string>();
        var failures = new List<string>();
        using var file = SafetensorsFile.Open(Path.Combine(V4Dir, outputs));
        var present = file.Tensors.Select(t => t.Name).ToHashSet();
        foreach (var (hook, reference) in ReferenceTensorNames.ForV4(config))
        {
            if (!present.Contains(reference)) continue;
            using var expected = V4KernelTests.Read(outputs, reference);
            var actual = trace[hook];
            if (!actual.shape.SequenceEqual(expected.shape))
            {
                failures.Add($"{reference} ({hook}): shape [{string.Join(", ", actual.shape)}] vs [{string.Join(", ", expected.shape)}]");
                continue;
            }
            var tol = tolerance(reference);
            if (tol is null)
            {
                long diff = actual.to(int64).ne(expected.to(int64)).sum().item<long>();
                if (diff != 0) failures.Add($"{reference}: {diff} indices differ");
            }
            else
            {
                var finite = expected.isfinite();
                if (!actual.isfinite().eq(finite).all().item<bool>()) { failures.Add($"{reference}: the −∞ pattern differs"); continue; }
                double d = MaxAbs(actual.masked_fill(finite.logical_not(), 0), expected.masked_fill(finite.logical_not(), 0));
                if (!(d <= tol)) failures.Add($"{reference}: max |Δ| {d:G3} > {tol:G3}");
                log?.WriteLine($"{reference}: max |Δ| {d:G3} (tolerance {tol:G3})");
            }
            compared.Add(reference);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        return compared;
    }

    public static TheoryData<CheckpointLayout, string> Layouts => new()
    {
        { CheckpointLayout.Official, "public.outputs.safetensors" },
        { CheckpointLayout.Official, "public.long.outputs.safetensors" },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void TracedForward_QatOff_MatchesOfficialV4Code(CheckpointLayout layout, string outputs)
    {
        using var ckpt = Load(layout);
        var model = ckpt.Model;
        Assert.Equal(QuantisationSimulation.Official, model.Quantisation);
        model.Quantisation = QuantisationSimulation.Off;
        using var scope = NewDisposeScope();
        using var trace = model.RunWithCache(V4KernelTests.Read(outputs, "input_ids"), new TraceOptions { Names = NamesFilter.All });
        var compared = CompareAll(trace, model.Config, outputs, Tolerance, output);
        // Everything the file holds except inputs and the gradient check is compared.
        using var file = SafetensorsFile.Open(Path.Combine(V4Dir, outputs));
        var expectedNames = file.Tensors.Select(t => t.Name).Where(n => n != "input_ids" && !n.StartsWith("grad.", StringComparison.Ordinal)).Order().ToList();
        Assert.Equal(expectedNames, compared.Order().ToList());
    }
}
