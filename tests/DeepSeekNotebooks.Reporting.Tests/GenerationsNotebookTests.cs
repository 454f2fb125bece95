using DeepSeekNotebooks.Reporting;

namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>
/// Notebook 11 (V3 and V4 side by side) run on its own on the default checkpoint: zero error outputs, its charts drawn,
/// and the values behind its text hold (<see cref="CheckAnyCheckpoint"/>, also applied when the series runs on the V4
/// model), plus what the two bundled trained models show (<see cref="CheckBundled"/>).
/// </summary>
[Collection(NotebookSeriesCollection.Name)]
[Trait("Category", "Slow")]
public class GenerationsNotebookTests
{
    internal const string Name = "11-generations";

    [Fact]
    public async Task Notebook_11_runs_with_zero_errors_and_its_V4_observations_are_consistent()
    {
        // The notebook references the kit as ../src/…, so its copy must sit one level below the repository root.
        var dir = Path.Combine(ReportTestSupport.RepoRoot, $".test-nb11-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(SeriesRun.NotebooksDirectory, Name + ".ipynb"), Path.Combine(dir, Name + ".ipynb"));
            var outcome = (await SeriesRun.RunAsync(null, dir))[Name];
            Assert.True(outcome.Report.Run.Status == NotebookStatus.Succeeded, outcome.Describe());
            Assert.Empty(outcome.Errors);
            Assert.True(outcome.Charts >= 16, $"{outcome.Charts} chart outputs, expected at least 16 (12 + compression by distance, indexer recall, comb distances, readout by depth)");
            CheckAnyCheckpoint(outcome);
            CheckBundled(outcome);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Identities of the V4 pieces that hold for any weights (whenever a V4 model and text were available).</summary>
    internal static void CheckAnyCheckpoint(NotebookOutcome o)
    {
        Assert.True(o.Value("models") >= 1);
        if (o.Value("v4_models") < 1) return;
        // Window + compressed entries + sink is the whole softmax (the sink's share is exp(sink) / denominator).
        if (!double.IsNaN(o.Value("v4_attention_mass_max_deviation"))) Assert.InRange(o.Value("v4_attention_mass_max_deviation"), 0, 1e-5);
        // Sinkhorn-normalised comb (official hc_split_sinkhorn): the last step normalises columns, so they sum to 1 to float
        // rounding; rows only to the 20 iterations' convergence (0.047 measured on the bundled model).
        if (!double.IsNaN(o.Value("comb_row_sum_max_deviation")))
        {
            Assert.InRange(o.Value("comb_column_sum_max_deviation"), 0, 1e-5);
            Assert.InRange(o.Value("comb_row_sum_max_deviation"), 0, 0.1);
        }
        // Hash routing is a table lookup: the hook point equals tid2eid[ids], so a token id always gets the same experts.
        Assert.Equal(0, o.Value("hash_lookup_mismatches"));
        Assert.Equal(0, o.Value("hash_layer_inconsistency"));
        // The kit's diagnostics: CompressionDiagnostics' window + compressed + sink means are the whole softmax; recall is
        // 1 by definition where every visible entry was kept; the mHC readout splits exactly into its per-sub-layer terms.
        if (!double.IsNaN(o.Value("compression_mass_sum_max_deviation"))) Assert.InRange(o.Value("compression_mass_sum_max_deviation"), 0, 1e-5);
        if (o.Value("indexer_layers") > 0)
        {
            Assert.InRange(o.Value("indexer_trivial_recall_max_deviation"), 0, 1e-6);
            if (!double.IsNaN(o.Value("indexer_recall_where_sparse_min"))) Assert.InRange(o.Value("indexer_recall_where_sparse_min"), 0, 1 + 1e-9);
        }
        if (!double.IsNaN(o.Value("hc_reconstruction_error")))
        {
            Assert.InRange(o.Value("hc_reconstruction_error"), 0, 1e-4);
            Assert.Equal(2 * o.Value("hc_layers"), o.Value("hc_nominal_depth"));          // two sites (attention, FFN) per block
            Assert.InRange(o.Value("hc_effective_depth"), 0, o.Value("hc_nominal_depth"));
        }
    }

    /// <summary>On the default run: both bundled models are compared, trained models beat a uniform guess, the QAT rounding costs little.</summary>
    internal static void CheckBundled(NotebookOutcome o)
    {
        Assert.Equal(2, o.Value("models"));
        Assert.Equal(1, o.Value("v4_models"));
        Assert.True(o.Value("hash_lookups") > 0, "the V4 model's hash layer was observed");
        Assert.InRange(o.Value("v4_loss_plain_float"), 0, Math.Log(512));          // below a uniform guess over the 512-token vocabulary
        Assert.InRange(o.Value("v4_loss_official") - o.Value("v4_loss_plain_float"), -0.1, 0.1);
        // The diagnostics ran on the bundled V4 model: one indexer per CSA block (compress ratio 4 in its config.json), two mHC
        // sites per block, and its indexer had to choose on the held-out documents (more completed entries than index_topk).
        var v4Config = SeriesRun.ConfigJson(DeepSeekNotebooks.Training.BundledModel.Checkpoint(DeepSeekNotebooks.Training.BundledModel.V4Name));
        Assert.Equal(v4Config["compress_ratios"]!.AsArray().Take((int)v4Config["num_hidden_layers"]!).Count(r => (int)r! == 4), o.Value("indexer_layers"));
        Assert.Equal((int)v4Config["num_hidden_layers"]!, o.Value("hc_layers"));
        Assert.InRange(o.Value("indexer_recall_where_sparse_min"), 0, 1);
        Assert.InRange(o.Value("indexer_random_pick_recall_min"), 1e-9, 1 - 1e-9);
    }
}
