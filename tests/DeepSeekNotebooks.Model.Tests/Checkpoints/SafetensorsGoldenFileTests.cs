using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>Parses the golden tiny HF checkpoint (written by the reference Python/Rust safetensors implementation).</summary>
public class SafetensorsGoldenFileTests
{
    private static string GoldenPath => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf", "model.safetensors");

    [Fact]
    public void Golden_file_opens_and_every_tensor_reads()
    {
        using var f = SafetensorsFile.Open(GoldenPath);
        Assert.Equal(83, f.Tensors.Count);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal("huggingface DeepseekV3", f.Metadata["naming"]);
        Assert.All(f.Tensors, t => Assert.Equal(SafetensorsDType.F32, t.DType));

        var embed = f.Tensors[0];
        Assert.Equal("model.embed_tokens.weight", embed.Name);
        Assert.Equal([512L, 64L], embed.Shape);
        Assert.Equal(f.DataStart, embed.DataBegin);
        Assert.Equal(131072, embed.ByteLength);
        var values = f.ReadAsFloat32(embed.Name);
        // First values as read by Python's struct module from the same file.
        Assert.Equal([-0.02172892726957798f, -0.01792130246758461f, -0.006125987507402897f, -0.02679867297410965f], values[..4]);

        Assert.Equal(f.FileLength, f.Tensors.Max(t => t.DataEnd));
        Assert.Equal(f.FileLength - f.DataStart, f.Tensors.Sum(t => t.ByteLength));
        Assert.Equal([512L, 64L], f.GetTensor("lm_head.weight").Shape);
        foreach (var t in f.Tensors)
            Assert.All(f.ReadAsFloat32(t.Name), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Golden_file_rewritten_by_our_writer_has_identical_tensors()
    {
        using var dir = new TempDir();
        string copy = dir.File("copy.safetensors");
        using var f = SafetensorsFile.Open(GoldenPath);
        var w = new SafetensorsWriter();
        foreach (var (k, v) in f.Metadata) w.SetMetadata(k, v);
        foreach (var t in f.Tensors)
        {
            var info = t;
            w.Add(t.Name, t.DType, t.ToShapeArray(), t.ByteLength, s =>
            {
                var buf = new byte[info.ByteLength];
                f.ReadBytes(info.Name, buf);
                s.Write(buf);
            });
        }
        w.WriteTo(copy);

        using var g = SafetensorsFile.Open(copy);
        Assert.Equal(f.Tensors.Select(t => t.Name), g.Tensors.Select(t => t.Name));
        Assert.Equal(f.Metadata, g.Metadata);
        Assert.Equal(f.FileLength - f.DataStart, g.FileLength - g.DataStart);
        foreach (var t in f.Tensors)
        {
            var u = g.GetTensor(t.Name);
            Assert.Equal(t.Shape, u.Shape);
            Assert.Equal(f.ReadAsFloat32(t.Name), g.ReadAsFloat32(t.Name));
        }
    }
}
