using System.Buffers.Binary;
using System.Text;

namespace DeepSeekNotebooks.Model.Native;

/// <summary>
/// Marks selected symbol-version requirements of an ELF64 little-endian shared object as weak
/// (<c>vna_flags |= VER_FLG_WEAK</c> in the <c>.gnu.version_r</c> section), so that the dynamic
/// loader accepts the object when the providing library lacks that version node.
/// Follows the ELF gABI / LSB "Symbol Versioning" layout (Elf64_Verneed / Elf64_Vernaux).
/// </summary>
internal static class ElfVersionPatcher
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    /// <summary>One version requirement found in the file.</summary>
    internal readonly record struct VersionNeed(string File, string Version, ushort Flags, long FlagsOffset);

    /// <summary>Lists every version requirement (library file, version name, flags) of an ELF64 image.</summary>
    internal static IReadOnlyList<VersionNeed> ReadVersionNeeds(ReadOnlySpan<byte> elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("only 64-bit little-endian ELF files are supported");

        long shoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(elf[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x3C..]);
        if (shoff <= 0 || shentsize < 64 || shoff + (long)shentsize * shnum > elf.Length)
            throw new InvalidDataException("section header table lies outside the file");

        var needs = new List<VersionNeed>();
        for (int i = 0; i < shnum; i++)
        {
            var sh = elf.Slice(checked((int)(shoff + (long)i * shentsize)), shentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed) continue;
            long offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x18..]);
            int link = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]); // sh_info = number of Verneed entries
            var strtabHeader = elf.Slice(checked((int)(shoff + (long)link * shentsize)), shentsize);
            long strOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(strtabHeader[0x18..]);
            long strSize = (long)BinaryPrimitives.ReadUInt64LittleEndian(strtabHeader[0x20..]);
            var strtab = elf.Slice(checked((int)strOffset), checked((int)strSize));

            long vn = offset;
            for (int n = 0; n < count; n++)
            {
                ushort cnt = BinaryPrimitives.ReadUInt16LittleEndian(elf[(int)(vn + 2)..]);
                string file = ReadString(strtab, BinaryPrimitives.ReadUInt32LittleEndian(elf[(int)(vn + 4)..]));
                uint auxOff = BinaryPrimitives.ReadUInt32LittleEndian(elf[(int)(vn + 8)..]);
                uint next = BinaryPrimitives.ReadUInt32LittleEndian(elf[(int)(vn + 12)..]);
                long va = vn + auxOff;
                for (int a = 0; a < cnt; a++)
                {
                    ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(elf[(int)(va + 4)..]);
                    string name = ReadString(strtab, BinaryPrimitives.ReadUInt32LittleEndian(elf[(int)(va + 8)..]));
                    needs.Add(new VersionNeed(file, name, flags, va + 4));
                    uint vnaNext = BinaryPrimitives.ReadUInt32LittleEndian(elf[(int)(va + 12)..]);
                    if (vnaNext == 0) break;
                    va += vnaNext;
                }
                if (next == 0) break;
                vn += next;
            }
        }
        return needs;
    }

    /// <summary>
    /// Sets <c>VER_FLG_WEAK</c> on every requirement whose version name is in <paramref name="versions"/>.
    /// Returns the names actually patched (already-weak ones count as patched).
    /// </summary>
    internal static IReadOnlyList<string> MarkWeak(byte[] elf, IReadOnlyCollection<string> versions)
    {
        var patched = new List<string>();
        foreach (var need in ReadVersionNeeds(elf))
        {
            if (!versions.Contains(need.Version)) continue;
            BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan((int)need.FlagsOffset), (ushort)(need.Flags | VerFlgWeak));
            patched.Add(need.Version);
        }
        return patched;
    }

    /// <summary>The soname (<c>DT_SONAME</c>, null if none) and <c>DT_NEEDED</c> entries of a shared object.</summary>
    internal sealed record DynamicInfo(string? Soname, IReadOnlyList<string> Needed);

    /// <summary>
    /// The <c>DT_SONAME</c> and <c>DT_NEEDED</c> entries (file names of the shared objects it links against) of an
    /// ELF64 little-endian file, read with a few small reads so that large libraries (libtorch_cpu.so is 460 MB)
    /// are not read whole.
    /// </summary>
    internal static DynamicInfo ReadDynamic(string path)
    {
        const uint ShtDynamic = 6;
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        byte[] Read(long offset, long count)
        {
            if (offset < 0 || count < 0 || offset + count > f.Length)
                throw new InvalidDataException($"{path}: ELF structure points outside the file");
            var buffer = new byte[count];
            f.Position = offset;
            f.ReadExactly(buffer);
            return buffer;
        }
        var header = Read(0, Math.Min(64, f.Length));
        if (header.Length < 64 || header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F')
            throw new InvalidDataException($"{path}: not an ELF file");
        if (header[4] != 2 || header[5] != 1)
            throw new InvalidDataException($"{path}: only 64-bit little-endian ELF files are supported");
        long shoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(0x28));
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x3A));
        long shnum = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x3C));
        if (shoff == 0 || shentsize < 64) return new DynamicInfo(null, []);
        if (shnum == 0) shnum = (long)BinaryPrimitives.ReadUInt64LittleEndian(Read(shoff, shentsize).AsSpan(0x20)); // SHN_UNDEF holds the count
        var sections = Read(shoff, shnum * shentsize);
        var needed = new List<string>();
        string? soname = null;
        for (long i = 0; i < shnum; i++)
        {
            var sh = sections.AsSpan((int)(i * shentsize), shentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtDynamic) continue;
            var dynamic = Read((long)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x18..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x20..]));
            long link = BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            if (link >= shnum) throw new InvalidDataException($"{path}: .dynamic links to a missing string table");
            var strHeader = sections.AsSpan((int)(link * shentsize), shentsize);
            var strtab = Read((long)BinaryPrimitives.ReadUInt64LittleEndian(strHeader[0x18..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(strHeader[0x20..]));
            for (int e = 0; e + 16 <= dynamic.Length; e += 16)
            {
                long tag = BinaryPrimitives.ReadInt64LittleEndian(dynamic.AsSpan(e));
                if (tag == 0) break; // DT_NULL
                if (tag is 1 or 14) // DT_NEEDED, DT_SONAME
                {
                    var value = ReadString(strtab, (uint)BinaryPrimitives.ReadUInt64LittleEndian(dynamic.AsSpan(e + 8)));
                    if (tag == 1) needed.Add(value); else soname = value;
                }
            }
        }
        return new DynamicInfo(soname, needed);
    }

    private static string ReadString(ReadOnlySpan<byte> strtab, uint offset)
    {
        if (offset >= strtab.Length) throw new InvalidDataException("string offset outside the string table");
        var rest = strtab[(int)offset..];
        int end = rest.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
    }
}
