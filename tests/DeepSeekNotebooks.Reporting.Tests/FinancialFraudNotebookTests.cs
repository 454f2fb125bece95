using DeepSeekNotebooks.Reporting;

namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>
/// Notebook 09 (the fraud case study) run on its own: zero error outputs, its charts drawn, and the values it states
/// hold — the consistency of the statistics for any run (<see cref="CheckAnyCheckpoint"/>, also used by the series tests
/// on other checkpoints) and the planted ground truth for the shipped classifier (<see cref="CheckPlantedTruth"/>): the
/// device fingerprint dev:7f3a is top-attributed where it is present and never where it is not, shuffling it costs recall,
/// the night-time shift shows in the attention, and the surrogate beats the majority decision.
/// </summary>
[Collection(NotebookSeriesCollection.Name)]
[Trait("Category", "Slow")]
public class FinancialFraudNotebookTests
{
    private const string Name = "09-financial-fraud";

    [Fact]
    public async Task Notebook_09_runs_with_zero_errors_and_finds_the_planted_fingerprint_and_night_shift()
    {
        // The notebook references the kit as ../src/…, so its copy must sit one level below the repository root.
        var dir = Path.Combine(ReportTestSupport.RepoRoot, $".test-nb09-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(SeriesRun.NotebooksDirectory, Name + ".ipynb"), Path.Combine(dir, Name + ".ipynb"));
            var outcome = (await SeriesRun.RunAsync(null, dir))[Name];
            Assert.True(outcome.Report.Run.Status == NotebookStatus.Succeeded, outcome.Describe());
            Assert.Empty(outcome.Errors);
            Assert.True(outcome.Charts >= 13, $"{outcome.Charts} chart outputs, expected at least 13");
            CheckAnyCheckpoint(outcome);
            CheckPlantedTruth(outcome);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Properties of the statistics that hold whatever the classifier learnt.</summary>
    internal static void CheckAnyCheckpoint(NotebookOutcome o)
    {
        foreach (var k in new[] { "device_top_share", "ablation_device_top_share", "method_agreement", "recall_test", "precision_test", "recall_test_shortcut",
                     "surrogate_test_fidelity", "surrogate_majority_fidelity", "surrogate_device_importance", "ig_median_relative_delta" })
            Assert.InRange(o.Value(k), 0, 1);
        Assert.True(o.Value("flagged") >= 1);
        Assert.InRange(o.Value("device_top_share_lower"), 0, o.Value("device_top_share"));
        Assert.InRange(o.Value("max_head_js"), 0, Math.Log(2));                          // Jensen–Shannon is bounded by ln 2
        Assert.InRange(o.Value("heads_drifting"), 0, o.Value("heads"));
        Assert.True(o.Value("min_head_p") >= 1.0 / 1000, "permutation p-values count the observed split (Phipson & Smyth): ≥ 1/(999 + 1)");
        Assert.InRange(o.Value("strategy_recall_relative"), o.Value("strategy_recall_relative_lower"), o.Value("strategy_recall_relative_upper"));
        Assert.InRange(o.Value("top1_recall_relative"), o.Value("top1_recall_relative_lower"), o.Value("top1_recall_relative_upper"));
        Assert.Equal(2, o.Value("moe_layers"));                                          // the classifier's two MoE blocks
        Assert.True(o.Value("parameters_other") != o.Value("parameters_classifier"), "the latency comparison spans two model sizes");
    }

    /// <summary>The planted ground truth, found by the kit's methods on the shipped classifier.</summary>
    internal static void CheckPlantedTruth(NotebookOutcome o)
    {
        // Same floors as DeepSeekNotebooks.Training.Tests.CaseStudies.BundledFraudClassifierTests.
        Assert.True(o.Value("device_top_share_with_shortcut") >= 0.4, $"IG: device top in {o.Value("device_top_share_with_shortcut")} of flagged accounts with dev:7f3a");
        Assert.True(o.Value("device_top_share_without_shortcut") <= 0.15, $"IG: device top in {o.Value("device_top_share_without_shortcut")} of flagged accounts without it");
        Assert.True(o.Value("ablation_device_top_share_with_shortcut") >= 0.4, "field ablation agrees on the fingerprint");
        Assert.True(o.Value("shuffle_recall_change_upper") < 0, "shuffling the fingerprint costs recall (the interval lies below 0)");
        Assert.True(o.Value("shortcut_recall_gain") > 0.05, "the training-time correlation is worth recall on the same accounts");
        Assert.True(o.Value("heads_drifting") >= 1, "the planted night shift shows in at least one head's [CLS] attention");
        Assert.True(o.Value("surrogate_test_fidelity") > o.Value("surrogate_majority_fidelity") + 0.05, "the surrogate is better than always-majority");
        Assert.True(o.Value("surrogate_device_importance") > 0.1, "the surrogate tree splits on the planted fingerprint");
        Assert.True(o.Value("parameters_other") > 5 * o.Value("parameters_classifier"), "the bundled language model is the larger size");
    }
}
