using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>
/// Element types a safetensors file can declare in a tensor's <c>"dtype"</c> field
/// (huggingface/safetensors README, "Format"; the Rust crate's <c>Dtype</c> enum).
/// The enum member name is exactly the spelling used in files (e.g. <c>"F8_E4M3"</c>).
/// Sub-byte types (F4, F6_*) are not supported.
/// </summary>
public enum SafetensorsDType
{
    /// <summary>Boolean, one byte per element (0 = false, anything else = true).</summary>
    BOOL,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>8-bit float, OCP FP8 E4M3FN: bias 7, no infinities, S.1111.111 is NaN, max ±448.</summary>
    F8_E4M3,
    /// <summary>8-bit float, OCP FP8 E5M2: bias 15, IEEE-like infinities and NaNs, max ±57344.</summary>
    F8_E5M2,
    /// <summary>Signed 16-bit integer, little-endian.</summary>
    I16,
    /// <summary>Unsigned 16-bit integer, little-endian.</summary>
    U16,
    /// <summary>IEEE 754 binary16, little-endian.</summary>
    F16,
    /// <summary>bfloat16 (upper half of an IEEE binary32), little-endian.</summary>
    BF16,
    /// <summary>Signed 32-bit integer, little-endian.</summary>
    I32,
    /// <summary>Unsigned 32-bit integer, little-endian.</summary>
    U32,
    /// <summary>IEEE 754 binary32, little-endian.</summary>
    F32,
    /// <summary>Signed 64-bit integer, little-endian.</summary>
    I64,
    /// <summary>Unsigned 64-bit integer, little-endian.</summary>
    U64,
    /// <summary>IEEE 754 binary64, little-endian.</summary>
    F64,
    /// <summary>8-bit exponent-only float E8M0 (OCP MX scale, torch <c>float8_e8m0fnu</c>): 2^(b − 127), 0xFF is NaN (DeepSeek-V4's <c>.scale</c> tensors).</summary>
    F8_E8M0,
}

/// <summary>Helpers for <see cref="SafetensorsDType"/>: element sizes, file spellings and conversion to float32.</summary>
public static class SafetensorsDTypes
{
    private static readonly SafetensorsDType[] All = Enum.GetValues<SafetensorsDType>();

    /// <summary>Every supported dtype spelling, as written in safetensors headers (e.g. "F32", "BF16", "F8_E4M3").</summary>
    public static IReadOnlyList<string> KnownNames { get; } = Array.AsReadOnly(All.Select(d => d.ToString()).ToArray());

    /// <summary>Size in bytes of one element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.BOOL or SafetensorsDType.U8 or SafetensorsDType.I8
            or SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 or SafetensorsDType.F8_E8M0 => 1,
        SafetensorsDType.I16 or SafetensorsDType.U16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I32 or SafetensorsDType.U32 or SafetensorsDType.F32 => 4,
        SafetensorsDType.I64 or SafetensorsDType.U64 or SafetensorsDType.F64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype."),
    };

    /// <summary>The spelling of <paramref name="dtype"/> in a safetensors header (e.g. "F8_E4M3").</summary>
    public static string ToFileString(this SafetensorsDType dtype)
    {
        if (!Enum.IsDefined(dtype)) throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype.");
        return dtype.ToString();
    }

    /// <summary>Parses a header dtype spelling (case-sensitive, exactly as in files). Returns false for unknown spellings.</summary>
    public static bool TryParse(string? text, out SafetensorsDType dtype)
    {
        foreach (var d in All)
        {
            if (string.Equals(d.ToString(), text, StringComparison.Ordinal)) { dtype = d; return true; }
        }
        dtype = default;
        return false;
    }

    /// <summary>
    /// Converts little-endian elements of <paramref name="dtype"/> in <paramref name="source"/> to float32.
    /// <paramref name="source"/> must hold exactly <c>destination.Length * ElementSize(dtype)</c> bytes.
    /// Floating conversions are exact where float32 can represent the value (all of F16, BF16, FP8);
    /// F64 and 32/64-bit integers round to nearest. BOOL converts to 0 or 1.
    /// </summary>
    public static void ConvertToFloat32(SafetensorsDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        int size = dtype.ElementSize();
        if ((long)destination.Length * size != source.Length)
            throw new ArgumentException($"Source holds {source.Length} bytes but {destination.Length} {dtype} elements need {(long)destination.Length * size} bytes.", nameof(source));
        switch (dtype)
        {
            case SafetensorsDType.F32:
                if (BitConverter.IsLittleEndian) source.CopyTo(MemoryMarshal.AsBytes(destination));
                else for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(4 * i)..]);
                break;
            case SafetensorsDType.F64:
                for (int i = 0; i < destination.Length; i++) destination[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(source[(8 * i)..]);
                break;
            case SafetensorsDType.F16:
                for (int i = 0; i < destination.Length; i++) destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(source[(2 * i)..]);
                break;
            case SafetensorsDType.BF16:
                for (int i = 0; i < destination.Length; i++) destination[i] = Fp8.BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]));
                break;
            case SafetensorsDType.F8_E4M3:
            {
                var table = Fp8.E4M3Table;
                for (int i = 0; i < destination.Length; i++) destination[i] = table[source[i]];
                break;
            }
            case SafetensorsDType.F8_E5M2:
            {
                var table = Fp8.E5M2Table;
                for (int i = 0; i < destination.Length; i++) destination[i] = table[source[i]];
                break;
            }
            case SafetensorsDType.F8_E8M0:
            {
                var table = Fp8.E8M0Table;
                for (int i = 0; i < destination.Length; i++) destination[i] = table[source[i]];
                break;
            }
            case SafetensorsDType.I64:
                for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadInt64LittleEndian(source[(8 * i)..]);
                break;
            case SafetensorsDType.U64:
                for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadUInt64LittleEndian(source[(8 * i)..]);
                break;
            case SafetensorsDType.I32:
                for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadInt32LittleEndian(source[(4 * i)..]);
                break;
            case SafetensorsDType.U32:
                for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadUInt32LittleEndian(source[(4 * i)..]);
                break;
            case SafetensorsDType.I16:
                for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadInt16LittleEndian(source[(2 * i)..]);
                break;
            case SafetensorsDType.U16:
                for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]);
                break;
            case SafetensorsDType.I8:
                for (int i = 0; i < destination.Length; i++) destination[i] = (sbyte)source[i];
                break;
            case SafetensorsDType.U8:
                for (int i = 0; i < destination.Length; i++) destination[i] = source[i];
                break;
            case SafetensorsDType.BOOL:
                for (int i = 0; i < destination.Length; i++) destination[i] = source[i] != 0 ? 1f : 0f;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype.");
        }
    }
}

/// <summary>Exact table-based decoders for the 8-bit and bfloat16 formats.</summary>
internal static class Fp8
{
    /// <summary>All 256 OCP FP8 E4M3FN values (index = bit pattern).</summary>
    internal static readonly float[] E4M3Table = BuildE4M3();

    /// <summary>All 256 OCP FP8 E5M2 values (index = bit pattern).</summary>
    internal static readonly float[] E5M2Table = BuildE5M2();

    /// <summary>All 256 E8M0 values: 2^(b − 127) (b = 0: 2^−127, a float32 subnormal), 0xFF NaN.</summary>
    internal static readonly float[] E8M0Table = Enumerable.Range(0, 256).Select(b => b == 255 ? float.NaN : (float)Math.ScaleB(1.0, b - 127)).ToArray();

    /// <summary>The 16 FP4 e2m1 values by nibble (bit 3 the sign), DeepSeek's <c>FP4_TABLE</c> (inference/convert.py).</summary>
    internal static readonly float[] E2M1Table = { 0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f };

    internal static float BFloat16ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    internal static float E4M3ToSingle(byte bits) => E4M3Table[bits];

    internal static float E5M2ToSingle(byte bits) => E5M2Table[bits];

    // E4M3FN: s.eeee.mmm, bias 7. e == 0: subnormal m/8 * 2^(1-7). e == 15 && m == 7: NaN (no infinities).
    private static float[] BuildE4M3()
    {
        var t = new float[256];
        for (int b = 0; b < 256; b++)
        {
            int sign = b >> 7, e = (b >> 3) & 0xF, m = b & 0x7;
            double v;
            if (e == 0xF && m == 0x7) v = double.NaN;
            else if (e == 0) v = Math.ScaleB(m, 1 - 7 - 3);
            else v = Math.ScaleB(8 + m, e - 7 - 3);
            t[b] = (float)(sign == 1 ? -v : v);
        }
        return t;
    }

    // E5M2: s.eeeee.mm, bias 15. e == 0: subnormal m/4 * 2^(1-15). e == 31: m == 0 ? ±inf : NaN.
    private static float[] BuildE5M2()
    {
        var t = new float[256];
        for (int b = 0; b < 256; b++)
        {
            int sign = b >> 7, e = (b >> 2) & 0x1F, m = b & 0x3;
            double v;
            if (e == 0x1F) v = m == 0 ? double.PositiveInfinity : double.NaN;
            else if (e == 0) v = Math.ScaleB(m, 1 - 15 - 2);
            else v = Math.ScaleB(4 + m, e - 15 - 2);
            t[b] = (float)(sign == 1 ? -v : v);
        }
        return t;
    }
}
