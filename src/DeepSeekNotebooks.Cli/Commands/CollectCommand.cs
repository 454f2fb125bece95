using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using DeepSeekNotebooks.Analysis.Attention.Diagnostics;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tokenization;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>collect</c>: runs the dataset accumulators (expert routing and attention heads) over shard i of N of a JSONL dataset
/// and saves their state (<see cref="DatasetState"/>), to be combined by <c>merge</c> and read by <c>summarize</c>.
/// </summary>
public static class CollectCommand
{
    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var dataset = new Option<FileInfo>("--dataset")
        {
            Description = "JSONL dataset, one object per line: {\"text\": \"…\"} (needs the checkpoint's tokenizer.json) or {\"input_ids\": [1, 2, …]}, optional \"domain\": \"…\".",
            Required = true,
        };
        var shard = new Option<string>("--shard")
        {
            Description = "i/N: process shard i of N, 0 ≤ i < N; line k of the file (0-based, every line counted) goes to shard k mod N. Default 0/1 (the whole file).",
            DefaultValueFactory = _ => "0/1",
        };
        var output = CliSupport.OutOption("accumulator state, .safetensors");
        var allowPickle = CliSupport.AllowPickleOption();
        var quantisation = CliSupport.QuantisationOption();
        var loading = new CliSupport.ModelLoading();
        var command = new Command("collect", "Expert-routing and attention-head statistics over one shard of a JSONL dataset, saved as a mergeable state.")
        {
            checkpoint, dataset, shard, output, allowPickle, quantisation,
        };
        loading.AddTo(command);
        command.SetAction(parse => CliSupport.Run(() => Run(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)), parse.GetValue(dataset)!.FullName,
            parse.GetValue(shard)!, parse.GetValue(output)!.FullName, parse.GetValue(allowPickle), Console.Out,
            CliSupport.ParseQuantisation(parse.GetValue(quantisation)), loading.Apply(parse, new CheckpointLoadOptions()))));
        return command;
    }

    /// <summary>Parses "i/N", refusing anything but integers with 0 ≤ i &lt; N.</summary>
    internal static (int Index, int Count) ParseShard(string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int i) || !int.TryParse(parts[1], out int n))
            throw new UsageException($"--shard '{text}' is not i/N: give two integers, e.g. --shard 0/4 (line k goes to shard k mod N)");
        if (n < 1 || i < 0 || i >= n)
            throw new UsageException($"--shard {text}: the shard index must satisfy 0 ≤ i < N (0-based; line k goes to shard k mod N), got i = {i}, N = {n}; e.g. --shard {Math.Clamp(i, 0, Math.Max(n, 1) - 1)}/{Math.Max(n, 1)}");
        return (i, n);
    }

    internal static int Run(string checkpointDir, string datasetPath, string shardText, string outPath, bool allowPickle, TextWriter output,
        Model.Modules.QuantisationSimulation quantisation = Model.Modules.QuantisationSimulation.Official, CheckpointLoadOptions? load = null)
    {
        var (shard, shards) = ParseShard(shardText);
        if (!File.Exists(datasetPath)) throw new UsageException($"--dataset {datasetPath} does not exist (give a JSONL file, one {{\"text\"|\"input_ids\", \"domain\"}} object per line)");
        var watch = Stopwatch.StartNew();
        using var ckpt = CliSupport.Load(checkpointDir, (load ?? new CheckpointLoadOptions()) with { AllowPickle = allowPickle, Quantisation = quantisation });
        var config = ckpt.Config;
        var data = ReadShard(datasetPath, shard, shards, ckpt.Tokenizer, config.VocabSize);
        var provenance = new StateProvenance(ConfigHash(ckpt), Path.GetFileName(Path.TrimEndingDirectorySeparator(ckpt.Directory)), Sha256(datasetPath), shards);

        bool moe = Enumerable.Range(0, config.NumHiddenLayers).Any(config.IsMoeLayer);
        var routing = moe ? new ExpertRoutingAccumulator(config) : null;
        var strings = new Dictionary<long, string>();
        Func<long, string>? tokenText = ckpt.Tokenizer is { } tok ? id => strings.TryGetValue(id, out var s) ? s : strings[id] = tok.TokenStrings([id])[0] : null;
        var heads = new AttentionHeadAccumulator(tokenText: tokenText, model: ckpt.Model);   // the model maps DeepSeek-V4 compressed entries to tokens
        var accumulators = new List<IDatasetAccumulator> { heads };
        if (routing is not null) accumulators.Insert(0, routing);
        long tokens = data.Sum(d => (long)d.Ids.Length);
        if (data.Count > 0) DatasetRunner.Run(ckpt.Model, data, accumulators);
        new DatasetState(provenance, [shard], routing, heads).Save(outPath);
        output.WriteLine($"collected shard {shard}/{shards} of {datasetPath}: {data.Count} sequence(s), {tokens} token(s) with {provenance.Checkpoint} in {watch.Elapsed.TotalSeconds:F1} s");
        if (data.Count == 0) output.WriteLine($"note: shard {shard}/{shards} holds no line (the file has fewer than {shard + 1} lines); its state is empty and merges as a no-op");
        output.WriteLine($"wrote {outPath}");
        return 0;
    }

    /// <summary>
    /// The sequences of shard <paramref name="shard"/> of <paramref name="shards"/>: line k (0-based) belongs to shard k mod N.
    /// Every line of the shard is validated; errors name the 1-based line number.
    /// </summary>
    internal static List<(long[] Ids, string? Domain)> ReadShard(string path, int shard, int shards, DeepSeekTokenizer? tokenizer, int vocabSize)
    {
        var result = new List<(long[], string?)>();
        long k = -1;
        foreach (var line in File.ReadLines(path))
        {
            k++;
            if (k % shards != shard) continue;
            result.Add(ParseLine(line, k + 1, path, tokenizer, vocabSize));
        }
        return result;
    }

    private static (long[] Ids, string? Domain) ParseLine(string line, long lineNumber, string path, DeepSeekTokenizer? tokenizer, int vocabSize)
    {
        string at = $"{Path.GetFileName(path)} line {lineNumber}";
        JsonElement root;
        try { using var doc = JsonDocument.Parse(line); root = doc.RootElement.Clone(); }
        catch (JsonException e) { throw new InvalidDataException($"{at} is not a JSON object: {e.Message} (each line must be {{\"text\": \"…\"}} or {{\"input_ids\": [ … ]}}, optional \"domain\")"); }
        if (root.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{at} is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, expected an object {{\"text\": \"…\"}} or {{\"input_ids\": [ … ]}}");
        string? domain = null;
        if (root.TryGetProperty("domain", out var d))
            domain = d.ValueKind == JsonValueKind.String ? d.GetString() : d.ValueKind == JsonValueKind.Null ? null
                : throw new InvalidDataException($"{at}: \"domain\" must be a string, got {d.ValueKind.ToString().ToLowerInvariant()}");
        bool hasText = root.TryGetProperty("text", out var text), hasIds = root.TryGetProperty("input_ids", out var idsElement);
        if (hasText == hasIds)
            throw new InvalidDataException($"{at}: give exactly one of \"text\" or \"input_ids\"{(hasText ? " (both given)" : "")}");
        long[] ids;
        if (hasIds)
        {
            if (idsElement.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{at}: \"input_ids\" must be an array of integer token ids, got {idsElement.ValueKind.ToString().ToLowerInvariant()}");
            ids = idsElement.EnumerateArray().Select((v, j) => v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var id) ? id
                : throw new InvalidDataException($"{at}: input_ids[{j}] = {v.GetRawText()} is not an integer token id")).ToArray();
        }
        else
        {
            if (text.ValueKind != JsonValueKind.String) throw new InvalidDataException($"{at}: \"text\" must be a string, got {text.ValueKind.ToString().ToLowerInvariant()}");
            if (tokenizer is null)
                throw new UsageException($"{at} has \"text\" but the checkpoint has no tokenizer.json: put the model's tokenizer.json in the checkpoint directory, or give the lines as {{\"input_ids\": [ … ]}}");
            ids = tokenizer.Encode(text.GetString()!);
        }
        if (ids.Length == 0) throw new InvalidDataException($"{at} has no tokens; every line needs at least one");
        foreach (var id in ids)
            if (id < 0 || id >= vocabSize) throw new InvalidDataException($"{at}: token id {id} is outside the model's vocabulary [0, {vocabSize})");
        return (ids, domain);
    }

    /// <summary>SHA-256 of the checkpoint's configuration file (config.json, or the official layout's ModelArgs JSON).</summary>
    internal static string ConfigHash(Checkpoint ckpt)
    {
        var hf = Path.Combine(ckpt.Directory, "config.json");
        var file = File.Exists(hf) ? hf
            : Directory.GetFiles(ckpt.Directory, "*.json").Order(StringComparer.Ordinal)
                .FirstOrDefault(f => { try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(f)) is System.Text.Json.Nodes.JsonObject o && o.ContainsKey("dim") && o.ContainsKey("n_layers"); } catch (JsonException) { return false; } })
              ?? throw new CheckpointException($"{ckpt.Directory} has no config.json or ModelArgs JSON to identify the model by");
        return Sha256(file);
    }

    internal static string Sha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }
}
