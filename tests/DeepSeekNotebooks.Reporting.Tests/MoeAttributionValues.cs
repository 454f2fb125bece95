namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>
/// The claims of notebook 03's appended sections ("IG on a mixture of experts: routing switches", "Validating
/// explanations"), checked against the values the notebook prints.
/// </summary>
internal static class MoeAttributionValues
{
    /// <summary>Properties of the methods that hold on any checkpoint.</summary>
    public static void CheckAnyCheckpoint(NotebookOutcome o, int layers, int moeBlocks)
    {
        // Deletion/insertion are normalised by F(input) − F(baseline): deleting nothing is the input (1), inserting every token too.
        Assert.InRange(o.Value("faithfulness_deletion_start"), 1 - 1e-4, 1 + 1e-4);
        Assert.InRange(o.Value("faithfulness_insertion_end"), 1 - 1e-4, 1 + 1e-4);
        // every input-attribution method (the layer methods attribute to a block's output, not to the deleted tokens)
        Assert.Equal(DeepSeekNotebooks.Analysis.Attribution.AttributionMethods.InputAttribution.Count, o.Value("faithfulness_methods"));
        Assert.Equal(7, DeepSeekNotebooks.Analysis.Attribution.AttributionMethods.InputAttribution.Count);
        Assert.Equal(layers + 1, o.Value("sanity_stages"));                // the head, then every block top-down
        Assert.InRange(o.Value("sanity_threshold"), 0.2, 1);               // a 5 % critical value of ρ for a prompt of a few tokens
        Assert.InRange(o.Value("sanity_flagged"), 0, DeepSeekNotebooks.Analysis.Attribution.AttributionMethods.InputAttribution.Count);
        Assert.Equal(moeBlocks, o.Value("moe_blocks"));
        if (moeBlocks == 0)
        {
            Assert.False(o.Values!.ContainsKey("moe_frozen_relative_delta"), "a dense model has no routing to freeze");
            Assert.Contains(o.Outputs, x => x.ToString().Contains("(skipped: this model has no MoE block"));
            return;
        }
        // Routing frozen, the function is smooth: completeness holds on every MoE checkpoint.
        Assert.InRange(o.Value("moe_frozen_relative_delta"), 0, 1e-3);
    }

    /// <summary>What the text says about the bundled trained model.</summary>
    public static void CheckTrained(NotebookOutcome o)
    {
        Assert.True(o.Value("moe_switches") > 0, "IG's path on the bundled model crosses routing switches");
        Assert.InRange(o.Value("moe_jumps_explained"), 0.8, 1.2);          // delta ≈ −Σ jumps
        Assert.True(o.Value("moe_standard_relative_delta") > 100 * o.Value("moe_frozen_relative_delta"),
            $"standard {o.Value("moe_standard_relative_delta")} vs frozen {o.Value("moe_frozen_relative_delta")}");
        Assert.True(o.Value("moe_frozen_relative_delta") < o.Value("moe_frozen_first_relative_delta"), "the frozen delta shrinks with steps");
        Assert.True(o.Value("sanity_ig_cascade_spearman") < o.Value("sanity_threshold"), "IG's map decorrelates when every block is re-drawn");
        Assert.True(o.Value("faithfulness_best_score") > o.Value("faithfulness_random_score"), "some map is more faithful than a random order");
    }
}
