using System.CommandLine;
using System.Globalization;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>soak</c>: runs forward + attribution (IG with 8 steps, saliency, attention rollout, a disposed
/// <c>RunWithCache</c>) in a loop and checks that the process resident set (VmRSS) does not keep growing: TorchSharp's
/// native memory is freed only when tensors are disposed, so a missing dispose shows up here as steady RSS growth.
/// Exit 0 when RSS at the end is within <c>--max-growth-mb</c> (default 200) of RSS after the warm-up (50 iterations),
/// 1 otherwise.
/// </summary>
public static class SoakCommand
{
    /// <summary>Iterations after which the baseline RSS is taken (allocator pools, JIT and caches have settled).</summary>
    public const int WarmUpIterations = 50;

    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var iterations = new Option<int>("--iterations") { Description = "Loop iterations (default 1000).", DefaultValueFactory = _ => 1000 };
        var maxGrowth = new Option<double>("--max-growth-mb") { Description = "Allowed RSS growth after the warm-up, in MB (default 200).", DefaultValueFactory = _ => 200 };
        var inputIds = new Option<string?>("--input-ids") { Description = "Comma-separated token ids (default: 16 ids 1..16 modulo the vocabulary)." };
        var every = new Option<int>("--report-every") { Description = "Print RSS every N iterations (default 100; 0 = only warm-up and end).", DefaultValueFactory = _ => 100 };
        var threads = new Option<int>("--threads") { Description = "torch intra-op threads (default 1: small models run fastest on one thread).", DefaultValueFactory = _ => 1 };
        var allowPickle = CliSupport.AllowPickleOption();
        var quantisation = CliSupport.QuantisationOption();
        var loading = new CliSupport.ModelLoading();
        var command = new Command("soak", "Loops forward + attribution and fails (exit 1) if native memory (RSS) grows by more than --max-growth-mb after 50 iterations.")
        {
            checkpoint, iterations, maxGrowth, inputIds, every, threads, allowPickle, quantisation,
        };
        loading.AddTo(command);
        command.SetAction(parse => CliSupport.Run(() =>
        {
            int n = parse.GetValue(iterations);
            if (n <= WarmUpIterations)
                throw new UsageException($"--iterations must be greater than the {WarmUpIterations}-iteration warm-up, got {n}");
            int reportEvery = parse.GetValue(every);
            if (reportEvery < 0) throw new UsageException($"--report-every must be ≥ 0, got {reportEvery}");
            double limit = parse.GetValue(maxGrowth);
            int nThreads = parse.GetValue(threads);
            if (nThreads < 1) throw new UsageException($"--threads must be at least 1, got {nThreads}");
            var load = loading.Apply(parse, new CheckpointLoadOptions { AllowPickle = parse.GetValue(allowPickle), Quantisation = CliSupport.ParseQuantisation(parse.GetValue(quantisation)) });
            set_num_threads(nThreads);
            using var ckpt = CliSupport.Load(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)), load);
            var text = parse.GetValue(inputIds);
            long[] ids = text is null
                ? Enumerable.Range(1, Math.Min(16, ckpt.Config.MaxPositionEmbeddings)).Select(i => (long)(i % ckpt.Config.VocabSize)).ToArray()
                : CliSupport.ParseIds(text);
            using var idTensor = tensor(ids, new long[] { 1, ids.Length });
            ckpt.Model.CheckInputIds(idTensor);

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"soak: {n} iterations of forward + IG(8 steps) + saliency + rollout + RunWithCache on {ids.Length} tokens, {nThreads} thread(s); start RSS {RssMb():F1} MB"));
            double baseline = 0;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 1; i <= n; i++)
            {
                Iteration(ckpt.Model, idTensor);
                if (i == WarmUpIterations)
                {
                    baseline = RssMb();
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RSS after {i,5} iterations: {baseline:F1} MB (baseline)"));
                }
                else if (reportEvery > 0 && i % reportEvery == 0 && i != n)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RSS after {i,5} iterations: {RssMb():F1} MB"));
            }
            double end = RssMb();
            double growth = end - baseline;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"RSS after {n,5} iterations: {end:F1} MB; growth since iteration {WarmUpIterations}: {growth:+0.0;-0.0} MB (limit {limit} MB); {sw.Elapsed.TotalSeconds:F1} s"));
            if (growth > limit)
            {
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"error: RSS grew by {growth:F1} MB after the warm-up (limit {limit} MB): native memory is leaking"));
                return 1;
            }
            Console.WriteLine("ok: no native memory growth beyond the limit");
            return 0;
        }));
        return command;
    }

    /// <summary>One soak iteration: forward, IG (8 steps), saliency, rollout and a disposed trace; every tensor disposed.</summary>
    public static void Iteration(DeepSeekModel model, Tensor ids)
    {
        using (var logits = model.forward(ids)) { }
        IntegratedGradients.Attribute(model, ids, nSteps: 8);
        Saliency.Attribute(model, ids);
        AttentionRollout.Compute(model, ids);
        using (var trace = model.RunWithCache(ids)) { }
    }

    /// <summary>The resident set size of this process in MB (VmRSS from /proc/self/status; the working set elsewhere).</summary>
    public static double RssMb()
    {
        const string path = "/proc/self/status";
        if (File.Exists(path))
        {
            foreach (var line in File.ReadLines(path))
            {
                if (!line.StartsWith("VmRSS:", StringComparison.Ordinal)) continue;
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[1], CultureInfo.InvariantCulture) / 1024.0;
            }
        }
        using var p = System.Diagnostics.Process.GetCurrentProcess();
        return p.WorkingSet64 / (1024.0 * 1024.0);
    }
}
