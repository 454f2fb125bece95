using System.Diagnostics;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Native;
using static DeepSeekNotebooks.Benchmarks.ConsoleModeSupport;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Benchmarks;

/// <summary>
/// MoE forward vs a same-dtype 2048³ fp32 GEMM measured <b>interleaved</b> in one process (GEMM, MoE variants, GEMM, …),
/// so on a shared machine both sides of each ratio see the same load; BenchmarkDotNet runs each case in its own process,
/// one after another, and a load change between them moves the ratio. Prints one line per round and the medians.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project benchmarks/DeepSeekNotebooks.Benchmarks -- interleaved-moe [--dtype f32|bf16] [--rounds N] [--block R] [--sequential]</c>.
/// The MoE is <see cref="MoeDispatchBenchmarks"/>' V2-Lite case (64 experts of width 1408, top-6, 512 tokens, routed
/// experts only). Variants: the kit's default (expert threads = torch.get_num_threads(), <see cref="Mlp.ForwardUnrecorded"/>
/// per expert), the previous path (the same threads, <see cref="Mlp.forward"/> per expert: one GEMM per matrix, whole-matrix bf16
/// conversion; <see cref="MoE.UnrecordedExperts"/> false) and, with --sequential, the sequential expert loop (one expert
/// at a time, libtorch's intra-op threads inside each GEMM); --block R adds the kit's path with R-row weight blocks.
/// </remarks>
internal static class InterleavedMoe
{
    public static int Run(string[] args)
    {
        string dtype = Option(args, "--dtype") ?? "f32";
        int rounds = int.Parse(Option(args, "--rounds") ?? "7");
        if (dtype is not ("f32" or "bf16")) throw new ArgumentException($"--dtype {dtype}: expected f32 or bf16");
        if (rounds < 1) throw new ArgumentException($"--rounds {rounds}: expected at least 1");
        TorchRuntime.EnsureLoaded();
        var bench = new MoeDispatchBenchmarks { Shape = "v2lite", DType = dtype };
        bench.Setup();
        var c = MoeDispatchBenchmarks.ConfigFor("v2lite");
        double moeFlops = 3.0 * 2 * c.HiddenSize * c.MoeIntermediateSize * 512 * c.NumExpertsPerTok;
        const int n = 2048;
        double gemmFlops = 2.0 * n * n * n;
        using var a = randn(n, n);
        using var b = randn(n, n);
        int defaultBlock = Mlp.BlockRows;
        var variants = new List<(string Name, int? Threads, bool Unrecorded, int Block)>
        {
            ($"kit default (expert threads, GEMMs in {defaultBlock}-row blocks of W)", null, true, defaultBlock),
            ("previous path (expert threads, Mlp.forward per expert)", null, false, defaultBlock),
        };
        if (Option(args, "--block") is { } other) variants.Add(($"expert threads, {other}-row blocks", null, true, int.Parse(other)));
        if (args.Contains("--sequential")) variants.Add(("sequential experts", 1, true, defaultBlock));
        Console.WriteLine($"interleaved-moe dtype {dtype}, {rounds} rounds, torch threads {get_num_threads()}, CPU native bf16: {Mlp.CpuHasNativeBf16}, load {Load()}");
        var gemm = new List<double>();
        var moe = variants.Select(_ => new List<double>()).ToArray();
        using (no_grad())
        {
            using (var w = a.matmul(b)) { } // warm
            foreach (var v in variants) { bench.ExpertThreadsForTiming = v.Threads; bench.UnrecordedExpertsForTiming = v.Unrecorded; Mlp.BlockRows = v.Block; bench.SortDispatch(); }
            for (int r = 0; r < rounds; r++)
            {
                var sw = Stopwatch.StartNew();
                using (var y = a.matmul(b)) { }
                gemm.Add(sw.Elapsed.TotalSeconds);
                var line = $"round {r + 1}: GEMM fp32 {gemm[^1] * 1e3:F0} ms";
                for (int j = 0; j < variants.Count; j++)
                {
                    int i = r % 2 == 0 ? j : variants.Count - 1 - j; // odd rounds in reverse order: no variant always runs first
                    bench.ExpertThreadsForTiming = variants[i].Threads;
                    bench.UnrecordedExpertsForTiming = variants[i].Unrecorded;
                    Mlp.BlockRows = variants[i].Block;
                    sw.Restart();
                    bench.SortDispatch();
                    moe[i].Add(sw.Elapsed.TotalSeconds);
                    line += $", {variants[i].Name} {moe[i][^1] * 1e3:F0} ms ({moeFlops / moe[i][^1] / (gemmFlops / gemm[^1]):P1} of this round's GEMM)";
                }
                Console.WriteLine(line + $", load {Load()}");
            }
        }
        Mlp.BlockRows = defaultBlock;
        double g = Median(gemm);
        Console.WriteLine($"median GEMM fp32 2048³: {g * 1e3:F1} ms = {gemmFlops / g / 1e9:F1} GFLOP/s");
        for (int i = 0; i < variants.Count; i++)
        {
            double m = Median(moe[i]);
            var perRound = moe[i].Zip(gemm, (mi, gi) => (moeFlops / mi) / (gemmFlops / gi)).ToList();
            Console.WriteLine($"median MoE {dtype} {variants[i].Name}: {m * 1e3:F1} ms = {moeFlops / m / 1e9:F1} GFLOP/s; ratio of medians {moeFlops / m / (gemmFlops / g):F3}; median of per-round ratios {Median(perRound):F3}");
        }
        return 0;
    }
}
