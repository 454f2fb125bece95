using System.Buffers.Binary;
using System.Text;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

public class SafetensorsValidationTests
{
    private static CheckpointFormatException AssertInvalid(byte[] file, params string[] fragments)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.safetensors");
        File.WriteAllBytes(path, file);
        var ex = Assert.Throws<CheckpointFormatException>(() => { using var _ = SafetensorsFile.Open(path); });
        Assert.Contains(path, ex.Message);
        Assert.Equal(path, ex.FilePath);
        foreach (var fragment in fragments) Assert.Contains(fragment, ex.Message);
        return ex;
    }

    private static string T(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    [Fact]
    public void Sanity_a_hand_built_file_is_valid()
    {
        using var dir = new TempDir();
        string path = dir.File("ok.safetensors");
        File.WriteAllBytes(path, Raw.Build("{" + T("t", "F32", "[2]", 0, 8) + ",\"__metadata__\":null,\"x\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8],\"extra\":true}}", new byte[8]));
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(2, f.Tensors.Count);
        Assert.Empty(f.Metadata);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void File_shorter_than_8_bytes(int length) => AssertInvalid(new byte[length], $"{length} bytes", "8-byte");

    [Fact]
    public void Header_length_zero() => AssertInvalid(Raw.Build("", new byte[16]), "header length is 0");

    [Fact]
    public void Header_length_larger_than_file() =>
        AssertInvalid(Raw.Build("{}", null, headerLengthOverride: 1000), "1000", "only 2 bytes follow", "truncated");

    [Fact]
    public void Header_length_of_2_to_the_64_minus_1() =>
        AssertInvalid(Raw.Build("{}", null, headerLengthOverride: ulong.MaxValue), ulong.MaxValue.ToString());

    [Fact]
    public void Absurdly_large_header_length_is_refused_before_reading_it()
    {
        using var dir = new TempDir();
        string path = dir.File("huge.safetensors");
        using (var fs = new FileStream(path, FileMode.CreateNew))
        {
            fs.SetLength(SafetensorsFile.MaxHeaderLength + 100); // sparse
            var prefix = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, SafetensorsFile.MaxHeaderLength + 1);
            fs.Write(prefix);
        }
        var ex = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("100000001", ex.Message);
        Assert.Contains("100000000-byte limit", ex.Message);
    }

    [Fact]
    public void Header_not_utf8() =>
        AssertInvalid(Raw.Build([.. "{\"a"u8, 0xFF, .. "\":1}"u8], []), "not valid UTF-8", "0xFF", "header offset 3");

    [Theory]
    [InlineData("{\"a\": ")]
    [InlineData("{'a': 1}")]
    [InlineData("        ")]
    [InlineData("{}}")]
    public void Header_not_json(string header) => AssertInvalid(Raw.Build(header), "not valid JSON");

    [Theory]
    [InlineData("[1,2]", "array")]
    [InlineData("\"s\"", "string")]
    [InlineData("null", "null")]
    [InlineData("42", "number")]
    public void Header_not_an_object(string header, string kind) => AssertInvalid(Raw.Build(header), "must be a JSON object", kind);

    [Fact]
    public void Entry_not_an_object() => AssertInvalid(Raw.Build("{\"t\":[1]}"), "'t'", "array");

    [Theory]
    [InlineData("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\"")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "\"shape\"")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", "\"data_offsets\"")]
    public void Entry_missing_a_field(string header, string field)
    {
        var ex = AssertInvalid(Raw.Build(header, new byte[4]), "'t'", "missing", field);
        Assert.Equal("t", ex.TensorName);
    }

    [Theory]
    [InlineData("{\"t\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\" of JSON type number")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", "\"shape\" of JSON type string")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "shape element 0 = 1.5")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}", "shape element 0 = null")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", "not an integer")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", "exactly two")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":0}}}", "exactly two")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", "begin = \"0\"")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", "begin = -4")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", "end = 4.0")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\" twice")]
    public void Entry_with_wrong_json_types(string header, string fragment) => AssertInvalid(Raw.Build(header, new byte[4]), "'t'", fragment);

    [Fact]
    public void Unknown_dtype_lists_the_known_ones() =>
        AssertInvalid(Raw.Build("{" + T("w", "F31", "[1]", 0, 4) + "}", new byte[4]), "'w'", "unknown dtype \"F31\"", "F8_E4M3", "BF16", "BOOL");

    [Fact]
    public void Lowercase_dtype_is_unknown() =>
        AssertInvalid(Raw.Build("{" + T("w", "f32", "[1]", 0, 4) + "}", new byte[4]), "unknown dtype \"f32\"");

    [Fact]
    public void Negative_dimension() =>
        AssertInvalid(Raw.Build("{" + T("w", "F32", "[2,-1]", 0, 4) + "}", new byte[4]), "'w'", "negative dimension -1", "index 1");

    [Fact]
    public void Shape_times_element_size_differs_from_byte_length() =>
        AssertInvalid(Raw.Build("{" + T("w", "F32", "[2,3]", 0, 20) + "}", new byte[20]), "'w'", "24 bytes", "span 20 bytes", "[2, 3]");

    [Fact]
    public void Element_count_overflow() =>
        AssertInvalid(Raw.Build("{" + T("w", "F32", "[4611686018427387904,4]", 0, 4) + "}", new byte[4]), "'w'", "overflow");

    [Fact]
    public void Byte_size_overflow() =>
        AssertInvalid(Raw.Build("{" + T("w", "F64", "[4611686018427387904]", 0, 4) + "}", new byte[4]), "'w'", "overflow");

    [Fact]
    public void Offsets_out_of_order() =>
        AssertInvalid(Raw.Build("{" + T("w", "F32", "[1]", 8, 4) + "}", new byte[8]), "'w'", "[8, 4]", "out of order");

    [Fact]
    public void Offsets_outside_the_data_buffer() =>
        AssertInvalid(Raw.Build("{" + T("w", "F32", "[4]", 0, 16) + "}", new byte[8]), "'w'", "[0, 16]", "outside the data buffer", "8 bytes long");

    [Fact]
    public void Overlapping_tensors_name_both() =>
        AssertInvalid(Raw.Build("{" + T("b", "F32", "[2]", 4, 12) + "," + T("a", "F32", "[2]", 0, 8) + "}", new byte[12]), "'a'", "'b'", "overlap");

    [Fact]
    public void Identical_ranges_overlap() =>
        AssertInvalid(Raw.Build("{" + T("a", "F32", "[2]", 0, 8) + "," + T("b", "I32", "[2]", 0, 8) + "}", new byte[8]), "'a'", "'b'", "overlap");

    [Fact]
    public void Empty_tensor_inside_another_is_refused_like_the_reference() =>
        AssertInvalid(Raw.Build("{" + T("a", "F32", "[2]", 0, 8) + "," + T("e", "F32", "[0]", 4, 4) + "}", new byte[8]), "'a'", "'e'", "overlap");

    [Fact]
    public void Empty_tensors_at_boundaries_are_fine()
    {
        using var dir = new TempDir();
        string path = dir.File("ok.safetensors");
        File.WriteAllBytes(path, Raw.Build("{" + T("e0", "F32", "[0]", 0, 0) + "," + T("a", "F32", "[2]", 0, 8) + "," + T("e8", "F32", "[0,5]", 8, 8) + "}", new byte[8]));
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(3, f.Tensors.Count);
    }

    [Fact]
    public void Duplicate_tensor_names() =>
        AssertInvalid(Raw.Build("{" + T("a", "F32", "[1]", 0, 4) + "," + T("a", "F32", "[1]", 4, 8) + "}", new byte[8]), "'a'", "twice");

    [Fact]
    public void Duplicate_metadata_sections() =>
        AssertInvalid(Raw.Build("{\"__metadata__\":{},\"__metadata__\":{}}"), "\"__metadata__\" twice");

    [Fact]
    public void Duplicate_metadata_keys() =>
        AssertInvalid(Raw.Build("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"), "'k'", "twice");

    [Theory]
    [InlineData("{\"k\":1}", "'k'", "number")]
    [InlineData("{\"k\":null}", "'k'", "null")]
    [InlineData("{\"k\":{\"x\":\"y\"}}", "'k'", "object")]
    public void Non_string_metadata_values(string meta, string key, string kind) =>
        AssertInvalid(Raw.Build("{\"__metadata__\":" + meta + "}"), key, kind, "must be strings");

    [Fact]
    public void Metadata_not_an_object() =>
        AssertInvalid(Raw.Build("{\"__metadata__\":[\"a\"]}"), "\"__metadata__\" must be a JSON object");

    [Fact]
    public void Gap_in_the_data_buffer() =>
        AssertInvalid(Raw.Build("{" + T("a", "F32", "[1]", 0, 4) + "," + T("b", "F32", "[1]", 8, 12) + "}", new byte[12]), "[4, 8)", "'b'", "fully indexed");

    [Fact]
    public void Gap_at_the_start_of_the_data_buffer() =>
        AssertInvalid(Raw.Build("{" + T("a", "F32", "[1]", 4, 8) + "}", new byte[8]), "[0, 4)", "'a'");

    [Fact]
    public void Trailing_bytes_after_the_last_tensor() =>
        AssertInvalid(Raw.Build("{" + T("a", "F32", "[1]", 0, 4) + "}", new byte[8]), "cover only its first 4 bytes", "4 trailing bytes");

    [Fact]
    public void File_truncated_after_open_gives_a_format_error_on_read()
    {
        using var dir = new TempDir();
        string path = dir.File("t.safetensors");
        new SafetensorsWriter().AddFloat32("a", [1024], new float[1024]).WriteTo(path);
        using var f = SafetensorsFile.Open(path);
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) fs.SetLength(f.DataStart + 100);
        var ex = Assert.Throws<CheckpointFormatException>(() => f.ReadAsFloat32("a"));
        Assert.Contains("'a'", ex.Message);
        Assert.Contains("unexpected end of file", ex.Message);
    }

    [Fact]
    public void Problem_text_is_prefixed_with_the_file()
    {
        var ex = new CheckpointFormatException("/x/y.safetensors", "bad", "t");
        Assert.Equal("Invalid safetensors file '/x/y.safetensors': bad", ex.Message);
        Assert.Equal("t", ex.TensorName);
    }
}
