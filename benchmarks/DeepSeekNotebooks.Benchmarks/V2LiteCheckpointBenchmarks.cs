using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Native;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Benchmarks;

/// <summary>
/// Issue 12 §4: loading, a traced forward and Integrated Gradients on a dimension-true DeepSeek-V2-Lite checkpoint —
/// the official <c>config_16B.json</c> (tests/fixtures/configs), written by <see cref="RandomCheckpoint"/> (what
/// <c>init</c> runs) in bf16 with the real tensor names and 5 GB shards, truncated to the first <see cref="Layers"/>
/// blocks — against the read floor: the time to read the checkpoint's files once, warm (page cache) and cold (the
/// files' pages evicted with posix_fadvise DONTNEED after an fsync, no root needed).
/// </summary>
/// <remarks>
/// Every case runs in its own benchmark process, so the Peak RSS column (VmHWM) is that case's peak (writing the
/// checkpoint streams it in bands of a few MB). The first case's global setup writes the checkpoint into
/// <see cref="Root"/>; the host process deletes it when the run ends (<see cref="DeleteWritten"/>). Timed operations
/// include loading (the whole path a user runs: <c>trace</c> = load + traced forward of 4 tokens).
/// </remarks>
public class V2LiteCheckpointBenchmarks
{
    /// <summary>Truncated depth (V2-Lite has 27 blocks, ~31 GB bf16; block 0 dense, the rest MoE).</summary>
    [Params(2)] public int Layers { get; set; }
    /// <summary><see cref="Residency"/> of the load; compute dtype float32 (the loader's default; bf16 matmuls are ~240x slower on this CPU).</summary>
    [Params("memory", "stream")] public string Mode { get; set; } = "memory";
    /// <summary>Page cache state of the checkpoint's files when the operation starts.</summary>
    [Params("warm", "cold")] public string Cache { get; set; } = "warm";

    private const int Tokens = 4;
    private const int IgSteps = 8;
    private string _dir = "";
    private string[] _files = [];
    private Tensor _ids = null!;

    private Residency Residency => Mode == "stream" ? Residency.Stream : Residency.Memory;

    [GlobalSetup]
    public void Setup()
    {
        TorchRuntime.EnsureLoaded();
        _dir = Path.Combine(Root, $"layers{Layers}");
        if (!File.Exists(Path.Combine(_dir, "config.json"))) // written by the first case of the run (the write is atomic)
        {
            var written = RandomCheckpoint.Write(ConfigPath(), _dir, new RandomCheckpointOptions { DType = SafetensorsDType.BF16, Layers = Layers, Seed = 0 });
            Console.WriteLine($"// wrote {written.Shards.Count} shards, {written.TotalBytes / 1e9:F2} GB of bf16 tensors, {Layers} of 27 layers, in {_dir}");
        }
        _files = System.IO.Directory.GetFiles(_dir).OrderBy(f => f, StringComparer.Ordinal).ToArray();
        foreach (var f in _files) using (var s = new FileStream(f, FileMode.Open, FileAccess.ReadWrite)) s.Flush(flushToDisk: true);
        Console.WriteLine($"// checkpoint {_dir}: {_files.Sum(f => new FileInfo(f).Length) / 1e9:F3} GB in {_files.Length} files");
        _ids = randint(0, 102400, new long[] { 1, Tokens }, generator: new Generator(1));
    }

    /// <summary>Where the run's checkpoints are written (one per depth).</summary>
    public static string Root => Path.Combine(Path.GetTempPath(), "dsn-bench-v2lite");

    /// <summary>Deletes the checkpoints this class wrote; the host calls it after every case has run.</summary>
    public static void DeleteWritten()
    {
        if (System.IO.Directory.Exists(Root)) System.IO.Directory.Delete(Root, recursive: true);
    }

    [IterationSetup]
    public void BeforeEach()
    {
        if (Cache == "cold") foreach (var f in _files) Evict(f);
        else ReadAll(); // warm: every page in the cache
    }

    /// <summary>Bytes of the checkpoint's files (what the read floor reads).</summary>
    public static double? FlopsOf(string method, object[] p) => null;

    [Benchmark(Description = "read floor: read every file once")]
    public long ReadFloor()
    {
        if (Mode != "memory") return 0; // one floor per cache state (reported on the memory rows)
        long n = ReadAll();
        Measure.PeakRss(new object[] { Layers, Mode, Cache });
        return n;
    }

    [Benchmark(Description = "Checkpoint.Load")]
    public void Load()
    {
        using (var ck = Checkpoint.Load(_dir, new CheckpointLoadOptions { Residency = Residency })) { }
        Measure.PeakRss(new object[] { Layers, Mode, Cache });
    }

    [Benchmark(Description = "load + traced forward (4 tokens)")]
    public void LoadAndTrace()
    {
        using (var ck = Checkpoint.Load(_dir, new CheckpointLoadOptions { Residency = Residency }))
        using (no_grad())
        using (var trace = ck.Model.RunWithCache(_ids)) { }
        Measure.PeakRss(new object[] { Layers, Mode, Cache });
    }

    [Benchmark(Description = "load + IG (4 tokens, 8 steps)")]
    public void LoadAndIntegratedGradients()
    {
        using (var ck = Checkpoint.Load(_dir, new CheckpointLoadOptions { Residency = Residency }))
        using (var scope = NewDisposeScope())
            IntegratedGradients.Attribute(ck.Model, _ids, AttributionTarget.Logit(-1, 0), Baseline.Token(0), IgSteps, IntegrationMethod.GaussLegendre);
        Measure.PeakRss(new object[] { Layers, Mode, Cache });
    }

    private long ReadAll()
    {
        var buffer = new byte[16 << 20];
        long total = 0;
        foreach (var f in _files)
        {
            using var s = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            int n;
            while ((n = s.Read(buffer, 0, buffer.Length)) > 0) total += n;
        }
        return total;
    }

    private const int PosixFadvDontNeed = 4;

    [DllImport("libc", SetLastError = true)]
    private static extern int posix_fadvise(int fd, long offset, long len, int advice);

    /// <summary>Drops a file's pages from the page cache (clean pages only: the setup fsynced the files).</summary>
    private static void Evict(string path)
    {
        using var s = new FileStream(path, FileMode.Open, FileAccess.Read);
        int rc = posix_fadvise((int)s.SafeFileHandle.DangerousGetHandle(), 0, 0, PosixFadvDontNeed);
        if (rc != 0) throw new IOException($"posix_fadvise(DONTNEED) on {path} failed with {rc}");
    }

    private static string ConfigPath()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var p = Path.Combine(d.FullName, "tests", "fixtures", "configs", "deepseek-v3-inference-config_16B.json");
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException("tests/fixtures/configs/deepseek-v3-inference-config_16B.json not found above " + AppContext.BaseDirectory);
    }
}
