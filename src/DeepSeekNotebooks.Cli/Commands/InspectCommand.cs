using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>inspect</c>: the architecture of a checkpoint or configuration file and its cost (exact parameter counts, active
/// parameters per token, MTP modules, bytes by dtype), without loading weights.
/// </summary>
public static class InspectCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<DirectoryInfo?>("--checkpoint")
        {
            Description = "Checkpoint directory (Hugging Face or official layout): config plus safetensors headers; weights are not read.",
        };
        var config = new Option<FileInfo?>("--config")
        {
            Description = "A Hugging Face config.json or an official ModelArgs JSON (inference/configs/*.json).",
        };
        var json = new Option<bool>("--json") { Description = "Write one JSON object instead of the human-readable summary." };
        var command = new Command("inspect", "Architecture and cost (parameters total / active per token / MTP, bytes by dtype) without loading weights.")
        {
            checkpoint, config, json,
        };
        command.SetAction(parse => CliSupport.Run(() =>
            Run(parse.GetValue(checkpoint)?.FullName, parse.GetValue(config)?.FullName, parse.GetValue(json), Console.Out)));
        return command;
    }

    internal static int Run(string? checkpointDir, string? configFile, bool json, TextWriter output)
    {
        if ((checkpointDir is null) == (configFile is null))
            throw new UsageException("give exactly one of --checkpoint DIR (a checkpoint directory) or --config FILE (a config.json or ModelArgs JSON)");
        var cost = checkpointDir is not null ? ArchitectureCost.FromCheckpoint(checkpointDir) : FromConfigFile(configFile!);
        var source = checkpointDir ?? configFile!;
        if (json) output.WriteLine(ToJson(cost, source).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        else WriteText(cost, source, output);
        return 0;
    }

    private static ArchitectureCost FromConfigFile(string path)
    {
        if (!File.Exists(path)) throw new ConfigException("(file)", $"config file not found: {path} (give a config.json or an official ModelArgs JSON)");
        var text = File.ReadAllText(path);
        bool modelArgs;
        try { modelArgs = JsonNode.Parse(text) is JsonObject o && o.ContainsKey("dim") && o.ContainsKey("n_layers"); }
        catch (JsonException e) { throw new ConfigException("(root)", $"is not valid JSON: {e.Message}", path); }
        if (!modelArgs) return ArchitectureCost.FromConfig(DeepSeekConfig.Load(path));
        try { return ArchitectureCost.FromConfig(DeepSeekConfig.FromModelArgsJson(text)); }
        catch (ConfigException e) { throw new ConfigException(e.Field, e.Problem, path); }
    }

    /// <summary>The <c>--json</c> object (keys documented in README's CLI table).</summary>
    internal static JsonObject ToJson(ArchitectureCost cost, string source)
    {
        var c = cost.Config;
        var layers = new JsonArray();
        foreach (var l in cost.Layers)
            layers.Add(new JsonObject
            {
                ["index"] = l.Index, ["attention"] = l.Attention, ["mlp"] = l.Mlp,
                ["parameters"] = l.Parameters, ["active_parameters"] = l.ActiveParameters,
            });
        var bytes = new JsonObject();
        foreach (var (k, v) in cost.BytesByDType.OrderBy(kv => kv.Key, StringComparer.Ordinal)) bytes[k] = v;
        var o = new JsonObject
        {
            ["source"] = source,
            ["model_type"] = c.ModelType,
            ["num_layers"] = c.NumHiddenLayers,
            ["total_parameters"] = cost.TotalParameters,
            ["active_parameters_per_token"] = cost.ActiveParametersPerToken,
            ["mtp_layers"] = c.NumNextnPredictLayers,
            ["mtp_parameters"] = cost.MtpParameters,
            ["layers"] = layers,
            ["bytes_by_dtype"] = bytes,
        };
        if (cost.StoredParameters is { } stored) o["stored_parameters"] = stored;
        var unknown = new JsonArray();
        foreach (var f in c.UnknownFields) unknown.Add(f);
        o["unknown_fields"] = unknown;
        return o;
    }

    private static void WriteText(ArchitectureCost cost, string source, TextWriter w)
    {
        var c = cost.Config;
        var inv = CultureInfo.InvariantCulture;
        w.WriteLine($"{source}");
        w.WriteLine($"model_type {c.ModelType ?? "(not stated)"}: {c.NumHiddenLayers} layers, hidden {c.HiddenSize}, {c.NumAttentionHeads} heads, vocab {c.VocabSize}");
        int moe = cost.Layers.Count(l => l.Mlp == "moe");
        if (c.CompressedAttention is { } a)
        {
            // DeepSeek-V4: window / CSA / HCA attention over one shared key = value head, mHC streams, hash routing.
            w.WriteLine($"  attention: DeepSeek-V4, one shared key=value head {a.HeadDim} ({c.QkNopeHeadDim}+{c.QkRopeHeadDim} rope), q_lora_rank {c.QLoraRank}, sliding window {a.SlidingWindow}, sinks, output {a.OGroups} groups x rank {a.OLoraRank}"
                        + (c.Indexer is { } ix ? $", indexer {ix.NHeads}x{ix.HeadDim} top-{ix.Topk}" : ""));
            var kinds = new List<string>();
            for (int i = 0; i < cost.Layers.Count;)
            {
                int j = i;
                while (j + 1 < cost.Layers.Count && cost.Layers[j + 1].Attention == cost.Layers[i].Attention) j++;
                var ratio = c.CompressRatio(i) > 0 ? $" (ratio {c.CompressRatio(i)})" : "";
                kinds.Add((i == j ? $"{i}" : $"{i}-{j}") + $" {cost.Layers[i].Attention}{ratio}");
                i = j + 1;
            }
            w.WriteLine($"  attention kinds: {string.Join(", ", kinds)}");
            if (c.HyperConnections is { } hc) w.WriteLine($"  residual: {hc.Mult} hyper-connection streams (Sinkhorn {hc.SinkhornIters} iterations)");
            if (c.NumHashLayers > 0) w.WriteLine($"  hash-routed MoE layers (tid2eid): 0-{c.NumHashLayers - 1}; SwiGLU clamp {c.SwigluLimit.ToString(inv)}");
        }
        else
            w.WriteLine($"  attention: MLA, kv_lora_rank {c.KvLoraRank}, q_lora_rank {(c.QLoraRank?.ToString(inv) ?? "none (full-rank q_proj)")}, qk head {c.QkNopeHeadDim}+{c.QkRopeHeadDim}, v head {c.VHeadDim}");
        w.WriteLine(moe == 0
            ? $"  mlp: dense in all {c.NumHiddenLayers} layers (intermediate {c.IntermediateSize})"
            : $"  mlp: dense in {c.NumHiddenLayers - moe} layer(s), MoE in {moe}: {c.NRoutedExperts} routed experts (top-{c.NumExpertsPerTok}, {c.ScoringFunc.ToJsonName()}, {c.TopkMethod.ToJsonName()}) + {c.NSharedExperts} shared, expert width {c.MoeIntermediateSize}");
        w.WriteLine($"  layers: {Runs(cost.Layers)}");
        w.WriteLine($"parameters: {Human(cost.TotalParameters)} total ({cost.TotalParameters.ToString("N0", inv)}), {Human(cost.ActiveParametersPerToken)} active per token ({cost.ActiveParametersPerToken.ToString("N0", inv)})");
        if (cost.StoredParameters is { } stored)
            w.WriteLine($"  stored in the checkpoint: {stored.ToString("N0", inv)}{(stored == cost.TotalParameters ? " (matches)" : $" (differs from the architecture's {cost.TotalParameters.ToString("N0", inv)}: the loader will reject it)")}");
        w.WriteLine(c.NumNextnPredictLayers == 0
            ? "  MTP modules: none"
            : $"  MTP modules: {c.NumNextnPredictLayers}, {Human(cost.MtpParameters)} ({cost.MtpParameters.ToString("N0", inv)}), not loaded and not counted above");
        long totalBytes = cost.BytesByDType.Values.Sum();
        w.WriteLine($"weights: {HumanBytes(totalBytes)} — {string.Join(", ", cost.BytesByDType.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {HumanBytes(kv.Value)}"))}"
                    + (cost.StoredParameters is null ? (c.Quantization is null ? $" (as {c.TorchDtype ?? "float32"})" : $" (FP8 {c.Quantization.WeightBlockRows}x{c.Quantization.WeightBlockColumns} blocks)") : " (from the safetensors headers)"));
        if (c.UnknownFields.Count > 0) w.WriteLine($"unknown config fields (kept, not used): {string.Join(", ", c.UnknownFields)}");
    }

    /// <summary>"0-2 dense, 3-60 moe".</summary>
    private static string Runs(IReadOnlyList<LayerCost> layers)
    {
        var parts = new List<string>();
        for (int i = 0; i < layers.Count;)
        {
            int j = i;
            while (j + 1 < layers.Count && layers[j + 1].Mlp == layers[i].Mlp) j++;
            parts.Add(i == j ? $"{i} {layers[i].Mlp}" : $"{i}-{j} {layers[i].Mlp}");
            i = j + 1;
        }
        return string.Join(", ", parts);
    }

    private static string Human(long n) => n switch
    {
        >= 1_000_000_000 => (n / 1e9).ToString("0.##", CultureInfo.InvariantCulture) + "B",
        >= 1_000_000 => (n / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (n / 1e3).ToString("0.##", CultureInfo.InvariantCulture) + "K",
        _ => n.ToString(CultureInfo.InvariantCulture),
    };

    private static string HumanBytes(long b) => b switch
    {
        >= 1L << 30 => (b / (double)(1L << 30)).ToString("0.##", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (b / (double)(1L << 20)).ToString("0.##", CultureInfo.InvariantCulture) + " MiB",
        >= 1L << 10 => (b / (double)(1L << 10)).ToString("0.##", CultureInfo.InvariantCulture) + " KiB",
        _ => b.ToString(CultureInfo.InvariantCulture) + " B",
    };
}
