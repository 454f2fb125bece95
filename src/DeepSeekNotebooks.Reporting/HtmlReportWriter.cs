using System.Net;
using System.Text;
using Markdig;
using Markdig.Renderers;
using Markdig.Renderers.Html;
using Markdig.Syntax;
using Markdig.Syntax.Inlines;
using Microsoft.DotNet.Interactive.Documents;

namespace DeepSeekNotebooks.Reporting;

/// <summary>
/// Renders an executed notebook as one self-contained, offline HTML page: table of contents from the markdown
/// headings, markdown rendered (raw HTML in markdown is escaped), code and text outputs HTML-escaped, HTML outputs of
/// formatters embedded as trusted HTML with remote scripts removed, plotly.js inlined once when a chart needs it.
/// </summary>
internal static class HtmlReportWriter
{
    /// <summary>Shown instead of code when inputs are redacted.</summary>
    public const string RedactedPlaceholder = "[code hidden: report generated with --redact-inputs]";

    private static readonly MarkdownPipeline Pipeline = new MarkdownPipelineBuilder()
        .UseAdvancedExtensions()
        .DisableHtml()
        .Build();

    internal static string Escape(string? s) => WebUtility.HtmlEncode(s ?? "");

    public static string Render(NotebookRunResult run, bool redactInputs, string? executedNotebookFileName = null)
    {
        var toc = new List<(int Level, string Id, string Text)>();
        var body = new StringBuilder();
        var needsPlotly = false;

        if (run.Document is null)
        {
            body.Append("<section class=\"cell error-cell\" id=\"malformed\"><h2>Notebook could not be read</h2><pre class=\"error\">")
                .Append(Escape(run.Message)).Append("</pre></section>");
            toc.Add((2, "malformed", "Notebook could not be read"));
        }
        else
        {
            var cellResults = run.Cells.ToDictionary(c => c.Index);
            var elements = run.Document.Elements;
            for (var i = 0; i < elements.Count; i++)
            {
                var e = elements[i];
                if (!NotebookRunner.IsCode(e))
                {
                    body.Append("<section class=\"cell markdown\" id=\"cell-").Append(i).Append("\">")
                        .Append(RenderMarkdown(e.Contents, $"c{i}-", toc))
                        .Append("</section>\n");
                    continue;
                }

                cellResults.TryGetValue(i, out var result);
                var status = result?.Status ?? CellStatus.NotRun;
                if (status is CellStatus.Failed or CellStatus.TimedOut or CellStatus.Skipped)
                    toc.Add((2, $"cell-{i}", $"⚠ Cell {i + 1} {StatusText(status)}"));

                body.Append("<section class=\"cell code status-").Append(status.ToString().ToLowerInvariant())
                    .Append("\" id=\"cell-").Append(i).Append("\">");
                body.Append("<div class=\"prompt\">")
                    .Append(e.ExecutionOrder > 0 ? $"[{e.ExecutionOrder}]" : "[ ]")
                    .Append(" <span class=\"lang\">").Append(Escape(e.KernelName)).Append("</span>");
                if (status != CellStatus.Succeeded)
                    body.Append(" <span class=\"badge\">").Append(StatusText(status)).Append("</span>");
                if (result is not null && result.Duration > TimeSpan.Zero)
                    body.Append(" <span class=\"time\">").Append($"{result.Duration.TotalSeconds:F2}s").Append("</span>");
                body.Append("</div>");
                if (redactInputs)
                    body.Append("<pre class=\"source redacted\">").Append(Escape(RedactedPlaceholder)).Append("</pre>");
                else
                    body.Append("<pre class=\"source\"><code>").Append(Escape(e.Contents)).Append("</code></pre>");

                if (e.Outputs.Count > 0)
                {
                    body.Append("<div class=\"outputs\">");
                    foreach (var output in e.Outputs) needsPlotly |= RenderOutput(output, body);
                    body.Append("</div>");
                }
                body.Append("</section>\n");
            }
        }

        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            // The report is offline: nothing may be fetched (same policy as the kit's HtmlReport and dashboard pages).
            .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:\">")
            .Append("<title>").Append(Escape(run.Name)).Append(" · notebook report</title>")
            .Append("<style>").Append(Css).Append("</style>");
        if (needsPlotly)
            html.Append("<script>/* plotly.js bundled from the Plotly.NET package; no network needed */\n")
                .Append(DeepSeekNotebooks.Visualization.Html.PlotlyJs.Source.Replace("</script", "<\\/script", StringComparison.OrdinalIgnoreCase))
                .Append("\n</script>");
        html.Append("</head><body>");
        html.Append("<header><h1>").Append(Escape(run.Name)).Append("</h1><p class=\"status status-")
            .Append(run.Status.ToString().ToLowerInvariant()).Append("\">").Append(Escape(run.Status.ToString()));
        if (run.Message is not null) html.Append(": ").Append(Escape(run.Message));
        html.Append("</p><p class=\"meta\">Source: ").Append(Escape(Path.GetFileName(run.NotebookPath)))
            .Append(" · run time ").Append($"{run.Duration.TotalSeconds:F1}s")
            .Append(" · generated ").Append(Escape(DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm:ss zzz")));
        if (executedNotebookFileName is not null)
            html.Append(" · <a href=\"").Append(Escape(Uri.EscapeDataString(executedNotebookFileName))).Append("\">executed notebook</a>");
        html.Append(" · <a href=\"index.html\">all reports</a></p></header>");

        html.Append("<nav class=\"toc\"><h2>Contents</h2><ul>");
        foreach (var (level, id, text) in toc)
            html.Append("<li class=\"l").Append(Math.Clamp(level, 1, 6)).Append("\"><a href=\"#").Append(Escape(id)).Append("\">")
                .Append(Escape(text)).Append("</a></li>");
        if (toc.Count == 0) html.Append("<li class=\"l1\">(no headings)</li>");
        html.Append("</ul></nav><main>").Append(body).Append("</main></body></html>\n");
        return html.ToString();
    }

    private static string StatusText(CellStatus status) => status switch
    {
        CellStatus.Failed => "failed",
        CellStatus.TimedOut => "timed out",
        CellStatus.Skipped => "skipped",
        CellStatus.NotRun => "not run",
        _ => "ok",
    };

    /// <summary>Appends one output; returns true if it needs plotly.js.</summary>
    private static bool RenderOutput(InteractiveDocumentOutputElement output, StringBuilder sb)
    {
        switch (output)
        {
            case TextElement t:
                sb.Append("<pre class=\"stream ").Append(t.Name == "stderr" ? "stderr" : "stdout").Append("\">")
                    .Append(Escape(t.Text)).Append("</pre>");
                return false;
            case ErrorElement err:
                sb.Append("<pre class=\"error\"><strong>").Append(Escape(err.ErrorName)).Append("</strong>: ")
                    .Append(Escape(err.ErrorValue));
                if (err.StackTrace is { Length: > 0 })
                    sb.Append('\n').Append(Escape(string.Join('\n', err.StackTrace)));
                sb.Append("</pre>");
                return false;
            case DisplayElement d:
                return RenderData(d.Data, sb, "display");
            case ReturnValueElement r:
                return RenderData(r.Data, sb, "result");
            default:
                return false;
        }
    }

    private static bool RenderData(IDictionary<string, object>? data, StringBuilder sb, string cssClass)
    {
        if (data is null || data.Count == 0) return false;
        string? Get(string mime) => data.TryGetValue(mime, out var v) ? AsText(v) : null;
        sb.Append("<div class=\"output ").Append(cssClass).Append("\">");
        var needsPlotly = false;
        if (Get("text/html") is { } html)
        {
            // HTML produced by formatters is trusted; only remote script loads are removed (offline report).
            var offline = OfflineHtml.StripRemoteScripts(html);
            needsPlotly = offline.Contains("Plotly.", StringComparison.Ordinal);
            sb.Append(offline);
        }
        else if (Get("image/svg+xml") is { } svg)
            sb.Append(svg);
        else if (Get("image/png") is { } png)
            sb.Append("<img alt=\"image output\" src=\"data:image/png;base64,").Append(Escape(png.Trim())).Append("\">");
        else if (Get("image/jpeg") is { } jpeg)
            sb.Append("<img alt=\"image output\" src=\"data:image/jpeg;base64,").Append(Escape(jpeg.Trim())).Append("\">");
        else if (Get("text/markdown") is { } md)
            sb.Append(RenderMarkdown(md, "out-", null));
        else if (Get("text/plain") is { } text)
            sb.Append("<pre>").Append(Escape(text)).Append("</pre>");
        else if (Get("application/json") is { } json)
            sb.Append("<pre>").Append(Escape(json)).Append("</pre>");
        else
            sb.Append("<pre class=\"meta\">(output with MIME type ").Append(Escape(string.Join(", ", data.Keys))).Append(")</pre>");
        sb.Append("</div>");
        return needsPlotly;
    }

    private static string? AsText(object? value) => value switch
    {
        null => null,
        string s => s,
        IEnumerable<object> lines => string.Concat(lines.Select(l => l?.ToString())),
        _ => value.ToString(),
    };

    /// <summary>Markdown to HTML with raw HTML escaped, unsafe link schemes neutralised and heading ids prefixed.</summary>
    internal static string RenderMarkdown(string markdown, string idPrefix, List<(int, string, string)>? toc)
    {
        var document = Markdown.Parse(markdown ?? "", Pipeline);
        foreach (var heading in document.Descendants<HeadingBlock>())
        {
            var attributes = heading.GetAttributes();
            var id = idPrefix + (attributes.Id ?? "h");
            attributes.Id = id;
            toc?.Add((heading.Level, id, InlineText(heading.Inline)));
        }
        foreach (var link in document.Descendants<LinkInline>())
        {
            var url = link.Url?.Trim() ?? "";
            if (url.StartsWith("javascript:", StringComparison.OrdinalIgnoreCase) ||
                url.StartsWith("vbscript:", StringComparison.OrdinalIgnoreCase) ||
                (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase) && !(link.IsImage && url.StartsWith("data:image/", StringComparison.OrdinalIgnoreCase))))
                link.Url = "#";
        }
        using var writer = new StringWriter();
        var renderer = new HtmlRenderer(writer);
        Pipeline.Setup(renderer);
        renderer.Render(document);
        writer.Flush();
        return writer.ToString();
    }

    private static string InlineText(ContainerInline? inline)
    {
        if (inline is null) return "";
        var sb = new StringBuilder();
        foreach (var node in inline.Descendants())
        {
            switch (node)
            {
                case LiteralInline lit: sb.Append(lit.Content.ToString()); break;
                case CodeInline code: sb.Append(code.Content); break;
            }
        }
        return sb.ToString();
    }

    internal const string Css = """
        body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;display:grid;grid-template-columns:16rem 1fr;grid-template-rows:auto 1fr;color:#1d1d1f}
        header{grid-column:1/3;padding:1rem 2rem;border-bottom:1px solid #ddd;background:#fafafa}
        header h1{margin:0 0 .3rem 0;font-size:1.5rem}
        .meta{color:#666;font-size:.85rem}
        .status{font-weight:600;margin:.2rem 0}
        .status-succeeded{color:#1a7f37}.status-failed,.status-timedout,.status-malformed{color:#cf222e}
        nav.toc{padding:1rem;border-right:1px solid #eee;font-size:.9rem;position:sticky;top:0;align-self:start;max-height:100vh;overflow:auto}
        nav.toc ul{list-style:none;padding:0;margin:0}nav.toc li{margin:.2rem 0}
        nav.toc .l2{padding-left:.8rem}nav.toc .l3{padding-left:1.6rem}nav.toc .l4,nav.toc .l5,nav.toc .l6{padding-left:2.4rem}
        main{padding:1rem 2rem;min-width:0}
        .cell{margin:0 0 1rem 0}
        .cell.code{border-left:3px solid #d0d7de;padding-left:.8rem}
        .cell.status-failed,.cell.status-timedout,.cell.status-skipped{border-left-color:#cf222e}
        .cell.status-notrun{opacity:.6}
        .prompt{font-family:ui-monospace,monospace;font-size:.8rem;color:#666}
        .badge{background:#cf222e;color:#fff;border-radius:3px;padding:0 .3rem}
        pre{background:#f6f8fa;padding:.6rem;overflow:auto;white-space:pre-wrap;word-break:break-word;font-size:.85rem;margin:.3rem 0}
        pre.redacted{color:#888;font-style:italic}
        pre.stderr{background:#fff8e6}pre.error{background:#ffebe9;color:#82071e}
        .output{overflow:auto;margin:.3rem 0}
        table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25rem .5rem}
        """;
}
