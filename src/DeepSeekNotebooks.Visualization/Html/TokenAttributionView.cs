using System.Globalization;
using System.Text;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>
/// Tokens as coloured text: background on a diverging red/blue scale centred at 0 (red = positive, blue = negative,
/// intensity ∝ |score| / max |score|), a legend, and a tooltip with the exact score on every token.
/// </summary>
public sealed class TokenAttributionView : IHtmlView
{
    /// <summary>Creates the view; <paramref name="tokens"/> and <paramref name="scores"/> must have the same length.</summary>
    public TokenAttributionView(IReadOnlyList<string> tokens, IReadOnlyList<double> scores, string? title = null, string? method = null)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(scores);
        if (tokens.Count != scores.Count)
            throw new ArgumentException($"tokens ({tokens.Count}) and scores ({scores.Count}) differ in length.");
        Tokens = tokens;
        Scores = scores;
        Title = title;
        Method = method;
    }

    /// <summary>The tokens, in order.</summary>
    public IReadOnlyList<string> Tokens { get; }
    /// <summary>One attribution score per token.</summary>
    public IReadOnlyList<double> Scores { get; }
    /// <summary>Optional title above the text.</summary>
    public string? Title { get; }
    /// <summary>Optional attribution method name (shown in the legend).</summary>
    public string? Method { get; }
    /// <summary>Optional description of the explained scalar, as text (e.g. <c>logit of “ mat” (token 9) at position 4</c>); shown under the title.</summary>
    public string? Target { get; init; }
    /// <summary>Optional token the model predicts at the target position (its text, or the id as text); shown with <see cref="PredictedProbability"/>.</summary>
    public string? PredictedToken { get; init; }
    /// <summary>Softmax probability of <see cref="PredictedToken"/>.</summary>
    public double? PredictedProbability { get; init; }
    /// <summary>Softmax probability of the target token at the target position (when the target is a token).</summary>
    public double? TargetProbability { get; init; }

    /// <summary>max |score| over finite scores (the colour scale's end points are ±this), 0 if none.</summary>
    public double MaxAbs => Scores.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max();

    /// <summary>
    /// The CSS colour for <paramref name="score"/> given the scale end <paramref name="maxAbs"/>: white at 0,
    /// rgb(214,39,40) at +max, rgb(31,119,180) at −max, linear in between; grey for non-finite scores.
    /// </summary>
    public static string ColorFor(double score, double maxAbs)
    {
        if (!double.IsFinite(score)) return "rgb(200,200,200)";
        double t = maxAbs > 0 ? Math.Clamp(score / maxAbs, -1, 1) : 0;
        (int r, int g, int b) end = t >= 0 ? (214, 39, 40) : (31, 119, 180);
        double a = Math.Abs(t);
        int Mix(int c) => (int)Math.Round(255 + (c - 255) * a);
        return $"rgb({Mix(end.r)},{Mix(end.g)},{Mix(end.b)})";
    }

    /// <inheritdoc />
    public string ToHtml()
    {
        double max = MaxAbs;
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("<div class=\"dsn-token-attr\" style=\"font-family:ui-monospace,monospace;line-height:2;\">");
        if (!string.IsNullOrEmpty(Title))
            sb.Append("<div style=\"font-weight:600;margin-bottom:4px\">").Append(HtmlText.Escape(Title)).Append("</div>");
        if (Target is not null || PredictedToken is not null)
        {
            sb.Append("<div class=\"dsn-target\" style=\"font-family:system-ui,sans-serif;font-size:13px;margin-bottom:4px\">");
            if (Target is not null)
            {
                sb.Append("<span>Explained: ").Append(HtmlText.Token(Target));
                if (TargetProbability is { } tp) sb.Append(" (probability ").Append(Probability(tp)).Append(')');
                sb.Append("</span>");
            }
            if (PredictedToken is not null)
            {
                if (Target is not null) sb.Append(" · ");
                sb.Append("<span class=\"dsn-prediction\">Model predicts <span style=\"font-family:ui-monospace,monospace;background:#eee;padding:0 3px;white-space:pre\">")
                  .Append(HtmlText.Token(PredictedToken)).Append("</span>");
                if (PredictedProbability is { } pp) sb.Append(" with probability ").Append(Probability(pp));
                sb.Append("</span>");
            }
            sb.Append("</div>");
        }
        sb.Append("<div class=\"dsn-tokens\">");
        for (int i = 0; i < Tokens.Count; i++)
        {
            double s = Scores[i];
            string tip = $"#{i} {Tokens[i]}: {s.ToString("R", inv)}";
            sb.Append("<span class=\"dsn-tok\" data-score=\"").Append(s.ToString("R", inv))
              .Append("\" title=\"").Append(HtmlText.Escape(tip))
              .Append("\" style=\"background:").Append(ColorFor(s, max))
              .Append(";padding:1px 2px;margin:0 1px;border-radius:3px;white-space:pre;\">")
              .Append(HtmlText.Token(Tokens[i])).Append("</span>");
        }
        sb.Append("</div>");
        // Legend: a gradient bar with its end points.
        sb.Append("<div class=\"dsn-legend\" style=\"display:flex;align-items:center;gap:6px;font-size:12px;margin-top:6px;font-family:system-ui,sans-serif\">")
          .Append("<span>").Append(HtmlText.Escape(Method is null ? "attribution score" : $"{Method} attribution score")).Append(":</span>")
          .Append("<span>−").Append(max.ToString("G4", inv)).Append("</span>")
          .Append("<span style=\"display:inline-block;width:160px;height:12px;border:1px solid #ccc;background:linear-gradient(to right, rgb(31,119,180), rgb(255,255,255), rgb(214,39,40));\"></span>")
          .Append("<span>+").Append(max.ToString("G4", inv)).Append("</span>")
          .Append("<span style=\"color:#666\">(blue = negative, white = 0, red = positive; hover a token for its exact score)</span>")
          .Append("</div></div>");
        return sb.ToString();
    }

    /// <summary>Four significant digits (0.7312, 0.9996, 3.1E-05): a near-certain prediction is not rounded to 1.</summary>
    private static string Probability(double p) => p.ToString("G4", CultureInfo.InvariantCulture);

    /// <summary>Plain-text form: one "token: score" pair per token.</summary>
    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("TokenAttributionView");
        if (Method is not null) sb.Append(" (").Append(Method).Append(')');
        if (Title is not null) sb.Append(": ").Append(Title);
        sb.AppendLine();
        if (Target is not null)
            sb.Append("  explained: ").Append(Target).AppendLine(TargetProbability is { } tp ? $" (probability {Probability(tp)})" : "");
        if (PredictedToken is not null)
            sb.Append("  model predicts ").Append(PredictedToken.Replace("\n", "\\n")).AppendLine(PredictedProbability is { } pp ? $" with probability {Probability(pp)}" : "");
        for (int i = 0; i < Tokens.Count; i++)
            sb.Append("  ").Append(i).Append(' ').Append(Tokens[i].Replace("\n", "\\n")).Append(": ").AppendLine(Scores[i].ToString("G6", inv));
        return sb.ToString();
    }
}
