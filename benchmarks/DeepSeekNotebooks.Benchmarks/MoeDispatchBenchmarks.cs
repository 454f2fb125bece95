using BenchmarkDotNet.Attributes;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Benchmarks;

/// <summary>
/// MoE layer forward (routed experts only, 512 tokens) in float32 and bfloat16: the seed's per-token loop, the official
/// reference's per-expert gather/scatter, and the kit's sort-by-expert dispatch (fused gate/up GEMM, index_add_ into a
/// preallocated result; experts on torch.get_num_threads() threads, or one after another) — next to a 2048³ GEMM of the
/// same dtype measuring this CPU's peak in the same run. <see cref="InterleavedMoe"/> measures MoE and GEMM alternately.
/// </summary>
public class MoeDispatchBenchmarks
{
    [ParamsSource(nameof(Shapes))] public string Shape { get; set; } = "bundled";
    /// <summary>Compute dtype of weights, activations and the reference GEMM.</summary>
    [ParamsSource(nameof(DTypes))] public string DType { get; set; } = "f32";

    /// <summary>"bundled", "v2lite"; DSN_BENCH_SHAPES (comma-separated) narrows the run.</summary>
    public static IEnumerable<string> Shapes => FromEnvironment("DSN_BENCH_SHAPES", "bundled", "v2lite");
    /// <summary>"f32", "bf16"; DSN_BENCH_DTYPES narrows the run (bf16 matmuls are ~240x slower here: a CPU without AVX-512 BF16;
    /// the kit's experts then multiply in float32, <see cref="Mlp.CpuHasNativeBf16"/>, but the reference GEMM stays bf16).</summary>
    public static IEnumerable<string> DTypes => FromEnvironment("DSN_BENCH_DTYPES", "f32", "bf16");

    private static IEnumerable<string> FromEnvironment(string variable, params string[] all)
    {
        var chosen = Environment.GetEnvironmentVariable(variable)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (chosen is null || chosen.Length == 0) return all;
        var unknown = chosen.Except(all).ToArray();
        if (unknown.Length > 0) throw new ArgumentException($"{variable}: unknown value(s) {string.Join(", ", unknown)}; valid: {string.Join(", ", all)}");
        return chosen;
    }

    /// <summary>Side of the reference GEMM: 2048 in f32; 512 in bf16, whose CPU fallback runs 2048³ in ~3 min here.</summary>
    private static int GemmSide(string dtype) => dtype == "bf16" ? 512 : 2048;
    private ScalarType Dt => DType == "bf16" ? bfloat16 : float32;
    private const int Tokens = 512;

    private MoE _moe = null!;
    private Tensor _x = null!, _weights = null!, _indices = null!, _a = null!, _b = null!;
    private DeepSeekConfig _c = null!;

    internal static DeepSeekConfig ConfigFor(string shape) => shape == "v2lite"
        ? new DeepSeekConfig
        {
            VocabSize = 1024, HiddenSize = 2048, IntermediateSize = 10944, MoeIntermediateSize = 1408, NumHiddenLayers = 2, FirstKDenseReplace = 1,
            NumAttentionHeads = 16, NRoutedExperts = 64, NSharedExperts = 2, NumExpertsPerTok = 6, NGroup = 1, TopkGroup = 1,
            ScoringFunc = ScoringFunc.Softmax, TopkMethod = TopkMethod.Greedy, NormTopkProb = false, RoutedScalingFactor = 1.0, QLoraRank = null, KvLoraRank = 512,
            QkNopeHeadDim = 128, QkRopeHeadDim = 64, VHeadDim = 128, RopeScaling = null, MaxPositionEmbeddings = 4096,
        }
        : BundledShape();

    internal static DeepSeekConfig BundledShape()
    {
        var dir = DeepSeekNotebooks.Training.BundledModel.DefaultCheckpoint();
        return DeepSeekConfig.Load(Path.Combine(dir, "config.json"));
    }

    [GlobalSetup]
    public void Setup()
    {
        TorchRuntime.EnsureLoaded();
        _c = ConfigFor(Shape);
        manual_seed(0);
        _moe = new MoE("ffn", _c, 1);
        using (no_grad())
            foreach (var p in _moe.parameters()) p.normal_(0, 0.02);
        if (Dt != float32) _moe.to(Dt); // Mlp re-fuses w1/w3 after the conversion
        if (_moe.Experts.Any(e => e.FusedGateUp() is null)) throw new InvalidOperationException("the experts lost their fused gate/up storage");
        _x = randn(Tokens, _c.HiddenSize).to(Dt);
        using (no_grad())
        {
            var routing = _moe.Gate.forward(_x); // warm
            var logits = randn(Tokens, _c.NRoutedExperts);
            var top = logits.softmax(-1).topk(_c.NumExpertsPerTok, -1);
            _weights = top.values.to(Dt).contiguous();
            _indices = top.indexes.contiguous();
        }
        // The implementations must agree before any of them is timed (the per-token loop is checked where it is cheap).
        using (var gather = Gather()) using (var sort = _moe.Dispatch(_x, new Routing(_weights, _indices, _weights)))
        {
            double scale = gather.abs().max().to(float32).item<float>();
            double d2 = (gather - sort).abs().max().to(float32).item<float>() / scale;
            double d1 = 0;
            if (Shape == "bundled") using (var loop = Loop()) d1 = (loop - sort).abs().max().to(float32).item<float>() / scale;
            double tol = Dt == float32 ? 1e-5 : 2e-2;
            if (d1 > tol || d2 > tol) throw new InvalidOperationException($"dispatch implementations disagree (relative): loop {d1}, gather {d2}");
        }
        _a = randn(GemmSide(DType), GemmSide(DType)).to(Dt);
        _b = randn(GemmSide(DType), GemmSide(DType)).to(Dt);
    }

    /// <summary>Releases the case's weights (in-process runs, DSN_BENCH_INPROCESS=1, would otherwise hold every case's 1–2 GB).</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _weights, _indices, _a, _b }) t?.Dispose();
        _moe?.Dispose();
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>FLOPs: 3 GEMMs of 2·d·w per routed (token, expert) pair; 2·n³ for the matmul.</summary>
    public static double? FlopsOf(string method, object[] p)
    {
        if (method == nameof(GemmPeak2048)) { double n = GemmSide(p.OfType<string>().First(v => v is "f32" or "bf16")); return 2.0 * n * n * n; }
        var c = ConfigFor(p.OfType<string>().First(v => v is "bundled" or "v2lite"));
        return 3.0 * 2 * c.HiddenSize * c.MoeIntermediateSize * Tokens * c.NumExpertsPerTok;
    }

    [Benchmark(Description = "GEMM n³ same dtype (peak; n 2048 f32, 512 bf16)")]
    public void GemmPeak2048()
    {
        using var y = _a.matmul(_b);
        Measure.PeakRss(new object[] { Shape, DType });
    }

    [Benchmark(Description = "per-token loop")]
    public void PerTokenLoop()
    {
        using (var y = Loop()) { }
        Measure.PeakRss(new object[] { Shape, DType });
    }

    private Tensor Loop()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var y = zeros_like(_x);
        var idx = _indices.data<long>().ToArray();
        int k = _c.NumExpertsPerTok;
        for (int t = 0; t < Tokens; t++)
        {
            using var inner = NewDisposeScope();
            var xt = _x.narrow(0, t, 1);
            for (int j = 0; j < k; j++)
                y.narrow(0, t, 1).add_(_moe.Experts[(int)idx[t * k + j]].forward(xt) * _weights[t, j]);
        }
        return y.MoveToOuterDisposeScope();
    }

    [Benchmark(Description = "per-expert gather/scatter (reference)")]
    public void PerExpertGatherScatter()
    {
        using (var y = Gather()) { }
        Measure.PeakRss(new object[] { Shape, DType });
    }

    private Tensor Gather()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var y = zeros_like(_x);
        var counts = bincount(_indices.flatten(), minlength: _c.NRoutedExperts).data<long>().ToArray();
        for (int e = 0; e < _c.NRoutedExperts; e++)
        {
            if (counts[e] == 0) continue;
            using var inner = NewDisposeScope();
            var hits = nonzero(_indices.eq(e));   // [n, 2]: (token, slot), as torch.where(indices == i)
            var idx = hits.select(1, 0);
            var top = hits.select(1, 1);
            var weight = _weights[idx, top].unsqueeze(1);
            y.index_add_(0, idx, _moe.Experts[e].forward(_x.index_select(0, idx)) * weight, 1);
        }
        return y.MoveToOuterDisposeScope();
    }

    /// <summary><see cref="MoE.ExpertThreads"/> for <see cref="SortDispatch"/> (null: the kit's default); <see cref="InterleavedMoe"/> sets it.</summary>
    internal int? ExpertThreadsForTiming { get; set; }

    /// <summary><see cref="MoE.UnrecordedExperts"/> for <see cref="SortDispatch"/>; <see cref="InterleavedMoe"/> sets it.</summary>
    internal bool UnrecordedExpertsForTiming { get; set; } = true;

    [Benchmark(Baseline = true, Description = "sort-by-expert dispatch (kit: experts on torch.get_num_threads() threads)")]
    public void SortDispatch()
    {
        using var _ = no_grad();
        _moe.ExpertThreads = ExpertThreadsForTiming;
        _moe.UnrecordedExperts = UnrecordedExpertsForTiming;
        using var y = _moe.Dispatch(_x, new Routing(_weights, _indices, _weights));
        Measure.PeakRss(new object[] { Shape, DType });
    }

    [Benchmark(Description = "sort-by-expert dispatch, experts one after another (intra-op threads per GEMM)")]
    public void SortDispatchSequentialExperts()
    {
        using var _ = no_grad();
        _moe.ExpertThreads = 1;
        _moe.UnrecordedExperts = true;
        using var y = _moe.Dispatch(_x, new Routing(_weights, _indices, _weights));
        Measure.PeakRss(new object[] { Shape, DType });
    }
}
