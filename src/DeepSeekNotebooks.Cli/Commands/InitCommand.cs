using System.CommandLine;
using System.Globalization;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>init</c>: a random-weight checkpoint of a configuration's exact architecture (Hugging Face layout, real tensor names,
/// ≤ 5 GB shards plus <c>model.safetensors.index.json</c>), for trying a pipeline at real widths before downloading one.
/// </summary>
public static class InitCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config")
        {
            Description = "A Hugging Face config.json or an official ModelArgs JSON (inference/configs/*.json).",
            Required = true,
        };
        var output = new Option<DirectoryInfo>("--out")
        {
            Description = "Checkpoint directory to create (must not exist or be empty); written to a temporary directory and moved into place.",
            Required = true,
        };
        var dtype = new Option<string>("--dtype")
        {
            Description = "bf16 (default), f32, or fp8 (projection weights FP8 E4M3 with 128x128 weight_scale_inv blocks, the rest bf16, as DeepSeek-V3; for DeepSeek-V4 as its release: ue8m0 block scales and routed experts packed FP4 with a ue8m0 scale per 32 inputs).",
            DefaultValueFactory = _ => "bf16",
        };
        var layers = new Option<int?>("--layers") { Description = "Keep the first N layers (num_hidden_layers = N; first_k_dense_replace kept; DeepSeek-V4: compress_ratios/layer_types cut to N, MTP entries kept, num_hash_layers at most N)." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random weights (same seed: identical files). Default 0." };
        var command = new Command("init", "Write a random-weight checkpoint of a configuration's exact architecture (HF layout, sharded).")
        {
            config, output, dtype, layers, seed,
        };
        command.SetAction(parse => CliSupport.Run(() => Run(parse.GetValue(config)!.FullName, parse.GetValue(output)!.FullName,
            parse.GetValue(dtype)!, parse.GetValue(layers), parse.GetValue(seed), Console.Out, Console.Error)));
        return command;
    }

    internal static int Run(string configFile, string outDir, string dtype, int? layers, ulong seed, TextWriter output, TextWriter progress)
    {
        var storage = dtype.Trim().ToLowerInvariant() switch
        {
            "bf16" or "bfloat16" => SafetensorsDType.BF16,
            "f32" or "fp32" or "float32" => SafetensorsDType.F32,
            "fp8" or "f8" or "f8_e4m3" => SafetensorsDType.F8_E4M3,
            _ => throw new UsageException($"--dtype: unknown dtype '{dtype}': use bf16, f32 or fp8"),
        };
        if (layers is < 1) throw new UsageException($"--layers must be a positive number of layers, got {layers}");
        int lastPercent = -1;
        var started = System.Diagnostics.Stopwatch.StartNew();
        var result = RandomCheckpoint.Write(configFile, outDir, new RandomCheckpointOptions
        {
            DType = storage, Layers = layers, Seed = seed,
            Progress = new SyncProgress(p =>
            {
                int percent = p.Total == 0 ? 100 : (int)(100 * p.Done / p.Total);
                if (p.Total < (64L << 20) || percent / 5 == lastPercent / 5) return; // small models: no progress lines
                lastPercent = percent;
                progress.WriteLine($"init: {percent}% ({Gb(p.Done)} of {Gb(p.Total)} GB, {started.Elapsed.TotalSeconds:0}s)");
            }),
        });
        output.WriteLine($"wrote {result.Directory}: {result.Tensors} tensors, {Gb(result.TotalBytes)} GB in {result.Shards.Count} shard(s), {storage} ({started.Elapsed.TotalSeconds:0.0}s)");
        return 0;
    }

    private static string Gb(long bytes) => (bytes / 1e9).ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>Reports on the writing thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
    private sealed class SyncProgress(Action<(long Done, long Total)> report) : IProgress<(long Done, long Total)>
    {
        public void Report((long Done, long Total) value) => report(value);
    }
}
