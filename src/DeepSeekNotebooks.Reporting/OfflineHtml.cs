using System.Text.RegularExpressions;

namespace DeepSeekNotebooks.Reporting;

/// <summary>Keeps notebook outputs offline in reports (plotly.js itself comes from <see cref="Visualization.Html.PlotlyJs"/>).</summary>
internal static partial class OfflineHtml
{
    /// <summary>Removes every &lt;script src="http(s)://..."&gt; (CDN loads) from HTML; inline scripts stay.</summary>
    public static string StripRemoteScripts(string html) =>
        RemoteScript().Replace(html, "<!-- remote script removed: report is offline -->");

    [GeneratedRegex("""<script\b[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//[^>]*>\s*</script\s*>""", RegexOptions.IgnoreCase)]
    private static partial Regex RemoteScript();
}
