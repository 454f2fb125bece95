using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using TorchSharp;

namespace DeepSeekNotebooks.Model.Native;

/// <summary>
/// Loads TorchSharp's native backend so that exactly one libtorch — the one of the <c>libtorch-cpu-linux-x64</c>
/// package TorchSharp was built against — is ever mapped into the process, whatever other libtorch builds sit on
/// the library search path (Debian's <c>python3-torch</c> in <c>/lib/x86_64-linux-gnu</c>, a conda or pip PyTorch on
/// <c>LD_LIBRARY_PATH</c>) and whatever leftovers TorchSharp's own fallback left in the NuGet cache (its
/// <c>lib/net8.0/cpu/</c> copy). On linux-x64 it loads <c>libLibTorchSharp.so</c>'s libtorch dependencies
/// (<c>libc10.so</c>, <c>libtorch_cpu.so</c>, <c>libtorch.so</c>, bundled <c>libgomp</c>, found from the ELF
/// <c>DT_NEEDED</c> lists) by absolute path, dependencies first, then <c>libLibTorchSharp.so</c> itself; later
/// by-name loads (TorchSharp's own, its P/Invokes) bind to those already-loaded objects by soname.
/// It also repairs the one known incompatibility of TorchSharp 0.107 on glibc-2.36-era Linux (Debian 12, Ubuntu
/// 22.04): <c>libLibTorchSharp.so</c> requires the libstdc++ version node <c>GLIBCXX_3.4.32</c> only for the unused
/// symbol <c>std::ios_base_library_init()</c>. When loading fails for that reason, a private copy of the library is
/// written to a per-user cache folder with the missing version requirement(s) marked weak (ELF <c>VER_FLG_WEAK</c>),
/// and that copy is loaded instead. Nothing in the system, the NuGet cache or the build output is modified.
/// </summary>
/// <remarks>
/// Every entry point of the kit calls <see cref="EnsureLoaded"/>; it is cheap after the first call. Call it
/// yourself before using <c>TorchSharp.torch</c> directly if you have not touched the kit yet.
/// Where the libraries are looked for, in order: the application's native search directories (its
/// <c>deps.json</c>) and TorchSharp.dll's folder; the NuGet package folders of the exact versions TorchSharp was
/// built against (<c>torchsharp/&lt;its version&gt;</c>, <c>libtorch-cpu-linux-x64/&lt;its libtorch version&gt;</c>) beside
/// the TorchSharp package it was loaded from, then in <c>$NUGET_PACKAGES</c> or <c>~/.nuget/packages</c>; TorchSharp's
/// consolidated <c>cpu/</c> copy only when no package folder has them.
/// The repair's cache folder is <c>$DEEPSEEK_NOTEBOOKS_NATIVE_CACHE</c>, else
/// <c>$XDG_CACHE_HOME/deepseek-notebooks/native</c>, else <c>~/.cache/deepseek-notebooks/native</c>.
/// </remarks>
public static class TorchRuntime
{
    private const string NativeName = "LibTorchSharp";
    private const string NativeFile = "libLibTorchSharp.so";
    private const string LibtorchPackage = "libtorch-cpu-linux-x64";
    private const string NativeSubdir = "runtimes/linux-x64/native";
    /// <summary>The libtorch files whose second copy aborts the process (duplicate dispatcher registrations).</summary>
    private static readonly string[] LibtorchFiles = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];
    private static readonly Regex MissingVersion = new(@"version `([^']+)' not found \(required by ([^)]+)\)", RegexOptions.Compiled);
    private static readonly object Gate = new();
    private static readonly List<string> Attempts = new();
    private static bool _ready;
    private static bool _resolving;
    private static IntPtr _handle;
    private static string? _libtorchDir;

    /// <summary>
    /// What the loader did, one line naming the absolute paths loaded (null until torch has been loaded).
    /// </summary>
    public static string? Status { get; private set; }

    [ModuleInitializer]
    internal static void RegisterResolver()
    {
        var torchAssembly = typeof(torch).Assembly;
        var context = AssemblyLoadContext.GetLoadContext(torchAssembly) ?? AssemblyLoadContext.Default;
        // TorchSharp's P/Invokes of LibTorchSharp bind to the library this class loaded by absolute path.
        try
        {
            NativeLibrary.SetDllImportResolver(torchAssembly, (name, assembly, _) =>
                assembly == torchAssembly && IsLibTorchSharp(name) ? Resolve() : IntPtr.Zero);
        }
        catch (InvalidOperationException)
        {
            // Someone else registered TorchSharp's resolver first; the by-soname binding below still applies.
        }
        // Fires only after the runtime's own probing failed (e.g. the GLIBCXX failure of the shipped file).
        context.ResolvingUnmanagedDll += (assembly, name) =>
            assembly == torchAssembly && IsLibTorchSharp(name) ? Resolve() : IntPtr.Zero;
    }

    private static IntPtr Resolve()
    {
        if (!IsLinuxX64) return IntPtr.Zero;
        lock (Gate)
        {
            if (_handle != IntPtr.Zero || _resolving) return _handle;
            _resolving = true;
            try { LoadLinuxBackend(); }
            catch { return IntPtr.Zero; }
            finally { _resolving = false; }
            return _handle;
        }
    }

    /// <summary>
    /// Makes sure TorchSharp's native backend (CPU) is loaded, from the package folders described on
    /// <see cref="TorchRuntime"/> and with the GLIBCXX repair if needed. Throws <see cref="TorchLoadException"/>
    /// listing everything tried when the backend cannot be loaded, or naming the file and folder of a different
    /// libtorch that is already loaded into this process.
    /// </summary>
    public static void EnsureLoaded()
    {
        if (_ready) return;
        lock (Gate)
        {
            if (_ready) return;
            if (IsLinuxX64 && _handle == IntPtr.Zero)
            {
                _resolving = true;
                try { LoadLinuxBackend(); }
                finally { _resolving = false; }
            }
        }
        // Not under Gate: the first use of torch runs its static constructor, which loads LibTorchSharp through
        // Resolve() (it takes Gate). Holding Gate here while another thread is inside that constructor deadlocks both
        // threads (seen as a test run hanging at start-up when test classes touch torch in parallel).
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception e) when (e is not TorchLoadException)
        {
            lock (Gate)
            {
                Attempts.Add($"TorchSharp initialisation: {FirstLine(e.InnerException?.Message ?? e.Message)}");
                throw new TorchLoadException("TorchSharp's native backend failed to initialise.", Attempts, e);
            }
        }
        lock (Gate)
        {
            if (_ready) return;
            if (IsLinuxX64) CheckMappedLibtorch(_libtorchDir!, after: true);
            Status ??= "TorchSharp native backend loaded normally.";
            _ready = true;
        }
    }

    private static bool IsLinuxX64 => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    private static bool IsLibTorchSharp(string name) =>
        name is NativeName or NativeFile || name.EndsWith("/" + NativeFile, StringComparison.Ordinal);

    /// <summary>Locates the package folders, loads libtorch by absolute path, then libLibTorchSharp.so (repaired if needed).</summary>
    private static void LoadLinuxBackend()
    {
        Attempts.Clear();
        var torchAssembly = typeof(torch).Assembly;
        var torchSharpVersion = NuGetVersion(torchAssembly.GetName().Version?.ToString());
        // TorchSharp's own constant (read without running torch's static constructor), e.g. "2.10.0.0".
        var libtorchVersion = NuGetVersion(typeof(torch).GetField("libtorchPackageVersion", BindingFlags.NonPublic | BindingFlags.Static)
            ?.GetRawConstantValue() as string);

        var original = Locate(NativeFile, "torchsharp", torchSharpVersion, torchAssembly, []);
        if (original is null)
            throw new TorchLoadException($"{NativeFile} (package torchsharp {torchSharpVersion}) was not found.", Attempts);
        // Beside libLibTorchSharp.so first (an application's build output has both in one folder), unless that is
        // TorchSharp's cpu/ fallback copy, which must not win over the libtorch package.
        var originalDir = Path.GetDirectoryName(original)!;
        bool fromFallbackCopy = originalDir == Path.Combine(Path.GetDirectoryName(torchAssembly.Location) ?? "", "cpu");
        var libtorch = Locate("libtorch_cpu.so", LibtorchPackage, libtorchVersion, torchAssembly, fromFallbackCopy ? [] : [originalDir]);
        if (libtorch is null)
            throw new TorchLoadException($"libtorch_cpu.so (package {LibtorchPackage} {libtorchVersion ?? "?"}) was not found.", Attempts);
        var libtorchDir = Path.GetDirectoryName(libtorch)!;

        CheckMappedLibtorch(libtorchDir, after: false);
        var loaded = new HashSet<string>(StringComparer.Ordinal);
        LoadDependencies(original, [libtorchDir, originalDir], loaded);
        if (!loaded.Contains("libtorch_cpu.so"))
            throw new TorchLoadException($"{original} does not link against libtorch_cpu.so from {libtorchDir}; unexpected TorchSharp build.", Attempts);

        string error;
        try
        {
            _handle = NativeLibrary.Load(original);
            Attempts.Add($"load of {original}: ok");
            _libtorchDir = libtorchDir;
            Status = $"TorchSharp native backend: {original}, libtorch from {libtorchDir}";
            return;
        }
        catch (DllNotFoundException e) { error = e.Message; }
        Attempts.Add($"load of {original}: {FirstLine(error)}");
        var patched = LoadPatchedCopy(original, error);
        if (patched == IntPtr.Zero)
            throw new TorchLoadException("TorchSharp's native library could not be loaded.", Attempts);
        _handle = patched;
        _libtorchDir = libtorchDir;
        Status = $"{Status} (libtorch from {libtorchDir})";
    }

    /// <summary>
    /// Loads, dependencies first, every <c>DT_NEEDED</c> entry of <paramref name="file"/> (recursively) that exists
    /// in one of <paramref name="dirs"/>, by absolute path: the dynamic loader then resolves each later request for
    /// that soname to the loaded object instead of searching <c>LD_LIBRARY_PATH</c> and the system folders.
    /// </summary>
    private static void LoadDependencies(string file, string[] dirs, HashSet<string> loaded)
    {
        foreach (var name in ReadDynamic(file).Needed)
        {
            var path = dirs.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
            if (path is null || !loaded.Add(name)) continue;
            LoadDependencies(path, dirs, loaded);
            // A request for a file name that differs from the loaded object's soname (libtorch_cpu.so needs
            // libgomp-98b21ff3.so.1, whose soname is libgomp.so.1) is searched for again, LD_LIBRARY_PATH first.
            if (ReadDynamic(path).Soname != name)
                CheckLibraryPathShadow(name, path, file, Environment.GetEnvironmentVariable("LD_LIBRARY_PATH"));
            try
            {
                NativeLibrary.Load(path);
                Attempts.Add($"load of {path}: ok");
            }
            catch (DllNotFoundException e)
            {
                Attempts.Add($"load of {path}: {FirstLine(e.Message)}");
                throw new TorchLoadException($"libtorch could not be loaded from {Path.GetDirectoryName(path)}.", Attempts, e);
            }
        }
    }

    private static ElfVersionPatcher.DynamicInfo ReadDynamic(string file)
    {
        try { return ElfVersionPatcher.ReadDynamic(file); }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Attempts.Add($"reading the dynamic section of {file}: {e.Message}");
            throw new TorchLoadException($"{file} could not be read as a shared library.", Attempts, e);
        }
    }

    /// <summary>
    /// Throws <see cref="TorchLoadException"/> when a folder of <paramref name="libraryPath"/> (the value of
    /// <c>LD_LIBRARY_PATH</c>) holds a file named <paramref name="name"/> with other contents than <paramref name="ours"/>.
    /// </summary>
    internal static void CheckLibraryPathShadow(string name, string ours, string neededBy, string? libraryPath)
    {
        var dirs = (libraryPath ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        var shadow = dirs.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
        if (shadow is null || RealPath(shadow) == RealPath(ours)) return;
        if (SHA256.HashData(File.ReadAllBytes(shadow)).AsSpan().SequenceEqual(SHA256.HashData(File.ReadAllBytes(ours)))) return;
        Attempts.Add($"LD_LIBRARY_PATH holds {shadow}, which differs from {ours}");
        throw new TorchLoadException(
            $"{shadow} (from LD_LIBRARY_PATH) would be bound as {name} for {Path.GetFileName(neededBy)} instead of {ours}: the dynamic " +
            $"loader searches LD_LIBRARY_PATH first for that name. Remove {Path.GetDirectoryName(shadow)} from LD_LIBRARY_PATH for this process.", Attempts);
    }

    /// <summary>
    /// Fails when a libtorch file is mapped into this process from another folder than <paramref name="libtorchDir"/>
    /// (<paramref name="after"/>: also when one of them is not mapped at all after loading).
    /// </summary>
    private static void CheckMappedLibtorch(string libtorchDir, bool after)
    {
        var mapped = MappedFiles();
        if (mapped is null) return; // no /proc: nothing to check against
        var expectedDir = RealPath(libtorchDir);
        foreach (var file in LibtorchFiles)
        {
            var copies = mapped.Where(m => Path.GetFileName(m) == file || Path.GetFileName(m).StartsWith(file + ".", StringComparison.Ordinal)).ToList();
            var foreign = copies.Where(m => Path.GetDirectoryName(m) != expectedDir).ToList();
            if (foreign.Count > 0)
            {
                Attempts.Add($"/proc/self/maps: {string.Join(", ", copies)} mapped");
                throw new TorchLoadException(
                    $"A different libtorch is {(after ? "now" : "already")} loaded into this process: {foreign[0]} (bound from {Path.GetDirectoryName(foreign[0])}), " +
                    $"but TorchSharp {NuGetVersion(typeof(torch).Assembly.GetName().Version?.ToString())} needs {file} from {expectedDir}, and only one libtorch can live in a process. " +
                    "Something loaded it before the kit did (LD_PRELOAD, a Python-bound libtorch in the same process, or TorchSharp used before the kit's first call); " +
                    "start a fresh process (restart the kernel) and call TorchRuntime.EnsureLoaded() or Notebook.Setup() first.", Attempts);
            }
            if (after && copies.Count == 0)
            {
                Attempts.Add($"/proc/self/maps: no {file} mapped after loading");
                throw new TorchLoadException($"{file} from {expectedDir} is not mapped after loading TorchSharp.", Attempts);
            }
        }
    }

    /// <summary>The distinct files mapped into this process (<c>/proc/self/maps</c>), or null when it cannot be read.</summary>
    internal static IReadOnlyList<string>? MappedFiles()
    {
        string[] lines;
        try { lines = File.ReadAllLines("/proc/self/maps"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        var files = new List<string>();
        foreach (var line in lines)
        {
            int slash = line.IndexOf('/');
            if (slash < 0) continue;
            var path = line[slash..];
            if (path.EndsWith(" (deleted)", StringComparison.Ordinal)) path = path[..^10];
            if (!files.Contains(path)) files.Add(path);
        }
        return files;
    }

    /// <summary>
    /// The first of the candidate folders holding <paramref name="file"/>: <paramref name="preferred"/>, the
    /// application's native search directories, TorchSharp.dll's folder, the exact package version beside the
    /// TorchSharp package and in the NuGet cache; TorchSharp's consolidated <c>cpu/</c> copy last.
    /// </summary>
    private static string? Locate(string file, string package, string? version, Assembly torchAssembly, string[] preferred)
    {
        var dirs = new List<string>(preferred);
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string search)
            dirs.AddRange(search.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        var here = Path.GetDirectoryName(torchAssembly.Location);
        if (!string.IsNullOrEmpty(here))
        {
            dirs.Add(here);
            dirs.Add(Path.Combine(here, NativeSubdir));
            // Loaded from a NuGet package folder (notebooks): <packages>/torchsharp/<version>/lib/<tfm>/TorchSharp.dll
            var packagesRoot = Path.GetFullPath(Path.Combine(here, "..", "..", "..", ".."));
            if (version is not null) dirs.Add(Path.Combine(packagesRoot, package, version, NativeSubdir));
        }
        var nugetRoot = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(nugetRoot))
            nugetRoot = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        if (version is not null) dirs.Add(Path.Combine(nugetRoot, package, version, NativeSubdir));
        // TorchSharp's own fallback copies every native file into <TorchSharp.dll folder>/cpu; a second libtorch from
        // there next to the package's one aborts the process, so it is used only when no package folder has the file.
        if (!string.IsNullOrEmpty(here)) dirs.Add(Path.Combine(here, "cpu"));

        var found = dirs.Select(d => Path.Combine(d, file)).FirstOrDefault(File.Exists);
        Attempts.Add(found is null
            ? $"looked for {file} (package {package} {version ?? "?"}) in {string.Join(", ", dirs.Distinct())}: not found"
            : $"{file}: {found}");
        return found;
    }

    /// <summary>"0.107.0.0" → "0.107.0" (NuGet drops a zero fourth component from folder names).</summary>
    private static string? NuGetVersion(string? version)
    {
        if (string.IsNullOrEmpty(version)) return null;
        var parts = version.Split('.');
        return parts.Length == 4 && parts[3] == "0" ? string.Join('.', parts[..3]) : version;
    }

    /// <summary>Diagnoses why the shipped library does not load; writes and loads a repaired copy for a missing GLIBCXX node.</summary>
    private static IntPtr LoadPatchedCopy(string original, string error)
    {
        var missing = MissingVersion.Matches(error)
            .Where(m => m.Groups[2].Value.EndsWith(NativeFile, StringComparison.Ordinal))
            .Select(m => m.Groups[1].Value).Distinct().ToList();
        if (missing.Count == 0)
        {
            Attempts.Add("the failure is not a missing symbol-version node of libLibTorchSharp.so itself, so it was not patched");
            return IntPtr.Zero;
        }

        var bytes = File.ReadAllBytes(original);
        var hash = Convert.ToHexString(SHA256.HashData(bytes))[..16].ToLowerInvariant();
        var dir = Path.Combine(CacheRoot(), $"{hash}-{string.Join('+', missing)}");
        var patchedPath = Path.Combine(dir, NativeFile);
        var patched = ElfVersionPatcher.MarkWeak(bytes, missing);
        if (patched.Count == 0)
        {
            Attempts.Add($"{string.Join(", ", missing)} not found among the version requirements of {original}");
            return IntPtr.Zero;
        }
        Directory.CreateDirectory(dir);
        if (!File.Exists(patchedPath))
        {
            var tmp = patchedPath + $".{Environment.ProcessId}.tmp";
            File.WriteAllBytes(tmp, bytes);
            File.Move(tmp, patchedPath, overwrite: true);
        }
        IntPtr handle;
        try
        {
            handle = NativeLibrary.Load(patchedPath);
        }
        catch (DllNotFoundException e)
        {
            Attempts.Add($"load of patched copy {patchedPath}: {FirstLine(e.Message)}");
            return IntPtr.Zero;
        }
        Attempts.Add($"load of patched copy {patchedPath}: ok");
        Status = $"[DeepSeekNotebooks] {NativeFile} needs {string.Join(", ", missing)}, which this system's libstdc++ lacks; " +
                 $"loaded a private copy with that version requirement marked weak: {patchedPath}";
        Console.Error.WriteLine(Status);
        return handle;
    }

    private static string CacheRoot()
    {
        var explicitDir = Environment.GetEnvironmentVariable("DEEPSEEK_NOTEBOOKS_NATIVE_CACHE");
        if (!string.IsNullOrEmpty(explicitDir)) return explicitDir;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "deepseek-notebooks", "native");
    }

    /// <summary>The canonical absolute path (symbolic links resolved), as <c>/proc/self/maps</c> shows it.</summary>
    private static string RealPath(string path)
    {
        IntPtr resolved = realpath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero) return Path.GetFullPath(path);
        try { return Marshal.PtrToStringUTF8(resolved)!; }
        finally { free(resolved); }
    }

    [DllImport("libc.so.6", CharSet = CharSet.Ansi)]
    private static extern IntPtr realpath(string path, IntPtr resolved);

    [DllImport("libc.so.6")]
    private static extern void free(IntPtr ptr);

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();
}

/// <summary>TorchSharp's native backend could not be loaded; <see cref="Exception.Message"/> lists every attempt.</summary>
public sealed class TorchLoadException : Exception
{
    /// <summary>The attempts made, in order, with their outcome.</summary>
    public IReadOnlyList<string> Attempts { get; }

    internal TorchLoadException(string message, IEnumerable<string> attempts, Exception? inner = null)
        : base(Compose(message, attempts.ToList()), inner)
    {
        Attempts = attempts.ToList();
    }

    private static string Compose(string message, List<string> attempts) =>
        message + " Tried:" + string.Concat(attempts.Select(a => "\n  - " + a)) +
        "\nTorchSharp 0.107 needs the TorchSharp-cpu package restored (libtorch-cpu-linux-x64 2.10.0) on linux-x64.";
}
