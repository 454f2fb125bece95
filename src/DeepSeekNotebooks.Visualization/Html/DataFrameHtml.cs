using System.Globalization;
using System.Text;
using Microsoft.Data.Analysis;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>A Microsoft.Data.Analysis <see cref="DataFrame"/> as an HTML table (all text escaped, numbers rounded for reading).</summary>
public static class DataFrameHtml
{
    /// <summary>Renders up to <paramref name="maxRows"/> rows; a caption says how many rows were left out.</summary>
    public static string ToHtml(DataFrame frame, int maxRows = 40)
    {
        ArgumentNullException.ThrowIfNull(frame);
        var sb = new StringBuilder("<div class=\"dsn-frame\" style=\"overflow-x:auto\"><table style=\"border-collapse:collapse;font:12px monospace\"><thead><tr>");
        sb.Append("<th style=\"border-bottom:1px solid #999;padding:2px 6px\"></th>");
        foreach (var c in frame.Columns)
            sb.Append("<th style=\"border-bottom:1px solid #999;padding:2px 6px;text-align:right\">").Append(HtmlText.Escape(c.Name)).Append("</th>");
        sb.Append("</tr></thead><tbody>");
        long rows = Math.Min(frame.Rows.Count, maxRows);
        for (long r = 0; r < rows; r++)
        {
            sb.Append("<tr><td style=\"color:#888;padding:2px 6px\">").Append(r).Append("</td>");
            foreach (var c in frame.Columns)
                sb.Append("<td style=\"padding:2px 6px;text-align:right\">").Append(HtmlText.Escape(Format(c[r]))).Append("</td>");
            sb.Append("</tr>");
        }
        sb.Append("</tbody></table>");
        if (frame.Rows.Count > rows)
            sb.Append("<div style=\"color:#888;font:12px sans-serif\">… ").Append(frame.Rows.Count - rows).Append(" more rows (").Append(frame.Rows.Count).Append(" in all)</div>");
        return sb.Append("</div>").ToString();
    }

    private static string Format(object? v) => v switch
    {
        null => "",
        double d => d.ToString(Math.Abs(d) is >= 1e-3 and < 1e6 or 0 ? "0.####" : "0.###E+0", CultureInfo.InvariantCulture),
        float f => ((double)f).ToString(Math.Abs(f) is >= 1e-3f and < 1e6f or 0 ? "0.####" : "0.###E+0", CultureInfo.InvariantCulture),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };
}
