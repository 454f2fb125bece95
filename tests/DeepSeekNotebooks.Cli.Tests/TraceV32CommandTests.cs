using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// <c>trace</c> on a DeepSeek-V3.2 checkpoint (the golden/v32 fixture, official layout) writes the lightning indexer's
/// observables under the official V3.2-Exp dumps' names (<c>index_scores.{i}</c>, <c>index_topk.{i}</c>,
/// <c>moe.{i}.scores</c>) next to the V3 names, and matches the dumps at the fixture README's tolerances.
/// </summary>
public class TraceV32CommandTests : IDisposable
{
    private static string V32Dir => Path.Combine(ReportTestSupport.RepoRoot, "tests", "fixtures", "golden", "v32");
    private readonly string _tmp = Directory.CreateTempSubdirectory("trace-v32-tests").FullName;

    private string Checkpoint()
    {
        var dir = Path.Combine(_tmp, "ckpt");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(V32Dir, "public.model_args.json"), Path.Combine(dir, "config_public_v3.2.json"), true);
        File.Copy(Path.Combine(V32Dir, "public.weights.safetensors"), Path.Combine(dir, "model0-mp1.safetensors"), true);
        return dir;
    }

    private static string[] IdsOf(string file)
    {
        using var f = SafetensorsFile.Open(Path.Combine(V32Dir, file));
        var info = f.GetTensor("input_ids");
        var bytes = new byte[info.ByteLength];
        f.ReadBytes("input_ids", bytes);
        var ids = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray();
        int seq = (int)info.Shape[1];
        return Enumerable.Range(0, (int)info.Shape[0]).SelectMany(b => new[] { "--input-ids", string.Join(",", ids.Skip(b * seq).Take(seq)) }).ToArray();
    }

    private static long[] Longs(SafetensorsFile f, string name)
    {
        var info = f.GetTensor(name);
        var bytes = new byte[info.ByteLength];
        f.ReadBytes(name, bytes);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray();
    }

    [Theory]
    [InlineData("official", "public.outputs.safetensors")]
    [InlineData("off", "public.noquant.outputs.safetensors")]
    public void Trace_V32_WritesTheIndexerUnderTheOfficialNames_AtTheReadmeTolerances(string quantisation, string reference)
    {
        var output = Path.Combine(_tmp, "trace.safetensors");
        int rc = Program.Run(new[] { "trace", "--checkpoint", Checkpoint(), "--quantisation", quantisation, "--out", output }.Concat(IdsOf(reference)).ToArray());
        Assert.Equal(0, rc);
        using var got = SafetensorsFile.Open(output);
        using var want = SafetensorsFile.Open(Path.Combine(V32Dir, reference));
        int layers = want.Tensors.Count(t => t.Name.StartsWith("index_topk.", StringComparison.Ordinal));
        Assert.Equal(3, layers);
        for (int i = 0; i < layers; i++)
        {
            // Selections exact: sorted positions padded with −1, as the official code stores them.
            Assert.Equal(want.GetTensor($"index_topk.{i}").Shape, got.GetTensor($"index_topk.{i}").Shape);
            Assert.Equal(Longs(want, $"index_topk.{i}"), Longs(got, $"index_topk.{i}"));
            // Scores within 1e-5 of the row's largest |I| (−∞ at future keys on both sides).
            var g = got.ReadAsFloat32($"index_scores.{i}");
            var w = want.ReadAsFloat32($"index_scores.{i}");
            int s = (int)want.GetTensor($"index_scores.{i}").Shape[2];
            for (int r = 0; r < w.Length / s; r++)
            {
                var row = w.Skip(r * s).Take(s).ToArray();
                double max = row.Where(float.IsFinite).Select(v => Math.Abs((double)v)).DefaultIfEmpty(1).Max();
                for (int j = 0; j < s; j++)
                {
                    float a = g[r * s + j], b = row[j];
                    if (float.IsNegativeInfinity(b)) Assert.True(float.IsNegativeInfinity(a), $"index_scores.{i}[{r},{j}] should be −∞ (a future key), got {a}");
                    else Assert.True(Math.Abs(a - b) <= 1e-5 * max, $"index_scores.{i}[{r},{j}]: {a} vs {b}");
                }
            }
        }
        foreach (var name in want.Tensors.Select(t => t.Name).Where(n => n.StartsWith("moe.", StringComparison.Ordinal) && n.EndsWith(".indices", StringComparison.Ordinal)))
            Assert.Equal(Longs(want, name), Longs(got, name));
        foreach (var name in want.Tensors.Select(t => t.Name).Where(n => n == "logits" || n.StartsWith("hidden.", StringComparison.Ordinal)
                                                                     || (n.StartsWith("moe.", StringComparison.Ordinal) && n.EndsWith(".scores", StringComparison.Ordinal))))
        {
            var diff = got.ReadAsFloat32(name).Zip(want.ReadAsFloat32(name), (x, y) => Math.Abs(x - y)).Max();
            Assert.True(diff <= 1e-5, $"{name} differs by {diff}");
        }
    }

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }
}
