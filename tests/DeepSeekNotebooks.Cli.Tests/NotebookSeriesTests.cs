using System.Text.Json;
using DeepSeekNotebooks.Cli.Report;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// The notebook series is a product: every notebook in notebooks/ runs top to bottom headless with zero error outputs
/// and produces at least its expected number of charts (the ScottPlot way: documentation that runs on every test pass).
/// </summary>
[Trait("Category", "Slow")]
public class NotebookSeriesTests
{
    /// <summary>Minimum Plotly chart outputs per notebook; a notebook missing here fails the test (add it when you add a notebook).</summary>
    private static readonly Dictionary<string, int> ExpectedCharts = new()
    {
        ["00-quickstart"] = 5,
        ["01-architecture"] = 3,
        ["02-training"] = 8,
        ["03-attribution"] = 4,
        ["04-attention"] = 9,
        ["05-expert-diagnostics"] = 10,
        ["06-surrogate-tree"] = 4,
        ["07-representations"] = 7,
        ["10-your-own-checkpoint"] = 2,
    };

    private static string Root()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "DeepSeekNotebooks.sln"))) return d.FullName;
        throw new InvalidOperationException("repository root not found");
    }

    [Fact]
    public async Task EveryNotebook_RunsWithoutErrors_AndDrawsItsCharts()
    {
        var notebooks = Path.Combine(Root(), "notebooks");
        var names = ReportGenerator.FindNotebooks(notebooks).Select(Path.GetFileNameWithoutExtension).ToList();
        Assert.Equal(ExpectedCharts.Keys.Order(), names.Order()!);

        var output = ReportTestSupport.NewOutputFolder();
        var summary = await new ReportGenerator(new ReportOptions
        {
            NotebooksDirectory = notebooks,
            OutputDirectory = output,
            CellTimeout = TimeSpan.FromMinutes(5),
        }).RunAsync(null, CancellationToken.None);

        foreach (var report in summary.Results)
        {
            var name = report.Run.Name;
            Assert.True(report.Run.Status == NotebookStatus.Succeeded,
                $"{name}: {report.Run.Status} {report.Run.Message} {string.Join("; ", report.Run.Cells.Where(c => c.Status != CellStatus.Succeeded).Select(c => $"cell {c.Index}: {c.Status} {c.Message}"))}");
            using var doc = JsonDocument.Parse(File.ReadAllText(report.ExecutedNotebookPath!));
            var outputs = doc.RootElement.GetProperty("cells").EnumerateArray()
                .Where(c => c.TryGetProperty("outputs", out _))
                .SelectMany(c => c.GetProperty("outputs").EnumerateArray()).ToList();
            Assert.DoesNotContain(outputs, o => o.GetProperty("output_type").GetString() == "error");
            int charts = outputs.Count(o => o.TryGetProperty("data", out var d) && d.TryGetProperty("text/html", out var h) &&
                                            string.Concat(h.ValueKind == JsonValueKind.Array ? h.EnumerateArray().Select(x => x.GetString()) : new[] { h.GetString() })
                                                .Contains("Plotly.newPlot", StringComparison.Ordinal));
            Assert.True(charts >= ExpectedCharts[name], $"{name}: {charts} chart outputs, expected at least {ExpectedCharts[name]}");
            var html = File.ReadAllText(report.HtmlPath);
            Assert.DoesNotMatch(ReportTestSupport.RemoteScriptSource(), html);
        }
        Assert.Equal(0, summary.ExitCode);
    }
}
