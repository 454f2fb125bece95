using DeepSeekNotebooks.Model.Native;
using TorchSharp;

namespace DeepSeekNotebooks.Model.Tests.Native;

public class TorchRuntimeTests
{
    [Fact]
    public void EnsureLoaded_MakesTorchUsable()
    {
        TorchRuntime.EnsureLoaded();
        Assert.NotNull(TorchRuntime.Status);
        using var a = torch.arange(6, dtype: torch.float32).reshape(2, 3);
        using var b = a.matmul(a.T);
        Assert.Equal(50f, b[1, 1].item<float>()); // 3*3 + 4*4 + 5*5
        Assert.Equal(14f, b[0, 1].item<float>()); // 0*3 + 1*4 + 2*5
    }

    [Fact]
    public void ElfPatcher_MarksOnlyTheNamedVersionWeak()
    {
        var lib = new[] { "", "runtimes/linux-x64/native" }
            .Select(d => Path.Combine(AppContext.BaseDirectory, d, "libLibTorchSharp.so"))
            .FirstOrDefault(File.Exists);
        Assert.True(lib is not null, $"expected the TorchSharp native library under {AppContext.BaseDirectory}");
        var bytes = File.ReadAllBytes(lib);
        var before = ElfVersionPatcher.ReadVersionNeeds(bytes);
        Assert.Contains(before, n => n.Version == "GLIBCXX_3.4.32" && n.File == "libstdc++.so.6" && (n.Flags & 2) == 0);

        var patched = ElfVersionPatcher.MarkWeak(bytes, new[] { "GLIBCXX_3.4.32" });

        Assert.Equal(new[] { "GLIBCXX_3.4.32" }, patched);
        var after = ElfVersionPatcher.ReadVersionNeeds(bytes);
        Assert.Equal(before.Count, after.Count);
        for (int i = 0; i < before.Count; i++)
        {
            var expected = before[i].Version == "GLIBCXX_3.4.32" ? (ushort)(before[i].Flags | 2) : before[i].Flags;
            Assert.Equal(expected, after[i].Flags);
        }
    }

    [Fact]
    public void ElfPatcher_RejectsNonElfInput()
    {
        Assert.Throws<InvalidDataException>(() => ElfVersionPatcher.ReadVersionNeeds(new byte[100]));
    }

    [Fact]
    public void ElfReader_ReadsSonameAndNeededOfTheShippedLibraries()
    {
        var lib = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        if (!Directory.Exists(lib)) lib = AppContext.BaseDirectory;
        // Expected values as `readelf -d` prints them for TorchSharp 0.107 / libtorch 2.10.0.
        var sharp = ElfVersionPatcher.ReadDynamic(Path.Combine(lib, "libLibTorchSharp.so"));
        Assert.Equal("libLibTorchSharp.so", sharp.Soname);
        Assert.Equal(new[] { "libtorch.so", "libc10.so", "libtorch_cpu.so", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1", "libc.so.6", "ld-linux-x86-64.so.2" }, sharp.Needed);
        var cpu = ElfVersionPatcher.ReadDynamic(Path.Combine(lib, "libtorch_cpu.so"));
        Assert.Equal("libtorch_cpu.so", cpu.Soname);
        Assert.Contains("libc10.so", cpu.Needed);
        Assert.Contains("libgomp-98b21ff3.so.1", cpu.Needed);
        Assert.Equal("libgomp.so.1", ElfVersionPatcher.ReadDynamic(Path.Combine(lib, "libgomp-98b21ff3.so.1")).Soname);
        var notElf = Path.GetTempFileName();
        try { Assert.Throws<InvalidDataException>(() => ElfVersionPatcher.ReadDynamic(notElf)); }
        finally { File.Delete(notElf); }
    }

    [Fact]
    public void LibraryPathShadow_OfADifferentFile_FailsNamingIt_AnIdenticalCopyPasses()
    {
        var dir = Directory.CreateTempSubdirectory("dsn-shadow").FullName;
        try
        {
            var ours = Path.Combine(dir, "ours", "libgomp-98b21ff3.so.1");
            var other = Path.Combine(dir, "other", "libgomp-98b21ff3.so.1");
            Directory.CreateDirectory(Path.GetDirectoryName(ours)!);
            Directory.CreateDirectory(Path.GetDirectoryName(other)!);
            File.WriteAllBytes(ours, [1, 2, 3]);
            File.WriteAllBytes(other, [1, 2, 4]);
            var path = $"/nonexistent:{Path.GetDirectoryName(other)}";

            var e = Assert.Throws<TorchLoadException>(() =>
                TorchRuntime.CheckLibraryPathShadow("libgomp-98b21ff3.so.1", ours, "/x/libtorch_cpu.so", path));
            Assert.Contains($"{other} (from LD_LIBRARY_PATH) would be bound as libgomp-98b21ff3.so.1 for libtorch_cpu.so instead of {ours}", e.Message);

            File.WriteAllBytes(other, [1, 2, 3]); // same contents (e.g. a pip wheel of the same libtorch build)
            TorchRuntime.CheckLibraryPathShadow("libgomp-98b21ff3.so.1", ours, "/x/libtorch_cpu.so", path);
            TorchRuntime.CheckLibraryPathShadow("libgomp-98b21ff3.so.1", ours, "/x/libtorch_cpu.so", null);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
