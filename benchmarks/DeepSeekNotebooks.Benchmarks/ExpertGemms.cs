using System.Diagnostics;
using DeepSeekNotebooks.Model.Native;
using TorchSharp;
using static DeepSeekNotebooks.Benchmarks.ConsoleModeSupport;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Benchmarks;

/// <summary>
/// One V2-Lite expert's GEMMs on ONE libtorch thread (48 rows: 512 tokens × top-6 / 64 experts), next to the 2048³ GEMM's
/// one-thread rate, to tell apart the small-M GEMM, the operand order and the bf16 conversion before the dispatch is
/// changed. The experts' weights cycle over 16 distinct matrices (16 × 35 MB in f32) so they come from DRAM, as in a
/// forward over 64 experts. Prints one line per variant: median ms per expert and GFLOP/s.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project benchmarks/DeepSeekNotebooks.Benchmarks -- expert-gemms [--rows 48] [--reps 64]
/// [--f32-only | --modules-only | --dispatch f32|bf16]</c>: --f32-only stops after the f32 variants, --modules-only times
/// only <see cref="DeepSeekNotebooks.Model.Modules.Mlp.forward"/> against <c>Mlp.ForwardUnrecorded</c>, --dispatch times
/// the V2-Lite dispatch (2 or 1 expert threads, kit or previous path, 3 calls each; not interleaved with a GEMM).
/// docs/benchmarks.md §7d.
/// </remarks>
internal static class ExpertGemms
{
    public static int Run(string[] args)
    {
        int rows = int.Parse(Option(args, "--rows") ?? "48");
        int reps = int.Parse(Option(args, "--reps") ?? "64");
        TorchRuntime.EnsureLoaded();
        set_num_threads(1);
        const int d = 2048, w = 1408, experts = 16;
        Console.WriteLine($"expert-gemms rows {rows}, reps {reps}, torch threads {get_num_threads()}, load {Load()}");
        using var _ = no_grad();
        manual_seed(0);
        var gu = Enumerable.Range(0, experts).Select(_ => randn(2 * w, d).mul_(0.02)).ToArray();
        var w2 = Enumerable.Range(0, experts).Select(_ => randn(d, w).mul_(0.02)).ToArray();
        var gu16 = gu.Select(t => t.to(bfloat16)).ToArray();
        var w216 = w2.Select(t => t.to(bfloat16)).ToArray();
        var x = randn(rows, d);
        var x16 = x.to(bfloat16);
        double flops = 3.0 * 2 * d * w * rows;

        {
            using var a = randn(d, d);
            using var b = randn(d, d);
            using (a.matmul(b)) { }
            var t = new List<double>();
            for (int i = 0; i < 3; i++) { var sw = Stopwatch.StartNew(); using (a.matmul(b)) { } t.Add(sw.Elapsed.TotalSeconds); }
            Console.WriteLine($"GEMM 2048³ 1 thread: {Median(t) * 1e3:F1} ms = {2.0 * d * d * d / Median(t) / 1e9:F1} GFLOP/s");
        }

        void Time(string name, Func<int, Tensor> expert, double f)
        {
            for (int i = 0; i < experts; i++) using (var s = NewDisposeScope()) expert(i);
            var t = new List<double>();
            for (int i = 0; i < reps; i++)
            {
                using var s = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                expert(i % experts);
                t.Add(sw.Elapsed.TotalSeconds);
            }
            Console.WriteLine($"{name}: {Median(t) * 1e3:F2} ms = {f / Median(t) / 1e9:F1} GFLOP/s");
        }

        if (Option(args, "--dispatch") is { } ddt)
        {
            set_num_threads(2);
            var bench = new MoeDispatchBenchmarks { Shape = "v2lite", DType = ddt };
            bench.Setup();
            foreach (var (threads, unrec) in new (int?, bool)[] { (2, true), (2, false), (1, true), (1, false), (2, true), (2, false) })
            {
                bench.ExpertThreadsForTiming = threads;
                bench.UnrecordedExpertsForTiming = unrec;
                var t = new List<double>();
                for (int i = 0; i < 3; i++) { var sw = Stopwatch.StartNew(); bench.SortDispatch(); t.Add(sw.Elapsed.TotalSeconds); }
                Console.WriteLine($"dispatch {ddt} threads {threads} unrecorded {unrec}: {string.Join(" ", t.Select(v => $"{v * 1e3:F0}"))} ms, load {Load()}");
            }
            return 0;
        }
        if (args.Contains("--modules-only")) goto modules;
        double fGu = 2.0 * d * 2 * w * rows, fDown = 2.0 * d * w * rows;
        Time("f32 gate/up x·Wᵀ (linear)", e => nn.functional.linear(x, gu[e]), fGu);
        Time("f32 gate/up W·xᵀ (mm)", e => gu[e].mm(x.t()), fGu);
        var h = randn(rows, w);
        Time("f32 down h·W2ᵀ (linear)", e => nn.functional.linear(h, w2[e]), fDown);
        Time("f32 down W2·hᵀ (mm)", e => w2[e].mm(h.t()), fDown);
        Time("f32 expert x·Wᵀ", e =>
        {
            var g = nn.functional.linear(x, gu[e]);
            var hh = nn.functional.silu(g.narrow(1, 0, w)) * g.narrow(1, w, w);
            return nn.functional.linear(hh, w2[e]);
        }, flops);
        Time("f32 expert W·xᵀ", e =>
        {
            var g = gu[e].mm(x.t());
            var hh = nn.functional.silu(g.narrow(0, 0, w)).mul_(g.narrow(0, w, w));
            return w2[e].mm(hh).t();
        }, flops);
        Time("bf16 expert: whole W to f32 per GEMM (current)", e =>
        {
            var g = nn.functional.linear(x16.to(float32), gu16[e].to(float32)).to(bfloat16);
            var hh = nn.functional.silu(g.narrow(1, 0, w)) * g.narrow(1, w, w);
            return nn.functional.linear(hh.to(float32), w216[e].to(float32)).to(bfloat16);
        }, flops);
        Time("bf16 conversion only (gate/up + down weights)", e => { gu16[e].to(float32); return w216[e].to(float32); }, flops);
        foreach (int chunk in new[] { 128, 256, 512, 1024 })
        {
            Time($"f32 expert x·Wᵀ in {chunk}-row blocks of W (views, addmm_)", e =>
            {
                var g = empty(rows, 2 * w);
                for (int r = 0; r < 2 * w; r += chunk)
                {
                    int n = Math.Min(chunk, 2 * w - r);
                    g.narrow(1, r, n).addmm_(x, gu[e].narrow(0, r, n).t(), 0, 1);
                }
                var hh = nn.functional.silu(g.narrow(1, 0, w)) * g.narrow(1, w, w);
                var y = empty(rows, d);
                for (int r = 0; r < d; r += chunk)
                {
                    int n = Math.Min(chunk, d - r);
                    y.narrow(1, r, n).addmm_(hh, w2[e].narrow(0, r, n).t(), 0, 1);
                }
                return y;
            }, flops);
        }
        Time("f32 expert x·Wᵀ", e =>
        {
            var g = nn.functional.linear(x, gu[e]);
            var hh = nn.functional.silu(g.narrow(1, 0, w)) * g.narrow(1, w, w);
            return nn.functional.linear(hh, w2[e]);
        }, flops);
        if (args.Contains("--f32-only")) return 0;
        foreach (int chunk in new[] { 64, 128, 256, 512 })
        {
            var buf = empty(chunk, Math.Max(d, w));
            Time($"bf16 expert chunked W·xᵀ, {chunk} rows per chunk", e =>
            {
                var xt = x16.to(float32).t();
                var g = empty(2 * w, rows);
                for (int r = 0; r < 2 * w; r += chunk)
                {
                    int n = Math.Min(chunk, 2 * w - r);
                    var b = buf.narrow(0, 0, n).narrow(1, 0, d);
                    b.copy_(gu16[e].narrow(0, r, n));
                    g.narrow(0, r, n).addmm_(b, xt, 0, 1);
                }
                var hh = (nn.functional.silu(g.narrow(0, 0, w)) * g.narrow(0, w, w)).to(bfloat16).to(float32);
                var y = empty(d, rows);
                for (int r = 0; r < d; r += chunk)
                {
                    int n = Math.Min(chunk, d - r);
                    var b = buf.narrow(0, 0, n).narrow(1, 0, w);
                    b.copy_(w216[e].narrow(0, r, n));
                    y.narrow(0, r, n).addmm_(b, hh, 0, 1);
                }
                return y.t().to(bfloat16);
            }, flops);
            Time($"bf16 expert chunked x·Wᵀ, {chunk} rows per chunk", e =>
            {
                var x32 = x16.to(float32);
                var g = empty(rows, 2 * w);
                for (int r = 0; r < 2 * w; r += chunk)
                {
                    int n = Math.Min(chunk, 2 * w - r);
                    var b = buf.narrow(0, 0, n).narrow(1, 0, d);
                    b.copy_(gu16[e].narrow(0, r, n));
                    g.narrow(1, r, n).addmm_(x32, b.t(), 0, 1);
                }
                var hh = (nn.functional.silu(g.narrow(1, 0, w)) * g.narrow(1, w, w)).to(bfloat16).to(float32);
                var y = empty(rows, d);
                for (int r = 0; r < d; r += chunk)
                {
                    int n = Math.Min(chunk, d - r);
                    var b = buf.narrow(0, 0, n).narrow(1, 0, w);
                    b.copy_(w216[e].narrow(0, r, n));
                    y.narrow(1, r, n).addmm_(hh, b.t(), 0, 1);
                }
                return y.to(bfloat16);
            }, flops);
        }
    modules:
        foreach (var dt in new[] { float32, bfloat16 })
        {
            var mlps = Enumerable.Range(0, experts).Select(i => new DeepSeekNotebooks.Model.Modules.Mlp($"e{i}", d, w)).ToArray();
            foreach (var m in mlps) m.to(dt);
            var xe = x.to(dt);
            Tensor? scratch = null;
            Time($"Mlp.forward {dt}", e => mlps[e].forward(xe), flops);
            Time($"Mlp.ForwardUnrecorded {dt}", e => mlps[e].ForwardUnrecorded(xe, ref scratch), flops);
            Time($"Mlp.forward {dt}", e => mlps[e].forward(xe), flops);
            Time($"Mlp.ForwardUnrecorded {dt}", e => mlps[e].ForwardUnrecorded(xe, ref scratch), flops);
            scratch?.Dispose();
            foreach (var m in mlps) m.Dispose();
        }
        Console.WriteLine($"load {Load()}");
        return 0;
    }
}
