using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// The kit must load TorchSharp's own libtorch (package libtorch-cpu-linux-x64) beside any other libtorch: decoy
/// libc10.so / libtorch_cpu.so / libtorch.so (built here with <c>cc -shared</c>, same sonames) first on
/// <c>LD_LIBRARY_PATH</c> stand in for Debian's python3-torch or a conda/pip PyTorch; and a leftover
/// <c>torchsharp/0.107.0/lib/net8.0/cpu/</c> copy (what TorchSharp's own fallback writes after a failed load) in a
/// private NuGet cache must not lead to a second libtorch being mapped (which aborts the kernel process).
/// Runs the built CLI and notebooks/_kernel-smoke.ipynb in the real kernel (dotnet-repl), so it needs the Debug build.
/// </summary>
[Trait("Category", "Slow")]
public sealed class ForeignLibtorchTests : IDisposable
{
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private static readonly string[] DecoyNames = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];
    private static readonly string RealNuGet = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } n
        ? n : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
    private readonly string _tmp = Directory.CreateTempSubdirectory("dsn-foreign-libtorch").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_tmp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [Fact]
    public void Cli_trace_binds_the_packaged_libtorch_with_decoys_first_on_LD_LIBRARY_PATH()
    {
        string cli = Path.Combine(Root, "src", "DeepSeekNotebooks.Cli", "bin", "Debug", "net10.0", "deepseek-notebooks.dll");
        Assert.True(File.Exists(cli), $"build the CLI first: {cli}");
        string decoys = BuildDecoys();
        string output = Path.Combine(_tmp, "trace.safetensors");
        string ldLog = Path.Combine(_tmp, "ld");

        var (exit, log) = KernelSmokeTests.Run(Root,
            [cli, "trace", "--checkpoint", Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf"), "--input-ids", "303,211,294,53", "--out", output],
            TimeSpan.FromMinutes(2),
            new Dictionary<string, string?> { ["LD_LIBRARY_PATH"] = decoys, ["LD_DEBUG"] = "files", ["LD_DEBUG_OUTPUT"] = ldLog });

        Assert.True(exit == 0, $"trace exited with {exit}:\n{log}");
        Assert.True(File.Exists(output), "trace wrote no output:\n" + log);
        // The dynamic loader's own record of every object it mapped into the CLI process.
        var mapped = Directory.GetFiles(_tmp, "ld.*").SelectMany(File.ReadLines)
            .Select(l => Regex.Match(l, @"file=(\S+) \[\d+\];  generating link map")).Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();
        Assert.Contains(mapped, p => p.EndsWith("/libLibTorchSharp.so", StringComparison.Ordinal));
        Assert.DoesNotContain(mapped, p => p.StartsWith(decoys, StringComparison.Ordinal));
        var torchCpu = mapped.Where(p => Path.GetFileName(p) == "libtorch_cpu.so").Distinct().ToList();
        Assert.Single(torchCpu);
        Assert.StartsWith(Path.Combine(Root, "src", "DeepSeekNotebooks.Cli", "bin"), torchCpu[0]);
    }

    [Fact]
    public void Kernel_notebook_runs_with_decoy_libtorch_first_on_LD_LIBRARY_PATH()
    {
        string decoys = BuildDecoys();
        // A private cache (same packages) so that a regression's TorchSharp fallback copy cannot land in the real one.
        string cache = PrivateNuGetCache(withCpuFallbackCopy: false);
        var mapped = RunSmokeNotebook(new Dictionary<string, string?> { ["LD_LIBRARY_PATH"] = decoys, ["NUGET_PACKAGES"] = cache, ["HOME"] = PrivateHome() });
        Assert.DoesNotContain(mapped, p => p.StartsWith(decoys, StringComparison.Ordinal));
        AssertOneLibtorchFrom(mapped, RealPath(Path.Combine(cache, "libtorch-cpu-linux-x64", "2.10.0", "runtimes", "linux-x64", "native")));
    }

    [Fact]
    public void Kernel_notebook_maps_one_libtorch_when_the_NuGet_cache_holds_TorchSharps_cpu_fallback_copy()
    {
        string cache = PrivateNuGetCache(withCpuFallbackCopy: true);
        string cpu = Path.Combine(cache, "torchsharp", "0.107.0", "lib", "net8.0", "cpu");
        Assert.True(File.Exists(Path.Combine(cpu, "libtorch_cpu.so")) && File.Exists(Path.Combine(cpu, "libLibTorchSharp.so")));

        var mapped = RunSmokeNotebook(new Dictionary<string, string?> { ["NUGET_PACKAGES"] = cache, ["HOME"] = PrivateHome() });

        Assert.DoesNotContain(mapped, p => p.StartsWith(cpu, StringComparison.Ordinal));
        AssertOneLibtorchFrom(mapped, RealPath(Path.Combine(cache, "libtorch-cpu-linux-x64", "2.10.0", "runtimes", "linux-x64", "native")));
    }

    /// <summary>
    /// A private home folder: the kernel's package resolver caches its resolutions (absolute paths into the NuGet
    /// cache) in ~/.packagemanagement, so with the real home it would keep using the real cache's folders.
    /// </summary>
    private string PrivateHome() => Directory.CreateDirectory(Path.Combine(_tmp, "home")).FullName;

    /// <summary>
    /// A private NuGet cache with the real cache's packages (symbolic links), except that torchsharp/0.107.0/lib/net8.0
    /// is a folder of its own; <paramref name="withCpuFallbackCopy"/> puts it in the state TorchSharp 0.107's
    /// LoadNativeBackend leaves after a failed regular load: every *.so of libtorch-cpu-linux-x64/2.10.0 and
    /// torchsharp/0.107.0 (runtimes/linux-x64/native) copied into lib/net8.0/cpu/ — real copies, not links, so a load
    /// from there is a second libtorch.
    /// </summary>
    private string PrivateNuGetCache(bool withCpuFallbackCopy)
    {
        string cache = Directory.CreateDirectory(Path.Combine(_tmp, "nuget")).FullName;
        foreach (var package in Directory.GetDirectories(RealNuGet))
            if (Path.GetFileName(package) != "torchsharp")
                Directory.CreateSymbolicLink(Path.Combine(cache, Path.GetFileName(package)), package);
        string realTorchSharp = Path.Combine(RealNuGet, "torchsharp", "0.107.0");
        string torchSharp = Directory.CreateDirectory(Path.Combine(cache, "torchsharp", "0.107.0")).FullName;
        foreach (var entry in Directory.GetFileSystemEntries(realTorchSharp).Where(e => Path.GetFileName(e) != "lib"))
            if (Directory.Exists(entry)) Directory.CreateSymbolicLink(Path.Combine(torchSharp, Path.GetFileName(entry)), entry);
            else File.CreateSymbolicLink(Path.Combine(torchSharp, Path.GetFileName(entry)), entry);
        string lib = Directory.CreateDirectory(Path.Combine(torchSharp, "lib", "net8.0")).FullName;
        foreach (var entry in Directory.GetFileSystemEntries(Path.Combine(realTorchSharp, "lib")).Where(e => Path.GetFileName(e) != "net8.0"))
            Directory.CreateSymbolicLink(Path.Combine(torchSharp, "lib", Path.GetFileName(entry)), entry);
        foreach (var file in Directory.GetFiles(Path.Combine(realTorchSharp, "lib", "net8.0")))
            File.CreateSymbolicLink(Path.Combine(lib, Path.GetFileName(file)), file);
        if (!withCpuFallbackCopy) return cache;
        string cpu = Directory.CreateDirectory(Path.Combine(lib, "cpu")).FullName;
        var nativeRegex = new Regex(@"^.*\.so(\.\d*)*$");
        foreach (var natives in new[] { Path.Combine(RealNuGet, "libtorch-cpu-linux-x64", "2.10.0", "runtimes", "linux-x64", "native"), Path.Combine(realTorchSharp, "runtimes", "linux-x64", "native") })
            foreach (var file in Directory.GetFiles(natives).Where(f => nativeRegex.IsMatch(f)))
                File.Copy(file, Path.Combine(cpu, Path.GetFileName(file)));
        return cache;
    }

    [Fact]
    public void Cli_trace_fails_naming_the_file_when_LD_LIBRARY_PATH_shadows_libtorchs_bundled_libgomp()
    {
        // libtorch_cpu.so needs "libgomp-98b21ff3.so.1" (soname libgomp.so.1): that name is searched on LD_LIBRARY_PATH
        // before libtorch's own folder even when the right file is loaded, so it cannot be made to work; say so.
        string cli = Path.Combine(Root, "src", "DeepSeekNotebooks.Cli", "bin", "Debug", "net10.0", "deepseek-notebooks.dll");
        Assert.True(File.Exists(cli), $"build the CLI first: {cli}");
        string decoys = BuildDecoys(["libgomp-98b21ff3.so.1"]);

        var (exit, log) = KernelSmokeTests.Run(Root,
            [cli, "trace", "--checkpoint", Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf"), "--input-ids", "303,211,294,53", "--out", Path.Combine(_tmp, "t.safetensors")],
            TimeSpan.FromMinutes(2), new Dictionary<string, string?> { ["LD_LIBRARY_PATH"] = decoys });

        Assert.True(exit == 1, $"expected the CLI's error exit code 1, got {exit}:\n{log}");
        Assert.Contains($"{Path.Combine(decoys, "libgomp-98b21ff3.so.1")} (from LD_LIBRARY_PATH) would be bound as libgomp-98b21ff3.so.1 for libtorch_cpu.so", log);
    }

    [Fact]
    public void Cli_trace_fails_naming_a_foreign_libtorch_already_loaded_into_the_process()
    {
        // Someone else (here LD_PRELOAD) mapped another libtorch_cpu.so before the kit ran: a second one would abort
        // the process, so the kit refuses, naming the file and its folder.
        string cli = Path.Combine(Root, "src", "DeepSeekNotebooks.Cli", "bin", "Debug", "net10.0", "deepseek-notebooks.dll");
        Assert.True(File.Exists(cli), $"build the CLI first: {cli}");
        string decoy = Path.Combine(BuildDecoys(["libtorch_cpu.so"]), "libtorch_cpu.so");

        var (exit, log) = KernelSmokeTests.Run(Root,
            [cli, "trace", "--checkpoint", Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf"), "--input-ids", "303,211,294,53", "--out", Path.Combine(_tmp, "t.safetensors")],
            TimeSpan.FromMinutes(2), new Dictionary<string, string?> { ["LD_PRELOAD"] = decoy });

        Assert.True(exit == 1, $"expected the CLI's error exit code 1, got {exit}:\n{log}");
        Assert.Contains($"A different libtorch is already loaded into this process: {decoy} (bound from {Path.GetDirectoryName(decoy)})", log);
        Assert.Contains($"needs libtorch_cpu.so from {Path.Combine(Root, "src", "DeepSeekNotebooks.Cli", "bin", "Debug", "net10.0")}", log);
        Assert.False(File.Exists(Path.Combine(_tmp, "t.safetensors")));
    }

    /// <summary>Decoy shared objects named (and sonamed) like libtorch's files; each exports only a marker function.</summary>
    private string BuildDecoys(string[]? names = null)
    {
        string dir = Directory.CreateDirectory(Path.Combine(_tmp, "decoys")).FullName;
        string source = Path.Combine(dir, "decoy.c");
        File.WriteAllText(source, "int deepseek_notebooks_decoy_libtorch(void) { return 42; }\n");
        foreach (var name in names ?? DecoyNames)
        {
            var psi = new ProcessStartInfo("cc") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-shared", "-fPIC", $"-Wl,-soname,{name}", "-o", Path.Combine(dir, name), source }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, $"cc failed building the decoy {name}: {err}");
        }
        return dir;
    }

    /// <summary>
    /// Runs the kernel smoke notebook plus one cell listing the libtorch files mapped into the kernel process
    /// (/proc/self/maps) in dotnet-repl with the given environment; checks the smoke notebook's outputs; returns the list.
    /// </summary>
    private List<string> RunSmokeNotebook(IReadOnlyDictionary<string, string?> environment)
    {
        string notebooks = Path.Combine(Root, "notebooks");
        string kit = Path.Combine(Root, "src", "DeepSeekNotebooks.Visualization", "bin", "Debug", "net10.0", "DeepSeekNotebooks.Visualization.dll");
        Assert.True(File.Exists(kit), $"the notebook references the Debug build of the kit; build it first: {kit}");
        var notebook = JsonNode.Parse(File.ReadAllText(Path.Combine(notebooks, "_kernel-smoke.ipynb")))!;
        var cells = notebook["cells"]!.AsArray();
        var probe = cells.Last(c => c!["cell_type"]!.GetValue<string>() == "code")!.DeepClone();
        probe["source"] = new JsonArray(
            "foreach (var m in System.IO.File.ReadAllLines(\"/proc/self/maps\").Where(l => l.Contains('/')).Select(l => l[l.IndexOf('/')..]).Distinct())\n",
            "    if (System.Text.RegularExpressions.Regex.IsMatch(System.IO.Path.GetFileName(m), @\"^lib(c10|torch|torch_cpu|LibTorchSharp)\\.so\"))\n",
            "        Console.WriteLine(\"mapped: \" + m);");
        cells.Add(probe);
        string input = Path.Combine(_tmp, "smoke-probe.ipynb");
        File.WriteAllText(input, notebook.ToJsonString());
        string output = Path.Combine(_tmp, "out.ipynb");

        var plain = string.Concat(KernelSmokeTests.RunNotebook(Root, notebooks, input, output, TimeSpan.FromMinutes(6), environment).Plain);
        Assert.Contains("attn[L0,H0] row-sum of last query = 1.0000", plain);
        Assert.Contains("tokenizer ids: 1,2", plain);
        return Regex.Matches(plain, @"mapped: (\S+)").Select(m => m.Groups[1].Value).ToList();
    }

    private static void AssertOneLibtorchFrom(List<string> mapped, string expectedDir)
    {
        foreach (var file in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
        {
            var copies = mapped.Where(m => Path.GetFileName(m) == file).ToList();
            Assert.True(copies.Count == 1 && Path.GetDirectoryName(copies[0]) == expectedDir,
                $"expected exactly one {file}, from {expectedDir}; mapped: {string.Join(", ", mapped)}");
        }
    }

    /// <summary>/proc/self/maps shows paths with symbolic links resolved.</summary>
    private static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        string current = "/";
        foreach (var part in full.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            current = Path.Combine(current, part);
            var target = new DirectoryInfo(current).ResolveLinkTarget(returnFinalTarget: true);
            if (target is not null) current = target.FullName;
        }
        return current;
    }
}
