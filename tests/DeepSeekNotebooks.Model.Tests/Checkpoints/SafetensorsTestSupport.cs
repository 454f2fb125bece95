using System.Buffers.Binary;
using System.Text;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>A fresh temporary directory, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "dsn-st-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string[] Entries() => Directory.GetFileSystemEntries(Path).Select(System.IO.Path.GetFileName).ToArray()!;

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

internal static class Raw
{
    /// <summary>8-byte LE length + header bytes + data.</summary>
    public static byte[] Build(string headerJson, byte[]? data = null, ulong? headerLengthOverride = null)
    {
        var h = Encoding.UTF8.GetBytes(headerJson);
        return Build(h, data ?? [], headerLengthOverride);
    }

    public static byte[] Build(byte[] header, byte[] data, ulong? headerLengthOverride = null)
    {
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, headerLengthOverride ?? (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !System.IO.File.Exists(System.IO.Path.Combine(dir.FullName, "DeepSeekNotebooks.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException($"No DeepSeekNotebooks.sln above {AppContext.BaseDirectory}.");
    }
}
