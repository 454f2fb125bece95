using System.Text.RegularExpressions;

namespace DeepSeekNotebooks.Cli.Report;

/// <summary>The plotly.js bundle embedded in the Plotly.NET assembly, and helpers to keep HTML offline.</summary>
internal static partial class PlotlyJs
{
    public const string HtmlMimeType = "text/html";

    /// <summary>The minified plotly.js source shipped inside Plotly.NET (no network access needed).</summary>
    public static string Source => DeepSeekNotebooks.Visualization.Html.PlotlyJs.Source;

    /// <summary>Removes every &lt;script src="http(s)://..."&gt; (CDN loads) from HTML; inline scripts stay.</summary>
    public static string StripRemoteScripts(string html) =>
        RemoteScript().Replace(html, "<!-- remote script removed: report is offline -->");

    [GeneratedRegex("""<script\b[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//[^>]*>\s*</script\s*>""", RegexOptions.IgnoreCase)]
    private static partial Regex RemoteScript();
}
