using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>
/// A read-only, validated view of a <c>.safetensors</c> file.
/// <para>
/// Format (huggingface/safetensors README, https://github.com/huggingface/safetensors#format): an 8-byte
/// little-endian u64 <c>N</c>, an <c>N</c>-byte UTF-8 JSON object mapping tensor names to
/// <c>{"dtype", "shape", "data_offsets": [begin, end]}</c> plus an optional <c>"__metadata__"</c> string→string map,
/// then the data buffer. Offsets are relative to the start of the data buffer (<c>8 + N</c>); data is little-endian.
/// </para>
/// <para>
/// <see cref="Open"/> reads and validates only the header, exactly as strictly as the reference Rust
/// implementation: header at most 100,000,000 bytes; every entry well-typed; byte length = element count × element
/// size; tensors neither overlap nor leave gaps, and together cover the whole data buffer. Tensor bytes are read on
/// demand with positional reads (<see cref="RandomAccess"/>), so nothing but the header is held in memory.
/// Instances are safe for concurrent reads; dispose to close the file handle.
/// </para>
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>The largest header accepted, as in the reference implementation (<c>MAX_HEADER_SIZE</c>).</summary>
    public const long MaxHeaderLength = 100_000_000;

    /// <summary>Chunk size used by <see cref="ReadAsFloat32(string, Span{float})"/> for converting dtypes.</summary>
    internal const int ConversionChunkBytes = 1 << 20;

    internal const string MetadataKey = "__metadata__";

    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, SafetensorsTensorInfo> _byName;

    private SafetensorsFile(string path, SafeFileHandle handle, long fileLength, long headerLength,
        List<SafetensorsTensorInfo> tensors, Dictionary<string, SafetensorsTensorInfo> byName, OrderedDictionary<string, string> metadata)
    {
        Path = path;
        _handle = handle;
        FileLength = fileLength;
        HeaderLength = headerLength;
        Tensors = tensors.AsReadOnly();
        _byName = byName;
        TensorsByName = byName.AsReadOnly();
        Metadata = new System.Collections.ObjectModel.ReadOnlyDictionary<string, string>(metadata);
    }

    /// <summary>The full path of the opened file.</summary>
    public string Path { get; }

    /// <summary>The file length in bytes at the time it was opened.</summary>
    public long FileLength { get; }

    /// <summary>The header length <c>N</c> (JSON bytes, including any padding).</summary>
    public long HeaderLength { get; }

    /// <summary>Absolute file offset of the data buffer (<c>8 + N</c>).</summary>
    public long DataStart => 8 + HeaderLength;

    /// <summary>The tensors in header order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    /// <summary>The tensors by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> TensorsByName { get; }

    /// <summary>The <c>"__metadata__"</c> map in header order (empty if absent or null).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Opens <paramref name="path"/> and validates its header. Does not read tensor data.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is not a valid safetensors file; the message says why.</exception>
    /// <exception cref="IOException">The file cannot be opened or read.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        var handle = File.OpenHandle(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            long fileLength = RandomAccess.GetLength(handle);
            if (fileLength < 8)
                throw new CheckpointFormatException(fullPath,
                    $"the file is {fileLength} bytes long, shorter than the 8-byte little-endian header-length prefix every safetensors file starts with.");

            Span<byte> prefix = stackalloc byte[8];
            ReadExactly(handle, prefix, 0, fullPath, "the header-length prefix");
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            long available = fileLength - 8;
            if (n == 0)
                throw new CheckpointFormatException(fullPath,
                    "the header length is 0; a valid header is a JSON object of at least 2 bytes (\"{}\").");
            if (n > (ulong)available)
                throw new CheckpointFormatException(fullPath,
                    $"the header length prefix says {n} bytes, but only {available} bytes follow the prefix (file length {fileLength}); the file is truncated or not a safetensors file.");
            if (n > MaxHeaderLength)
                throw new CheckpointFormatException(fullPath,
                    $"the header length {n} bytes exceeds the {MaxHeaderLength}-byte limit of the reference implementation; this is almost certainly not a safetensors header.");

            var header = new byte[(int)n];
            ReadExactly(handle, header, 8, fullPath, "the JSON header");
            long dataLength = available - (long)n;
            var parsed = SafetensorsHeaderParser.Parse(header, 8 + (long)n, dataLength, fullPath);
            return new SafetensorsFile(fullPath, handle, fileLength, (long)n, parsed.Tensors, parsed.ByName, parsed.Metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Looks up a tensor by name.</summary>
    /// <exception cref="KeyNotFoundException">No tensor is called <paramref name="name"/>.</exception>
    public SafetensorsTensorInfo GetTensor(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_byName.TryGetValue(name, out var info)) return info;
        throw new KeyNotFoundException($"Safetensors file '{Path}' has no tensor named '{name}' (it has {Tensors.Count} tensors).");
    }

    /// <summary>Looks up a tensor by name without throwing.</summary>
    public bool TryGetTensor(string name, [MaybeNullWhen(false)] out SafetensorsTensorInfo info) => _byName.TryGetValue(name, out info);

    /// <summary>
    /// Reads the raw little-endian bytes of tensor <paramref name="name"/> into <paramref name="destination"/>,
    /// which must be exactly <see cref="SafetensorsTensorInfo.ByteLength"/> bytes long. The destination may be a span
    /// over native memory (e.g. a tensor's storage); no intermediate managed copy is made.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file became shorter since it was opened.</exception>
    public void ReadBytes(string name, Span<byte> destination)
    {
        var info = GetTensor(name);
        if (destination.Length != info.ByteLength)
            throw new ArgumentException($"Tensor '{name}' has {info.ByteLength} bytes but the destination span has {destination.Length}.", nameof(destination));
        ReadBytes(info, 0, destination);
    }

    /// <summary>
    /// Reads <c>destination.Length</c> bytes of <paramref name="tensor"/> starting <paramref name="byteOffset"/> bytes
    /// into its data, for streaming a large tensor in pieces. The range must lie within the tensor.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file became shorter since it was opened.</exception>
    public void ReadBytes(SafetensorsTensorInfo tensor, long byteOffset, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (!_byName.TryGetValue(tensor.Name, out var own) || !ReferenceEquals(own, tensor))
            throw new ArgumentException($"Tensor '{tensor.Name}' does not belong to '{Path}'.", nameof(tensor));
        if (byteOffset < 0 || byteOffset > tensor.ByteLength || destination.Length > tensor.ByteLength - byteOffset)
            throw new ArgumentOutOfRangeException(nameof(byteOffset),
                $"Range [{byteOffset}, {byteOffset + destination.Length}) is outside tensor '{tensor.Name}' of {tensor.ByteLength} bytes.");
        ReadExactly(_handle, destination, tensor.DataBegin + byteOffset, Path, $"tensor '{tensor.Name}'");
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> converted to float32 into <paramref name="destination"/> (exactly
    /// <see cref="SafetensorsTensorInfo.ElementCount"/> elements). F32 is read straight into the destination;
    /// other dtypes are streamed through a pooled 1 MiB buffer and converted with
    /// <see cref="SafetensorsDTypes.ConvertToFloat32"/>, so the tensor is never materialised twice.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file became shorter since it was opened.</exception>
    public void ReadAsFloat32(string name, Span<float> destination)
    {
        var info = GetTensor(name);
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"Tensor '{name}' has {info.ElementCount} elements but the destination span has {destination.Length}.", nameof(destination));
        if (info.DType == SafetensorsDType.F32)
        {
            var bytes = MemoryMarshal.AsBytes(destination);
            ReadBytes(info, 0, bytes);
            if (!BitConverter.IsLittleEndian)
                BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<float, int>(destination), MemoryMarshal.Cast<float, int>(destination));
            return;
        }
        int size = info.DType.ElementSize();
        int chunkElements = ConversionChunkBytes / size;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ConversionChunkBytes);
        try
        {
            long done = 0;
            while (done < info.ElementCount)
            {
                int count = (int)Math.Min(chunkElements, info.ElementCount - done);
                var chunk = buffer.AsSpan(0, count * size);
                ReadBytes(info, done * size, chunk);
                SafetensorsDTypes.ConvertToFloat32(info.DType, chunk, destination.Slice((int)done, count));
                done += count;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads tensor <paramref name="name"/> converted to float32 into a new array (see <see cref="ReadAsFloat32(string, Span{float})"/>).</summary>
    public float[] ReadAsFloat32(string name)
    {
        var info = GetTensor(name);
        if (info.ElementCount > Array.MaxLength)
            throw new NotSupportedException($"Tensor '{name}' has {info.ElementCount} elements, more than a managed array can hold; read it into native memory instead.");
        var result = new float[info.ElementCount];
        ReadAsFloat32(name, result);
        return result;
    }

    /// <summary>Closes the file handle.</summary>
    public void Dispose() => _handle.Dispose();

    private static void ReadExactly(SafeFileHandle handle, Span<byte> destination, long offset, string path, string what)
    {
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(handle, destination, offset);
            if (read <= 0)
                throw new CheckpointFormatException(path,
                    $"unexpected end of file at offset {offset} while reading {what}; the file is shorter than its header says (was it truncated or modified after opening?).");
            destination = destination[read..];
            offset += read;
        }
    }
}

/// <summary>Parses and validates a safetensors JSON header (pure function of the header bytes and the data length).</summary>
internal static class SafetensorsHeaderParser
{
    internal sealed record Result(
        List<SafetensorsTensorInfo> Tensors,
        Dictionary<string, SafetensorsTensorInfo> ByName,
        OrderedDictionary<string, string> Metadata);

    internal static Result Parse(ReadOnlySpan<byte> header, long dataStart, long dataLength, string path)
    {
        int bad = FirstInvalidUtf8(header);
        if (bad >= 0)
            throw new CheckpointFormatException(path, $"the JSON header is not valid UTF-8 (invalid byte 0x{header[bad]:X2} at header offset {bad}, file offset {8 + bad}).");

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new CheckpointFormatException(path, $"the header is not valid JSON: {ex.Message}", innerException: ex);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(path, $"the header must be a JSON object {{\"name\": {{...}}, ...}}, but it is a JSON {Kind(root)}.");

            var tensors = new List<SafetensorsTensorInfo>();
            var byName = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
            var metadata = new OrderedDictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;

            foreach (var prop in root.EnumerateObject())
            {
                string name = prop.Name;
                if (name == SafetensorsFile.MetadataKey)
                {
                    if (sawMetadata) throw new CheckpointFormatException(path, "the header contains \"__metadata__\" twice; it may appear at most once.");
                    sawMetadata = true;
                    ParseMetadata(prop.Value, metadata, path);
                    continue;
                }
                if (byName.ContainsKey(name))
                    throw new CheckpointFormatException(path, $"tensor '{name}' appears twice in the header; tensor names must be unique.", name);
                var info = ParseEntry(name, prop.Value, dataStart, dataLength, path);
                tensors.Add(info);
                byName.Add(name, info);
            }

            CheckLayout(tensors, dataLength, path);
            return new Result(tensors, byName, metadata);
        }
    }

    private static void ParseMetadata(JsonElement value, OrderedDictionary<string, string> metadata, string path)
    {
        if (value.ValueKind == JsonValueKind.Null) return; // the reference implementation accepts null (Option<HashMap>)
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(path, $"\"__metadata__\" must be a JSON object mapping strings to strings, but it is a JSON {Kind(value)}.");
        foreach (var p in value.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointFormatException(path, $"metadata value for key '{p.Name}' is a JSON {Kind(p.Value)}; safetensors metadata values must be strings.");
            if (!metadata.TryAdd(p.Name, p.Value.GetString()!))
                throw new CheckpointFormatException(path, $"metadata key '{p.Name}' appears twice in \"__metadata__\"; keys must be unique.");
        }
    }

    private static SafetensorsTensorInfo ParseEntry(string name, JsonElement entry, long dataStart, long dataLength, string path)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(path,
                $"the entry for tensor '{name}' is a JSON {Kind(entry)}; it must be an object {{\"dtype\": \"F32\", \"shape\": [...], \"data_offsets\": [begin, end]}}.", name);

        JsonElement? dtypeEl = null, shapeEl = null, offsetsEl = null;
        foreach (var p in entry.EnumerateObject())
        {
            ref JsonElement? slot = ref dtypeEl;
            switch (p.Name)
            {
                case "dtype": slot = ref dtypeEl; break;
                case "shape": slot = ref shapeEl; break;
                case "data_offsets": slot = ref offsetsEl; break;
                default: continue; // unknown fields are ignored, as by the reference implementation
            }
            if (slot is not null)
                throw new CheckpointFormatException(path, $"tensor '{name}' has the field \"{p.Name}\" twice.", name);
            slot = p.Value;
        }

        if (dtypeEl is null) throw Missing(name, "dtype", "a dtype string such as \"F32\"", path);
        if (shapeEl is null) throw Missing(name, "shape", "an array of non-negative integers ([] for a scalar)", path);
        if (offsetsEl is null) throw Missing(name, "data_offsets", "an array [begin, end] of byte offsets into the data buffer", path);

        var dt = dtypeEl.Value;
        if (dt.ValueKind != JsonValueKind.String)
            throw new CheckpointFormatException(path, $"tensor '{name}' has \"dtype\" of JSON type {Kind(dt)}; it must be a string such as \"F32\".", name);
        string dtypeText = dt.GetString()!;
        if (!SafetensorsDTypes.TryParse(dtypeText, out var dtype))
            throw new CheckpointFormatException(path,
                $"tensor '{name}' has unknown dtype \"{dtypeText}\"; known dtypes are {string.Join(", ", SafetensorsDTypes.KnownNames)}.", name);

        var sh = shapeEl.Value;
        if (sh.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException(path, $"tensor '{name}' has \"shape\" of JSON type {Kind(sh)}; it must be an array of non-negative integers.", name);
        var shape = new long[sh.GetArrayLength()];
        long elements = 1;
        bool overflow = false;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim))
                throw new CheckpointFormatException(path,
                    $"tensor '{name}' has shape element {i} = {Raw(d)}, which is not an integer; shape must be an array of non-negative integers.", name);
            if (dim < 0)
                throw new CheckpointFormatException(path, $"tensor '{name}' has negative dimension {dim} at shape index {i}; dimensions must be >= 0.", name);
            shape[i++] = dim;
            if (!overflow)
            {
                try { elements = checked(elements * dim); }
                catch (OverflowException) { overflow = true; }
            }
        }
        if (overflow && !shape.Contains(0))
            throw new CheckpointFormatException(path, $"tensor '{name}' has shape [{string.Join(", ", shape)}] whose element count overflows a 64-bit integer.", name);
        if (overflow) elements = 0;
        long byteLength;
        try { byteLength = checked(elements * dtype.ElementSize()); }
        catch (OverflowException)
        {
            throw new CheckpointFormatException(path, $"tensor '{name}' has {elements} {dtype} elements, whose byte size overflows a 64-bit integer.", name);
        }

        var off = offsetsEl.Value;
        if (off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new CheckpointFormatException(path,
                $"tensor '{name}' has \"data_offsets\" = {Raw(off)}; it must be an array of exactly two non-negative integers [begin, end].", name);
        long begin = Offset(off[0], "begin", name, path), end = Offset(off[1], "end", name, path);
        if (end < begin)
            throw new CheckpointFormatException(path, $"tensor '{name}' has data_offsets [{begin}, {end}] out of order; begin must be <= end.", name);
        if (end > dataLength)
            throw new CheckpointFormatException(path,
                $"tensor '{name}' has data_offsets [{begin}, {end}] outside the data buffer, which is {dataLength} bytes long (file length − 8 − header length).", name);
        if (end - begin != byteLength)
            throw new CheckpointFormatException(path,
                $"tensor '{name}' is {dtype} with shape [{string.Join(", ", shape)}] = {elements} elements × {dtype.ElementSize()} bytes = {byteLength} bytes, but its data_offsets [{begin}, {end}] span {end - begin} bytes.", name);

        return new SafetensorsTensorInfo(name, dtype, shape, elements, dataStart + begin, dataStart + end, begin);
    }

    /// <summary>Requires the tensors to tile the data buffer exactly: no overlaps, no gaps, no trailing bytes (as the reference implementation does).</summary>
    private static void CheckLayout(List<SafetensorsTensorInfo> tensors, long dataLength, string path)
    {
        var sorted = tensors.OrderBy(t => t.RelativeBegin).ThenBy(t => t.ByteLength).ToList();
        long cursor = 0; // relative offset up to which the buffer is covered
        SafetensorsTensorInfo? lastNonEmpty = null; // the tensor that ends at the cursor
        foreach (var t in sorted)
        {
            long b = t.RelativeBegin, e = b + t.ByteLength;
            if (b < cursor)
            {
                long pb = lastNonEmpty!.RelativeBegin, pe = pb + lastNonEmpty.ByteLength;
                throw new CheckpointFormatException(path,
                    $"tensors '{lastNonEmpty.Name}' (data_offsets [{pb}, {pe}]) and '{t.Name}' (data_offsets [{b}, {e}]) overlap; each byte of the data buffer must belong to exactly one tensor.", t.Name);
            }
            if (b > cursor)
                throw new CheckpointFormatException(path,
                    $"bytes [{cursor}, {b}) of the data buffer, before tensor '{t.Name}', belong to no tensor; the safetensors format requires the data buffer to be fully indexed without gaps.", t.Name);
            if (t.ByteLength > 0)
            {
                lastNonEmpty = t;
                cursor = e;
            }
        }
        if (cursor != dataLength)
            throw new CheckpointFormatException(path,
                $"the data buffer is {dataLength} bytes long but the tensors cover only its first {cursor} bytes; the last tensor must end exactly at the end of the file ({dataLength - cursor} trailing bytes).");
    }

    private static long Offset(JsonElement el, string which, string name, string path)
    {
        if (el.ValueKind != JsonValueKind.Number || !el.TryGetInt64(out long v) || v < 0)
            throw new CheckpointFormatException(path,
                $"tensor '{name}' has data_offsets {which} = {Raw(el)}; offsets must be non-negative integers.", name);
        return v;
    }

    private static CheckpointFormatException Missing(string name, string field, string expected, string path) =>
        new(path, $"tensor '{name}' is missing the \"{field}\" field; it must have {expected}.", name);

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };

    private static string Raw(JsonElement e)
    {
        string raw = e.GetRawText();
        return raw.Length <= 60 ? raw : raw[..57] + "...";
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return -1;
        int i = 0;
        while (i < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[i..], out _, out int consumed) != OperationStatus.Done) return i;
            i += consumed;
        }
        return -1;
    }
}
