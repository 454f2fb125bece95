using System.Runtime.CompilerServices;
using DeepSeekNotebooks.Model.Native;

namespace DeepSeekNotebooks.Visualization.Interactive;

/// <summary>
/// One call that prepares a .NET Interactive notebook (VS Code Polyglot / dotnet-interactive / dotnet-repl) for the kit.
/// Put it at the end of the first cell, right after the <c>#r</c> lines (see docs/notebook-kernel.md).
/// </summary>
public static class Notebook
{
    /// <summary>
    /// Installs <see cref="FSharpCoreRedirect"/> (before anything touches Plotly.NET: in the kernel, any Plotly.NET call
    /// made before the redirect fails with "Could not load file or assembly 'FSharp.Core, Version=10.1.0.0'"),
    /// registers the formatters (<see cref="DeepSeekNotebooksFormatters.Register"/>) and loads TorchSharp's native
    /// backend (<see cref="TorchRuntime.EnsureLoaded"/>, with its GLIBCXX repair). Idempotent; returns a short status
    /// string (a good cell value). Throws <see cref="TorchLoadException"/> when TorchSharp cannot be loaded.
    /// </summary>
    public static string Setup()
    {
        FSharpCoreRedirect.Install();
        return SetupCore(); // separate method: the redirect is in place before Plotly.NET types are resolved
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string SetupCore()
    {
        DeepSeekNotebooksFormatters.Register();
        TorchRuntime.EnsureLoaded();
        var fsharpCore = AppDomain.CurrentDomain.GetAssemblies()
            .Select(a => a.GetName()).Where(n => n.Name == "FSharp.Core")
            .Select(n => n.Version).Max();
        return $"DeepSeekNotebooks ready: formatters registered, FSharp.Core redirect installed (loaded FSharp.Core {fsharpCore?.ToString() ?? "none"}), " +
               $"torch: {TorchRuntime.Status}";
    }
}
