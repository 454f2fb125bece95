using DeepSeekNotebooks.Reporting;

namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>
/// <c>report --checkpoint data/checkpoints/deepseek-tiny-v4</c>: the notebooks of the series that run on the bundled
/// DeepSeek-V4 model (sliding window / CSA / HCA attention with sinks, 4 hyper-connection streams, a hash-routed first
/// block) run with zero error outputs; sections whose analysis does not take V4 yet say so in one line (from the config,
/// <c>GenerationSupport</c>) instead of failing; rollout, flow, head statistics and induction run on V4's token-mapped
/// attention and their stated values hold; notebook 11's V4 identities hold. The whole series is in the list.
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
            // Rollout, flow, head statistics and induction run on V4 through TokenAttention (window + compressed entries
            // mapped back to tokens, the sink's share to no token) instead of skipping.
            var config = SeriesRun.ConfigJson(checkpoint);
            foreach (var name in new[] { "00-quickstart", "04-attention", "07-representations" })
            {
                Assert.DoesNotContain(outcomes[name].Outputs, o => o.ToString().Contains("does not take V4 yet"));
                StatedValues.CheckAnyCheckpoint(name, outcomes[name], config);
            }
            var attention = outcomes["04-attention"];
            Assert.True(attention.Charts >= 10, $"04 on V4: {attention.Charts} charts (heatmaps, rollout, flow, where the mass goes, head statistics)");
            // Every mapped row plus its sink share is 1 (mass conserved through the compressed entries); the sinks take some.
            Assert.InRange(attention.Value("token_attention_row_sum_error"), 0, 1e-5);
            Assert.InRange(attention.Value("sink_share_max"), 1e-6, 1);
            // The window layers cannot reach the first repeat of 24 tokens through an 8-token window: induction score exactly 0.
            var representations = outcomes["07-representations"];
            Assert.Equal((int)config["sliding_window"]!, representations.Value("sliding_window"));
            Assert.True(representations.Value("induction_repeat_length") > representations.Value("sliding_window"));
            Assert.Equal(0, representations.Value("induction_window_layers_max_score"));
            GenerationsNotebookTests.CheckAnyCheckpoint(outcomes[GenerationsNotebookTests.Name]);
            Assert.Equal(1, outcomes[GenerationsNotebookTests.Name].Value("v4_models"));
        }
        finally { Directory.Delete(dir, true); }
    }
}
