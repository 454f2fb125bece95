using DeepSeekNotebooks.Reporting;

namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>
/// <c>report --checkpoint data/checkpoints/deepseek-tiny-v4</c>: the notebooks of the series that run on the bundled
/// DeepSeek-V4 model (sliding window / CSA / HCA attention with sinks, 4 hyper-connection streams, a hash-routed first
/// block) run with zero error outputs; sections whose analysis does not take V4 yet say so in one line (from the config,
/// <c>GenerationSupport</c>) instead of failing, and notebook 11's V4 identities hold. The whole series is in the list.
/// </summary>
[Collection(NotebookSeriesCollection.Name)]
[Trait("Category", "Slow")]
public class V4SeriesTests
{
    internal static readonly string[] RunOnV4 =
        { "00-quickstart", "01-architecture", "02-training", "03-attribution", "04-attention", "05-expert-diagnostics", "06-surrogate-tree",
          "07-representations", "08-medical-imaging", "09-financial-fraud", "10-your-own-checkpoint", GenerationsNotebookTests.Name };

    [Fact]
    public async Task Series_notebooks_run_on_the_bundled_V4_model_with_zero_error_outputs()
    {
        var checkpoint = DeepSeekNotebooks.Training.BundledModel.Checkpoint(DeepSeekNotebooks.Training.BundledModel.V4Name);
        // The notebooks reference the kit as ../src/…, so their copies must sit one level below the repository root.
        var dir = Path.Combine(ReportTestSupport.RepoRoot, $".test-v4-series-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var name in RunOnV4) File.Copy(Path.Combine(SeriesRun.NotebooksDirectory, name + ".ipynb"), Path.Combine(dir, name + ".ipynb"));
            var outcomes = await SeriesRun.RunAsync(checkpoint, dir);
            Assert.Equal(RunOnV4.Order(StringComparer.Ordinal), outcomes.Keys.Order(StringComparer.Ordinal));
            var failures = outcomes
                .Where(kv => kv.Value.Report.Run.Status != NotebookStatus.Succeeded || kv.Value.Errors.Any())
                .Select(kv => kv.Value.Describe().Split('\n')[0] + " " + string.Join(" | ", kv.Value.Errors)).ToList();
            Assert.True(failures.Count == 0, "on deepseek-tiny-v4:\n" + string.Join("\n", failures));
            // What does not apply to V4 is skipped with its reason, not silently.
            // Attribution runs on V4 (the hash-routed block routes by the input's token ids along the whole path).
            Assert.Contains(outcomes["03-attribution"].Outputs, o => o.ToString().Contains("Target: the logit of token"));
            Assert.DoesNotContain(outcomes["03-attribution"].Outputs, o => o.ToString().Contains("(skipped:"));
            Assert.Contains(outcomes["04-attention"].Outputs, o => o.ToString().Contains("(skipped: DeepSeek-V4 attention also attends compressed entries"));
            GenerationsNotebookTests.CheckAnyCheckpoint(outcomes[GenerationsNotebookTests.Name]);
            Assert.Equal(1, outcomes[GenerationsNotebookTests.Name].Value("v4_models"));
        }
        finally { Directory.Delete(dir, true); }
    }
}
