using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>
/// Builds a <c>.safetensors</c> file (huggingface/safetensors README, https://github.com/huggingface/safetensors#format)
/// from an ordered list of tensors plus optional string metadata, and writes it atomically.
/// <para>
/// Tensors are laid out in the order they were added, back to back, with no gaps. As in the reference
/// implementation, the JSON header is padded with spaces so that the data buffer starts at an 8-byte-aligned offset.
/// (The reference serializer also reorders tensors by dtype size to keep every tensor aligned; this writer keeps the
/// caller's order, so add wider dtypes first if alignment matters to a memory-mapping reader.)
/// </para>
/// <para>
/// Tensor bytes are pulled only during <see cref="WriteTo"/>: each tensor's callback receives a write-only stream
/// limited to its declared length, so a caller can stream from native memory
/// (<c>stream.Write(new ReadOnlySpan&lt;byte&gt;(ptr, len))</c>) without a managed copy.
/// </para>
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly List<Entry> _entries = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly OrderedDictionary<string, string> _metadata = new(StringComparer.Ordinal);

    private sealed record Entry(string Name, SafetensorsDType DType, long[] Shape, long ByteLength, Action<Stream> WriteBytes);

    /// <summary>Number of tensors added so far.</summary>
    public int Count => _entries.Count;

    /// <summary>Sets a <c>"__metadata__"</c> entry (replacing any earlier value for <paramref name="key"/>).</summary>
    public SafetensorsWriter SetMetadata(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        _metadata[key] = value;
        return this;
    }

    /// <summary>
    /// Adds a tensor whose <paramref name="byteLength"/> bytes (little-endian) are written by <paramref name="writeBytes"/>
    /// when <see cref="WriteTo"/> runs. The callback must write exactly <paramref name="byteLength"/> bytes to the stream it
    /// is given; writing more throws immediately, writing fewer makes <see cref="WriteTo"/> fail (leaving no file behind).
    /// </summary>
    /// <exception cref="ArgumentException">Duplicate or reserved name, negative dimension, or a byte length that is not element count × element size.</exception>
    public SafetensorsWriter Add(string name, SafetensorsDType dtype, ReadOnlySpan<long> shape, long byteLength, Action<Stream> writeBytes)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(writeBytes);
        if (name == SafetensorsFile.MetadataKey)
            throw new ArgumentException($"'{SafetensorsFile.MetadataKey}' is reserved for metadata and cannot name a tensor.", nameof(name));
        if (_names.Contains(name))
            throw new ArgumentException($"A tensor named '{name}' was already added.", nameof(name));
        long expected = ExpectedByteLength(name, dtype, shape);
        if (byteLength != expected)
            throw new ArgumentException(
                $"Tensor '{name}' is {dtype} with shape [{string.Join(", ", shape.ToArray())}], which needs {expected} bytes, but byteLength is {byteLength}.", nameof(byteLength));
        _names.Add(name);
        _entries.Add(new Entry(name, dtype, shape.ToArray(), byteLength, writeBytes));
        return this;
    }

    /// <summary>
    /// Adds a tensor from raw little-endian bytes in managed memory. The memory is referenced, not copied:
    /// it must stay unchanged until <see cref="WriteTo"/> has run.
    /// </summary>
    public SafetensorsWriter Add(string name, SafetensorsDType dtype, ReadOnlySpan<long> shape, ReadOnlyMemory<byte> data) =>
        Add(name, dtype, shape, data.Length, s => s.Write(data.Span));

    /// <summary>Adds a float32 tensor from managed memory (referenced, not copied, until <see cref="WriteTo"/>).</summary>
    public SafetensorsWriter AddFloat32(string name, ReadOnlySpan<long> shape, ReadOnlyMemory<float> data) =>
        Add(name, SafetensorsDType.F32, shape, (long)data.Length * sizeof(float), s =>
        {
            if (BitConverter.IsLittleEndian) s.Write(MemoryMarshal.AsBytes(data.Span));
            else { Span<byte> b = stackalloc byte[4]; foreach (float v in data.Span) { BinaryPrimitives.WriteSingleLittleEndian(b, v); s.Write(b); } }
        });

    /// <summary>Adds an int64 tensor from managed memory (referenced, not copied, until <see cref="WriteTo"/>).</summary>
    public SafetensorsWriter AddInt64(string name, ReadOnlySpan<long> shape, ReadOnlyMemory<long> data) =>
        Add(name, SafetensorsDType.I64, shape, (long)data.Length * sizeof(long), s =>
        {
            if (BitConverter.IsLittleEndian) s.Write(MemoryMarshal.AsBytes(data.Span));
            else { Span<byte> b = stackalloc byte[8]; foreach (long v in data.Span) { BinaryPrimitives.WriteInt64LittleEndian(b, v); s.Write(b); } }
        });

    /// <summary>
    /// Writes the file to <paramref name="path"/> atomically: everything goes to a temporary file in the same directory,
    /// which is flushed to disk and then renamed over <paramref name="path"/> only if every tensor was written completely.
    /// On any exception the temporary file is deleted, <paramref name="path"/> is left untouched, and the exception propagates.
    /// The directory must exist.
    /// </summary>
    public void WriteTo(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' has no directory.", nameof(path));
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        byte[] header = BuildHeader();
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                fs.Write(prefix);
                fs.Write(header);
                foreach (var e in _entries)
                {
                    var bounded = new BoundedWriteStream(fs, e.ByteLength, e.Name);
                    e.WriteBytes(bounded);
                    if (bounded.Written != e.ByteLength)
                        throw new InvalidOperationException(
                            $"The callback for tensor '{e.Name}' wrote {bounded.Written} bytes but {e.ByteLength} were declared; '{full}' was not written.");
                }
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>The JSON header (without the length prefix), padded with spaces to a multiple of 8 bytes.</summary>
    internal byte[] BuildHeader()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (_metadata.Count > 0)
            {
                w.WriteStartObject(SafetensorsFile.MetadataKey);
                foreach (var (k, v) in _metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var e in _entries)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", e.DType.ToFileString());
                w.WriteStartArray("shape");
                foreach (long d in e.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + e.ByteLength);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += e.ByteLength;
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - ms.Length % 8) % 8);
        for (int i = 0; i < pad; i++) ms.WriteByte((byte)' ');
        return ms.ToArray();
    }

    private static long ExpectedByteLength(string name, SafetensorsDType dtype, ReadOnlySpan<long> shape)
    {
        int size = dtype.ElementSize(); // validates dtype
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"Tensor '{name}' has negative dimension {d}.", nameof(shape));
            n = checked(n * d);
        }
        return checked(n * size);
    }

    /// <summary>A write-only view of the output that refuses to go past one tensor's declared length.</summary>
    private sealed class BoundedWriteStream(Stream inner, long limit, string name) : Stream
    {
        public long Written { get; private set; }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Written; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (buffer.Length > limit - Written)
                throw new InvalidOperationException(
                    $"The callback for tensor '{name}' tried to write {Written + buffer.Length} bytes but only {limit} were declared.");
            inner.Write(buffer);
            Written += buffer.Length;
        }

        public override void WriteByte(byte value) => Write([value]);
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
