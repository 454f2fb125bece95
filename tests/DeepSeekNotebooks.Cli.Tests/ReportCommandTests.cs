using System.Diagnostics;
using System.Text.Json;
using DeepSeekNotebooks.Reporting;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>Runs real notebooks through the in-process kernel. Notebooks live in Notebooks/ next to this file.</summary>
[Collection("notebook-runner")] // the runner is process-wide (working directory, environment, formatters)
[Trait("Category", "Slow")]
public class ReportCommandTests
{
    [Fact]
    public async Task Suite_reports_success_chart_exception_and_malformed_file_and_exits_non_zero()
    {
        var output = ReportTestSupport.NewOutputFolder();
        var checkpoint = Path.Combine(output, "fake-checkpoint");
        var notebooks = ReportTestSupport.NotebookFolder("suite");

        var (exit, console) = await ReportTestSupport.InvokeReportAsync(
            "--notebooks", notebooks, "--out", output, "--checkpoint", checkpoint, "--cell-timeout", "300");

        Assert.Equal(1, exit);
        Assert.Contains("Reports written to", console);
        Assert.Contains(output, console);

        // 01: succeeded, parameters arrived, chart rendered offline.
        var chart = await File.ReadAllTextAsync(Path.Combine(output, "01-chart.html"));
        Assert.Contains("status-succeeded", chart);
        Assert.Contains("checkpoint=" + checkpoint, chart);
        Assert.Contains("cwd=" + notebooks.TrimEnd('/'), chart);
        Assert.Contains("Plotly.newPlot(", chart);
        Assert.Contains("plotly.js v", chart);
        Assert.DoesNotMatch(ReportTestSupport.RemoteScriptSource(), chart);
        Assert.DoesNotContain("<img src=x onerror=alert(1)>", chart);
        Assert.Contains("stdout &lt;img src=x onerror=alert(1)&gt;", chart);
        Assert.Contains(">Chart</a>", chart); // TOC entry from a markdown heading

        using (var executed = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "01-chart.ipynb"))))
        {
            var cells = executed.RootElement.GetProperty("cells").EnumerateArray().ToList();
            var chartCell = cells.Last();
            Assert.Equal(4, chartCell.GetProperty("execution_count").GetInt32());
            var result = chartCell.GetProperty("outputs").EnumerateArray().Single();
            Assert.Equal("execute_result", result.GetProperty("output_type").GetString());
            Assert.True(result.GetProperty("data").TryGetProperty("text/html", out _));
            Assert.Equal("stream", cells[1].GetProperty("outputs")[0].GetProperty("output_type").GetString());
        }

        // 02: failing cell shown with its error; the cell after it is not run.
        var throws = await File.ReadAllTextAsync(Path.Combine(output, "02-throws.html"));
        Assert.Contains("status-failed", throws);
        Assert.Contains("boom &lt;script&gt;alert(1)&lt;/script&gt;", throws);
        Assert.Contains("before the failure", throws);
        Assert.Contains("not run", throws);
        Assert.DoesNotContain("<script>alert(1)</script>", throws);
        Assert.Contains("\"output_type\": \"error\"", await File.ReadAllTextAsync(Path.Combine(output, "02-throws.ipynb")));

        // 03: malformed file reported, no executed notebook.
        var malformed = await File.ReadAllTextAsync(Path.Combine(output, "03-malformed.html"));
        Assert.Contains("Notebook could not be read", malformed);
        Assert.False(File.Exists(Path.Combine(output, "03-malformed.ipynb")));

        // 04: still ran after the failures.
        var after = await File.ReadAllTextAsync(Path.Combine(output, "04-after.html"));
        Assert.Contains("status-succeeded", after);
        Assert.Contains("still running: 2", after);

        var index = await File.ReadAllTextAsync(Path.Combine(output, "index.html"));
        foreach (var name in new[] { "01-chart", "02-throws", "03-malformed", "04-after" })
            Assert.Contains($"href=\"{name}.html\"", index);
        Assert.Contains("2 of 4 notebook(s) succeeded", index);
        Assert.Empty(Directory.GetFiles(output, "*.tmp"));
    }

    [Fact]
    public async Task Cell_timeout_is_reported_and_the_next_notebook_still_runs()
    {
        var output = ReportTestSupport.NewOutputFolder();
        var clock = Stopwatch.StartNew();

        var (exit, _) = await ReportTestSupport.InvokeReportAsync(
            "--notebooks", ReportTestSupport.NotebookFolder("timeout"), "--out", output, "--cell-timeout", "5", "--redact-inputs");

        Assert.Equal(1, exit);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"took {clock.Elapsed}");
        var hangs = await File.ReadAllTextAsync(Path.Combine(output, "01-hangs.html"));
        Assert.Contains("status-timedout", hangs);
        Assert.Contains("CellTimeout", hangs);
        Assert.Contains("about to hang", hangs);
        Assert.DoesNotContain("Thread.Sleep", hangs); // --redact-inputs
        Assert.Contains("--redact-inputs", hangs);
        var after = await File.ReadAllTextAsync(Path.Combine(output, "02-after.html"));
        Assert.Contains("after the timeout: 4", after);
        Assert.Contains("status-succeeded", after);
    }

    [Fact]
    public async Task Missing_notebook_folder_fails_fast()
    {
        var (exit, console) = await ReportTestSupport.InvokeReportAsync(
            "--notebooks", Path.Combine(Path.GetTempPath(), "no-such-folder-" + Guid.NewGuid()), "--out", ReportTestSupport.NewOutputFolder());
        Assert.Equal(2, exit);
        Assert.Contains("not found", console);
    }

    [Theory]
    [InlineData("--residency", "disk", "--residency must be auto, memory or stream, got 'disk'")]
    [InlineData("--dtype", "fp16", "--dtype must be f32 or bf16, got 'fp16'")]
    public async Task A_bad_residency_or_dtype_is_refused_before_any_notebook_runs(string option, string value, string message)
    {
        var output = ReportTestSupport.NewOutputFolder();
        var (exit, console) = await ReportTestSupport.InvokeReportAsync("--notebooks", ReportTestSupport.NotebookFolder("suite"), "--out", output, option, value);
        Assert.Equal(2, exit);
        Assert.Contains(message, console);
        Assert.Empty(Directory.EnumerateFileSystemEntries(output));   // no notebook ran
    }

    [Fact]
    public void Notebook_runner_api_reports_malformed_files_without_throwing()
    {
        var doc = NotebookRunner.TryParse(Path.Combine(ReportTestSupport.NotebookFolder("suite"), "03-malformed.ipynb"), out var error);
        Assert.Null(doc);
        Assert.NotNull(error);
    }
}
