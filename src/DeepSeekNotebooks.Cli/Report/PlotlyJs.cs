using System.Reflection;
using System.Text.RegularExpressions;

namespace DeepSeekNotebooks.Cli.Report;

/// <summary>The plotly.js bundle embedded in the Plotly.NET assembly, and helpers to keep HTML offline.</summary>
internal static partial class PlotlyJs
{
    public const string HtmlMimeType = "text/html";

    private static readonly Lazy<string> Script = new(Load);

    /// <summary>The minified plotly.js source shipped inside Plotly.NET (no network access needed).</summary>
    public static string Source => Script.Value;

    private static string Load()
    {
        var assembly = typeof(Plotly.NET.GenericChart).Assembly;
        var name = assembly.GetManifestResourceNames().First(n => n.EndsWith(".min.js", StringComparison.Ordinal) && n.Contains("plotly", StringComparison.OrdinalIgnoreCase));
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>True when HTML output needs a global Plotly object.</summary>
    public static bool IsNeededBy(string html) => html.Contains("Plotly.", StringComparison.Ordinal) || html.Contains("plotly", StringComparison.OrdinalIgnoreCase);

    /// <summary>Removes every &lt;script src="http(s)://..."&gt; (CDN loads) from HTML; inline scripts stay.</summary>
    public static string StripRemoteScripts(string html) =>
        RemoteScript().Replace(html, "<!-- remote script removed: report is offline -->");

    [GeneratedRegex("""<script\b[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//[^>]*>\s*</script\s*>""", RegexOptions.IgnoreCase)]
    private static partial Regex RemoteScript();
}
