using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using TorchSharp;

namespace DeepSeekNotebooks.Model.Native;

/// <summary>
/// Loads TorchSharp's native backend, repairing the one known incompatibility of TorchSharp 0.107 on
/// glibc-2.36-era Linux (Debian 12, Ubuntu 22.04): <c>libLibTorchSharp.so</c> requires the libstdc++ version
/// node <c>GLIBCXX_3.4.32</c> only for the unused symbol <c>std::ios_base_library_init()</c>. When loading fails
/// for that reason, a private copy of the library is written to a per-user cache folder with the missing
/// version requirement(s) marked weak (ELF <c>VER_FLG_WEAK</c>), and that copy is loaded instead. Nothing in
/// the system, the NuGet cache or the build output is modified.
/// </summary>
/// <remarks>
/// Every entry point of the kit calls <see cref="EnsureLoaded"/>; it is cheap after the first call. Call it
/// yourself before using <c>TorchSharp.torch</c> directly if you have not touched the kit yet.
/// The cache folder is <c>$DEEPSEEK_NOTEBOOKS_NATIVE_CACHE</c>, else <c>$XDG_CACHE_HOME/deepseek-notebooks/native</c>,
/// else <c>~/.cache/deepseek-notebooks/native</c>.
/// </remarks>
public static class TorchRuntime
{
    private const string NativeName = "LibTorchSharp";
    private const string NativeFile = "libLibTorchSharp.so";
    private static readonly Regex MissingVersion = new(@"version `([^']+)' not found \(required by ([^)]+)\)", RegexOptions.Compiled);
    private static readonly object Gate = new();
    private static readonly List<string> Attempts = new();
    private static bool _ready;
    private static bool _resolving;
    private static IntPtr _patchedHandle;

    /// <summary>What the loader did, one line (null until torch has been loaded).</summary>
    public static string? Status { get; private set; }

    [ModuleInitializer]
    internal static void RegisterResolver()
    {
        var torchAssembly = typeof(torch).Assembly;
        var context = AssemblyLoadContext.GetLoadContext(torchAssembly) ?? AssemblyLoadContext.Default;
        // Fires only after the runtime's own probing failed: that is exactly the failure we repair.
        context.ResolvingUnmanagedDll += (assembly, name) =>
        {
            if (assembly != torchAssembly || !IsLibTorchSharp(name)) return IntPtr.Zero;
            lock (Gate)
            {
                if (_patchedHandle != IntPtr.Zero || _resolving) return _patchedHandle;
                _resolving = true;
                try { return TryLoadPatchedCopy(); }
                catch { return IntPtr.Zero; }
                finally { _resolving = false; }
            }
        };
    }

    /// <summary>
    /// Makes sure TorchSharp's native backend (CPU) is loaded, applying the GLIBCXX repair described on
    /// <see cref="TorchRuntime"/> if needed. Throws <see cref="TorchLoadException"/> listing everything tried
    /// when the backend cannot be loaded.
    /// </summary>
    public static void EnsureLoaded()
    {
        if (_ready) return;
        lock (Gate)
        {
            if (_ready) return;
            Attempts.Clear();
            var torchAssembly = typeof(torch).Assembly;
            if (OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64)
            {
                NativeLibrary.TryLoad("torch_cpu", torchAssembly, null, out _);
                if (NativeLibrary.TryLoad(NativeName, torchAssembly, null, out _))
                    Attempts.Add($"regular load of {NativeName} next to {torchAssembly.Location}: ok");
                else
                {
                    Attempts.Add($"regular load of {NativeName} next to {torchAssembly.Location}: failed");
                    _resolving = true;
                    try
                    {
                        if (TryLoadPatchedCopy() == IntPtr.Zero)
                            throw new TorchLoadException("TorchSharp's native library could not be loaded.", Attempts);
                    }
                    finally { _resolving = false; }
                }
            }
            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
            }
            catch (Exception e) when (e is not TorchLoadException)
            {
                Attempts.Add($"TorchSharp initialisation: {FirstLine(e.InnerException?.Message ?? e.Message)}");
                throw new TorchLoadException("TorchSharp's native backend failed to initialise.", Attempts, e);
            }
            Status ??= "TorchSharp native backend loaded normally.";
            _ready = true;
        }
    }

    private static bool IsLibTorchSharp(string name) =>
        name is NativeName or NativeFile || name.EndsWith("/" + NativeFile, StringComparison.Ordinal);

    /// <summary>Finds the shipped library, diagnoses why it does not load, writes and loads a repaired copy.</summary>
    private static IntPtr TryLoadPatchedCopy()
    {
        if (_patchedHandle != IntPtr.Zero) return _patchedHandle;
        var torchAssembly = typeof(torch).Assembly;
        var original = CandidateDirectories(torchAssembly, "torchsharp")
            .Select(d => Path.Combine(d, NativeFile)).FirstOrDefault(File.Exists);
        if (original is null)
        {
            Attempts.Add($"looked for {NativeFile} next to TorchSharp.dll, in runtimes/linux-x64/native and in the NuGet cache: not found");
            return IntPtr.Zero;
        }
        var libtorchDir = new[] { Path.GetDirectoryName(original)! }
            .Concat(CandidateDirectories(torchAssembly, "libtorch-cpu-linux-x64"))
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "libtorch_cpu.so")));
        if (libtorchDir is null)
        {
            Attempts.Add("looked for libtorch_cpu.so (package libtorch-cpu-linux-x64) beside it and in the NuGet cache: not found");
            return IntPtr.Zero;
        }

        string error;
        try
        {
            // Load libtorch from its own folder first: the repaired copy's DT_NEEDED entries then bind to these
            // already-loaded objects by soname, so exactly one libtorch is ever loaded in the process.
            foreach (var dep in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
                NativeLibrary.TryLoad(Path.Combine(libtorchDir, dep), out _);
            var handle = NativeLibrary.Load(original);
            Attempts.Add($"direct load of {original}: ok");
            return handle;
        }
        catch (DllNotFoundException e) { error = e.Message; }
        Attempts.Add($"direct load of {original}: {FirstLine(error)}");

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
        try
        {
            _patchedHandle = NativeLibrary.Load(patchedPath);
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
        return _patchedHandle;
    }

    private static IEnumerable<string> CandidateDirectories(Assembly torchAssembly, string package)
    {
        var here = Path.GetDirectoryName(torchAssembly.Location);
        if (!string.IsNullOrEmpty(here))
        {
            yield return here;
            yield return Path.Combine(here, "runtimes", "linux-x64", "native");
            yield return Path.Combine(here, "cpu");
            // Loaded from the NuGet cache (notebooks): <cache>/torchsharp/<version>/lib/<tfm>/TorchSharp.dll
            var packageRoot = Path.GetFullPath(Path.Combine(here, "..", "..", ".."));
            foreach (var d in VersionDirs(Path.Combine(packageRoot, package))) yield return d;
        }
        var nugetRoot = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var d in VersionDirs(Path.Combine(nugetRoot, package))) yield return d;
    }

    private static IEnumerable<string> VersionDirs(string packageDir) =>
        !Directory.Exists(packageDir)
            ? []
            : Directory.GetDirectories(packageDir).OrderByDescending(d => d, StringComparer.Ordinal)
                .Select(d => Path.Combine(d, "runtimes", "linux-x64", "native"));

    private static string CacheRoot()
    {
        var explicitDir = Environment.GetEnvironmentVariable("DEEPSEEK_NOTEBOOKS_NATIVE_CACHE");
        if (!string.IsNullOrEmpty(explicitDir)) return explicitDir;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "deepseek-notebooks", "native");
    }

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
