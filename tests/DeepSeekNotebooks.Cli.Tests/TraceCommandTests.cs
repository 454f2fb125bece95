using DeepSeekNotebooks.Cli.Commands;
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
