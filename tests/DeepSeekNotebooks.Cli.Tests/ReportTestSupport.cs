using System.CommandLine;
using System.Text.RegularExpressions;
using DeepSeekNotebooks.Cli.Commands;
using Spectre.Console;

namespace DeepSeekNotebooks.Cli.Tests;

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

    public static string NotebookFolder(string name) => Path.Combine(AppContext.BaseDirectory, "Notebooks", name);

    public static string NewOutputFolder() =>
        Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "dsn-report-tests", Guid.NewGuid().ToString("N"))).FullName;

    /// <summary>Invokes the real <c>report</c> verb through System.CommandLine with a captured, non-interactive console.</summary>
    public static async Task<(int ExitCode, string Console)> InvokeReportAsync(params string[] args)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 200;
        var root = new RootCommand { ReportCommand.Create(console) };
        var exit = await root.Parse(["report", .. args]).InvokeAsync();
        return (exit, writer.ToString());
    }

    /// <summary>Any &lt;script src=...&gt; pointing at http(s) or a protocol-relative URL.</summary>
    [GeneratedRegex("""<script\b[^>]*\bsrc\s*=\s*["']?\s*(https?:)?//""", RegexOptions.IgnoreCase)]
    public static partial Regex RemoteScriptSource();
}
