using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// Turns the command line's text forms into the analysis library's typed values (the library itself takes no strings
/// for these). Errors name the bad text and the accepted forms.
/// </summary>
internal static class CliParsing
{
    /// <summary><c>zeros</c> (or <c>zero</c>) or <c>token:&lt;id&gt;</c>, case-insensitive.</summary>
    public static Baseline ParseBaseline(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var s = spec.Trim();
        if (s.Equals("zeros", StringComparison.OrdinalIgnoreCase) || s.Equals("zero", StringComparison.OrdinalIgnoreCase)) return Baseline.Zeros;
        if (s.StartsWith("token:", StringComparison.OrdinalIgnoreCase) && long.TryParse(s.AsSpan(6), out var id) && id >= 0) return Baseline.Token(id);
        throw new ArgumentException($"unknown baseline '{spec}': use 'zeros' or 'token:<id>' with a non-negative id", nameof(spec));
    }

    /// <summary><c>mean</c>, <c>max</c> or <c>min</c>, case-insensitive.</summary>
    public static HeadFusion ParseHeadFusion(string name) =>
        name is not null && Enum.TryParse<HeadFusion>(name.Trim(), ignoreCase: true, out var f) && Enum.IsDefined(f) && !int.TryParse(name, out _) ? f
            : throw new ArgumentException($"unknown head fusion '{name}': use mean, max or min", nameof(name));
}
