using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.DotNet.Interactive.Formatting;

namespace DeepSeekNotebooks.Cli.Report;

/// <summary>
/// Registers a <c>text/html</c> formatter for <c>Plotly.NET.GenericChart</c> in the in-process kernel host
/// (the Plotly.NET.Interactive kernel extension is not auto-loaded there). Registration is by reflection on every
/// loaded Plotly.NET assembly, so it also covers a copy loaded through <c>#r "nuget: Plotly.NET"</c>.
/// The chart HTML never references a CDN: it draws with a global <c>Plotly</c> that the HTML report embeds once
/// (see <see cref="PlotlyJs"/>).
/// </summary>
internal static partial class ChartFormatters
{
    private static int _registered;
    private static readonly HashSet<Assembly> Done = new();

    public static void EnsureRegistered()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
            AppDomain.CurrentDomain.AssemblyLoad += (_, e) => TryRegister(e.LoadedAssembly);
        foreach (var a in AppDomain.CurrentDomain.GetAssemblies()) TryRegister(a);
    }

    private static void TryRegister(Assembly assembly)
    {
        if (assembly.GetName().Name != "Plotly.NET") return;
        lock (Done)
        {
            if (!Done.Add(assembly)) return;
        }
        var toChartHtml = assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
            .FirstOrDefault(m => m.Name == "toChartHTML" && m.GetParameters().Length == 1);
        if (toChartHtml is null) return;
        var chartType = toChartHtml.GetParameters()[0].ParameterType;
        Formatter.Register(chartType, (chart, writer) =>
        {
            var html = (string)toChartHtml.Invoke(null, [chart])!;
            writer.Write(MakeOffline(html));
        }, PlotlyJs.HtmlMimeType);
        Formatter.SetPreferredMimeTypesFor(chartType, PlotlyJs.HtmlMimeType);
    }

    /// <summary>Removes CDN references from Plotly.NET chart HTML; the page must provide a global <c>Plotly</c>.</summary>
    internal static string MakeOffline(string html) => PlotlyJs.StripRemoteScripts(html);
}
