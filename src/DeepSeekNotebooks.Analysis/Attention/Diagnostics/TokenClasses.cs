namespace DeepSeekNotebooks.Analysis.Attention.Diagnostics;

/// <summary>
/// Default token-string classifiers for the structural and semantic attention dimensions. They understand byte-level BPE
/// markers (<c>Ġ</c> = leading space, <c>Ċ</c> = newline) as well as plain strings.
/// </summary>
public static class TokenClasses
{
    private static string Clean(string token) => token.Replace('Ġ', ' ').Replace('Ċ', '\n').Replace('▁', ' ');

    /// <summary>
    /// Whether a token is a structural boundary: contains a newline, or is (after trimming spaces) non-empty and made only of
    /// punctuation — sentence ends (. ! ? …), commas, semicolons, brackets, quotes.
    /// </summary>
    public static bool IsBoundary(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        var s = Clean(token);
        if (s.Contains('\n') || s.Contains('\r')) return true;
        s = s.Trim();
        return s.Length > 0 && s.All(char.IsPunctuation);
    }

    /// <summary>
    /// Coarse class of a token string: "newline", "space", "digit" (all digits), "letter" (all letters), "punct"
    /// (punctuation only), "symbol" (code/math symbols, optionally with punctuation, e.g. <c>=</c>, <c>+=</c>, <c>{</c> counts
    /// as punct), or "mixed".
    /// </summary>
    public static string Classify(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        var s = Clean(token);
        if (s.Contains('\n') || s.Contains('\r')) return "newline";
        s = s.Trim();
        if (s.Length == 0) return "space";
        if (s.All(char.IsDigit)) return "digit";
        if (s.All(char.IsLetter)) return "letter";
        if (s.All(char.IsPunctuation)) return "punct";
        if (s.All(c => char.IsSymbol(c) || char.IsPunctuation(c))) return "symbol";
        return "mixed";
    }
}
