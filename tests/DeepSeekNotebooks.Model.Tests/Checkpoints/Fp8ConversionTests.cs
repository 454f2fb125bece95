using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

public class Fp8ConversionTests
{
    // Hand-computed from the OCP FP8 spec: E4M3FN = s.eeee.mmm, bias 7, no inf, S.1111.111 = NaN.
    [Theory]
    [InlineData(0x00, 0.0)]
    [InlineData(0x01, 0.001953125)]        // 2^-9, smallest subnormal (1/8 * 2^-6)
    [InlineData(0x07, 0.013671875)]        // 7/8 * 2^-6
    [InlineData(0x08, 0.015625)]           // 2^-6, smallest normal
    [InlineData(0x38, 1.0)]
    [InlineData(0x3C, 1.5)]
    [InlineData(0x40, 2.0)]
    [InlineData(0x77, 240.0)]              // 1.875 * 2^7
    [InlineData(0x78, 256.0)]              // e = 15, m = 0 is a normal number in E4M3FN
    [InlineData(0x7E, 448.0)]              // max finite
    [InlineData(0xB8, -1.0)]
    [InlineData(0xFE, -448.0)]
    [InlineData(0x81, -0.001953125)]
    public void E4M3_matches_hand_computed_values(int bits, double expected)
    {
        Assert.Equal((float)expected, Fp8.E4M3ToSingle((byte)bits));
        Span<float> one = stackalloc float[1];
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.F8_E4M3, [(byte)bits], one);
        Assert.Equal((float)expected, one[0]);
    }

    [Fact]
    public void E4M3_special_values()
    {
        Assert.True(float.IsNaN(Fp8.E4M3ToSingle(0x7F)));
        Assert.True(float.IsNaN(Fp8.E4M3ToSingle(0xFF)));
        Assert.Equal(2, Enumerable.Range(0, 256).Count(b => float.IsNaN(Fp8.E4M3ToSingle((byte)b))));
        Assert.DoesNotContain(Enumerable.Range(0, 256), b => float.IsInfinity(Fp8.E4M3ToSingle((byte)b)));
        Assert.True(float.IsNegative(Fp8.E4M3ToSingle(0x80)) && Fp8.E4M3ToSingle(0x80) == 0f); // -0
        // Sign symmetry and strict monotonicity of the positive half (0x00..0x7E).
        for (int b = 0; b < 0x7F; b++)
        {
            Assert.Equal(-Fp8.E4M3ToSingle((byte)b), Fp8.E4M3ToSingle((byte)(b | 0x80)));
            if (b > 0) Assert.True(Fp8.E4M3ToSingle((byte)b) > Fp8.E4M3ToSingle((byte)(b - 1)));
        }
    }

    // E5M2 = s.eeeee.mm, bias 15, IEEE-like.
    [Theory]
    [InlineData(0x00, 0.0)]
    [InlineData(0x01, 1.52587890625e-05)]  // 2^-16
    [InlineData(0x03, 4.57763671875e-05)]  // 3 * 2^-16
    [InlineData(0x04, 6.103515625e-05)]    // 2^-14, smallest normal
    [InlineData(0x3C, 1.0)]
    [InlineData(0x3E, 1.5)]
    [InlineData(0x40, 2.0)]
    [InlineData(0x7B, 57344.0)]            // max finite: 1.75 * 2^15
    [InlineData(0xBC, -1.0)]
    [InlineData(0xFB, -57344.0)]
    public void E5M2_matches_hand_computed_values(int bits, double expected)
    {
        Assert.Equal((float)expected, Fp8.E5M2ToSingle((byte)bits));
    }

    [Fact]
    public void E5M2_special_values_and_agreement_with_the_upper_byte_of_binary16()
    {
        Assert.Equal(float.PositiveInfinity, Fp8.E5M2ToSingle(0x7C));
        Assert.Equal(float.NegativeInfinity, Fp8.E5M2ToSingle(0xFC));
        foreach (int b in new[] { 0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF }) Assert.True(float.IsNaN(Fp8.E5M2ToSingle((byte)b)));
        // E5M2 is exactly the top byte of an IEEE binary16: an independent oracle for all 256 codes.
        for (int b = 0; b < 256; b++)
        {
            float viaHalf = (float)BitConverter.UInt16BitsToHalf((ushort)(b << 8));
            float table = Fp8.E5M2ToSingle((byte)b);
            if (float.IsNaN(viaHalf)) Assert.True(float.IsNaN(table), $"0x{b:X2}");
            else Assert.Equal(BitConverter.SingleToUInt32Bits(viaHalf), BitConverter.SingleToUInt32Bits(table));
        }
    }

    [Theory]
    [InlineData(0x3F80, 1.0)]
    [InlineData(0xC000, -2.0)]
    [InlineData(0x4049, 3.140625)]
    [InlineData(0x0001, 9.183549615799121e-41)] // 2^-133, smallest subnormal
    [InlineData(0x7F7F, 3.3895313892515355e38)]  // max finite
    public void BF16_is_the_upper_half_of_binary32(int bits, double expected)
    {
        Assert.Equal((float)expected, Fp8.BFloat16ToSingle((ushort)bits));
        Span<float> one = stackalloc float[1];
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.BF16, [(byte)bits, (byte)(bits >> 8)], one);
        Assert.Equal((float)expected, one[0]);
    }

    [Fact]
    public void BF16_and_F16_special_values()
    {
        Assert.Equal(float.PositiveInfinity, Fp8.BFloat16ToSingle(0x7F80));
        Assert.True(float.IsNaN(Fp8.BFloat16ToSingle(0x7FC0)));
        Span<float> d = stackalloc float[4];
        // F16 little-endian: 1.0 = 0x3C00, 65504 = 0x7BFF, 2^-24 = 0x0001, -inf = 0xFC00.
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.F16, [0x00, 0x3C, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0xFC], d);
        Assert.Equal([1f, 65504f, MathF.ScaleB(1f, -24), float.NegativeInfinity], d.ToArray());
    }

    [Fact]
    public void Integer_and_bool_conversions()
    {
        Span<float> d = stackalloc float[3];
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.I8, [0x80, 0xFF, 0x7F], d);
        Assert.Equal([-128f, -1f, 127f], d.ToArray());
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.U8, [0x80, 0xFF, 0x7F], d);
        Assert.Equal([128f, 255f, 127f], d.ToArray());
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.BOOL, [0, 1, 7], d);
        Assert.Equal([0f, 1f, 1f], d.ToArray());
        Span<float> two = stackalloc float[2];
        SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.I16, [0x00, 0x80, 0x34, 0x12], two);
        Assert.Equal([-32768f, 0x1234], two.ToArray());
        Assert.Throws<ArgumentException>(() => SafetensorsDTypes.ConvertToFloat32(SafetensorsDType.F32, new byte[7], new float[2]));
    }

    [Fact]
    public void Dtype_names_and_sizes()
    {
        Assert.True(SafetensorsDTypes.TryParse("F8_E4M3", out var e4)); Assert.Equal(SafetensorsDType.F8_E4M3, e4);
        Assert.True(SafetensorsDTypes.TryParse("BF16", out var bf)); Assert.Equal(SafetensorsDType.BF16, bf);
        Assert.False(SafetensorsDTypes.TryParse("f32", out _));
        Assert.False(SafetensorsDTypes.TryParse("float32", out _));
        Assert.Equal(1, SafetensorsDType.F8_E5M2.ElementSize());
        Assert.Equal(2, SafetensorsDType.BF16.ElementSize());
        Assert.Equal(4, SafetensorsDType.I32.ElementSize());
        Assert.Equal(8, SafetensorsDType.F64.ElementSize());
        Assert.Equal("F8_E4M3", SafetensorsDType.F8_E4M3.ToFileString());
        foreach (var name in new[] { "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2" })
            Assert.Contains(name, SafetensorsDTypes.KnownNames);
    }
}
