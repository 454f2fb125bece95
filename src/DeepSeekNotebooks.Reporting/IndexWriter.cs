using System.Text;
using static DeepSeekNotebooks.Reporting.HtmlReportWriter;

namespace DeepSeekNotebooks.Reporting;

/// <summary>Renders <c>index.html</c>: one row per notebook with its status and links to its report and executed notebook.</summary>
internal static class IndexWriter
{
    public static string Render(IReadOnlyList<NotebookReport> reports, string outputDirectory)
    {
        var sb = new StringBuilder();
        var ok = reports.Count(r => r.Run.Status == NotebookStatus.Succeeded);
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>Notebook reports</title><style>")
            .Append(Css).Append("body{display:block}</style></head><body><header><h1>Notebook reports</h1><p class=\"status ")
            .Append(ok == reports.Count ? "status-succeeded" : "status-failed").Append("\">")
            .Append(ok).Append(" of ").Append(reports.Count).Append(" notebook(s) succeeded</p><p class=\"meta\">Generated ")
            .Append(Escape(DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm:ss zzz"))).Append("</p></header><main><table>")
            .Append("<thead><tr><th>Notebook</th><th>Status</th><th>Cells run</th><th>Time</th><th>Details</th><th>Files</th></tr></thead><tbody>");
        foreach (var r in reports)
        {
            var run = r.Run;
            var executed = run.Cells.Count(c => c.Status != CellStatus.NotRun);
            sb.Append("<tr><td>").Append(Escape(run.Name)).Append("</td><td class=\"status status-")
                .Append(run.Status.ToString().ToLowerInvariant()).Append("\">").Append(Escape(run.Status.ToString()))
                .Append("</td><td>").Append(executed).Append(" / ").Append(run.Cells.Count)
                .Append("</td><td>").Append($"{run.Duration.TotalSeconds:F1}s")
                .Append("</td><td>").Append(Escape(run.Message)).Append("</td><td>")
                .Append("<a href=\"").Append(Escape(Link(r.HtmlPath, outputDirectory))).Append("\">report</a>");
            if (r.ExecutedNotebookPath is not null)
                sb.Append(" · <a href=\"").Append(Escape(Link(r.ExecutedNotebookPath, outputDirectory))).Append("\">ipynb</a>");
            sb.Append("</td></tr>");
        }
        sb.Append("</tbody></table></main></body></html>\n");
        return sb.ToString();
    }

    private static string Link(string path, string outputDirectory) =>
        string.Join('/', Path.GetRelativePath(outputDirectory, path).Split(Path.DirectorySeparatorChar).Select(Uri.EscapeDataString));
}
