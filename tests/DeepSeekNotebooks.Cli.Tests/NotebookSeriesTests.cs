using System.Text.Json;
using DeepSeekNotebooks.Cli.Report;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// The notebook series is a product: every notebook in notebooks/ runs top to bottom headless with zero error outputs
/// and produces at least its expected number of charts (the ScottPlot way: documentation that runs on every test pass).
/// </summary>
[Trait("Category", "Slow")]
public class NotebookSeriesTests : IClassFixture<DeepSeekNotebooks.Visualization.Tests.ChromiumFixture>
{
    private readonly DeepSeekNotebooks.Visualization.Tests.ChromiumFixture _browser;
    public NotebookSeriesTests(DeepSeekNotebooks.Visualization.Tests.ChromiumFixture browser) => _browser = browser;

    /// <summary>True once every plotly graph of the page is drawn (SVG layer; WebGL scene for 3D plots).</summary>
    private const string PlotsDrawn =
        "(function(){var d=document.querySelectorAll('.js-plotly-plot');" +
        "return Array.prototype.every.call(d,function(p){if(!p._fullLayout||!p.querySelector('.main-svg'))return false;" +
        "if(p._fullLayout._has&&p._fullLayout._has('gl3d'))return !!p.querySelector('canvas');return true;});})()";
    private const string PlotCounts =
        "(function(){var d=Array.prototype.slice.call(document.querySelectorAll('.js-plotly-plot'));" +
        "return {plots:d.length,drawn:d.filter(function(p){return p._fullLayout&&p.querySelector('.main-svg');}).length};})()";
    /// <summary>Minimum Plotly chart outputs per notebook; a notebook missing here fails the test (add it when you add a notebook).</summary>
    private static readonly Dictionary<string, int> ExpectedCharts = new()
    {
        ["00-quickstart"] = 5,
        ["01-architecture"] = 3,
        ["02-training"] = 7,
        ["03-attribution"] = 4,
        ["04-attention"] = 9,
        ["05-expert-diagnostics"] = 10,
        ["06-surrogate-tree"] = 4,
        ["07-representations"] = 7,
        ["10-your-own-checkpoint"] = 2,
    };

    [Fact]
    public async Task EveryNotebook_RunsWithoutErrors_AndDrawsItsCharts()
    {
        var notebooks = Path.Combine(ReportTestSupport.RepoRoot, "notebooks");
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

        // Every report opens offline in headless Chromium with all its charts drawn and no script error or fetch.
        var chromium = _browser.Require();
        foreach (var report in summary.Results)
        {
            var run = await chromium.RunPageAsync(report.HtmlPath, PlotsDrawn, PlotCounts, TimeSpan.FromSeconds(60));
            var name = report.Run.Name;
            Assert.True(run.Errors.Count == 0, $"{name}: errors in the browser:\n" + string.Join("\n", run.Errors));
            Assert.True(run.NetworkRequests.Count == 0, $"{name}: network requests:\n" + string.Join("\n", run.NetworkRequests));
            int plots = run.Result.GetProperty("plots").GetInt32();
            Assert.True(plots >= ExpectedCharts[name], $"{name}: {plots} plots in the report, expected at least {ExpectedCharts[name]}");
            Assert.Equal(plots, run.Result.GetProperty("drawn").GetInt32());
        }
    }
}
