using System.Text.RegularExpressions;

namespace DeepSeekNotebooks.Reporting.Tests;

internal static partial class ReportTestSupport
{
    /// <summary>The repository root (the folder holding DeepSeekNotebooks.sln above the test binaries).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "DeepSeekNotebooks.sln"))) return d.FullName;
        throw new InvalidOperationException("DeepSeekNotebooks.sln not found above " + AppContext.BaseDirectory);
    }

    public static string NewOutputFolder() =>
        Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "dsn-report-tests", Guid.NewGuid().ToString("N"))).FullName;

    /// <summary>Any &lt;script src=...&gt; pointing at http(s) or a protocol-relative URL.</summary>
    [GeneratedRegex("""<script\b[^>]*\bsrc\s*=\s*["']?\s*(https?:)?//""", RegexOptions.IgnoreCase)]
    public static partial Regex RemoteScriptSource();
}
