using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.Loader;

namespace DeepSeekNotebooks.Interactive;

/// <summary>
/// Answers a failed load of FSharp.Core (any version) with the FSharp.Core already loaded in the process.
/// Needed because Plotly.NET 6.0.0 is compiled against FSharp.Core 10.1 while the Polyglot/dotnet-interactive kernel
/// (1.0.712001) has FSharp.Core 10.0 loaded, which otherwise fails with
/// "Could not load file or assembly 'FSharp.Core, Version=10.1.0.0'". Installed automatically when this assembly is
/// first used (module initializer) and by <see cref="DeepSeekNotebooksFormatters.Register"/>; calling it again is a no-op.
/// </summary>
public static class FSharpCoreRedirect
{
    private const string FSharpCore = "FSharp.Core";
    private static int s_installed;

    /// <summary>True once the handlers are attached.</summary>
    public static bool IsInstalled => Volatile.Read(ref s_installed) == 1;

    /// <summary>Attaches the handlers to AssemblyLoadContext.Default.Resolving and AppDomain.AssemblyResolve (once).</summary>
    public static void Install()
    {
        if (Interlocked.Exchange(ref s_installed, 1) == 1) return;
        AssemblyLoadContext.Default.Resolving += (_, name) => Resolve(name, AppDomain.CurrentDomain.GetAssemblies());
        AppDomain.CurrentDomain.AssemblyResolve += (_, args) => Resolve(new AssemblyName(args.Name), AppDomain.CurrentDomain.GetAssemblies());
    }

    /// <summary>
    /// The handler's decision: for a request named FSharp.Core, the highest-versioned FSharp.Core among
    /// <paramref name="loaded"/>; otherwise (or when none is loaded) null, so other resolvers still get their turn.
    /// </summary>
    public static Assembly? Resolve(AssemblyName requested, IEnumerable<Assembly> loaded)
    {
        if (!string.Equals(requested.Name, FSharpCore, StringComparison.OrdinalIgnoreCase)) return null;
        Assembly? best = null;
        Version? bestVersion = null;
        foreach (var a in loaded)
        {
            AssemblyName n;
            try { n = a.GetName(); } catch { continue; }
            if (!string.Equals(n.Name, FSharpCore, StringComparison.OrdinalIgnoreCase)) continue;
            if (bestVersion is null || (n.Version ?? new Version()) > bestVersion) { best = a; bestVersion = n.Version ?? new Version(); }
        }
        return best;
    }

#pragma warning disable CA2255 // module initializer in a library: intentional, it only adds a fallback resolver.
    [ModuleInitializer]
    internal static void InstallOnLoad() => Install();
#pragma warning restore CA2255
}
