using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using DeepSeekNotebooks.Model.Checkpoints;
using Xunit.Abstractions;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>
/// Seeded mutations of a small valid file: <see cref="SafetensorsFile.Open"/> plus reading every tensor must either
/// succeed or throw <see cref="CheckpointFormatException"/> — never another exception type, never hang.
/// </summary>
public class SafetensorsFuzzTests(ITestOutputHelper output)
{
    private static byte[] BaseFile(TempDir dir)
    {
        string path = dir.File("base.safetensors");
        new SafetensorsWriter()
            .SetMetadata("format", "pt")
            .SetMetadata("k", "v")
            .AddFloat32("model.w", [2, 3], new[] { 1f, -2f, 3.5f, 0f, 1e-3f, 7f })
            .Add("model.bf", SafetensorsDType.BF16, [4], new byte[] { 0x80, 0x3F, 0x00, 0xC0, 0x49, 0x40, 0x80, 0x7F })
            .Add("model.fp8", SafetensorsDType.F8_E4M3, [3], new byte[] { 0x38, 0x7E, 0x7F })
            .AddInt64("step", [], new[] { 12345L })
            .Add("empty", SafetensorsDType.F16, [0, 2], ReadOnlyMemory<byte>.Empty)
            .WriteTo(path);
        return File.ReadAllBytes(path);
    }

    private static readonly string[] JsonTokens =
    [
        "{", "}", "[", "]", ",", ":", "\"", "-", "0", "-1", "1e999", "1.5", "null", "true", "\"F32\"", "\"F8_E5M2\"", "\"BF16\"",
        "\"X\"", "[]", "{}", "[0]", "[0,0]", "18446744073709551615", "9223372036854775807", "\\u0000", "\\", "\"__metadata__\"",
        "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"model.w\"", "[1,2,3]", " ",
    ];

    [Fact]
    public void Mutated_files_either_open_or_throw_CheckpointFormatException()
    {
        using var dir = new TempDir();
        byte[] good = BaseFile(dir);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(good);
        string headerText = Encoding.UTF8.GetString(good, 8, n);
        byte[] data = good[(8 + n)..];
        var rng = new Random(20240611);
        var mutations = new List<(string What, byte[] File)>();

        // 1. Truncations at every length up to the end of the header, and some beyond.
        for (int len = 0; len <= 8 + n; len++) mutations.Add(($"truncate {len}", good[..len]));
        for (int i = 0; i < 100; i++) { int len = rng.Next(8 + n, good.Length + 1); mutations.Add(($"truncate {len}", good[..len])); }

        // 2. Random bytes in the header (and occasionally the prefix).
        for (int i = 0; i < 1200; i++)
        {
            var f = (byte[])good.Clone();
            int count = rng.Next(1, 5);
            for (int k = 0; k < count; k++) f[rng.Next(i % 10 == 0 ? 0 : 8, 8 + n)] = (byte)rng.Next(256);
            mutations.Add(($"random header bytes #{i}", f));
        }

        // 3. Random header-length values.
        ulong[] special = [0, 1, 2, (ulong)n - 1, (ulong)n + 1, (ulong)(good.Length - 8), (ulong)(good.Length - 7), 100_000_000, 100_000_001, long.MaxValue, (ulong)long.MaxValue + 1, ulong.MaxValue];
        foreach (ulong v in special) mutations.Add(($"header length {v}", WithLength(good, v)));
        for (int i = 0; i < 300; i++)
        {
            ulong v = (i % 3) switch
            {
                0 => (ulong)rng.NextInt64(),
                1 => (ulong)Math.Max(0, n + rng.Next(-64, 65)),
                _ => (ulong)rng.Next(0, good.Length + 16),
            };
            mutations.Add(($"header length {v}", WithLength(good, v)));
        }

        // 4. Random JSON edits with a consistent length prefix, so parsing gets past the prefix checks.
        for (int i = 0; i < 1500; i++)
        {
            string h = headerText;
            int edits = rng.Next(1, 4);
            for (int k = 0; k < edits; k++) h = Edit(h, rng);
            byte[] d = data;
            if (rng.Next(5) == 0) d = rng.Next(2) == 0 ? data[..rng.Next(data.Length + 1)] : [.. data, .. new byte[rng.Next(1, 9)]];
            mutations.Add(($"json edit #{i}: {h}", Raw.Build(Encoding.UTF8.GetBytes(h), d)));
        }

        string path = dir.File("fuzz.safetensors");
        int opened = 0, refused = 0;
        var sw = Stopwatch.StartNew();
        foreach (var (what, file) in mutations)
        {
            File.WriteAllBytes(path, file);
            try
            {
                using var st = SafetensorsFile.Open(path);
                foreach (var t in st.Tensors)
                {
                    st.ReadBytes(t.Name, new byte[t.ByteLength]);
                    st.ReadAsFloat32(t.Name);
                }
                opened++;
            }
            catch (CheckpointFormatException)
            {
                refused++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"Mutation '{what}' threw {ex.GetType().Name} instead of CheckpointFormatException: {ex}");
            }
        }
        sw.Stop();
        output.WriteLine($"{mutations.Count} mutations: {opened} opened, {refused} refused, {sw.ElapsedMilliseconds} ms");
        Assert.True(refused > mutations.Count / 2, $"only {refused} of {mutations.Count} refused");
        Assert.True(opened > 0);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"fuzzing took {sw.Elapsed}");
    }

    private static byte[] WithLength(byte[] good, ulong v)
    {
        var f = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(f, v);
        return f;
    }

    private static string Edit(string h, Random rng)
    {
        if (h.Length == 0) return JsonTokens[rng.Next(JsonTokens.Length)];
        int at = rng.Next(h.Length);
        switch (rng.Next(6))
        {
            case 0: // replace a number with another (possibly negative, huge, fractional)
            {
                int start = h.IndexOfAny("0123456789".ToCharArray(), at);
                if (start < 0) goto case 1;
                int end = start;
                while (end < h.Length && char.IsDigit(h[end])) end++;
                string[] nums = ["0", "1", "3", "4", "8", "-1", "-8", "12", "24", "48", "9999", "1.0", "1e3", "4294967296", "9223372036854775807", "9223372036854775808", "4611686018427387904"];
                return h[..start] + nums[rng.Next(nums.Length)] + h[end..];
            }
            case 1: // insert a token
                return h[..at] + JsonTokens[rng.Next(JsonTokens.Length)] + h[at..];
            case 2: // delete a span
                return h[..at] + h[Math.Min(h.Length, at + rng.Next(1, 12))..];
            case 3: // swap a dtype
            {
                string[] dts = ["\"F32\"", "\"BF16\"", "\"F8_E4M3\"", "\"I64\"", "\"F64\"", "\"BOOL\"", "\"U8\"", "\"F8_E5M2\"", "\"I16\"", "\"Q4\""];
                string from = dts[rng.Next(4)], to = dts[rng.Next(dts.Length)];
                int idx = h.IndexOf(from, StringComparison.Ordinal);
                return idx < 0 ? h : h[..idx] + to + h[(idx + from.Length)..];
            }
            case 4: // duplicate a span somewhere else
            {
                int len = rng.Next(1, Math.Min(60, h.Length - at) + 1);
                int to = rng.Next(h.Length);
                return h[..to] + h.Substring(at, len) + h[to..];
            }
            default: // random character
                return h[..at] + (char)rng.Next(32, 127) + h[(at + 1)..];
        }
    }
}
