using System.Text;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>Escaping helpers. Every string that comes from inputs or a tokenizer goes through one of these.</summary>
public static class HtmlText
{
    /// <summary>
    /// HTML-escapes text for element content and quoted attribute values: <c>&amp; &lt; &gt;</c> as named entities,
    /// quotes as numeric entities (<c>&amp;#34; &amp;#39;</c>). Plotly.js decodes exactly these in labels, titles and
    /// hover text, so the same escaped string is also what we put into chart JSON: a token is shown literally.
    /// </summary>
    public static string Escape(string? text)
    {
        if (string.IsNullOrEmpty(text)) return string.Empty;
        StringBuilder? sb = null;
        for (int i = 0; i < text.Length; i++)
        {
            string? rep = text[i] switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&#34;",
                '\'' => "&#39;",
                _ => null,
            };
            if (rep is null) { sb?.Append(text[i]); continue; }
            sb ??= new StringBuilder(text.Length + 16).Append(text, 0, i);
            sb.Append(rep);
        }
        return sb?.ToString() ?? text;
    }

    /// <summary>
    /// Makes JSON safe to place inside a <c>&lt;script&gt;</c> element: <c>&lt; &gt; &amp;</c> and U+2028/U+2029 become
    /// <c>\u003c \u003e \u0026 \u2028 \u2029</c>. Only valid inside JSON string literals (where they can only occur), which
    /// is what a JSON serializer produces; the JSON value is unchanged.
    /// </summary>
    public static string JsonForScript(string json)
    {
        var sb = new StringBuilder(json.Length + 64);
        foreach (char c in json)
        {
            switch (c)
            {
                case '<': sb.Append("\\u003c"); break;
                case '>': sb.Append("\\u003e"); break;
                case '&': sb.Append("\\u0026"); break;
                case '\u2028': sb.Append("\\u2028"); break;
                case '\u2029': sb.Append("\\u2029"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.ToString();
    }

    /// <summary>A token made readable: newline/tab/carriage return shown as ↵ → ␍, then HTML-escaped.</summary>
    public static string Token(string? token) =>
        Escape((token ?? string.Empty).Replace("\r", "␍").Replace("\n", "↵").Replace("\t", "→"));
}
