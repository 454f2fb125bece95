using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tests.Fidelity;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>
/// DeepSeek-V4 checkpoints store routed experts as int8 tensors of packed FP4 (e2m1) pairs with one ue8m0
/// (<c>float8_e8m0fnu</c>, safetensors <c>F8_E8M0</c>) scale per 32 inputs, and other projections as FP8 e4m3 with ue8m0
/// scales per 128×128 block. The golden fixture's float weights are re-encoded here (a brute-force nearest-code
/// encoder, independent of the loader) and the loaded parameters must equal code value × scale exactly.
/// </summary>
public class V4QuantisedWeightTests
{
    private static readonly float[] E2m1 = { 0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f };

    private static int NearestCode(float v, float[] table, int count)
    {
        int best = 0;
        for (int c = 1; c < count; c++)
            if (!float.IsNaN(table[c]) && Math.Abs(table[c] - v) < Math.Abs(table[best] - v)) best = c;
        return best;
    }

    private static byte Ue8m0(float scale) => (byte)(Math.ILogB(scale) + 127);   // scale is a power of two

    /// <summary>FP4 packing of w [out, in]: per row and 32 inputs s = 2^ceil(log2(amax / 6)); returns bytes, scale bytes and the dequantised values.</summary>
    private static (byte[] Packed, byte[] Scales, float[] Dequantised) EncodeFp4(float[] w, long rows, long cols)
    {
        var packed = new byte[rows * cols / 2];
        var scales = new byte[rows * cols / 32];
        var deq = new float[w.Length];
        for (long r = 0; r < rows; r++)
        for (long b = 0; b < cols / 32; b++)
        {
            float amax = 0;
            for (long i = 0; i < 32; i++) amax = Math.Max(amax, Math.Abs(w[r * cols + b * 32 + i]));
            float s = MathF.Pow(2, MathF.Ceiling(MathF.Log2(Math.Max(amax, 1e-30f) / 6)));
            scales[r * (cols / 32) + b] = Ue8m0(s);
            for (long i = 0; i < 32; i++)
            {
                long k = r * cols + b * 32 + i;
                int code = NearestCode(w[k] / s, E2m1, 16);
                deq[k] = E2m1[code] * s;
                packed[k / 2] |= (byte)(k % 2 == 0 ? code : code << 4);   // low nibble = even input
            }
        }
        return (packed, scales, deq);
    }

    /// <summary>FP8 e4m3 of w [out, in] with one power-of-two scale per 128×128 block (ue8m0).</summary>
    private static (byte[] Codes, byte[] Scales, float[] Dequantised) EncodeFp8(float[] w, long rows, long cols)
    {
        var table = Enumerable.Range(0, 256).Select(b => SafetensorsDTypesFloat((byte)b)).ToArray();
        long br = (rows + 127) / 128, bc = (cols + 127) / 128;
        var codes = new byte[w.Length];
        var scales = new byte[br * bc];
        var deq = new float[w.Length];
        for (long i = 0; i < br; i++)
        for (long j = 0; j < bc; j++)
        {
            float amax = 0;
            for (long r = i * 128; r < Math.Min(rows, i * 128 + 128); r++)
            for (long c = j * 128; c < Math.Min(cols, j * 128 + 128); c++) amax = Math.Max(amax, Math.Abs(w[r * cols + c]));
            float s = MathF.Pow(2, MathF.Ceiling(MathF.Log2(amax / 448)));
            scales[i * bc + j] = Ue8m0(s);
            for (long r = i * 128; r < Math.Min(rows, i * 128 + 128); r++)
            for (long c = j * 128; c < Math.Min(cols, j * 128 + 128); c++)
            {
                int code = NearestCode(w[r * cols + c] / s, table, 256);
                codes[r * cols + c] = (byte)code;
                deq[r * cols + c] = table[code] * s;
            }
        }
        return (codes, scales, deq);
    }

    private static float SafetensorsDTypesFloat(byte b)
    {
        Span<float> one = stackalloc float[1];
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.F8_E4M3, new[] { b }, one);
        return one[0];
    }

    [Fact]
    public void E8m0_DecodesPowersOfTwo_AndNaN()
    {
        var bytes = new byte[] { 127, 128, 120, 0, 254, 255 };
        var f = new float[bytes.Length];
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.F8_E8M0, bytes, f);
        Assert.Equal(new[] { 1f, 2f, 1f / 128, (float)Math.ScaleB(1, -127), (float)Math.ScaleB(1, 127) }, f[..5]);
        Assert.True(float.IsNaN(f[5]));
        Assert.Equal(1, SafetensorsDType.F8_E8M0.ElementSize());
        Assert.Contains("F8_E8M0", SafetensorsDTypes.KnownNames);
    }

    [Fact]
    public void PackedFp4Experts_AndFp8Projections_WithUe8m0Scales_DequantiseExactly()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"v4-fp4-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var expected = new Dictionary<string, float[]>();
            var originals = new Dictionary<string, float[]>();
            var writer = new SafetensorsWriter();
            using (var src = SafetensorsFile.Open(Path.Combine(V4KernelTests.V4Dir, "public.weights.safetensors")))
            {
                foreach (var t in src.Tensors)
                {
                    var shape = t.ToShapeArray();
                    if (t.DType == SafetensorsDType.I32)
                    {
                        var raw = new byte[t.ByteLength];
                        src.ReadBytes(t.Name, raw);
                        writer.Add(t.Name, SafetensorsDType.I32, shape, raw);
                        continue;
                    }
                    var w = src.ReadAsFloat32(t.Name);
                    // FP4 blocks of 32 inputs: the fixture's w1/w3 (64 inputs); its w2 has 16 and stays float.
                    bool expert = t.Name.Contains(".ffn.experts.", StringComparison.Ordinal) && shape[1] % 32 == 0;
                    originals[t.Name] = w;
                    if (expert)
                    {
                        var (packed, scales, deq) = EncodeFp4(w, shape[0], shape[1]);
                        writer.Add(t.Name, SafetensorsDType.I8, new[] { shape[0], shape[1] / 2 }, packed);
                        writer.Add(t.Name[..^".weight".Length] + ".scale", SafetensorsDType.F8_E8M0, new[] { shape[0], shape[1] / 32 }, scales);
                        expected[t.Name] = deq;
                    }
                    else if (t.Name is "layers.1.attn.wq_b.weight" or "layers.2.attn.wo_a.weight")
                    {
                        var (codes, scales, deq) = EncodeFp8(w, shape[0], shape[1]);
                        writer.Add(t.Name, SafetensorsDType.F8_E4M3, shape, codes);
                        writer.Add(t.Name[..^".weight".Length] + ".scale", SafetensorsDType.F8_E8M0, new[] { (shape[0] + 127) / 128, (shape[1] + 127) / 128 }, scales);
                        expected[t.Name] = deq;
                    }
                    else writer.AddFloat32(t.Name, shape, w);
                }
            }
            writer.WriteTo(Path.Combine(dir, "model0-mp1.safetensors"));
            File.Copy(Path.Combine(V4KernelTests.V4Dir, "public.model_args.json"), Path.Combine(dir, "config.json"));

            using var ckpt = Checkpoint.Load(dir);
            var parameters = ckpt.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            Assert.Equal(8 * 4 * 2 + 2, expected.Count);
            foreach (var (name, values) in expected)
                Assert.True(parameters[name].data<float>().ToArray().SequenceEqual(values), $"{name} is not code × scale");
            // Real rounding happened (FP4 keeps 15 values per block of 32), and the model still runs.
            var w1 = "layers.1.ffn.experts.3.w1.weight";
            Assert.True(expected[w1].Zip(originals[w1]).Count(p => p.First != p.Second) > expected[w1].Length / 2);
            using var scope = NewDisposeScope();
            var logits = ckpt.Model.forward(V4KernelTests.Read("public.outputs.safetensors", "input_ids"));
            Assert.True(logits.isfinite().all().item<bool>());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void PackedFp4_WithoutOrWithAWrongScale_FailsNamingTheTensor()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"v4-fp4bad-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var (scaleCols, message) in new[] { (-1L, "has no scale"), (3L, "needs [16, 2]") })
            {
                var writer = new SafetensorsWriter();
                using (var src = SafetensorsFile.Open(Path.Combine(V4KernelTests.V4Dir, "public.weights.safetensors")))
                    foreach (var t in src.Tensors)
                    {
                        var shape = t.ToShapeArray();
                        if (t.DType == SafetensorsDType.I32)
                        {
                            var raw = new byte[t.ByteLength];
                            src.ReadBytes(t.Name, raw);
                            writer.Add(t.Name, SafetensorsDType.I32, shape, raw);
                        }
                        else if (t.Name == "layers.1.ffn.experts.0.w1.weight")
                        {
                            writer.Add(t.Name, SafetensorsDType.I8, new[] { shape[0], shape[1] / 2 }, new byte[shape[0] * shape[1] / 2]);
                            if (scaleCols > 0)
                                writer.Add("layers.1.ffn.experts.0.w1.scale", SafetensorsDType.F8_E8M0, new[] { shape[0], scaleCols }, new byte[shape[0] * scaleCols]);
                        }
                        else writer.AddFloat32(t.Name, shape, src.ReadAsFloat32(t.Name));
                    }
                writer.WriteTo(Path.Combine(dir, "model0-mp1.safetensors"));
                File.Copy(Path.Combine(V4KernelTests.V4Dir, "public.model_args.json"), Path.Combine(dir, "config.json"), overwrite: true);
                var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir));
                Assert.Contains("layers.1.ffn.experts.0.w1", e.Message);
                Assert.Contains(message, e.Message);
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}
