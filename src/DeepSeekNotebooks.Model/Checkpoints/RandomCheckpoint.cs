using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>Options of <see cref="RandomCheckpoint.Write"/>.</summary>
public sealed record RandomCheckpointOptions
{
    /// <summary>
    /// Storage dtype: <see cref="SafetensorsDType.F32"/>, <see cref="SafetensorsDType.BF16"/> (the default, as DeepSeek
    /// releases), or <see cref="SafetensorsDType.F8_E4M3"/> (projection weights in FP8 with a float32
    /// <c>weight_scale_inv</c> per 128×128 block, everything else bf16, as DeepSeek-V3's release). The router's
    /// <c>e_score_correction_bias</c> is float32 in every case. For DeepSeek-V4, as its release: FP8 projections get a
    /// power-of-two ue8m0 (<c>F8_E8M0</c>) scale per 128×128 block and routed experts are packed FP4 (e2m1 pairs in int8,
    /// one ue8m0 scale per 32 inputs; <c>expert_dtype: fp4</c>); hyper-connection parameters, sinks and compressor position
    /// biases stay float32 and the hash tables <c>tid2eid</c> int32 in every dtype.
    /// </summary>
    public SafetensorsDType DType { get; init; } = SafetensorsDType.BF16;
    /// <summary>Keep only the first N blocks (the dense/MoE schedule of those blocks is unchanged); null keeps all.</summary>
    public int? Layers { get; init; }
    /// <summary>Seed of the weights: the same seed, configuration and dtype give byte-identical files.</summary>
    public ulong Seed { get; init; }
    /// <summary>Bytes of tensor data written so far and in total, reported after each tensor.</summary>
    public IProgress<(long Done, long Total)>? Progress { get; init; }
    /// <summary>Largest shard in bytes of tensor data (Hugging Face's default <c>max_shard_size</c>, "5GB"); a tensor larger than that gets a shard of its own.</summary>
    internal long MaxShardBytes { get; init; } = 5_000_000_000;
}

/// <summary>What <see cref="RandomCheckpoint.Write"/> wrote.</summary>
/// <param name="Directory">The checkpoint directory.</param>
/// <param name="Shards">Shard file names in order (<c>model-00001-of-0000n.safetensors</c>, …).</param>
/// <param name="Tensors">Number of tensors written (FP8 block scales included).</param>
/// <param name="TotalBytes">Bytes of tensor data (the index's <c>metadata.total_size</c>).</param>
public sealed record RandomCheckpointResult(string Directory, IReadOnlyList<string> Shards, int Tensors, long TotalBytes);

/// <summary>
/// Writes a random-weight checkpoint of a configuration's exact architecture (DeepSeek-V2/V3/V3.2/V4) in the Hugging Face layout: the real tensor
/// names and shapes (from the same table <see cref="ArchitectureCost"/> counts and <see cref="Checkpoint.Load"/> matches),
/// sharded <c>model-0000k-of-0000n.safetensors</c> files plus <c>model.safetensors.index.json</c>, and the
/// <c>config.json</c>. For trying a pipeline, a benchmark or a test at real widths without downloading a checkpoint.
/// </summary>
/// <remarks>
/// Values follow Hugging Face's <c>_init_weights</c>: normal(0, <c>initializer_range</c>, 0.02 when absent) for every
/// matrix, 1 for RMSNorm weights, 0 for the router's selection bias; for DeepSeek-V4 as <see cref="DeepSeekModel.Create"/>:
/// 1 for the hyper-connection scales (<c>hc_*_scale</c>), 0 for their bases, the sinks and the compressors' position
/// biases, and hash tables <c>tid2eid</c> [vocab, k] of k distinct expert ids per token drawn from the seed (the official
/// table is a fixed hash of the token id; any valid table routes the same way). Each tensor has its own generator seeded from the
/// seed and the tensor's name, so tensors are generated on several threads ahead of the writer (at most 256 MB of them)
/// and tensors larger than 64 MB in bands of rows, their samples' transforms in parallel: memory stays bounded (a few
/// hundred MB: peaks of 0.42 GB writing a 2-layer and 0.83 GB a full V2-Lite checkpoint) whatever the model's size, and the bytes do not depend on the
/// number of threads. Everything is written into a temporary directory beside the target and moved into place at the end;
/// on failure nothing is left behind.
/// </remarks>
public static class RandomCheckpoint
{
    private const int Block = 128;
    private const float E4M3Max = 448f;

    /// <summary>
    /// Writes a random checkpoint of <paramref name="configPath"/> (a Hugging Face <c>config.json</c> or an official
    /// <c>ModelArgs</c> JSON) into <paramref name="outDirectory"/>, which must not exist or be empty.
    /// </summary>
    /// <exception cref="ConfigException">The configuration is missing or invalid.</exception>
    /// <exception cref="ArgumentException">Bad options (layers out of range, unsupported dtype).</exception>
    /// <exception cref="IOException"><paramref name="outDirectory"/> exists and is not empty, or writing failed.</exception>
    public static RandomCheckpointResult Write(string configPath, string outDirectory, RandomCheckpointOptions? options = null)
    {
        options ??= new RandomCheckpointOptions();
        if (options.DType is not (SafetensorsDType.F32 or SafetensorsDType.BF16 or SafetensorsDType.F8_E4M3))
            throw new ArgumentException($"dtype must be F32, BF16 or F8_E4M3 (fp8 with 128x128 block scales), got {options.DType}", nameof(options));
        if (options.MaxShardBytes <= 0) throw new ArgumentException("the shard limit must be positive", nameof(options));
        var (configJson, initStd) = PrepareConfig(configPath, options);
        var config = DeepSeekConfig.FromJson(configJson);

        var target = Path.GetFullPath(outDirectory);
        if (File.Exists(target)) throw new IOException($"--out {target} is a file; give a new or empty directory");
        if (System.IO.Directory.Exists(target) && System.IO.Directory.EnumerateFileSystemEntries(target).Any())
            throw new IOException($"--out {target} exists and is not empty; give a new or empty directory (init never overwrites)");
        var parent = Path.GetDirectoryName(target) ?? throw new IOException($"--out {target} has no parent directory");
        System.IO.Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        System.IO.Directory.CreateDirectory(temp);
        try
        {
            var units = Plan(config, options.DType, initStd, options.Seed);
            var shards = Pack(units, options.MaxShardBytes);
            long total = units.Sum(u => u.Bytes), done = 0;
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            var names = new List<string>();
            for (int s = 0; s < shards.Count; s++)
            {
                var file = $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
                names.Add(file);
                var writer = new SafetensorsWriter().SetMetadata("format", "pt");
                // Widest dtype first (as the reference serializer orders them), so every tensor is aligned for mmap readers.
                var ordered = shards[s].SelectMany(u => u.Tensors).OrderByDescending(t => t.DType.ElementSize()).ToList();
                using var ahead = new AheadGenerator(ordered);
                for (int i = 0; i < ordered.Count; i++)
                {
                    var (tensor, position) = (ordered[i], i);
                    writer.Add(tensor.Name, tensor.DType, tensor.Shape, tensor.Bytes, stream =>
                    {
                        ahead.WriteTo(position, stream);
                        done += tensor.Bytes;
                        options.Progress?.Report((done, total));
                    });
                    weightMap.Add(tensor.Name, file);
                }
                writer.WriteTo(Path.Combine(temp, file));
            }
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = total },
                ["weight_map"] = new JsonObject(weightMap.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            };
            var indent = new JsonSerializerOptions { WriteIndented = true };
            IO.AtomicFile.WriteAllText(Path.Combine(temp, "model.safetensors.index.json"), index.ToJsonString(indent) + "\n");
            IO.AtomicFile.WriteAllText(Path.Combine(temp, "config.json"), configJson);
            if (System.IO.Directory.Exists(target)) System.IO.Directory.Delete(target); // empty (checked above)
            System.IO.Directory.Move(temp, target);
            return new RandomCheckpointResult(target, names, weightMap.Count, total);
        }
        catch
        {
            try { System.IO.Directory.Delete(temp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>
    /// What <see cref="Write"/> would write for these options, without writing: the output config.json and every tensor's
    /// name, dtype, shape and byte length (FP8/FP4 scales included). For checking a checkpoint too large to write.
    /// </summary>
    internal static (string ConfigJson, IReadOnlyList<(string Name, SafetensorsDType DType, long[] Shape, long Bytes)> Tensors) PlanOnly(
        string configPath, RandomCheckpointOptions? options = null)
    {
        options ??= new RandomCheckpointOptions();
        var (configJson, initStd) = PrepareConfig(configPath, options);
        var units = Plan(DeepSeekConfig.FromJson(configJson), options.DType, initStd, options.Seed);
        return (configJson, units.SelectMany(u => u.Tensors).Select(t => (t.Name, t.DType, t.Shape, t.Bytes)).ToList());
    }

    /// <summary>The output config.json text (source fields kept; num_hidden_layers, torch_dtype and quantization_config set) and the init std.</summary>
    private static (string Json, float Std) PrepareConfig(string configPath, RandomCheckpointOptions options)
    {
        if (!File.Exists(configPath))
            throw new ConfigException("(file)", $"config file not found: {configPath} (give a Hugging Face config.json or an official ModelArgs JSON)");
        var text = File.ReadAllText(configPath);
        JsonObject o;
        try { o = JsonNode.Parse(text) as JsonObject ?? throw new ConfigException("(root)", "must be a JSON object", configPath); }
        catch (JsonException e) { throw new ConfigException("(root)", $"is not valid JSON: {e.Message}", configPath); }
        if (o.ContainsKey("dim") && o.ContainsKey("n_layers"))
        {
            try { o = (JsonObject)JsonNode.Parse(DeepSeekConfig.FromModelArgsJson(text).ToJson())!; }
            catch (ConfigException e) { throw new ConfigException(e.Field, e.Problem, configPath); }
        }
        else
        {
            try { DeepSeekConfig.FromJson(text); }
            catch (ConfigException e) { throw new ConfigException(e.Field, e.Problem, configPath); }
        }
        int layers = o["num_hidden_layers"]!.GetValue<int>();
        bool v4 = DeepSeekConfig.FromJson(o.ToJsonString()) is { CompressedAttention: not null } or { HyperConnections: not null };
        if (options.Layers is { } n)
        {
            if (n < 1 || n > layers)
                throw new ArgumentException($"--layers must be between 1 and the configuration's num_hidden_layers ({layers}), got {n}", nameof(options));
            o["num_hidden_layers"] = n;
            if (v4) TruncateV4Layers(o, layers, n);
        }
        float std = 0.02f;
        if (o["initializer_range"] is JsonValue r && r.TryGetValue<double>(out var range) && range > 0) std = (float)range;
        o["torch_dtype"] = options.DType == SafetensorsDType.F32 ? "float32" : "bfloat16";
        if (options.DType == SafetensorsDType.F8_E4M3)
        {
            o["quantization_config"] = new JsonObject
            {
                ["activation_scheme"] = "dynamic", ["fmt"] = "e4m3", ["quant_method"] = "fp8",
                ["weight_block_size"] = new JsonArray(Block, Block),
            };
            if (v4)
            {
                ((JsonObject)o["quantization_config"]!)["scale_fmt"] = "ue8m0";   // V4 ships float8_e8m0fnu scales
                o["expert_dtype"] = "fp4";
            }
        }
        else
        {
            o.Remove("quantization_config");
            o.Remove("expert_dtype");
        }
        return (o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n", std);
    }

    /// <summary>
    /// The per-layer lists of a DeepSeek-V4 config.json cut to the first <paramref name="n"/> layers: <c>compress_ratios</c>
    /// keeps its MTP entries at the end, <c>layer_types</c>/<c>mlp_layer_types</c> their first n, <c>num_hash_layers</c> at most n.
    /// </summary>
    private static void TruncateV4Layers(JsonObject o, int layers, int n)
    {
        if (o["compress_ratios"] is JsonArray cr)
        {
            var items = cr.Select(x => x?.DeepClone()).ToList();
            o["compress_ratios"] = new JsonArray(items.Take(n).Concat(items.Skip(layers)).ToArray());
        }
        foreach (var key in new[] { "layer_types", "mlp_layer_types" })
            if (o[key] is JsonArray arr) o[key] = new JsonArray(arr.Take(n).Select(x => x?.DeepClone()).ToArray());
        if (o["num_hash_layers"] is JsonValue h && h.TryGetValue<int>(out var hashes) && hashes > n) o["num_hash_layers"] = n;
    }

    /// <summary>One tensor to write: its file name, dtype, shape, byte length and a callback that streams its bytes.</summary>
    private sealed record PlannedTensor(string Name, SafetensorsDType DType, long[] Shape, long Bytes, Action<Stream> Write);

    /// <summary>
    /// Generates the tensors of one shard ahead of the (sequential) file writer on the thread pool, each tensor from its own
    /// generator, so the bytes are those of generating them one after another: up to twice the processor count of tensors
    /// of at most <see cref="MaxAheadTensorBytes"/> each are in flight (≤ <see cref="MaxAheadBytes"/> in all). Larger
    /// tensors (the embedding and the head) are generated on the writer's thread, band by band, while the pool works ahead.
    /// </summary>
    private sealed class AheadGenerator(IReadOnlyList<PlannedTensor> tensors) : IDisposable
    {
        private const long MaxAheadTensorBytes = 64L << 20;
        private const long MaxAheadBytes = 256L << 20;
        private readonly Task<byte[]>?[] _tasks = new Task<byte[]>?[tensors.Count];
        private readonly int _maxInFlight = Math.Max(2, 2 * Environment.ProcessorCount);
        private readonly CancellationTokenSource _cancel = new();
        private int _next;          // first tensor not yet considered for generating ahead
        private int _inFlight;      // tasks started and not yet consumed
        private long _inFlightBytes;

        private static bool Ahead(PlannedTensor t) => t.Bytes <= MaxAheadTensorBytes;

        /// <summary>Writes tensor <paramref name="index"/>'s bytes (tensors are asked for in order).</summary>
        public void WriteTo(int index, Stream stream)
        {
            Schedule();
            var task = _tasks[index];
            if (task is null) { tensors[index].Write(stream); return; }   // large: generated here, band by band
            byte[] bytes = task.GetAwaiter().GetResult();
            _tasks[index] = null;
            _inFlight--;
            _inFlightBytes -= tensors[index].Bytes;
            try { stream.Write(bytes, 0, (int)tensors[index].Bytes); }
            finally { ArrayPool<byte>.Shared.Return(bytes); }
            Schedule();
        }

        private void Schedule()
        {
            while (_next < tensors.Count && _inFlight < _maxInFlight)
            {
                var t = tensors[_next];
                if (!Ahead(t)) { _next++; continue; }
                if (_inFlight > 0 && _inFlightBytes + t.Bytes > MaxAheadBytes) break;
                var token = _cancel.Token;
                _tasks[_next] = Task.Run(() => Generate(t, token), token);
                _inFlight++;
                _inFlightBytes += t.Bytes;
                _next++;
            }
        }

        private static byte[] Generate(PlannedTensor t, CancellationToken token)
        {
            token.ThrowIfCancellationRequested();
            var bytes = ArrayPool<byte>.Shared.Rent((int)t.Bytes);
            try
            {
                using var ms = new MemoryStream(bytes, 0, (int)t.Bytes, writable: true);
                t.Write(ms);
                if (ms.Position != t.Bytes)
                    throw new InvalidOperationException($"tensor {t.Name}: generated {ms.Position} bytes, {t.Bytes} declared");
                return bytes;
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(bytes);
                throw;
            }
        }

        /// <summary>Stops generating ahead and waits for what is running (on failure of the writer, nothing keeps computing).</summary>
        public void Dispose()
        {
            _cancel.Cancel();
            foreach (var task in _tasks)
            {
                if (task is null) continue;
                try { ArrayPool<byte>.Shared.Return(task.GetAwaiter().GetResult()); }
                catch (OperationCanceledException) { }
                catch (Exception) { } // the writer has already failed (or finished); its exception is the one reported
            }
            _cancel.Dispose();
        }
    }

    /// <summary>Tensors that must share a shard (an FP8 weight and its scale).</summary>
    private sealed record Unit(IReadOnlyList<PlannedTensor> Tensors)
    {
        public long Bytes => Tensors.Sum(t => t.Bytes);
    }

    private static readonly System.Text.RegularExpressions.Regex RoutedExpertWeight =
        new(@"\.ffn\.experts\.\d+\.(w1|w2|w3)\.weight$", System.Text.RegularExpressions.RegexOptions.Compiled);

    private static List<Unit> Plan(DeepSeekConfig config, SafetensorsDType dtype, float std, ulong seed)
    {
        bool v4 = config.CompressedAttention is not null || config.HyperConnections is not null;
        var units = new List<Unit>();
        foreach (var (name, shape, _) in ArchitectureCost.ParameterShapes(config))
        {
            var hf = WeightNames.ToHuggingFace(name, v4);
            if (name.EndsWith(".gate.tid2eid", StringComparison.Ordinal))
            {
                long[] tableShape = shape;
                units.Add(new Unit([new PlannedTensor(hf, SafetensorsDType.I32, tableShape, 4 * shape[0] * shape[1],
                    s => WriteHashTable(TensorSeed(seed, hf), shape[0], (int)shape[1], config.NRoutedExperts, s))]));
                continue;
            }
            bool v4Float32 = v4 && (name.Contains("hc_", StringComparison.Ordinal) || name.EndsWith("attn_sink", StringComparison.Ordinal)
                                    || name.EndsWith(".ape", StringComparison.Ordinal));
            var fill = name.EndsWith("norm.weight", StringComparison.Ordinal) || (v4 && name.EndsWith("_scale", StringComparison.Ordinal)) ? Fill.Ones
                : name.EndsWith(".gate.bias", StringComparison.Ordinal) ? Fill.Zeros
                : v4 && (name.EndsWith("_base", StringComparison.Ordinal) || name.EndsWith("attn_sink", StringComparison.Ordinal) || name.EndsWith(".ape", StringComparison.Ordinal)) ? Fill.Zeros
                : Fill.Normal;
            var gen = new Values(fill, std, TensorSeed(seed, hf), shape);
            long n = gen.Rows * gen.Columns;
            if (name.EndsWith(".gate.bias", StringComparison.Ordinal) || v4Float32 || dtype == SafetensorsDType.F32)
                units.Add(new Unit([new PlannedTensor(hf, SafetensorsDType.F32, shape, 4 * n, s => WriteF32(gen, s))]));
            else if (dtype == SafetensorsDType.F8_E4M3 && v4 && RoutedExpertWeight.IsMatch(name))
            {
                if (shape[1] % Fp4Block != 0)
                    throw new ArgumentException(
                        $"--dtype fp8 packs DeepSeek-V4's routed experts in FP4 with one scale per {Fp4Block} inputs, but {hf} has {shape[1]} inputs " +
                        $"(hidden_size {config.HiddenSize}, moe_intermediate_size {config.MoeIntermediateSize} must be multiples of {Fp4Block}); use --dtype bf16 or f32", nameof(dtype));
                long[] packedShape = [shape[0], shape[1] / 2], scaleShape = [shape[0], shape[1] / Fp4Block];
                units.Add(new Unit([
                    new PlannedTensor(hf, SafetensorsDType.I8, packedShape, n / 2, s => WriteFp4(gen, s, weights: true)),
                    new PlannedTensor(hf + "_scale_inv", SafetensorsDType.F8_E8M0, scaleShape, n / Fp4Block, s => WriteFp4(gen, s, weights: false)),
                ]));
            }
            else if (dtype == SafetensorsDType.F8_E4M3 && ArchitectureCost.IsProjectionWeight(name) && shape.Length == 2)
            {
                long[] scaleShape = [CeilDiv(shape[0], Block), CeilDiv(shape[1], Block)];
                long blocks = scaleShape[0] * scaleShape[1];
                units.Add(new Unit([
                    new PlannedTensor(hf, SafetensorsDType.F8_E4M3, shape, n, s => WriteFp8(gen, s, weights: true, ue8m0: v4)),
                    v4
                        ? new PlannedTensor(hf + "_scale_inv", SafetensorsDType.F8_E8M0, scaleShape, blocks, s => WriteFp8(gen, s, weights: false, ue8m0: true))
                        : new PlannedTensor(hf + "_scale_inv", SafetensorsDType.F32, scaleShape, 4 * blocks, s => WriteFp8(gen, s, weights: false, ue8m0: false)),
                ]));
            }
            else units.Add(new Unit([new PlannedTensor(hf, SafetensorsDType.BF16, shape, 2 * n, s => WriteBf16(gen, s))]));
        }
        return units;
    }

    private static List<List<Unit>> Pack(List<Unit> units, long limit)
    {
        var shards = new List<List<Unit>> { new() };
        long size = 0;
        foreach (var u in units)
        {
            if (shards[^1].Count > 0 && size + u.Bytes > limit) { shards.Add(new()); size = 0; }
            shards[^1].Add(u);
            size += u.Bytes;
        }
        return shards;
    }

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;

    private enum Fill { Normal, Ones, Zeros }

    /// <summary>A tensor's values as a [rows, columns] matrix (1-D tensors: one row), produced band by band from its own seed.</summary>
    private sealed class Values(Fill fill, float std, ulong seed, long[] shape)
    {
        public long Rows { get; } = shape.Length == 1 ? 1 : shape[0];
        public long Columns { get; } = shape.Length == 1 ? shape[0] : shape.Skip(1).Aggregate(1L, (a, b) => a * b);

        /// <summary>Calls <paramref name="band"/> with consecutive bands of whole rows (row-major, at most <paramref name="maxRows"/> rows each).</summary>
        public void ForEachBand(long maxRows, Action<float[], int> band)
        {
            var rng = new Normal(seed);
            long rowsPer = Math.Max(1, Math.Min(maxRows, (1L << 20) / Math.Max(1, Columns)));   // 1 M values: the band size does not change the values
            if (maxRows == Block) rowsPer = Block; // FP8 bands are exactly one scale block tall
            var buffer = ArrayPool<float>.Shared.Rent((int)(rowsPer * Columns));
            try
            {
                for (long r = 0; r < Rows; r += rowsPer)
                {
                    int count = (int)(Math.Min(rowsPer, Rows - r) * Columns);
                    var span = buffer.AsSpan(0, count);
                    switch (fill)
                    {
                        case Fill.Ones: span.Fill(1f); break;
                        case Fill.Zeros: span.Clear(); break;
                        default: rng.Fill(buffer, count, std); break;
                    }
                    band(buffer, count);
                }
            }
            finally { ArrayPool<float>.Shared.Return(buffer); }
        }
    }

    private static void WriteF32(Values v, Stream s) => v.ForEachBand(long.MaxValue, (buf, n) =>
    {
        var bytes = ArrayPool<byte>.Shared.Rent(4 * n);
        try
        {
            if (BitConverter.IsLittleEndian) buf.AsSpan(0, n).CopyTo(MemoryMarshal.Cast<byte, float>(bytes.AsSpan(0, 4 * n)));
            else for (int i = 0; i < n; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), buf[i]);
            s.Write(bytes, 0, 4 * n);
        }
        finally { ArrayPool<byte>.Shared.Return(bytes); }
    });

    private static void WriteBf16(Values v, Stream s) => v.ForEachBand(long.MaxValue, (buf, n) =>
    {
        var bytes = ArrayPool<byte>.Shared.Rent(2 * n);
        try
        {
            if (BitConverter.IsLittleEndian)
            {
                var bits = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan(0, 2 * n));
                for (int i = 0; i < n; i++) bits[i] = ToBFloat16(buf[i]);
            }
            else for (int i = 0; i < n; i++) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), ToBFloat16(buf[i]));
            s.Write(bytes, 0, 2 * n);
        }
        finally { ArrayPool<byte>.Shared.Return(bytes); }
    });

    /// <summary>
    /// FP8 E4M3 with one scale per 128×128 block: scale_inv = amax / 448 and q = round(w / scale_inv), so that
    /// w ≈ q · scale_inv (DeepSeek's <c>weight_dequant</c>). Writes the FP8 weights or, with <paramref name="weights"/>
    /// false, the [ceil(rows/128), ceil(columns/128)] float32 scales; both come from the same bands of values.
    /// </summary>
    private static void WriteFp8(Values v, Stream s, bool weights, bool ue8m0)
    {
        long cols = v.Columns;
        int colBlocks = (int)CeilDiv(cols, Block);
        var scales = new float[colBlocks];
        var outBytes = new byte[weights ? Block * cols : 4 * colBlocks];
        v.ForEachBand(Block, (buf, n) =>
        {
            int rows = (int)(n / cols);
            Array.Clear(scales);
            for (int r = 0; r < rows; r++)
                for (long c = 0; c < cols; c++)
                {
                    float a = Math.Abs(buf[r * cols + c]);
                    if (a > scales[c / Block]) scales[c / Block] = a;
                }
            for (int b = 0; b < colBlocks; b++)
                scales[b] = ue8m0 ? PowerOfTwoAtLeast(Math.Max(scales[b], 1e-4f) / E4M3Max) : scales[b] > 0 ? scales[b] / E4M3Max : 1f;
            if (!weights)
            {
                if (ue8m0)
                {
                    for (int b = 0; b < colBlocks; b++) outBytes[b] = E8M0Of(scales[b]);
                    s.Write(outBytes, 0, colBlocks);
                    return;
                }
                for (int b = 0; b < colBlocks; b++) BinaryPrimitives.WriteSingleLittleEndian(outBytes.AsSpan(4 * b), scales[b]);
                s.Write(outBytes, 0, 4 * colBlocks);
                return;
            }
            for (int i = 0; i < n; i++) outBytes[i] = ToE4M3(buf[i] / scales[(i % cols) / Block]);
            s.Write(outBytes, 0, n);
        });
    }

    private const int Fp4Block = 32;
    private const float E2M1Max = 6f;

    /// <summary>The smallest power of two ≥ <paramref name="x"/> (x a positive normal float): 2^ceil(log2 x), the ue8m0 scale rule.</summary>
    private static float PowerOfTwoAtLeast(float x)
    {
        int e = Math.ILogB(x);
        float p = MathF.ScaleB(1f, e);
        return p >= x ? p : MathF.ScaleB(1f, e + 1);
    }

    /// <summary>E8M0 bits of a power of two: its exponent + 127.</summary>
    private static byte E8M0Of(float powerOfTwo) => (byte)(Math.ILogB(powerOfTwo) + 127);

    /// <summary>
    /// DeepSeek-V4's FP4 experts: per row and block of 32 inputs s = 2^ceil(log2(amax / 6)) (ue8m0), code = e2m1 nearest to
    /// w / s (ties to even), two codes per byte, the even input in the low nibble (the layout <c>inference/convert.py</c> reads).
    /// Writes the packed int8 [rows, cols/2] or, with <paramref name="weights"/> false, the ue8m0 scales [rows, cols/32].
    /// </summary>
    private static void WriteFp4(Values v, Stream s, bool weights)
    {
        long cols = v.Columns;
        int blocksPerRow = (int)(cols / Fp4Block);
        v.ForEachBand(long.MaxValue, (buf, n) =>
        {
            int rows = (int)(n / cols);
            var outBytes = ArrayPool<byte>.Shared.Rent(weights ? n / 2 : rows * blocksPerRow);
            try
            {
                if (weights) Array.Clear(outBytes, 0, n / 2);
                for (int r = 0; r < rows; r++)
                    for (int b = 0; b < blocksPerRow; b++)
                    {
                        long start = r * cols + (long)b * Fp4Block;
                        float amax = 0;
                        for (int i = 0; i < Fp4Block; i++) amax = Math.Max(amax, Math.Abs(buf[start + i]));
                        float scale = PowerOfTwoAtLeast(Math.Max(amax, E2M1Max * MathF.ScaleB(1f, -126)) / E2M1Max);
                        if (!weights) { outBytes[r * blocksPerRow + b] = E8M0Of(scale); continue; }
                        for (int i = 0; i < Fp4Block; i++)
                        {
                            long k = start + i;
                            byte code = ToE2M1(buf[k] / scale);
                            outBytes[k / 2] |= (byte)(k % 2 == 0 ? code : code << 4);
                        }
                    }
                s.Write(outBytes, 0, weights ? n / 2 : rows * blocksPerRow);
            }
            finally { ArrayPool<byte>.Shared.Return(outBytes); }
        });
    }

    /// <summary>Non-negative e2m1 values by code 0 … 7 (bit 3 is the sign).</summary>
    private static readonly float[] E2M1Positive = { 0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f };

    /// <summary>float32 → FP4 e2m1 code (nibble), round to nearest (ties to the even code), saturating at ±6.</summary>
    internal static byte ToE2M1(float value)
    {
        byte sign = value < 0 ? (byte)0x8 : (byte)0;
        float a = Math.Min(Math.Abs(value), E2M1Max);
        int i = Array.BinarySearch(E2M1Positive, a);
        if (i < 0)
        {
            int hi = ~i, lo = hi - 1;
            float dLo = a - E2M1Positive[lo], dHi = E2M1Positive[hi] - a;
            i = dLo < dHi ? lo : dHi < dLo ? hi : (lo % 2 == 0 ? lo : hi);
        }
        return (byte)(sign | i);
    }

    /// <summary>A hash table [vocab, k] as int32: per token, k distinct expert ids (a seeded partial Fisher–Yates shuffle of 0 … E−1).</summary>
    private static void WriteHashTable(ulong seed, long vocab, int k, int experts, Stream s)
    {
        if (k > experts) throw new ArgumentException($"num_experts_per_tok ({k}) exceeds n_routed_experts ({experts}): a hash table cannot pick that many distinct experts");
        var rng = new Normal(seed);
        var perm = new int[experts];
        var row = new byte[4 * k];
        for (long t = 0; t < vocab; t++)
        {
            for (int e = 0; e < experts; e++) perm[e] = e;
            for (int j = 0; j < k; j++)
            {
                int pick = j + (int)(rng.NextBits() % (ulong)(experts - j));
                (perm[j], perm[pick]) = (perm[pick], perm[j]);
                BinaryPrimitives.WriteInt32LittleEndian(row.AsSpan(4 * j), perm[j]);
            }
            s.Write(row, 0, row.Length);
        }
    }

    /// <summary>float32 → bfloat16 bits, round to nearest even (as <c>torch.Tensor.to(torch.bfloat16)</c>).</summary>
    internal static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>Non-negative finite E4M3FN values in increasing order; index = bit pattern (0x00 … 0x7E).</summary>
    private static readonly float[] E4M3Positive = Enumerable.Range(0, 0x7F).Select(b => Fp8.E4M3ToSingle((byte)b)).ToArray();

    /// <summary>float32 → FP8 E4M3FN bits, round to nearest (ties to even), saturating at ±448.</summary>
    internal static byte ToE4M3(float value)
    {
        byte sign = value < 0 || (value == 0 && float.IsNegative(value)) ? (byte)0x80 : (byte)0;
        float a = Math.Min(Math.Abs(value), E4M3Max);
        int i = Array.BinarySearch(E4M3Positive, a);
        if (i < 0)
        {
            int hi = ~i, lo = hi - 1;
            float dLo = a - E4M3Positive[lo], dHi = E4M3Positive[hi] - a;
            i = dLo < dHi ? lo : dHi < dLo ? hi : (lo % 2 == 0 ? lo : hi);
        }
        return (byte)(sign | i);
    }

    /// <summary>Per-tensor seed: SplitMix64 of the seed mixed with the FNV-1a hash of the tensor's name.</summary>
    private static ulong TensorSeed(ulong seed, string name)
    {
        ulong h = 14695981039346656037UL;
        foreach (char ch in name) { h ^= ch; h *= 1099511628211UL; }
        return SplitMix(seed ^ SplitMix(h));
    }

    private static ulong SplitMix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    /// <summary>Standard normal samples: xoshiro256** uniforms through Marsaglia's polar method (deterministic on every platform).</summary>
    internal sealed class Normal
    {
        private ulong _s0, _s1, _s2, _s3;
        private float _spare;
        private bool _hasSpare;

        public Normal(ulong seed)
        {
            _s0 = SplitMix(seed); _s1 = SplitMix(_s0); _s2 = SplitMix(_s1); _s3 = SplitMix(_s2);
        }

        public ulong NextBits()
        {
            ulong result = BitOperations.RotateLeft(_s1 * 5, 7) * 9, t = _s1 << 17;
            _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3; _s2 ^= t; _s3 = BitOperations.RotateLeft(_s3, 45);
            return result;
        }

        /// <summary>Bands of at least this many pairs transform their samples on several threads.</summary>
        internal const int ParallelPairs = 1 << 18;

        /// <summary>
        /// <paramref name="buffer"/>[i] = <paramref name="std"/> · Next() for i &lt; <paramref name="count"/>, in order: the
        /// same values as calling <see cref="Next"/> element by element (a pair's second sample carries over to the next
        /// call). Large bands draw the accepted (u, v) pairs first, on this thread (the uniforms are one sequence), and
        /// then compute the samples, the costly <c>log</c>/<c>sqrt</c>/division, in parallel: the same arithmetic on the
        /// same pairs, so the same values.
        /// </summary>
        public void Fill(float[] buffer, int count, float std)
        {
            int i = 0;
            if (count == 0) return;
            if (_hasSpare) { _hasSpare = false; buffer[i++] = std * _spare; }
            int pairs = (count - i) / 2;   // whole pairs; an odd last element is done below
            if (pairs >= ParallelPairs && Environment.ProcessorCount > 1)
            {
                var uvq = ArrayPool<double>.Shared.Rent(3 * pairs);
                try
                {
                    for (int p = 0; p < pairs; p++)
                    {
                        double u, v, q;
                        do
                        {
                            u = (NextBits() >> 11) * (2.0 / 9007199254740992.0) - 1.0; // [-1, 1)
                            v = (NextBits() >> 11) * (2.0 / 9007199254740992.0) - 1.0;
                            q = u * u + v * v;
                        } while (q >= 1.0 || q == 0.0);
                        uvq[3 * p] = u; uvq[3 * p + 1] = v; uvq[3 * p + 2] = q;
                    }
                    int start = i, chunk = 1 << 14, chunks = (pairs + chunk - 1) / chunk;
                    Parallel.For(0, chunks, c =>
                    {
                        int end = Math.Min(pairs, (c + 1) * chunk);
                        for (int p = c * chunk; p < end; p++)
                        {
                            double u = uvq[3 * p], v = uvq[3 * p + 1], q = uvq[3 * p + 2];
                            double f = Math.Sqrt(-2.0 * Math.Log(q) / q);
                            buffer[start + 2 * p] = std * (float)(u * f);
                            buffer[start + 2 * p + 1] = std * (float)(v * f);
                        }
                    });
                    i += 2 * pairs;
                }
                finally { ArrayPool<double>.Shared.Return(uvq); }
            }
            for (; i + 1 < count; i += 2)
            {
                var (a, b) = Pair();
                buffer[i] = std * a;
                buffer[i + 1] = std * b;
            }
            if (i < count)
            {
                var (a, b) = Pair();
                buffer[i] = std * a;
                _spare = b;
                _hasSpare = true;
            }
        }

        /// <summary>Two independent standard normal samples (Marsaglia's polar method): the first, then the spare.</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        private (float First, float Second) Pair()
        {
            double u, v, q;
            do
            {
                u = (NextBits() >> 11) * (2.0 / 9007199254740992.0) - 1.0; // [-1, 1)
                v = (NextBits() >> 11) * (2.0 / 9007199254740992.0) - 1.0;
                q = u * u + v * v;
            } while (q >= 1.0 || q == 0.0);
            double f = Math.Sqrt(-2.0 * Math.Log(q) / q);
            return ((float)(u * f), (float)(v * f));
        }

        public float Next()
        {
            if (_hasSpare) { _hasSpare = false; return _spare; }
            (float first, _spare) = Pair();
            _hasSpare = true;
            return first;
        }
    }
}
