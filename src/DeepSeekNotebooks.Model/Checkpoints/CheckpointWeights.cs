using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>
/// Where each model parameter of a checkpoint is stored, and how to read it: the one name mapping (Hugging Face or
/// official layout, transformers' packed experts, FP8 / FP4 scales) and the one conversion both residencies use.
/// Memory residency reads every parameter once at load time; <see cref="BlockStreamer"/> reads a block's parameters
/// each time the forward reaches the block. Mapping and <see cref="Validate"/> read headers only, never tensor data.
/// </summary>
internal sealed class CheckpointWeights
{
    private const int FpBlock = 128;      // DeepSeek-V3 FP8 weights: one weight_scale_inv per 128×128 block
    private const int Fp4Block = 32;      // DeepSeek-V4 FP4 experts: one ue8m0 scale per 32 inputs
    private const long StagingBytes = 1L << 26; // ≤ 64 MiB of stored bytes per conversion chunk

    private readonly Dictionary<string, Source> _sources;
    private readonly CheckpointLayout _layout;
    private readonly DeepSeekConfig _config;

    /// <summary>A stored tensor (or, for packed experts, a contiguous slice of one) behind a parameter or scale name.</summary>
    private sealed record Source(SafetensorsFile File, SafetensorsTensorInfo Info, long ElementOffset, long[]? SliceShape);

    private CheckpointWeights(Dictionary<string, Source> sources, CheckpointLayout layout, DeepSeekConfig config)
    {
        _sources = sources;
        _layout = layout;
        _config = config;
    }

    /// <summary>
    /// Maps every stored tensor to a model parameter name (or an FP8/FP4 scale); multi-token-prediction layers are skipped.
    /// Throws <see cref="CheckpointException"/> for tensors stored twice, malformed packed experts and tensors this
    /// configuration does not use.
    /// </summary>
    internal static CheckpointWeights Map(DeepSeekConfig config, IReadOnlyList<SafetensorsFile> files, CheckpointLayout layout, out List<string> unexpected)
    {
        int mtpLayers = config.NumNextnPredictLayers;
        var sources = new Dictionary<string, Source>();
        unexpected = new List<string>();
        foreach (var file in files)
        foreach (var info in file.Tensors)
        {
            string? name;
            int layer = -1;
            if (layout == CheckpointLayout.HuggingFace && WeightNames.PackedExperts.Match(info.Name) is { Success: true } packed)
            {
                layer = int.Parse(packed.Groups[1].Value);
                if (layer >= config.NumHiddenLayers && layer < config.NumHiddenLayers + mtpLayers) continue;
                if (info.Rank != 3 || (packed.Groups[2].Value == "gate_up_proj" && info.Shape[1] % 2 != 0))
                    throw new CheckpointException($"packed expert tensor {info.Name} has shape [{string.Join(", ", info.Shape)}]; expected [experts, 2·moe_intermediate_size, hidden_size] (gate_up_proj) or [experts, hidden_size, moe_intermediate_size] (down_proj)");
                long experts = info.Shape[0], rows = info.Shape[1], cols = info.Shape[2];
                for (long e = 0; e < experts; e++)
                {
                    var parts = packed.Groups[2].Value == "gate_up_proj"
                        ? new[] { ("w1", e * rows * cols, new[] { rows / 2, cols }), ("w3", e * rows * cols + rows / 2 * cols, new[] { rows / 2, cols }) }
                        : new[] { ("w2", e * rows * cols, new[] { rows, cols }) };
                    foreach (var (w, offset, shape) in parts)
                    {
                        var pname = $"layers.{layer}.ffn.experts.{e}.{w}.weight";
                        if (!sources.TryAdd(pname, new Source(file, info, offset, shape)))
                            throw new CheckpointException($"expert weight {pname} is stored twice ({info.Name} and {sources[pname].Info.Name})");
                    }
                }
                continue;
            }
            if (layout == CheckpointLayout.HuggingFace) name = WeightNames.FromHuggingFace(info.Name, out layer);
            else
            {
                name = info.Name;
                var m = Regex.Match(name, @"^layers\.(\d+)\.");
                if (m.Success) layer = int.Parse(m.Groups[1].Value);
                // DeepSeek-V4's official names keep the MTP layers apart: mtp.{i}.* (not run by the kit).
                var mtp = Regex.Match(name, @"^mtp\.(\d+)\.");
                if (mtp.Success && int.Parse(mtp.Groups[1].Value) < mtpLayers) continue;
            }
            if (layer >= config.NumHiddenLayers && layer < config.NumHiddenLayers + mtpLayers) continue; // multi-token-prediction module: not used for inference
            if (name is null) { unexpected.Add(info.Name); continue; }
            if (!sources.TryAdd(name, new Source(file, info, 0, null)))
                throw new CheckpointException($"tensor {info.Name} is stored twice ({sources[name].File.Path} and {file.Path})");
        }
        return new CheckpointWeights(sources, layout, config);
    }

    /// <summary>
    /// Checks the stored tensors against the model's parameters (names → shapes) without reading data: nothing
    /// unexpected, nothing missing, every shape right, every FP8/FP4 weight with a scale of the right shape.
    /// </summary>
    internal void Validate(IReadOnlyDictionary<string, long[]> parameters, List<string> unexpected)
    {
        unexpected.AddRange(_sources.Keys.Where(k => !parameters.ContainsKey(k) && !IsScaleOf(k, parameters)).Select(DisplayName));
        if (unexpected.Count > 0)
            throw new CheckpointException(
                $"the checkpoint has {unexpected.Count} tensor(s) this configuration does not use: {string.Join(", ", unexpected.Take(8))}{(unexpected.Count > 8 ? ", …" : "")} (check that config.json matches the weights)");
        var missing = parameters.Keys.Where(k => !_sources.ContainsKey(k)).Select(DisplayName).ToList();
        if (missing.Count > 0)
            throw new CheckpointException(
                $"the checkpoint is missing {missing.Count} tensor(s): {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", …" : "")}");
        foreach (var (name, shape) in parameters)
        {
            var source = _sources[name];
            var info = source.Info;
            if (source.SliceShape is { } slice)
            {
                if (!slice.SequenceEqual(shape))
                    throw new CheckpointException(
                        $"packed expert tensor {info.Name} holds [{string.Join(", ", slice)}] per expert but this configuration needs [{string.Join(", ", shape)}] for {name}");
                continue;
            }
            if (IsPackedFp4(info, shape))
            {
                var scale = Scale(name, info, "packed FP4 tensor {0} (int8, two e2m1 values per byte) has no scale ({1}, one ue8m0 per 32 inputs)");
                long rows = shape[0], cols = shape[1];
                if (cols % Fp4Block != 0 || !scale.Info.Shape.SequenceEqual(new[] { rows, cols / Fp4Block }))
                    throw new CheckpointException($"FP4 scale {scale.Info.Name} has shape [{string.Join(", ", scale.Info.Shape)}] but a [{rows}, {cols}] FP4 weight needs [{rows}, {cols / Fp4Block}] (one scale per {Fp4Block} inputs)");
                continue;
            }
            if (!info.Shape.SequenceEqual(shape))
                throw new CheckpointException(
                    $"tensor {info.Name} has shape [{string.Join(", ", info.Shape)}] but this configuration needs [{string.Join(", ", shape)}]");
            if (info.DType is SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2)
            {
                var scale = Scale(name, info, "FP8 tensor {0} has no block scale ({1})");
                long m = shape[0], n = shape[1];
                long[] expected = { (m + FpBlock - 1) / FpBlock, (n + FpBlock - 1) / FpBlock };
                if (!scale.Info.Shape.SequenceEqual(expected))
                    throw new CheckpointException($"block scale {scale.Info.Name} has shape [{string.Join(", ", scale.Info.Shape)}] but a [{m}, {n}] FP8 weight needs [{expected[0]}, {expected[1]}]");
            }
        }
    }

    /// <summary>Bytes the given parameters take in <paramref name="dtype"/> (what a model in that dtype holds).</summary>
    internal static long Bytes(IEnumerable<long[]> shapes, ScalarType dtype) =>
        shapes.Sum(s => s.Aggregate(1L, (a, b) => a * b)) * ElementSize(dtype);

    internal static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Int16 => 2,
        _ => 1,
    };

    /// <summary>
    /// The parameter shapes the stored tensors imply (FP4-packed weights count their unpacked width), read from the
    /// headers alone: what <see cref="Residency.Auto"/> weighs before any parameter is allocated.
    /// </summary>
    internal IEnumerable<long[]> StoredParameterShapes()
    {
        foreach (var (name, s) in _sources)
        {
            if (name.EndsWith(".scale", StringComparison.Ordinal) && _sources.ContainsKey(name[..^".scale".Length] + ".weight")) continue;
            if (s.SliceShape is { } slice) { yield return slice; continue; }
            var shape = s.Info.ToShapeArray();
            if (s.Info.DType == SafetensorsDType.I8 && shape.Length == 2 && _sources.ContainsKey(name[..^".weight".Length] + ".scale") && name.EndsWith(".weight", StringComparison.Ordinal))
                shape = new[] { shape[0], shape[1] * 2 };
            yield return shape;
        }
    }

    /// <summary>
    /// Reads parameter <paramref name="name"/> into <paramref name="destination"/> (its shape, any dtype and device):
    /// stored bytes are read with positional reads straight into native memory and converted by libtorch (bf16/fp16 →
    /// the destination's dtype; FP8 E4M3 times its 128×128 <c>weight_scale_inv</c> blocks; V4 FP4 e2m1 pairs times their
    /// ue8m0 scales), then checked for NaN/Inf (and, for a hash table, for ids outside [0, n_routed_experts)).
    /// </summary>
    internal void ReadInto(string name, Tensor destination)
    {
        var source = _sources[name];
        var info = source.Info;
        var shape = destination.shape;
        using (no_grad())
        {
            if (IsPackedFp4(info, shape)) ReadFp4(name, source, destination);
            else if (info.DType is SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2) ReadFp8(name, source, destination);
            else ReadPlain(source, destination);
            Check(name, info, destination);
        }
    }

    /// <summary>
    /// The dtype parameter <paramref name="name"/> is stored in, when it is a plain bf16/fp16/f32 tensor (not a packed
    /// expert slice, not FP8/FP4), else null.
    /// </summary>
    internal ScalarType? StoredFloatDType(string name) =>
        _sources.TryGetValue(name, out var s) && s.SliceShape is null && s.Info.DType is SafetensorsDType.BF16 or SafetensorsDType.F16 or SafetensorsDType.F32
            ? TorchType(s.Info.DType) : null;

    /// <summary>A new tensor of parameter <paramref name="name"/>'s shape in <paramref name="dtype"/> on <paramref name="device"/>, read as <see cref="ReadInto"/>.</summary>
    internal Tensor Read(string name, long[] shape, ScalarType dtype, Device device)
    {
        var t = empty(shape, dtype: dtype, device: device);
        try { ReadInto(name, t); }
        catch { t.Dispose(); throw; }
        return t;
    }

    private void Check(string name, SafetensorsTensorInfo info, Tensor p)
    {
        // The sum in the tensor's own dtype is finite when every element is finite and the total does not overflow, so a
        // finite sum proves the tensor clean in one read pass with no allocation (a sum with dtype float64 would first copy
        // the whole tensor to float64 on the CPU: 1.7 GB for DeepSeek-V2's embedding). Only a non-finite sum (a NaN/Inf, or
        // finite values whose total overflows) is settled element by element.
        if (p.is_floating_point() && p.numel() > 0)
        {
            bool clean;
            using (var s = p.sum())
            using (var finite = s.isfinite().cpu()) clean = finite.item<bool>();
            if (!clean)
                using (var all = p.isfinite().all().cpu()) clean = all.item<bool>();
            if (!clean)
                throw new CheckpointException($"tensor {info.Name} contains NaN or infinite values");
        }
        if (name.EndsWith(".gate.tid2eid", StringComparison.Ordinal))
            using (var bad = p.ne(p.round()).logical_or(p.lt(0)).logical_or(p.ge(_config.NRoutedExperts)).any())
                if (bad.cpu().item<bool>())
                    throw new CheckpointException($"hash table {info.Name} holds a value that is not an expert id in [0, {_config.NRoutedExperts - 1}] (n_routed_experts {_config.NRoutedExperts})");
    }

    /// <summary>Stored dtype → the libtorch dtype holding the same bits, or null when libtorch has none (FP8, unsigned wider than 8 bits).</summary>
    private static ScalarType? TorchType(SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 => ScalarType.Float32,
        SafetensorsDType.F64 => ScalarType.Float64,
        SafetensorsDType.F16 => ScalarType.Float16,
        SafetensorsDType.BF16 => ScalarType.BFloat16,
        SafetensorsDType.I64 => ScalarType.Int64,
        SafetensorsDType.I32 => ScalarType.Int32,
        SafetensorsDType.I16 => ScalarType.Int16,
        SafetensorsDType.I8 => ScalarType.Int8,
        SafetensorsDType.U8 => ScalarType.Byte,
        SafetensorsDType.BOOL => ScalarType.Bool,
        _ => null,
    };

    /// <summary>Lookup table of an 8-bit float format (index = the stored byte).</summary>
    private static float[]? ByteTable(SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F8_E4M3 => Fp8.E4M3Table,
        SafetensorsDType.F8_E5M2 => Fp8.E5M2Table,
        SafetensorsDType.F8_E8M0 => Fp8.E8M0Table,
        _ => null,
    };

    /// <summary>
    /// Reads a stored tensor (or slice) into <paramref name="destination"/> of the same element count, converting to its
    /// dtype. A contiguous CPU destination of the stored dtype receives the bytes directly; otherwise the stored bytes go
    /// through a reused staging tensor of ≤ 64 MiB and libtorch's <c>copy_</c> converts (vectorised, multi-threaded).
    /// </summary>
    private void ReadPlain(Source source, Tensor destination)
    {
        var info = source.Info;
        long count = destination.numel();
        if (count == 0) return;
        int size = info.DType.ElementSize();
        var flat = destination.view(-1);
        var torchType = TorchType(info.DType);
        bool direct = destination.device_type == DeviceType.CPU && destination.is_contiguous() && torchType == destination.dtype && BitConverter.IsLittleEndian;
        long chunk = Math.Max(1, StagingBytes / size);
        Tensor? staging = null;
        bool shared = false;
        if (!direct && torchType is { } sharedType && _sharedStaging is { } pool)
        {
            // A whole-model read (ReuseStaging): one ≤ 64 MiB buffer per stored dtype for every tensor, instead of one
            // allocated and freed per tensor (mid-sized native blocks freed between the parameters' allocations).
            if (!pool.TryGetValue(sharedType, out staging))
                pool[sharedType] = staging = empty(chunk, dtype: sharedType).DetachFromDisposeScope();
            shared = true;
        }
        try
        {
            for (long done = 0; done < count; done += chunk)
            {
                long n = Math.Min(chunk, count - done);
                long byteOffset = (source.ElementOffset + done) * size;
                using var part = flat.narrow(0, done, n);
                if (direct)
                {
                    source.File.ReadBytes(info, byteOffset, part.bytes);
                    continue;
                }
                if (torchType is { } tt)
                {
                    staging ??= empty(Math.Min(chunk, count), dtype: tt);
                    using var stage = staging.narrow(0, 0, n);
                    source.File.ReadBytes(info, byteOffset, stage.bytes);
                    part.copy_(stage);
                }
                else if (ByteTable(info.DType) is { } table)
                {
                    staging ??= empty(Math.Min(chunk, count), dtype: ScalarType.Byte);
                    using var stage = staging.narrow(0, 0, n);
                    source.File.ReadBytes(info, byteOffset, stage.bytes);
                    using var lut = tensor(table);
                    using var index = stage.to(ScalarType.Int64);
                    using var values = lut.index_select(0, index);
                    part.copy_(values);
                }
                else
                {
                    // U16/U32/U64: no libtorch dtype with those bits; the managed converter (rare in checkpoints).
                    var raw = new byte[n * size];
                    source.File.ReadBytes(info, byteOffset, raw);
                    var values = new float[n];
                    SafetensorsDTypes.ConvertToFloat32(info.DType, raw, values);
                    using var t = tensor(values);
                    part.copy_(t);
                }
            }
        }
        finally { if (!shared) staging?.Dispose(); }
    }

    private Dictionary<ScalarType, Tensor>? _sharedStaging;

    /// <summary>
    /// Until the returned scope is disposed, conversions share one staging buffer per stored dtype (for reading every
    /// parameter in turn on one thread, as memory residency does); the buffers are freed at the end.
    /// </summary>
    internal IDisposable ReuseStaging()
    {
        _sharedStaging ??= new Dictionary<ScalarType, Tensor>();
        return new StagingScope(this);
    }

    private sealed class StagingScope(CheckpointWeights owner) : IDisposable
    {
        public void Dispose()
        {
            if (owner._sharedStaging is not { } pool) return;
            owner._sharedStaging = null;
            foreach (var t in pool.Values) t.Dispose();
        }
    }

    /// <summary>weight = E4M3 value · scale_inv expanded over 128×128 blocks (DeepSeek's <c>weight_dequant</c>), in float32, then the destination's dtype.</summary>
    private void ReadFp8(string name, Source source, Tensor destination)
    {
        var scale = _sources[name[..^".weight".Length] + ".scale"];
        long m = destination.shape[0], n = destination.shape[1];
        using var scope = NewDisposeScope();
        var w = empty(m, n, dtype: ScalarType.Float32);
        ReadPlain(source, w);
        var s = empty(scale.Info.ToShapeArray(), dtype: ScalarType.Float32);
        ReadPlain(scale, s);
        var full = s.repeat_interleave(FpBlock, 0).narrow(0, 0, m).repeat_interleave(FpBlock, 1).narrow(1, 0, n);
        w.mul_(full);
        destination.copy_(w);
    }

    /// <summary>
    /// weight[o, i] = FP4_TABLE[nibble i of row o] · scale[o, i / 32] (DeepSeek-V4 <c>inference/convert.py</c>: the low
    /// nibble of byte j is input 2j, the high nibble input 2j + 1; scales are ue8m0, one per 32 inputs).
    /// </summary>
    private void ReadFp4(string name, Source source, Tensor destination)
    {
        var scale = _sources[name[..^".weight".Length] + ".scale"];
        long rows = destination.shape[0], cols = destination.shape[1];
        using var scope = NewDisposeScope();
        var packed = empty(rows, cols / 2, dtype: ScalarType.Byte);
        source.File.ReadBytes(source.Info, 0, packed.bytes);
        var s = empty(rows, cols / Fp4Block, dtype: ScalarType.Float32);
        ReadPlain(scale, s);
        var low = packed.bitwise_and(0xF).to(ScalarType.Int64);
        var high = packed.bitwise_right_shift(4).to(ScalarType.Int64);
        var codes = stack(new[] { low, high }, 2).view(rows, cols);
        var values = tensor(Fp8.E2M1Table).index_select(0, codes.view(-1)).view(rows, cols);
        destination.copy_(values * s.repeat_interleave(Fp4Block, 1));
    }

    /// <summary>DeepSeek-V4's FP4 expert weights: int8 [out, in/2], two e2m1 codes per byte (low nibble first).</summary>
    private static bool IsPackedFp4(SafetensorsTensorInfo info, long[] shape) =>
        info.DType == SafetensorsDType.I8 && info.Rank == 2 && shape.Length == 2 && info.Shape[0] == shape[0] && info.Shape[1] * 2 == shape[1];

    private Source Scale(string name, SafetensorsTensorInfo info, string missingFormat)
    {
        var scaleName = name[..^".weight".Length] + ".scale";
        if (!_sources.TryGetValue(scaleName, out var scale))
            throw new CheckpointException(string.Format(missingFormat, info.Name, DisplayName(scaleName)));
        return scale;
    }

    private static bool IsScaleOf(string name, IReadOnlyDictionary<string, long[]> parameters) =>
        name.EndsWith(".scale", StringComparison.Ordinal) && parameters.ContainsKey(name[..^".scale".Length] + ".weight");

    internal string DisplayName(string name)
    {
        if (_layout == CheckpointLayout.Official) return name;
        if (name.EndsWith(".scale", StringComparison.Ordinal))
            return WeightNames.ToHuggingFace(name[..^".scale".Length] + ".weight") + "_scale_inv";
        return WeightNames.ToHuggingFace(name);
    }
}
