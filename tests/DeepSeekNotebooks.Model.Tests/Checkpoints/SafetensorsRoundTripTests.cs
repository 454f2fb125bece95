using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

public class SafetensorsRoundTripTests
{
    private static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void Write_then_read_preserves_names_order_dtypes_shapes_bytes_and_metadata()
    {
        using var dir = new TempDir();
        var cases = new (string Name, SafetensorsDType DType, long[] Shape)[]
        {
            ("z.first", SafetensorsDType.F32, [3, 4]),
            ("a.scalar", SafetensorsDType.F64, []),
            ("empty", SafetensorsDType.F32, [0]),
            ("empty.middle", SafetensorsDType.BF16, [2, 0, 3]),
            ("bf16", SafetensorsDType.BF16, [5]),
            ("odd.bytes", SafetensorsDType.U8, [3]),
            ("i64", SafetensorsDType.I64, [2, 1]),
            ("fp8", SafetensorsDType.F8_E4M3, [2, 2, 2]),
            ("e5m2", SafetensorsDType.F8_E5M2, [1]),
            ("bool", SafetensorsDType.BOOL, [4]),
            ("i16", SafetensorsDType.I16, [1, 1, 1, 1]),
            ("unicode.é✓", SafetensorsDType.F16, [2]),
        };
        var w = new SafetensorsWriter().SetMetadata("format", "pt").SetMetadata("note", "quote \" and ü");
        var expected = new Dictionary<string, byte[]>();
        int seed = 0;
        foreach (var (name, dt, shape) in cases)
        {
            long n = shape.Aggregate(1L, (a, d) => a * d);
            var data = Bytes((int)n * dt.ElementSize(), seed++);
            expected[name] = data;
            w.Add(name, dt, shape, data);
        }
        string path = dir.File("rt.safetensors");
        w.WriteTo(path);

        var raw = File.ReadAllBytes(path);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.Equal(0UL, headerLen % 8);                // padded as the reference implementation does
        Assert.Equal((byte)'{', raw[8]);
        string headerText = Encoding.UTF8.GetString(raw, 8, (int)headerLen);
        Assert.EndsWith("}", headerText.TrimEnd(' '));
        Assert.True(headerText.Length - headerText.TrimEnd(' ').Length < 8);

        using var f = SafetensorsFile.Open(path);
        Assert.Equal(cases.Select(c => c.Name), f.Tensors.Select(t => t.Name));
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt", ["note"] = "quote \" and ü" }, f.Metadata);
        Assert.Equal(8 + (long)headerLen, f.DataStart);
        foreach (var (name, dt, shape) in cases)
        {
            var t = f.GetTensor(name);
            Assert.Equal(dt, t.DType);
            Assert.Equal(shape, t.Shape);
            Assert.Equal(shape, t.ToShapeArray());
            Assert.Equal(shape.Length, t.Rank);
            Assert.Equal(expected[name].Length, t.ByteLength);
            var buf = new byte[t.ByteLength];
            f.ReadBytes(name, buf);
            Assert.Equal(expected[name], buf);
        }
        Assert.Equal(1, f.GetTensor("a.scalar").ElementCount);
        Assert.Equal(0, f.GetTensor("empty.middle").ElementCount);
        Assert.Empty(f.ReadAsFloat32("empty"));
    }

    [Fact]
    public void Float32_and_Int64_helpers_round_trip_values()
    {
        using var dir = new TempDir();
        float[] floats = [1.5f, -0f, float.MaxValue, float.Epsilon, float.NegativeInfinity, 3.25f];
        long[] longs = [long.MinValue, -1, 0, 1L << 40, long.MaxValue];
        string path = dir.File("h.safetensors");
        new SafetensorsWriter()
            .AddFloat32("f", [2, 3], floats)
            .AddInt64("i", [5], longs)
            .AddFloat32("s", [], new[] { 42f })
            .WriteTo(path);

        using var f = SafetensorsFile.Open(path);
        var back = f.ReadAsFloat32("f");
        Assert.Equal(floats.Select(BitConverter.SingleToInt32Bits), back.Select(BitConverter.SingleToInt32Bits));
        var lb = new byte[40];
        f.ReadBytes("i", lb);
        Assert.Equal(longs, MemoryMarshal.Cast<byte, long>(lb).ToArray());
        Assert.Equal([42f], f.ReadAsFloat32("s"));
        Assert.Equal([(float)long.MinValue, -1f, 0f, (float)(1L << 40), (float)long.MaxValue], f.ReadAsFloat32("i"));
    }

    [Fact]
    public void ReadAsFloat32_converts_every_dtype()
    {
        using var dir = new TempDir();
        string path = dir.File("conv.safetensors");
        static byte[] Le<T>(params T[] v) where T : struct => MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
        new SafetensorsWriter()
            .Add("f64", SafetensorsDType.F64, [2], Le(0.1, -2.5))
            .Add("f16", SafetensorsDType.F16, [2], Le((ushort)0x3C00, (ushort)0xC100))
            .Add("bf16", SafetensorsDType.BF16, [2], Le((ushort)0x3F80, (ushort)0x4049))
            .Add("e4m3", SafetensorsDType.F8_E4M3, [3], new byte[] { 0x7E, 0x01, 0xB8 })
            .Add("e5m2", SafetensorsDType.F8_E5M2, [2], new byte[] { 0x7B, 0xFC })
            .Add("i32", SafetensorsDType.I32, [2], Le(-7, 1 << 24))
            .Add("u16", SafetensorsDType.U16, [1], Le((ushort)65535))
            .Add("i8", SafetensorsDType.I8, [2], new byte[] { 0xFE, 5 })
            .Add("bool", SafetensorsDType.BOOL, [2], new byte[] { 1, 0 })
            .WriteTo(path);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal([0.1f, -2.5f], f.ReadAsFloat32("f64"));
        Assert.Equal([1f, -2.5f], f.ReadAsFloat32("f16"));
        Assert.Equal([1f, 3.140625f], f.ReadAsFloat32("bf16"));
        Assert.Equal([448f, MathF.ScaleB(1f, -9), -1f], f.ReadAsFloat32("e4m3"));
        Assert.Equal([57344f, float.NegativeInfinity], f.ReadAsFloat32("e5m2"));
        Assert.Equal([-7f, 16777216f], f.ReadAsFloat32("i32"));
        Assert.Equal([65535f], f.ReadAsFloat32("u16"));
        Assert.Equal([-2f, 5f], f.ReadAsFloat32("i8"));
        Assert.Equal([1f, 0f], f.ReadAsFloat32("bool"));
        Assert.Throws<ArgumentException>(() => f.ReadAsFloat32("f64", new float[3]));
        Assert.Throws<ArgumentException>(() => f.ReadBytes("f64", new byte[15]));
        Assert.Throws<KeyNotFoundException>(() => f.ReadAsFloat32("nope"));
    }

    [Fact]
    public void ReadAsFloat32_streams_tensors_larger_than_the_conversion_chunk()
    {
        using var dir = new TempDir();
        string path = dir.File("big.safetensors");
        const int n = SafetensorsFile.ConversionChunkBytes / 2 * 2 + 12345; // > two chunks of BF16, ragged end
        var bf = new ushort[n];
        var expected = new float[n];
        var rng = new Random(7);
        for (int i = 0; i < n; i++)
        {
            float v = (float)(rng.NextDouble() * 200 - 100);
            bf[i] = (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16);
            expected[i] = BitConverter.UInt32BitsToSingle((uint)bf[i] << 16);
        }
        var f32 = new float[SafetensorsFile.ConversionChunkBytes / 4 + 3];
        for (int i = 0; i < f32.Length; i++) f32[i] = i * 0.5f;
        new SafetensorsWriter()
            .Add("bf", SafetensorsDType.BF16, [n], MemoryMarshal.AsBytes(bf.AsSpan()).ToArray())
            .AddFloat32("f", [f32.Length], f32)
            .WriteTo(path);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(expected, f.ReadAsFloat32("bf"));
        Assert.Equal(f32, f.ReadAsFloat32("f"));

        // Partial reads by offset.
        var t = f.GetTensor("bf");
        var piece = new byte[6];
        f.ReadBytes(t, 2 * 1000, piece);
        Assert.Equal(MemoryMarshal.AsBytes(bf.AsSpan(1000, 3)).ToArray(), piece);
        Assert.Throws<ArgumentOutOfRangeException>(() => f.ReadBytes(t, t.ByteLength - 2, new byte[4]));
    }

    [Fact]
    public unsafe void ReadBytes_fills_native_memory_and_writer_streams_from_native_memory()
    {
        using var dir = new TempDir();
        string path = dir.File("native.safetensors");
        const int len = 4096;
        byte* src = (byte*)NativeMemory.Alloc(len);
        byte* dst = (byte*)NativeMemory.Alloc(len);
        try
        {
            for (int i = 0; i < len; i++) src[i] = (byte)(i * 31);
            IntPtr p = (IntPtr)src;
            new SafetensorsWriter()
                .Add("n", SafetensorsDType.F32, [1024], len, s => s.Write(new ReadOnlySpan<byte>((void*)p, len)))
                .WriteTo(path);
            using var f = SafetensorsFile.Open(path);
            f.ReadBytes("n", new Span<byte>(dst, len));
            Assert.True(new ReadOnlySpan<byte>(src, len).SequenceEqual(new ReadOnlySpan<byte>(dst, len)));
        }
        finally
        {
            NativeMemory.Free(src);
            NativeMemory.Free(dst);
        }
    }

    [Fact]
    public void Writer_rejects_bad_entries_up_front()
    {
        var w = new SafetensorsWriter().AddFloat32("a", [2], new float[2]);
        Assert.Throws<ArgumentException>(() => w.AddFloat32("a", [2], new float[2]));               // duplicate
        Assert.Throws<ArgumentException>(() => w.AddFloat32("__metadata__", [1], new float[1]));    // reserved
        Assert.Throws<ArgumentException>(() => w.AddFloat32("b", [3], new float[2]));               // length mismatch
        Assert.Throws<ArgumentException>(() => w.Add("c", SafetensorsDType.F32, [-1], 0, _ => { })); // negative dim
        Assert.Equal(1, w.Count);
    }

    [Fact]
    public void Empty_file_with_no_tensors_round_trips()
    {
        using var dir = new TempDir();
        string path = dir.File("empty.safetensors");
        new SafetensorsWriter().WriteTo(path);
        using var f = SafetensorsFile.Open(path);
        Assert.Empty(f.Tensors);
        Assert.Empty(f.Metadata);
        Assert.Equal("{}      ", Encoding.UTF8.GetString(File.ReadAllBytes(path), 8, 8));
    }

    [Fact]
    public void Disposed_file_refuses_reads()
    {
        using var dir = new TempDir();
        string path = dir.File("d.safetensors");
        new SafetensorsWriter().AddFloat32("a", [1], new[] { 1f }).WriteTo(path);
        var f = SafetensorsFile.Open(path);
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.ReadAsFloat32("a"));
    }
}
