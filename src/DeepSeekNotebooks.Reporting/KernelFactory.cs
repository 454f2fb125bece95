using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.PackageManagement;

namespace DeepSeekNotebooks.Reporting;

/// <summary>
/// Builds the in-process kernel used to run notebooks: a composite kernel with a C# kernel that understands
/// <c>#r "nuget: ..."</c>, <c>#i</c>, <c>#r "path.dll"</c>, <c>display(...)</c> and the default magic commands.
/// Kernel extensions shipped in packages are not auto-loaded in this host, so the kit's formatters (Plotly.NET charts,
/// analysis results, DataFrames) are registered here, drawing with the single plotly.js each HTML report embeds.
/// </summary>
internal static class KernelFactory
{
    public const string CSharpKernelName = "csharp";

    public static CompositeKernel Create()
    {
        // Charts draw with the one plotly.js each HTML report embeds, instead of carrying a copy per output.
        DeepSeekNotebooks.Interactive.DeepSeekNotebooksFormatters.Register();
        DeepSeekNotebooks.Visualization.Html.ChartHtml.DefaultInclusion = DeepSeekNotebooks.Visualization.Html.PlotlyJsInclusion.AssumeLoaded;

        var csharp = new CSharpKernel()
            .UseNugetDirective((k, resolved) =>
            {
                k.AddAssemblyReferences(resolved.SelectMany(r => r.AssemblyPaths));
                return Task.CompletedTask;
            })
            .UseKernelHelpers()
            .UseValueSharing();

        var composite = new CompositeKernel { csharp };
        composite.DefaultKernelName = CSharpKernelName;
        return composite;
    }
}
