using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
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
    /// <c>e_score_correction_bias</c> is float32 in every case.
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
/// Writes a random-weight checkpoint of a configuration's exact architecture in the Hugging Face layout: the real tensor
/// names and shapes (from the same table <see cref="ArchitectureCost"/> counts and <see cref="Checkpoint.Load"/> matches),
/// sharded <c>model-0000k-of-0000n.safetensors</c> files plus <c>model.safetensors.index.json</c>, and the
/// <c>config.json</c>. For trying a pipeline, a benchmark or a test at real widths without downloading a checkpoint.
/// </summary>
/// <remarks>
/// Values follow Hugging Face's <c>_init_weights</c>: normal(0, <c>initializer_range</c>, 0.02 when absent) for every
/// matrix, 1 for RMSNorm weights, 0 for the router's selection bias. Each tensor has its own generator seeded from the
/// seed and the tensor's name, and is generated and written in bands of rows, so memory stays a few megabytes whatever
/// the model's size. Everything is written into a temporary directory beside the target and moved into place at the end;
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
                foreach (var t in shards[s].SelectMany(u => u.Tensors).OrderByDescending(t => t.DType.ElementSize()))
                {
                    var tensor = t;
                    writer.Add(tensor.Name, tensor.DType, tensor.Shape, tensor.Bytes, stream =>
                    {
                        tensor.Write(stream);
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
        if (options.Layers is { } n)
        {
            if (n < 1 || n > layers)
                throw new ArgumentException($"--layers must be between 1 and the configuration's num_hidden_layers ({layers}), got {n}", nameof(options));
            o["num_hidden_layers"] = n;
        }
        float std = 0.02f;
        if (o["initializer_range"] is JsonValue r && r.TryGetValue<double>(out var range) && range > 0) std = (float)range;
        o["torch_dtype"] = options.DType == SafetensorsDType.F32 ? "float32" : "bfloat16";
        if (options.DType == SafetensorsDType.F8_E4M3)
            o["quantization_config"] = new JsonObject
            {
                ["activation_scheme"] = "dynamic", ["fmt"] = "e4m3", ["quant_method"] = "fp8",
                ["weight_block_size"] = new JsonArray(Block, Block),
            };
        else o.Remove("quantization_config");
        return (o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n", std);
    }

    /// <summary>One tensor to write: its file name, dtype, shape, byte length and a callback that streams its bytes.</summary>
    private sealed record PlannedTensor(string Name, SafetensorsDType DType, long[] Shape, long Bytes, Action<Stream> Write);

    /// <summary>Tensors that must share a shard (an FP8 weight and its scale).</summary>
    private sealed record Unit(IReadOnlyList<PlannedTensor> Tensors)
    {
        public long Bytes => Tensors.Sum(t => t.Bytes);
    }

    private static List<Unit> Plan(DeepSeekConfig config, SafetensorsDType dtype, float std, ulong seed)
    {
        if (config.CompressedAttention is not null || config.HyperConnections is not null)
            throw new ConfigException("model_type", "init writes DeepSeek-V2/V3/V3.2 checkpoints; a DeepSeek-V4 random checkpoint (hash tables, streams, packed FP4 experts) is not supported yet: use DeepSeekModel.Create and Checkpoint.Save");
        var units = new List<Unit>();
        foreach (var (name, shape, _) in ArchitectureCost.ParameterShapes(config))
        {
            var hf = WeightNames.ToHuggingFace(name);
            var fill = name.EndsWith("norm.weight", StringComparison.Ordinal) ? Fill.Ones
                : name.EndsWith(".gate.bias", StringComparison.Ordinal) ? Fill.Zeros : Fill.Normal;
            var gen = new Values(fill, std, TensorSeed(seed, hf), shape);
            long n = gen.Rows * gen.Columns;
            if (name.EndsWith(".gate.bias", StringComparison.Ordinal) || dtype == SafetensorsDType.F32)
                units.Add(new Unit([new PlannedTensor(hf, SafetensorsDType.F32, shape, 4 * n, s => WriteF32(gen, s))]));
            else if (dtype == SafetensorsDType.F8_E4M3 && ArchitectureCost.IsProjectionWeight(name) && shape.Length == 2)
            {
                long[] scaleShape = [CeilDiv(shape[0], Block), CeilDiv(shape[1], Block)];
                units.Add(new Unit([
                    new PlannedTensor(hf, SafetensorsDType.F8_E4M3, shape, n, s => WriteFp8(gen, s, weights: true)),
                    new PlannedTensor(hf + "_scale_inv", SafetensorsDType.F32, scaleShape, 4 * scaleShape[0] * scaleShape[1], s => WriteFp8(gen, s, weights: false)),
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
            long rowsPer = Math.Max(1, Math.Min(maxRows, (1L << 22) / Math.Max(1, Columns)));
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
                        default: for (int i = 0; i < count; i++) span[i] = std * rng.Next(); break;
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
            for (int i = 0; i < n; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), buf[i]);
            s.Write(bytes, 0, 4 * n);
        }
        finally { ArrayPool<byte>.Shared.Return(bytes); }
    });

    private static void WriteBf16(Values v, Stream s) => v.ForEachBand(long.MaxValue, (buf, n) =>
    {
        var bytes = ArrayPool<byte>.Shared.Rent(2 * n);
        try
        {
            for (int i = 0; i < n; i++) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), ToBFloat16(buf[i]));
            s.Write(bytes, 0, 2 * n);
        }
        finally { ArrayPool<byte>.Shared.Return(bytes); }
    });

    /// <summary>
    /// FP8 E4M3 with one scale per 128×128 block: scale_inv = amax / 448 and q = round(w / scale_inv), so that
    /// w ≈ q · scale_inv (DeepSeek's <c>weight_dequant</c>). Writes the FP8 weights or, with <paramref name="weights"/>
    /// false, the [ceil(rows/128), ceil(columns/128)] float32 scales; both come from the same bands of values.
    /// </summary>
    private static void WriteFp8(Values v, Stream s, bool weights)
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
            for (int b = 0; b < colBlocks; b++) scales[b] = scales[b] > 0 ? scales[b] / E4M3Max : 1f;
            if (!weights)
            {
                for (int b = 0; b < colBlocks; b++) BinaryPrimitives.WriteSingleLittleEndian(outBytes.AsSpan(4 * b), scales[b]);
                s.Write(outBytes, 0, 4 * colBlocks);
                return;
            }
            for (int i = 0; i < n; i++) outBytes[i] = ToE4M3(buf[i] / scales[(i % cols) / Block]);
            s.Write(outBytes, 0, n);
        });
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
    private sealed class Normal
    {
        private ulong _s0, _s1, _s2, _s3;
        private float _spare;
        private bool _hasSpare;

        public Normal(ulong seed)
        {
            _s0 = SplitMix(seed); _s1 = SplitMix(_s0); _s2 = SplitMix(_s1); _s3 = SplitMix(_s2);
        }

        private ulong NextBits()
        {
            ulong result = BitOperations.RotateLeft(_s1 * 5, 7) * 9, t = _s1 << 17;
            _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3; _s2 ^= t; _s3 = BitOperations.RotateLeft(_s3, 45);
            return result;
        }

        public float Next()
        {
            if (_hasSpare) { _hasSpare = false; return _spare; }
            double u, v, q;
            do
            {
                u = (NextBits() >> 11) * (2.0 / 9007199254740992.0) - 1.0; // [-1, 1)
                v = (NextBits() >> 11) * (2.0 / 9007199254740992.0) - 1.0;
                q = u * u + v * v;
            } while (q >= 1.0 || q == 0.0);
            double f = Math.Sqrt(-2.0 * Math.Log(q) / q);
            _spare = (float)(v * f);
            _hasSpare = true;
            return (float)(u * f);
        }
    }
}
