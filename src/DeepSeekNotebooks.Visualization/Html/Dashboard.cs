using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Experts;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>
/// One self-contained HTML file per analysed input: attention (per layer/head heatmap), rollout, attribution
/// (coloured text + bar chart per method) and MoE routing (expert choice per token per layer), linked by
/// layer/head/method/token controls; below them the attention's <see cref="HeadView"/> and <see cref="ModelView"/>. No server and no network: plotly.js and the dashboard script are inline, the
/// data is embedded as JSON (escaped for the script context), and the page's CSP forbids any load.
/// </summary>
public static class Dashboard
{
    private static readonly Lazy<string> s_script = new(() =>
    {
        using Stream s = typeof(Dashboard).Assembly.GetManifestResourceStream("DeepSeekNotebooks.Visualization.Html.Dashboard.js")
            ?? throw new InvalidOperationException("Dashboard.js resource missing.");
        using var r = new StreamReader(s, Encoding.UTF8);
        return r.ReadToEnd();
    });

    /// <summary>The complete HTML page for <paramref name="data"/> (validated first).</summary>
    public static string Build(DashboardData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        data.Validate();
        string json = HtmlText.JsonForScript(ToJson(data));
        var sb = new StringBuilder(PlotlyJs.Source.Length + json.Length + 32 * 1024);
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
          .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:\">")
          .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
          .Append("<title>").Append(HtmlText.Escape(data.Title)).Append("</title>")
          .Append("<style>").Append(Css).Append("</style>\n")
          .Append(PlotlyJs.InlineScriptTag())
          .Append("\n</head><body>\n")
          .Append("<h1 class=\"dsn-title\">").Append(HtmlText.Escape(data.Title)).Append("</h1>\n")
          .Append(Body)
          .Append(AttentionViews(data))
          .Append("<script type=\"application/json\" id=\"dsn-dashboard-data\">").Append(json).Append("</script>\n")
          .Append("<script type=\"text/javascript\">").Append(s_script.Value).Append("</script>\n")
          .Append("</body></html>\n");
        return sb.ToString();
    }

    /// <summary>
    /// Writes <see cref="Build"/> to <paramref name="path"/> atomically (a temporary file in the same directory, then
    /// a move over the target) and returns the full path.
    /// </summary>
    public static string Save(DashboardData data, string path)
    {
        return DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(path, Build(data));
    }

    /// <summary>
    /// The embedded data as JSON (camelCase keys; non-finite numbers become null). The page reads exactly this.
    /// </summary>
    public static string ToJson(DashboardData data)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("title", data.Title);
            w.WriteStartArray("tokens");
            foreach (var t in data.Tokens) w.WriteStringValue(t ?? string.Empty);
            w.WriteEndArray();
            w.WritePropertyName("attention");
            if (data.Attention is null) w.WriteNullValue();
            else
            {
                w.WriteStartArray();
                foreach (var layer in data.Attention)
                {
                    w.WriteStartArray();
                    foreach (var head in layer) Matrix(w, head);
                    w.WriteEndArray();
                }
                w.WriteEndArray();
            }
            w.WritePropertyName("rollout");
            if (data.Rollout is null) w.WriteNullValue(); else Matrix(w, data.Rollout);
            w.WritePropertyName("attributions");
            if (data.Attributions is null) w.WriteNullValue();
            else
            {
                // An array of {method, scores} keeps the caller's method order.
                w.WriteStartArray();
                foreach (var (method, scores) in data.Attributions)
                {
                    w.WriteStartObject();
                    w.WriteString("method", method);
                    w.WriteStartArray("scores");
                    foreach (var s in scores) Num(w, s);
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WritePropertyName("routing");
            if (data.Routing is null) w.WriteNullValue();
            else
            {
                w.WriteStartArray();
                foreach (var rl in data.Routing.OrderBy(r => r.Layer))
                {
                    w.WriteStartObject();
                    w.WriteNumber("layer", rl.Layer);
                    w.WriteStartArray("tokens");
                    foreach (var tr in rl.Tokens)
                    {
                        w.WriteStartObject();
                        w.WriteStartArray("experts");
                        foreach (var e in tr.Experts) w.WriteNumberValue(e);
                        w.WriteEndArray();
                        w.WriteStartArray("weights");
                        foreach (var x in tr.Weights) Num(w, x);
                        w.WriteEndArray();
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            int experts = data.RoutedExperts
                ?? (data.Routing is { Count: > 0 } ? data.Routing.SelectMany(r => r.Tokens).SelectMany(t => t.Experts).DefaultIfEmpty(-1).Max() + 1 : 0);
            w.WriteNumber("routedExperts", experts);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>
    /// The BertViz-style head view (every layer, its own layer selector) and model view of the attention, side by side
    /// below the linked panels; "not provided" without attention, the reason when the views refuse the data (e.g. NaN).
    /// </summary>
    private static string AttentionViews(DashboardData data)
    {
        static string Panel(string title, Func<string> body)
        {
            string inner;
            try { inner = body(); }
            catch (ArgumentException e) { inner = "<div class=\"dsn-missing\">" + HtmlText.Escape(title + " not available: " + e.Message) + "</div>"; }
            return "<div class=\"dsn-panel\" style=\"overflow:auto\"><h2>" + HtmlText.Escape(title) + "</h2>" + inner + "</div>";
        }
        if (data.Attention is null)
            return "<div class=\"dsn-grid\" id=\"dsn-views\"><div class=\"dsn-panel\"><h2>Head view and model view (BertViz)</h2><div class=\"dsn-missing\">Attention not provided for this input.</div></div></div>\n";
        return "<div class=\"dsn-grid\" id=\"dsn-views\">"
            + Panel("Head view (BertViz)", () => new HeadView(data.Tokens, data.Attention).ToHtml("dsn-dashboard-head-view"))
            + Panel("Model view (BertViz)", () => new ModelView(data.Tokens, data.Attention).ToHtml("dsn-dashboard-model-view"))
            + "</div>\n";
    }

    private static void Matrix(Utf8JsonWriter w, AttentionMatrix m)
    {
        w.WriteStartArray();
        for (int q = 0; q < m.Queries; q++)
        {
            w.WriteStartArray();
            for (int k = 0; k < m.Keys; k++) { float v = m[q, k]; if (float.IsFinite(v)) w.WriteNumberValue(v); else w.WriteNullValue(); }
            w.WriteEndArray();
        }
        w.WriteEndArray();
    }

    private static void Num(Utf8JsonWriter w, double v)
    {
        if (double.IsFinite(v)) w.WriteNumberValue(v); else w.WriteNullValue();
    }

    internal const string Css =
        "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1rem 1.5rem;color:#222}" +
        "h1{font-size:1.4rem;margin:.2rem 0 .6rem}h2{font-size:1.05rem;margin:.2rem 0}" +
        ".dsn-controls{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center;padding:.5rem .7rem;background:#f4f4f6;border-radius:6px;position:sticky;top:0;z-index:10}" +
        ".dsn-controls label{font-size:.9rem}.dsn-controls select,.dsn-controls input{margin-left:.3rem}" +
        ".dsn-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1rem;margin-top:.8rem}" +
        ".dsn-panel{border:1px solid #ddd;border-radius:6px;padding:.5rem}" +
        ".dsn-plot{width:100%;height:440px}.dsn-missing{color:#888;font-style:italic;padding:1rem}" +
        ".dsn-tok{display:inline-block;padding:0 3px;margin:0 1px;border-radius:3px;white-space:pre;font-family:ui-monospace,monospace;cursor:pointer;line-height:2}" +
        ".dsn-tok.sel{outline:2px solid #000}.dsn-legend{display:flex;align-items:center;gap:6px;font-size:12px;margin:4px 0}" +
        ".dsn-grad{display:inline-block;width:160px;height:12px;border:1px solid #ccc;background:linear-gradient(to right,rgb(31,119,180),rgb(255,255,255),rgb(214,39,40))}" +
        "table.dsn-route{border-collapse:collapse;font-size:.85rem}table.dsn-route td,table.dsn-route th{border:1px solid #ddd;padding:2px 6px;text-align:left}" +
        "#dsn-token-text{font-family:ui-monospace,monospace;background:#fff;border:1px solid #ccc;padding:0 4px;white-space:pre}";

    private const string Body =
        "<div class=\"dsn-controls\">" +
        "<label>Layer<select id=\"dsn-layer\"></select></label>" +
        "<label>Head<select id=\"dsn-head\"></select></label>" +
        "<label>Attribution method<select id=\"dsn-method\"></select></label>" +
        "<label>MoE layer<select id=\"dsn-route-layer\"></select></label>" +
        "<label>Token<input type=\"range\" id=\"dsn-token\" min=\"0\" max=\"0\" value=\"0\" step=\"1\"></label>" +
        "<span>#<span id=\"dsn-token-index\">0</span> <span id=\"dsn-token-text\"></span></span>" +
        "</div>\n<div class=\"dsn-grid\">" +
        "<div class=\"dsn-panel\"><div id=\"dsn-attn\" class=\"dsn-plot\"></div></div>" +
        "<div class=\"dsn-panel\"><div id=\"dsn-rollout\" class=\"dsn-plot\"></div></div>" +
        "<div class=\"dsn-panel\"><h2 id=\"dsn-attr-title\">Attribution</h2><div id=\"dsn-attr-text\"></div><div id=\"dsn-attr-legend\" class=\"dsn-legend\"></div><div id=\"dsn-attr-bar\" class=\"dsn-plot\" style=\"height:340px\"></div></div>" +
        "<div class=\"dsn-panel\"><div id=\"dsn-route\" class=\"dsn-plot\"></div><h2 id=\"dsn-route-token-title\">Routing of the selected token</h2><div id=\"dsn-route-token\"></div></div>" +
        "</div>\n<div id=\"dsn-errors\" style=\"color:#b00\"></div>\n";
}
