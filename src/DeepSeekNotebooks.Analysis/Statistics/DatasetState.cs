using System.Runtime.InteropServices;
using System.Text.Json;
using DeepSeekNotebooks.Analysis.Attention.Diagnostics;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// What a saved accumulator state was computed from: the model (SHA-256 of its configuration file and the checkpoint's
/// name), the dataset (SHA-256 of the whole dataset file, the same for every shard) and the shard split (N).
/// States merge only when all of these agree.
/// </summary>
/// <param name="ConfigHash">Lower-case hex SHA-256 of the checkpoint's configuration file.</param>
/// <param name="Checkpoint">The checkpoint's name (its directory name).</param>
/// <param name="DatasetHash">Lower-case hex SHA-256 of the dataset file.</param>
/// <param name="ShardCount">N of the split "line k goes to shard k mod N".</param>
public sealed record StateProvenance(string ConfigHash, string Checkpoint, string DatasetHash, int ShardCount);

/// <summary>
/// The saved state of one dataset pass (or of several merged shard passes): the routing statistics
/// (<see cref="ExpertRoutingAccumulator"/>) and/or the attention-head statistics (<see cref="AttentionHeadAccumulator"/>),
/// their <see cref="StateProvenance"/> and the shards folded in so far. <see cref="Save"/> writes a safetensors file
/// (counts I64, sums and moments F64, identity in <c>__metadata__</c>); <see cref="Merge"/> of shard states equals one pass
/// over all of them (counts exactly; moments by Chan et al.'s parallel update). Produced by <c>collect</c>, combined by
/// <c>merge</c>, read by <c>summarize</c>.
/// </summary>
public sealed class DatasetState : IMergeable<DatasetState>
{
    /// <summary>The <c>format</c> metadata value of every state file.</summary>
    public const string Format = "deepseek-notebooks.dataset-state/1";

    private readonly SortedSet<int> _shards;

    /// <summary>Wraps accumulators computed over the given shards.</summary>
    /// <exception cref="ArgumentException">No accumulator, or a shard index outside [0, N).</exception>
    public DatasetState(StateProvenance provenance, IEnumerable<int> shards, ExpertRoutingAccumulator? routing, AttentionHeadAccumulator? heads)
    {
        ArgumentNullException.ThrowIfNull(provenance);
        ArgumentNullException.ThrowIfNull(shards);
        if (routing is null && heads is null) throw new ArgumentException("a dataset state needs at least one accumulator (routing or heads)");
        if (provenance.ShardCount < 1) throw new ArgumentException($"ShardCount must be ≥ 1, got {provenance.ShardCount}", nameof(provenance));
        _shards = new SortedSet<int>(shards);
        if (_shards.Count == 0) throw new ArgumentException("a dataset state covers at least one shard", nameof(shards));
        foreach (var s in _shards)
            if (s < 0 || s >= provenance.ShardCount)
                throw new ArgumentException($"shard {s} is outside [0, {provenance.ShardCount}) (shard i of N needs 0 ≤ i < N)", nameof(shards));
        Provenance = provenance;
        Routing = routing;
        Heads = heads;
    }

    /// <summary>Model, dataset and split this state belongs to.</summary>
    public StateProvenance Provenance { get; }
    /// <summary>Shard indices folded in (ascending).</summary>
    public IReadOnlyCollection<int> Shards => _shards;
    /// <summary>Whether every shard 0 … N−1 has been merged in (the state then equals one pass over the whole dataset).</summary>
    public bool IsComplete => _shards.Count == Provenance.ShardCount;
    /// <summary>Routing statistics (null when the pass did not collect them, e.g. a dense-only model).</summary>
    public ExpertRoutingAccumulator? Routing { get; }
    /// <summary>Attention-head statistics (null when not collected).</summary>
    public AttentionHeadAccumulator? Heads { get; }

    /// <summary>The analyses held, as stored in the file's <c>analyses</c> metadata (e.g. "expert_routing,attention_heads").</summary>
    public string Analyses => string.Join(",", new[] { Routing is null ? null : "expert_routing", Heads is null ? null : "attention_heads" }.OfType<string>());

    /// <summary>
    /// Folds another shard state into this one. Refused (naming the mismatch) when the two come from different models
    /// (config hash or checkpoint name), datasets (file hash), splits (N), analyses or accumulator settings, or share a shard.
    /// </summary>
    /// <exception cref="ArgumentException">The states cannot be merged; the message names the field that differs.</exception>
    public void Merge(DatasetState other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var (a, b) = (Provenance, other.Provenance);
        if (a.ConfigHash != b.ConfigHash)
            throw new ArgumentException($"cannot merge states of different models: config hash {Short(a.ConfigHash)} ({a.Checkpoint}) vs {Short(b.ConfigHash)} ({b.Checkpoint})", nameof(other));
        if (a.Checkpoint != b.Checkpoint)
            throw new ArgumentException($"cannot merge states of different checkpoints: '{a.Checkpoint}' vs '{b.Checkpoint}'", nameof(other));
        if (a.DatasetHash != b.DatasetHash)
            throw new ArgumentException($"cannot merge states of different datasets: dataset hash {Short(a.DatasetHash)} vs {Short(b.DatasetHash)}", nameof(other));
        if (a.ShardCount != b.ShardCount)
            throw new ArgumentException($"cannot merge states of different splits: {a.ShardCount} shards vs {b.ShardCount} shards", nameof(other));
        if (Analyses != other.Analyses)
            throw new ArgumentException($"cannot merge states of different analyses: [{Analyses}] vs [{other.Analyses}]", nameof(other));
        var dup = _shards.Intersect(other._shards).ToArray();
        if (dup.Length > 0)
            throw new ArgumentException($"cannot merge: shard {string.Join(", ", dup.Select(s => $"{s}/{a.ShardCount}"))} is in both states (each shard may be merged once)", nameof(other));
        Routing?.EnsureMergeable(other.Routing!);
        Heads?.EnsureMergeable(other.Heads!);
        if (Routing is not null) Routing.Merge(other.Routing!);
        if (Heads is not null) Heads.Merge(other.Heads!);
        _shards.UnionWith(other._shards);
    }

    private static string Short(string hash) => hash.Length > 12 ? hash[..12] : hash;

    /// <summary>Writes the state to a safetensors file (atomically: a temporary file moved into place).</summary>
    public void Save(string path)
    {
        var w = new SafetensorsWriter();
        w.SetMetadata("format", Format)
         .SetMetadata("analyses", Analyses)
         .SetMetadata("config_hash", Provenance.ConfigHash)
         .SetMetadata("checkpoint", Provenance.Checkpoint)
         .SetMetadata("dataset_hash", Provenance.DatasetHash)
         .SetMetadata("shard_count", Provenance.ShardCount.ToString(System.Globalization.CultureInfo.InvariantCulture))
         .SetMetadata("shards", JsonSerializer.Serialize(_shards.ToArray()));
        Routing?.SaveState(w);
        Heads?.SaveState(w);
        w.WriteTo(path);
    }

    /// <summary>Reads a state written by <see cref="Save"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a dataset state (naming the file and what is missing).</exception>
    public static DatasetState Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"state file not found: {path} (give a file written by collect or merge)", path);
        using var f = SafetensorsFile.Open(path);
        var r = new StateReader(f);
        if (f.Metadata.GetValueOrDefault("format") != Format)
            throw new InvalidDataException($"{path} is not a dataset state: metadata 'format' is '{f.Metadata.GetValueOrDefault("format") ?? "(missing)"}', expected '{Format}' (write one with collect)");
        var analyses = r.Meta("analyses").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var provenance = new StateProvenance(r.Meta("config_hash"), r.Meta("checkpoint"), r.Meta("dataset_hash"), r.MetaInt("shard_count"));
        var shards = r.MetaJson<int[]>("shards");
        var routing = analyses.Contains("expert_routing") ? ExpertRoutingAccumulator.LoadState(r) : null;
        var heads = analyses.Contains("attention_heads") ? AttentionHeadAccumulator.LoadState(r) : null;
        try { return new DatasetState(provenance, shards, routing, heads); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
    }
}

/// <summary>Typed reads of a state file's tensors and metadata, naming the file and the missing/mistyped entry.</summary>
internal sealed class StateReader(SafetensorsFile file)
{
    public string Path => file.Path;

    public string Meta(string key) => file.Metadata.TryGetValue(key, out var v) ? v
        : throw new InvalidDataException($"{file.Path}: metadata '{key}' is missing (not a complete dataset state)");

    public int MetaInt(string key) => int.TryParse(Meta(key), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v
        : throw new InvalidDataException($"{file.Path}: metadata '{key}' = '{Meta(key)}' is not an integer");

    public double MetaDouble(string key) => double.TryParse(Meta(key), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v
        : throw new InvalidDataException($"{file.Path}: metadata '{key}' = '{Meta(key)}' is not a number");

    public T MetaJson<T>(string key)
    {
        try { return JsonSerializer.Deserialize<T>(Meta(key)) ?? throw new JsonException("null"); }
        catch (JsonException e) { throw new InvalidDataException($"{file.Path}: metadata '{key}' is not valid JSON of the expected shape: {e.Message}"); }
    }

    public bool Has(string name) => file.TryGetTensor(name, out _);

    /// <summary>Element count of a stored tensor (for variable-length entries such as the token-id list).</summary>
    public long Length(string name) => file.TryGetTensor(name, out var info) ? info.ElementCount
        : throw new InvalidDataException($"{file.Path}: tensor '{name}' is missing (not a complete dataset state)");

    public long[] I64(string name, long expectedLength) => Read<long>(name, SafetensorsDType.I64, expectedLength);
    public double[] F64(string name, long expectedLength) => Read<double>(name, SafetensorsDType.F64, expectedLength);

    private T[] Read<T>(string name, SafetensorsDType dtype, long expectedLength) where T : unmanaged
    {
        if (!file.TryGetTensor(name, out var info))
            throw new InvalidDataException($"{file.Path}: tensor '{name}' is missing (not a complete dataset state)");
        if (info.DType != dtype)
            throw new InvalidDataException($"{file.Path}: tensor '{name}' is {info.DType}, expected {dtype}");
        var data = new T[expectedLength];
        var bytes = MemoryMarshal.AsBytes(data.AsSpan());
        if (info.ByteLength != bytes.Length)
            throw new InvalidDataException($"{file.Path}: tensor '{name}' holds {info.ByteLength / Marshal.SizeOf<T>()} values, expected {expectedLength}");
        if (bytes.Length > 0) file.ReadBytes(name, bytes);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("state files are little-endian");
        return data;
    }
}

/// <summary>Writes typed arrays into a state file (I64 counts, F64 sums).</summary>
internal static class StateWriter
{
    public static void I64(this SafetensorsWriter w, string name, long[] data, params long[] shape) =>
        w.Add(name, SafetensorsDType.I64, shape, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());
    public static void F64(this SafetensorsWriter w, string name, double[] data, params long[] shape) =>
        w.Add(name, SafetensorsDType.F64, shape, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());
}
