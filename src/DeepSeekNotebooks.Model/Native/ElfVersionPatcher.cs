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

    private static string ReadString(ReadOnlySpan<byte> strtab, uint offset)
    {
        if (offset >= strtab.Length) throw new InvalidDataException("string offset outside the string table");
        var rest = strtab[(int)offset..];
        int end = rest.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
    }
}
