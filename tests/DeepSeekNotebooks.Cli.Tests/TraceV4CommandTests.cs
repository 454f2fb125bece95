using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// <c>trace</c> on a DeepSeek-V4 checkpoint (the golden/v4 fixture in the official layout) writes the new observables
/// under the golden reference's names (<c>layer.{i}.streams_out</c>, <c>layer.{i}.attn.probs</c>,
/// <c>layer.{i}.indexer.topk</c>, …) and follows <c>--quantisation official|off</c>.
/// </summary>
public class TraceV4CommandTests : IDisposable
{
    private static string V4Dir => Path.Combine(ReportTestSupport.RepoRoot, "tests", "fixtures", "golden", "v4");
    private readonly string _tmp = Directory.CreateTempSubdirectory("trace-v4-tests").FullName;

    private string Checkpoint()
    {
        var dir = Path.Combine(_tmp, "ckpt");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(V4Dir, "public.model_args.json"), Path.Combine(dir, "config_v4.json"), true);
        File.Copy(Path.Combine(V4Dir, "public.weights.safetensors"), Path.Combine(dir, "model0-mp1.safetensors"), true);
        return dir;
    }

    private static string[] IdsOf(string file)
    {
        using var f = SafetensorsFile.Open(Path.Combine(V4Dir, file));
        var info = f.GetTensor("input_ids");
        var bytes = new byte[info.ByteLength];
        f.ReadBytes("input_ids", bytes);
        var ids = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray();
        long seq = info.Shape[1];
        return Enumerable.Range(0, (int)info.Shape[0]).SelectMany(b => new[] { "--input-ids", string.Join(",", ids.Skip(b * (int)seq).Take((int)seq)) }).ToArray();
    }

    [Theory]
    [InlineData("off", "public.outputs.safetensors")]
    [InlineData("official", "public.long.qat.outputs.safetensors")]
    public void Trace_V4_WritesTheReferenceNames_AtTheReadmeTolerances(string quantisation, string reference)
    {
        var output = Path.Combine(_tmp, "trace.safetensors");
        int rc = Program.Run(new[] { "trace", "--checkpoint", Checkpoint(), "--quantisation", quantisation, "--out", output }.Concat(IdsOf(reference)).ToArray());
        Assert.Equal(0, rc);
        using var got = SafetensorsFile.Open(output);
        using var want = SafetensorsFile.Open(Path.Combine(V4Dir, reference));
        var compared = 0;
        foreach (var w in want.Tensors.Where(t => !t.Name.StartsWith("grad.", StringComparison.Ordinal)))
        {
            var g = got.GetTensor(w.Name);   // throws if trace did not write it
            Assert.Equal(w.Shape, g.Shape);
            if (w.DType == SafetensorsDType.I64)
            {
                var a = new byte[g.ByteLength]; got.ReadBytes(w.Name, a);
                var b = new byte[w.ByteLength]; want.ReadBytes(w.Name, b);
                Assert.True(a.SequenceEqual(b), $"{w.Name} differs");
            }
            else
            {
                double tol = w.Name.EndsWith("probs", StringComparison.Ordinal) || w.Name.EndsWith("sink_prob", StringComparison.Ordinal)
                    || w.Name.EndsWith("probs_dense", StringComparison.Ordinal) ? 1e-6 : 1e-5;
                var diff = got.ReadAsFloat32(w.Name).Zip(want.ReadAsFloat32(w.Name), (x, y) => float.IsNegativeInfinity(y) ? (float.IsNegativeInfinity(x) ? 0 : 1) : Math.Abs(x - y)).Max();
                Assert.True(diff <= tol, $"{w.Name} differs by {diff}");
            }
            compared++;
        }
        Assert.True(compared >= 25, $"only {compared} reference tensors compared");
        Assert.Contains(got.Tensors, t => t.Name == "layer.1.indexer.topk");
    }

    [Fact]
    public void Inspect_V4Checkpoint_CountsItsParameters_AndLayerKinds()
    {
        var w = new StringWriter();
        Assert.Equal(0, CliSupport.Run(() => InspectCommand.Run(Checkpoint(), null, true, w)));
        var o = System.Text.Json.Nodes.JsonNode.Parse(w.ToString())!;
        // golden.json's n_params for the official model: 366,869.
        Assert.Equal(366869L, (long)o["total_parameters"]!);
        Assert.Equal(new[] { "sliding_window", "compressed_sparse", "heavily_compressed", "sliding_window" },
            o["layers"]!.AsArray().Select(l => (string)l!["attention"]!));
    }

    [Fact]
    public void Trace_BadQuantisation_IsAUsageError()
    {
        var output = Path.Combine(_tmp, "bad.safetensors");
        Assert.Equal(2, Program.Run(new[] { "trace", "--checkpoint", Checkpoint(), "--quantisation", "fp8", "--input-ids", "1,2,3", "--out", output }));
        Assert.False(File.Exists(output));
    }

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }
}
