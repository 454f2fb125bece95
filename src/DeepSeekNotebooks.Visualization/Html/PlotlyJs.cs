using System.Reflection;
using System.Text;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>
/// plotly.js, taken from the copy Plotly.NET ships as a manifest resource of its assembly
/// (<c>Plotly.NET.plotly-&lt;version&gt;.min.js</c>, ~3.6 MB for 2.28.0). Never a CDN.
/// </summary>
public static class PlotlyJs
{
    private static readonly Lazy<(string Version, string Source)> s_js = new(Load);

    /// <summary>The plotly.js version embedded (e.g. "2.28.0").</summary>
    public static string Version => s_js.Value.Version;

    /// <summary>The minified plotly.js source.</summary>
    public static string Source => s_js.Value.Source;

    /// <summary>
    /// A <c>&lt;script&gt;</c> element defining <c>window.Plotly</c>. The bundle is wrapped so that an AMD loader
    /// (require.js in classic Jupyter) or CommonJS globals are ignored and the UMD header always sets
    /// <c>window.Plotly</c>; when <paramref name="skipIfLoaded"/> is true the bundle is only evaluated if
    /// <c>window.Plotly</c> is not defined yet (notebook outputs share one page).
    /// </summary>
    public static string InlineScriptTag(bool skipIfLoaded = false)
    {
        var sb = new StringBuilder(Source.Length + 256);
        sb.Append("<script type=\"text/javascript\">");
        if (skipIfLoaded) sb.Append("if(!window.Plotly){");
        sb.Append("(function(define,module,exports){\n").Append(Source).Append("\n}).call(window);");
        if (skipIfLoaded) sb.Append('}');
        sb.Append("</script>");
        return sb.ToString();
    }

    private static (string, string) Load()
    {
        Assembly asm = typeof(Plotly.NET.GenericChart).Assembly;
        string name = asm.GetManifestResourceNames()
            .Where(n => n.StartsWith("Plotly.NET.plotly-", StringComparison.Ordinal) && n.EndsWith(".min.js", StringComparison.Ordinal))
            .OrderByDescending(n => n, StringComparer.Ordinal)
            .FirstOrDefault()
            ?? throw new InvalidOperationException($"{asm.GetName().Name} carries no plotly.min.js resource.");
        using Stream s = asm.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(s, Encoding.UTF8);
        string src = reader.ReadToEnd();
        if (src.Contains("</script", StringComparison.OrdinalIgnoreCase))
            src = src.Replace("</script", "<\\/script", StringComparison.OrdinalIgnoreCase);
        string version = name["Plotly.NET.plotly-".Length..^".min.js".Length];
        return (version, src);
    }
}
