using System.Text;
using Plotly.NET;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>
/// A single self-contained HTML page: charts, views and text, with plotly.js embedded once in the head and a
/// Content-Security-Policy that forbids any network load. Text added with <see cref="AddHeading"/> /
/// <see cref="AddParagraph"/> is escaped; <see cref="AddTrustedHtml"/> is not.
/// </summary>
public sealed class HtmlReport : IHtmlView
{
    private readonly List<Func<string>> _parts = new();
    private readonly string _idPrefix = $"dsn-{Guid.NewGuid():N}";

    /// <summary>Creates an empty report with the page title <paramref name="title"/> (escaped).</summary>
    public HtmlReport(string title) => Title = title;

    /// <summary>The page title (shown as &lt;title&gt; and as the first heading).</summary>
    public string Title { get; }

    /// <summary>Number of parts added so far.</summary>
    public int Count => _parts.Count;

    /// <summary>Adds a heading (level 1–6) with escaped text.</summary>
    public HtmlReport AddHeading(string text, int level = 2)
    {
        level = Math.Clamp(level, 1, 6);
        _parts.Add(() => $"<h{level}>{HtmlText.Escape(text)}</h{level}>");
        return this;
    }

    /// <summary>Adds a paragraph with escaped text.</summary>
    public HtmlReport AddParagraph(string text)
    {
        _parts.Add(() => $"<p>{HtmlText.Escape(text)}</p>");
        return this;
    }

    /// <summary>Adds a Plotly.NET chart (drawn with the page's single embedded plotly.js).</summary>
    public HtmlReport AddChart(GenericChart chart)
    {
        string id = $"{_idPrefix}-chart-{_parts.Count}";
        _parts.Add(() => ChartHtml.Fragment(chart, PlotlyJsInclusion.AssumeLoaded, id));
        return this;
    }

    /// <summary>Adds a view such as <see cref="TokenAttributionView"/>.</summary>
    public HtmlReport AddView(IHtmlView view)
    {
        _parts.Add(view.ToHtml);
        return this;
    }

    /// <summary>Adds HTML as is. Only for markup you generated yourself; never for raw input text.</summary>
    public HtmlReport AddTrustedHtml(string html)
    {
        _parts.Add(() => html);
        return this;
    }

    /// <summary>The page's body content (without plotly.js), for embedding in another page that loads plotly.js.</summary>
    public string ToHtml()
    {
        var sb = new StringBuilder();
        sb.Append("<div class=\"dsn-report\"><h1>").Append(HtmlText.Escape(Title)).Append("</h1>");
        foreach (var part in _parts) sb.Append("<section>").Append(part()).Append("</section>\n");
        return sb.Append("</div>").ToString();
    }

    /// <summary>The complete page, plotly.js inline.</summary>
    public string ToPage()
    {
        var sb = new StringBuilder(PlotlyJs.Source.Length + 64 * 1024);
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
          .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:\">")
          .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
          .Append("<title>").Append(HtmlText.Escape(Title)).Append("</title>")
          .Append("<style>").Append(Css).Append("</style>\n")
          .Append(PlotlyJs.InlineScriptTag())
          .Append("\n</head><body>\n")
          .Append(ToHtml())
          .Append("\n</body></html>\n");
        return sb.ToString();
    }

    /// <summary>
    /// Writes <see cref="ToPage"/> to <paramref name="path"/> (UTF-8) atomically (a temporary file in the same directory,
    /// then a move over the target, as <see cref="Dashboard.Save"/>) and returns the full path.
    /// </summary>
    public string Save(string path)
    {
        return DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(path, ToPage());
    }

    /// <summary>One chart as a complete page.</summary>
    public static string PageFor(GenericChart chart, string title) => new HtmlReport(title).AddChart(chart).ToPage();

    internal const string Css =
        "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5rem;color:#222}" +
        "section{margin:1rem 0}.dsn-chart{width:100%;min-height:420px}";
}
