using DeepSeekNotebooks.Reporting;

namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>
/// Notebook 08 (the imaging case study) run on its own: zero error outputs, its charts drawn, and the values it states
/// hold — the mathematical ones for any run (<see cref="CheckAnyCheckpoint"/>, also used by the series tests on other
/// checkpoints) and the planted ground truth for the shipped classifier (<see cref="CheckPlantedTruth"/>): the marker
/// (6 of 64 patches) draws far more than its chance share of Integrated Gradients and removing it costs accuracy.
/// </summary>
[Collection(NotebookSeriesCollection.Name)]
[Trait("Category", "Slow")]
public class MedicalImagingNotebookTests
{
    private const string Name = "08-medical-imaging";

    [Fact]
    public async Task Notebook_08_runs_with_zero_errors_and_finds_the_planted_shortcut()
    {
        // The notebook references the kit as ../src/…, so its copy must sit one level below the repository root.
        var dir = Path.Combine(ReportTestSupport.RepoRoot, $".test-nb08-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(SeriesRun.NotebooksDirectory, Name + ".ipynb"), Path.Combine(dir, Name + ".ipynb"));
            var outcome = (await SeriesRun.RunAsync(null, dir))[Name];
            Assert.True(outcome.Report.Run.Status == NotebookStatus.Succeeded, outcome.Describe());
            Assert.Empty(outcome.Errors);
            Assert.True(outcome.Charts >= 11, $"{outcome.Charts} chart outputs, expected at least 11");
            CheckAnyCheckpoint(outcome);
            CheckPlantedTruth(outcome);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Properties of the methods that hold whatever the classifier learnt.</summary>
    internal static void CheckAnyCheckpoint(NotebookOutcome o)
    {
        Assert.Equal(6 / 64.0, o.Value("chance_share"), 12);
        foreach (var k in new[] { "marker_share", "lesion_share", "top_patch_is_marker", "accuracy_validation", "accuracy_marked", "accuracy_clean", "modal_expert_share", "surrogate_fidelity", "marker_importance" })
            Assert.InRange(o.Value(k), 0, 1);
        Assert.InRange(o.Value("marker_share"), o.Value("marker_share_lower"), o.Value("marker_share_upper"));
        Assert.InRange(o.Value("top_head_d"), o.Value("top_head_d_lower"), o.Value("top_head_d_upper"));
        // Paired difference = difference of the two accuracies on the same scans.
        Assert.Equal(o.Value("accuracy_marked") - o.Value("accuracy_clean"), o.Value("accuracy_drop"), 9);
        Assert.Equal(1, o.Value("holm_ge_raw"));                                      // Holm never lowers a p-value
        Assert.True(o.Value("min_p_holm") >= o.Value("min_p_bh") - 1e-12, "BH is never more conservative than Holm");
        Assert.True(o.Value("min_p_expert") > 0, "permutation p-values count the observed split (Phipson & Smyth)");
        Assert.Equal(16, o.Value("experts_tested"));                                   // 2 MoE blocks × 8 routed experts
        Assert.Equal(3, o.Value("seeds_checked"));                                     // the three shipped training seeds
        Assert.True(o.Value("surrogate_fidelity") >= 0 && o.Value("params_series") > 0 && o.Value("params_classifier") > 0);
        // Every head ablated: [CLS] attends to nothing, its output is the same for every scan, so the prediction is constant
        // and the accuracy is exactly the share of one class (majority or minority) — the hook reaches the model.
        double all = o.Value("all_heads_ablated_accuracy"), majority = o.Value("majority_rate");
        Assert.True(Math.Abs(all - majority) < 1e-9 || Math.Abs(all - (1 - majority)) < 1e-9, $"all heads ablated: accuracy {all}, expected {majority} or {1 - majority}");
    }

    /// <summary>The planted ground truth, found by the kit's methods on the shipped classifier.</summary>
    internal static void CheckPlantedTruth(NotebookOutcome o)
    {
        // Same floors as the Training tests (DeepSeekNotebooks.Training.Tests.CaseStudies.BundledClassifierTests).
        Assert.True(o.Value("marker_share_lower") > 2 * o.Value("chance_share"), $"marker share CI lower bound {o.Value("marker_share_lower")} is not above twice chance");
        Assert.True(o.Value("marker_share") >= 0.25, $"marker share {o.Value("marker_share")} < 0.25");
        Assert.True(o.Value("accuracy_drop_lower") > 0.05, $"accuracy drop CI lower bound {o.Value("accuracy_drop_lower")} <= 5 points");
        Assert.True(o.Value("accuracy_marked") > o.Value("majority_rate") + 0.1, "with the marker the classifier beats the majority rate clearly");
        // Gauss–Legendre IG's completeness error falls with the steps on this model (16 → 256).
        Assert.True(o.Value("ig_completeness_256") < o.Value("ig_completeness_16"), $"IG delta {o.Value("ig_completeness_256")} at 256 steps is not below {o.Value("ig_completeness_16")} at 16");
        Assert.True(o.Value("surrogate_fidelity") > o.Value("surrogate_majority") + 0.05, "the surrogate is better than always-majority");
        Assert.True(o.Value("marker_importance") > 0.3, $"the planted shortcut is the tree's main split (importance {o.Value("marker_importance")})");
        Assert.True(o.Value("params_series") > 5 * o.Value("params_classifier"), "the latency comparison spans two model sizes");
    }
}
