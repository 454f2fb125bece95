using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Reporting;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>
/// <c>report --residency/--dtype</c> (<see cref="ReportOptions.Residency"/>, <see cref="ReportOptions.DType"/>): the
/// notebooks' second cell, <c>Checkpoint.Load(checkpointDir, Notebook.LoadOptions())</c>, loads with what the run was
/// given; without them the loader's defaults apply; a dtype notebooks cannot load with is refused before any notebook runs.
/// </summary>
[Collection(NotebookSeriesCollection.Name)]
[Trait("Category", "Slow")]
public class ReportLoadOptionsTests
{
    /// <summary>
    /// A notebook made of the series' own first two code cells (quickstart's header and checkpoint load) and one cell that
    /// prints what was loaded: the residency the checkpoint resolved to and the dtype of the model's weights.
    /// </summary>
    private static string WriteProbeNotebook(string dir)
    {
        var quickstart = JsonNode.Parse(File.ReadAllText(Path.Combine(SeriesRun.NotebooksDirectory, "00-quickstart.ipynb")))!.AsObject();
        var cells = quickstart["cells"]!.AsArray().Where(c => (string?)c!["cell_type"] == "code").Take(2).Select(c => c!.DeepClone()).ToList();
        var probe = cells[1].DeepClone();
        probe["source"] = new JsonArray("$\"loaded: residency={ckpt.Residency}, dtype={model.parameters().First().dtype}\"");
        probe["outputs"] = new JsonArray();
        cells.Add(probe);
        quickstart["cells"] = new JsonArray(cells.ToArray());
        var path = Path.Combine(dir, "probe.ipynb");
        File.WriteAllText(path, quickstart.ToJsonString());
        return path;
    }

    private static async Task<(NotebookReport Report, string Outputs)> RunProbe(string dir, Residency? residency, ScalarType? dtype)
    {
        var summary = await new ReportGenerator(new ReportOptions
        {
            NotebooksDirectory = dir,
            OutputDirectory = ReportTestSupport.NewOutputFolder(),
            CheckpointPath = DeepSeekNotebooks.Training.BundledModel.Checkpoint("golden-tiny-hf"),
            Residency = residency,
            DType = dtype,
            CellTimeout = TimeSpan.FromMinutes(5),
        }).RunAsync();
        var report = Assert.Single(summary.Results);
        Assert.NotNull(report.ExecutedNotebookPath);
        using var doc = JsonDocument.Parse(File.ReadAllText(report.ExecutedNotebookPath!));
        var outputs = string.Join("\n", doc.RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.TryGetProperty("outputs", out _)).SelectMany(c => c.GetProperty("outputs").EnumerateArray()).Select(o => o.ToString()));
        return (report, outputs);
    }

    [Fact]
    public async Task Residency_stream_and_dtype_bf16_reach_the_notebooks_checkpoint_load_and_the_defaults_apply_without_them()
    {
        // The notebook references the kit as ../src/…, so it must sit one level below the repository root.
        var dir = Path.Combine(ReportTestSupport.RepoRoot, $".test-load-options-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            WriteProbeNotebook(dir);
            var (streamed, streamedOutputs) = await RunProbe(dir, Residency.Stream, ScalarType.BFloat16);
            Assert.True(streamed.Run.Status == NotebookStatus.Succeeded, streamed.Run.Message);
            Assert.Contains("loaded: residency=Stream, dtype=BFloat16", streamedOutputs);

            // Without the options the loader's defaults: Auto holds a model this small in memory, in float32.
            var (defaults, defaultOutputs) = await RunProbe(dir, null, null);
            Assert.True(defaults.Run.Status == NotebookStatus.Succeeded, defaults.Run.Message);
            Assert.Contains("loaded: residency=Memory, dtype=Float32", defaultOutputs);
        }
        finally { Directory.Delete(dir, true); }
        // The runner restores the environment it set for the notebooks.
        Assert.Null(Environment.GetEnvironmentVariable(DeepSeekNotebooks.Interactive.Notebook.ResidencyVariable));
        Assert.Null(Environment.GetEnvironmentVariable(DeepSeekNotebooks.Interactive.Notebook.DTypeVariable));
    }

    [Fact]
    public async Task A_dtype_notebooks_cannot_load_with_is_refused_before_any_notebook_runs()
    {
        var output = ReportTestSupport.NewOutputFolder();
        var e = await Assert.ThrowsAsync<ArgumentException>(() => new ReportGenerator(new ReportOptions
        {
            NotebooksDirectory = SeriesRun.NotebooksDirectory,
            OutputDirectory = output,
            DType = ScalarType.Float16,
        }).RunAsync());
        Assert.Contains("Float16", e.Message);
        Assert.Contains("Float32 or BFloat16", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(output));   // nothing ran, nothing written
    }

    [Theory]
    [InlineData("disk", null, "DEEPSEEK_RESIDENCY (report --residency) must be auto, memory or stream, got 'disk'")]
    [InlineData(null, "fp16", "DEEPSEEK_DTYPE (report --dtype) must be f32 or bf16, got 'fp16'")]
    public void Notebook_LoadOptions_names_a_bad_value_and_the_accepted_ones(string? residency, string? dtype, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => DeepSeekNotebooks.Interactive.Notebook.LoadOptions(residency, dtype));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void Notebook_LoadOptions_parses_the_values_report_hands_over_and_defaults_to_the_loaders()
    {
        var given = DeepSeekNotebooks.Interactive.Notebook.LoadOptions("Stream", "bf16");
        Assert.Equal(Residency.Stream, given.Residency);
        Assert.Equal(ScalarType.BFloat16, given.DType);
        var unset = DeepSeekNotebooks.Interactive.Notebook.LoadOptions(null, "");
        var loaderDefaults = new CheckpointLoadOptions();
        Assert.Equal(loaderDefaults.Residency, unset.Residency);
        Assert.Equal(loaderDefaults.DType, unset.DType);
    }
}
