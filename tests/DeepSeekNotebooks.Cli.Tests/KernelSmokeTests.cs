using System.Diagnostics;
using System.Text.Json;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// Runs notebooks/_kernel-smoke.ipynb in the real .NET Interactive kernel that VS Code's Polyglot extension uses
/// (dotnet-repl 0.3.259 from .config/dotnet-tools.json bundles the same Microsoft.DotNet.Interactive 1.0.0-beta.26120.1
/// build as the dotnet-interactive 1.0.712001 tool). Needs the NuGet feed for `dotnet tool restore` and the notebook's
/// #r "nuget: ..." lines on a cold cache; takes ~30 s with a warm cache. See docs/notebook-kernel.md.
/// </summary>
[Trait("Category", "Slow")]
public class KernelSmokeTests
{
    [Fact]
    public void Smoke_notebook_runs_in_the_dotnet_interactive_kernel_without_errors_and_renders_a_plotly_chart()
    {
        string root = ReportTestSupport.RepoRoot;
        string notebooks = Path.Combine(root, "notebooks");
        string kit = Path.Combine(root, "src", "DeepSeekNotebooks.Interactive", "bin", "Debug", "net10.0", "DeepSeekNotebooks.Interactive.dll");
        Assert.True(File.Exists(kit), $"the notebook references the Debug build of the kit; build it first: {kit}");
        string output = Path.Combine(Directory.CreateTempSubdirectory("dsn-kernel-smoke").FullName, "out.ipynb");

        // The kernel resolves relative #r paths against the process working directory, so run from the notebook's
        // folder (VS Code sets the kernel's working directory to the notebook's folder the same way).
        var (html, plain) = RunNotebook(root, notebooks, Path.Combine(notebooks, "_kernel-smoke.ipynb"), output, TimeSpan.FromMinutes(5));
        Assert.Contains(html, h => h.Contains("Plotly.newPlot(") && h.Contains("plotly.js v"));
        Assert.Contains(plain, s => s.StartsWith("DeepSeekNotebooks ready:"));
        Assert.Contains(plain, s => s.Contains("Plotly.NET direct:"));
        Assert.Contains(plain, s => s.Contains("attn[L0,H0] row-sum of last query = 1.0000"));
        Assert.Contains(plain, s => s.Contains("tokenizer ids: 1,2"));
    }

    /// <summary>
    /// Restores the local tools, runs <paramref name="input"/> in dotnet-repl from <paramref name="workingDirectory"/>
    /// (with <paramref name="environment"/>), asserts exit 0 and no error outputs, and returns the code cells' outputs
    /// as HTML and plain text.
    /// </summary>
    internal static (List<string> Html, List<string> Plain) RunNotebook(string root, string workingDirectory, string input, string output,
        TimeSpan timeout, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var (restoreExit, restoreLog) = Run(root, ["tool", "restore"], TimeSpan.FromMinutes(3), environment);
        Assert.True(restoreExit == 0, "dotnet tool restore failed:\n" + restoreLog);
        var (exit, log) = Run(workingDirectory,
            ["tool", "run", "dotnet-repl", "--", "--run", input, "--exit-after-run", "--output-path", output], timeout, environment);
        Assert.True(exit == 0, $"dotnet-repl exited with {exit}:\n{log}");

        using var doc = JsonDocument.Parse(File.ReadAllText(output));
        var outputs = doc.RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.GetProperty("cell_type").GetString() == "code")
            .SelectMany(c => c.GetProperty("outputs").EnumerateArray()).ToList();
        var errors = outputs.Where(o => o.GetProperty("output_type").GetString() == "error")
            .Select(o => o.GetProperty("evalue").GetString()).ToList();
        Assert.True(errors.Count == 0, "error outputs:\n" + string.Join("\n---\n", errors));

        static string Text(JsonElement e) => e.ValueKind == JsonValueKind.Array
            ? string.Concat(e.EnumerateArray().Select(x => x.GetString())) : e.GetString() ?? "";
        var html = outputs.Where(o => o.TryGetProperty("data", out var d) && d.TryGetProperty("text/html", out _))
            .Select(o => Text(o.GetProperty("data").GetProperty("text/html"))).ToList();
        var plain = outputs.Select(o => o.TryGetProperty("text", out var t) ? Text(t)
            : o.TryGetProperty("data", out var d) && d.TryGetProperty("text/plain", out var p) ? Text(p) : "").ToList();
        return (html, plain);
    }

    /// <summary>Runs <c>dotnet</c> with <paramref name="args"/>; <paramref name="environment"/> entries are set (null: removed).</summary>
    internal static (int Exit, string Log) Run(string workingDirectory, string[] args, TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
            if (value is null) psi.Environment.Remove(key); else psi.Environment[key] = value;
        // Do not leak the test host's MSBuild settings into the child dotnet processes.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout}\n{Tail(stdout)}\n{Tail(stderr)}");
        }
        p.WaitForExit();
        return (p.ExitCode, Tail(stdout) + "\n" + Tail(stderr));
    }

    private static string Tail(Task<string> s)
    {
        string text = s.Wait(TimeSpan.FromSeconds(5)) ? s.Result : "";
        return text.Length <= 4000 ? text : text[^4000..];
    }
}
