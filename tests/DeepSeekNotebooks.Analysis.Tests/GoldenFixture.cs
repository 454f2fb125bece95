using System.Runtime.InteropServices;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>Repository paths and golden fixtures (tests/fixtures/golden), loaded once per test class.</summary>
public sealed class GoldenFixture : IDisposable
{
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DeepSeekNotebooks.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException($"No DeepSeekNotebooks.sln above {AppContext.BaseDirectory}.");
    }

    public static string GoldenDir => Path.Combine(RepoRoot(), "tests", "fixtures", "golden");

    private readonly Checkpoint _ckpt;

    public GoldenFixture()
    {
        _ckpt = Checkpoint.Load(Path.Combine(RepoRoot(), "data", "checkpoints", "golden-tiny-hf"));
        InputIds = ReadI64("public.captum.safetensors", "input_ids").Data;
    }

    public DeepSeekModel Model => _ckpt.Model;
    /// <summary>Sequence 0 of the golden inputs (the one Captum explained).</summary>
    public long[] InputIds { get; }
    public Tensor Ids() => tensor(InputIds, new long[] { 1, InputIds.Length });

    public static (float[] Data, long[] Shape) ReadF32(string file, string name)
    {
        using var f = SafetensorsFile.Open(Path.Combine(GoldenDir, file));
        return (f.ReadAsFloat32(name), f.GetTensor(name).ToShapeArray());
    }

    public static (long[] Data, long[] Shape) ReadI64(string file, string name)
    {
        using var f = SafetensorsFile.Open(Path.Combine(GoldenDir, file));
        var info = f.GetTensor(name);
        var bytes = new byte[info.ByteLength];
        f.ReadBytes(name, bytes);
        return (MemoryMarshal.Cast<byte, long>(bytes).ToArray(), info.ToShapeArray());
    }

    public static double MaxAbs(IReadOnlyList<float> a) => a.Max(v => Math.Abs((double)v));
    public static double MaxAbsDiff(IReadOnlyList<float> a, IReadOnlyList<float> b)
    {
        Assert.Equal(a.Count, b.Count);
        double m = 0;
        for (int i = 0; i < a.Count; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }

    public void Dispose() => _ckpt.Dispose();
}
