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
}
