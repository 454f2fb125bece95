using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Interactive;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Reporting;

namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>What one run of the series produced for one notebook: its report, outputs, chart count and stated values.</summary>
internal sealed record NotebookOutcome(NotebookReport Report, IReadOnlyList<JsonElement> Outputs, int Charts, IReadOnlyDictionary<string, double>? Values)
{
    public IEnumerable<string> Errors => Outputs.Where(o => o.GetProperty("output_type").GetString() == "error")
        .Select(o => $"{o.GetProperty("ename").GetString()}: {o.GetProperty("evalue").GetString()?.Split('\n')[0]}");

    public string Describe() =>
        $"{Report.Run.Name}: {Report.Run.Status} {Report.Run.Message} " +
        string.Join("; ", Report.Run.Cells.Where(c => c.Status != CellStatus.Succeeded).Select(c => $"cell {c.Index}: {c.Status} {c.Message}"));

    public double Value(string name) =>
        Values is null ? throw new Xunit.Sdk.XunitException($"{Report.Run.Name} printed no '{Notebook.ValuesPrefix}' line")
        : Values.TryGetValue(name, out var v) ? v
        : throw new Xunit.Sdk.XunitException($"{Report.Run.Name} states no value '{name}' (it states: {string.Join(", ", Values.Keys)})");
}

/// <summary>Runs the whole series headless once on a checkpoint (null = the default) and reads every notebook's outputs.</summary>
internal static class SeriesRun
{
    public static string NotebooksDirectory => Path.Combine(ReportTestSupport.RepoRoot, "notebooks");

    public static async Task<IReadOnlyDictionary<string, NotebookOutcome>> RunAsync(string? checkpoint, string? notebooksDirectory = null)
    {
        var summary = await new ReportGenerator(new ReportOptions
        {
            NotebooksDirectory = notebooksDirectory ?? NotebooksDirectory,
            OutputDirectory = ReportTestSupport.NewOutputFolder(),
            CheckpointPath = checkpoint,
            CellTimeout = TimeSpan.FromMinutes(5),
        }).RunAsync(null, CancellationToken.None);
        return summary.Results.ToDictionary(r => r.Run.Name, Read);
    }

    private static NotebookOutcome Read(NotebookReport report)
    {
        if (report.ExecutedNotebookPath is null) return new NotebookOutcome(report, [], 0, null);
        using var doc = JsonDocument.Parse(File.ReadAllText(report.ExecutedNotebookPath));
        var outputs = doc.RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.TryGetProperty("outputs", out _))
            .SelectMany(c => c.GetProperty("outputs").EnumerateArray()).Select(o => o.Clone()).ToList();
        int charts = outputs.Count(o => Text(o, "text/html")?.Contains("Plotly.newPlot", StringComparison.Ordinal) == true);
        Dictionary<string, double>? values = null;
        foreach (var o in outputs)
        {
            var plain = Text(o, "text/plain");
            if (plain is null || !plain.StartsWith(Notebook.ValuesPrefix, StringComparison.Ordinal)) continue;
            values ??= new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var (name, node) in JsonNode.Parse(plain[Notebook.ValuesPrefix.Length..])!.AsObject())
                values[name] = node!.GetValueKind() == JsonValueKind.String ? double.Parse(node.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) : node.GetValue<double>();
        }
        return new NotebookOutcome(report, outputs, charts, values);
    }

    private static string? Text(JsonElement output, string mime)
    {
        if (!output.TryGetProperty("data", out var data) || !data.TryGetProperty(mime, out var v)) return null;
        return v.ValueKind == JsonValueKind.Array ? string.Concat(v.EnumerateArray().Select(x => x.GetString())) : v.GetString();
    }

    /// <summary>The config as the checkpoint's own file says (read here, not through the kit's loader).</summary>
    public static JsonObject ConfigJson(string checkpointDir) => JsonNode.Parse(File.ReadAllText(Path.Combine(checkpointDir, "config.json")))!.AsObject();
}

/// <summary>The series on the default (trained, bundled) checkpoint, run once for the whole class.</summary>
public sealed class DefaultSeriesFixture : IAsyncLifetime
{
    internal IReadOnlyDictionary<string, NotebookOutcome> Outcomes { get; private set; } = new Dictionary<string, NotebookOutcome>();
    public async Task InitializeAsync() => Outcomes = await SeriesRun.RunAsync(null);
    public Task DisposeAsync() => Task.CompletedTask;
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NotebookSeriesCollection
{
    public const string Name = "notebook-series";
}

/// <summary>
/// The notebook series is a product: every notebook runs top to bottom headless with zero error outputs, draws its
/// charts, and the values behind its statements hold (one test case per notebook, so a failure names it).
/// </summary>
[Collection(NotebookSeriesCollection.Name)]
[Trait("Category", "Slow")]
public class NotebookSeriesTests : IClassFixture<DefaultSeriesFixture>, IClassFixture<DeepSeekNotebooks.Visualization.Tests.ChromiumFixture>
{
    private readonly DefaultSeriesFixture _series;
    private readonly DeepSeekNotebooks.Visualization.Tests.ChromiumFixture _browser;

    public NotebookSeriesTests(DefaultSeriesFixture series, DeepSeekNotebooks.Visualization.Tests.ChromiumFixture browser)
    {
        _series = series;
        _browser = browser;
    }

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
        ["07-representations"] = 13,   // + DLA by block/head/expert, per-head patching, induction scores and loss
        ["08-medical-imaging"] = 12,   // + data randomisation (Adebayo et al. 2018 §4.2)
        ["09-financial-fraud"] = 13,
        ["10-your-own-checkpoint"] = 5,   // expert usage, IG; inspect: parameters, bytes vs 24 GB; stream vs memory peak
        ["11-generations"] = 16,       // V3 and V4 side by side, with the kit's V4 diagnostics (GenerationsNotebookTests)
    };

    private static IEnumerable<string> NotebookNames() =>
        ReportGenerator.FindNotebooks(SeriesRun.NotebooksDirectory).Select(p => Path.GetFileNameWithoutExtension(p));

    public static TheoryData<string> Notebooks() => new(NotebookNames());

    [Fact]
    public void Every_notebook_of_the_series_has_expectations() =>
        Assert.Equal(ExpectedCharts.Keys.Order(StringComparer.Ordinal), NotebookNames().Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Notebook_runs_without_errors_draws_its_charts_and_its_stated_values_hold(string notebook)
    {
        var outcome = _series.Outcomes[notebook];
        Assert.True(outcome.Report.Run.Status == NotebookStatus.Succeeded, outcome.Describe());
        Assert.Empty(outcome.Errors);
        Assert.True(outcome.Charts >= ExpectedCharts[notebook], $"{notebook}: {outcome.Charts} chart outputs, expected at least {ExpectedCharts[notebook]}");
        Assert.DoesNotMatch(ReportTestSupport.RemoteScriptSource(), File.ReadAllText(outcome.Report.HtmlPath));
        var config = SeriesRun.ConfigJson(DeepSeekNotebooks.Training.BundledModel.DefaultCheckpoint());
        StatedValues.CheckAnyCheckpoint(notebook, outcome, config);
        StatedValues.CheckTrained(notebook, outcome);
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public async Task Report_opens_offline_in_Chromium_with_every_chart_drawn(string notebook)
    {
        const string plotsDrawn =
            "(function(){var d=document.querySelectorAll('.js-plotly-plot');" +
            "return Array.prototype.every.call(d,function(p){if(!p._fullLayout||!p.querySelector('.main-svg'))return false;" +
            "if(p._fullLayout._has&&p._fullLayout._has('gl3d'))return !!p.querySelector('canvas');return true;});})()";
        const string plotCounts =
            "(function(){var d=Array.prototype.slice.call(document.querySelectorAll('.js-plotly-plot'));" +
            "return {plots:d.length,drawn:d.filter(function(p){return p._fullLayout&&p.querySelector('.main-svg');}).length};})()";
        var chromium = _browser.Require();
        var run = await chromium.RunPageAsync(_series.Outcomes[notebook].Report.HtmlPath, plotsDrawn, plotCounts, TimeSpan.FromSeconds(60));
        Assert.True(run.Errors.Count == 0, $"{notebook}: errors in the browser:\n" + string.Join("\n", run.Errors));
        Assert.True(run.NetworkRequests.Count == 0, $"{notebook}: network requests:\n" + string.Join("\n", run.NetworkRequests));
        int plots = run.Result.GetProperty("plots").GetInt32();
        Assert.True(plots >= ExpectedCharts[notebook], $"{notebook}: {plots} plots in the report, expected at least {ExpectedCharts[notebook]}");
        Assert.Equal(plots, run.Result.GetProperty("drawn").GetInt32());
    }
}

/// <summary>
/// <c>report --checkpoint DIR</c> is true for every notebook: the whole series on checkpoints other than the default —
/// the golden fixture (random weights, no tokenizer, no telemetry) and a random model made here with a different
/// config (6 experts in 3 groups, 3 blocks, sigmoid gate, no tokenizer) and a dense-only model (every block dense: the
/// routing sections say so in one line and skip) — gives zero error outputs, and the values every
/// notebook states that hold for any model (rows sum to 1, patching sanity, rank bounds…) hold there too.
/// </summary>
[Collection(NotebookSeriesCollection.Name)]
[Trait("Category", "Slow")]
public class SecondCheckpointSeriesTests
{
    public static TheoryData<string> Checkpoints() => new() { "golden-tiny-hf", "random-6-experts-3-groups", "dense-only" };

    private static string Prepare(string which)
    {
        if (which == "golden-tiny-hf") return DeepSeekNotebooks.Training.BundledModel.Checkpoint(which);
        var config = which == "dense-only"
            // every block dense (first_k_dense_replace = num_hidden_layers): no MoE layer, nothing routed
            ? DeepSeekConfig.TinyFullFeatured with { VocabSize = 512, NumHiddenLayers = 2, FirstKDenseReplace = 2, MaxPositionEmbeddings = 64 }
            : DeepSeekConfig.TinyFullFeatured with
            {
                VocabSize = 512, NRoutedExperts = 6, NGroup = 3, TopkGroup = 2, NumExpertsPerTok = 2, NumHiddenLayers = 3, MaxPositionEmbeddings = 64,
            };
        var dir = Path.Combine(ReportTestSupport.NewOutputFolder(), which);
        using var model = DeepSeekModel.Create(config, seed: 11);
        Checkpoint.Save(model, dir);
        return dir;
    }

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public async Task Whole_series_runs_on_another_checkpoint_with_zero_error_outputs(string which)
    {
        var dir = Prepare(which);
        Assert.False(File.Exists(Path.Combine(dir, "tokenizer.json"))); // the point: a checkpoint without what the bundled one has
        var outcomes = await SeriesRun.RunAsync(dir);
        var config = SeriesRun.ConfigJson(dir);
        var failures = new List<string>();
        foreach (var (name, outcome) in outcomes)
        {
            if (outcome.Report.Run.Status != NotebookStatus.Succeeded || outcome.Errors.Any())
            {
                failures.Add(outcome.Describe().Split('\n')[0] + " " + string.Join(" | ", outcome.Errors));
                continue;
            }
            try { StatedValues.CheckAnyCheckpoint(name, outcome, config); }
            catch (Exception e) when (e is Xunit.Sdk.XunitException) { failures.Add($"{name}: stated value does not hold: {e.Message}"); }
        }
        Assert.True(failures.Count == 0, $"on {which}:\n" + string.Join("\n", failures));
        // Notebook 10 analyses the checkpoint it is given (it used to analyse the golden fixture whatever --checkpoint said).
        var loaded = outcomes["10-your-own-checkpoint"].Outputs.Select(o => o.ToString()).First(s => s.Contains("Loaded "));
        Assert.Contains($"Loaded {Path.GetFileName(dir)} ", loaded);
        Assert.Contains($"{config["n_routed_experts"]} routed experts", loaded);
        // The routing rule in the config file's own spellings (softmax/greedy, sigmoid/noaux_tc), not C# enum names.
        Assert.Contains(outcomes["10-your-own-checkpoint"].Outputs, o => o.ToString().Contains($"(scoring_func {config["scoring_func"]}, topk_method {config["topk_method"]})"));
    }
}

/// <summary>
/// A checkpoint without a tokenizer whose vocabulary (300) is smaller than the bundled corpus tokenizer's, and without
/// telemetry: every notebook of the series runs with zero error outputs; the corpus sample says why in one line and each
/// section that needs text prints its skip line instead; 02's sections that need telemetry or a tokenizer say so; what
/// needs no text (prompts from token ids, rollout, the gate by hand, attribution, the fidelity check) runs and its stated
/// values hold.
/// </summary>
[Collection(NotebookSeriesCollection.Name)]
[Trait("Category", "Slow")]
public class NoFittingTokenizerSeriesTests
{
    private const string NoSample = "No corpus sample: the checkpoint has no tokenizer, and the corpus tokenizer's 512 tokens do not fit the model's vocabulary of 300.";
    private const string SkipLine = "(skipped: no corpus sample for this checkpoint, see above)";

    [Fact]
    public async Task Every_notebook_runs_and_sections_that_need_text_say_so_in_one_line_and_skip()
    {
        var checkpoint = Path.Combine(ReportTestSupport.NewOutputFolder(), "vocab-300-no-tokenizer");
        using (var model = DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured with { VocabSize = 300, MaxPositionEmbeddings = 64 }, seed: 5))
            Checkpoint.Save(model, checkpoint);
        Assert.False(File.Exists(Path.Combine(checkpoint, "tokenizer.json")));
        Assert.False(Directory.Exists(Path.Combine(checkpoint, "telemetry")));
        var outcomes = await SeriesRun.RunAsync(checkpoint);
        var every = Directory.GetFiles(SeriesRun.NotebooksDirectory, "*.ipynb").Select(Path.GetFileNameWithoutExtension).Where(n => !n!.StartsWith('_')).Order(StringComparer.Ordinal);
        Assert.Equal(every, outcomes.Keys.Where(n => !n.StartsWith('_')).Order(StringComparer.Ordinal));
        var config = SeriesRun.ConfigJson(checkpoint);
        var failures = new List<string>();
        foreach (var (name, o) in outcomes)
        {
            if (o.Report.Run.Status != NotebookStatus.Succeeded || o.Errors.Any())
            {
                failures.Add(o.Describe().Split('\n')[0] + " " + string.Join(" | ", o.Errors));
                continue;
            }
            var texts = o.Outputs.Select(PlainText).ToList();
            int skips = texts.Count(t => t.Contains(SkipLine, StringComparison.Ordinal));
            try
            {
                switch (name)
                {
                    case "02-training":
                        // Telemetry and a tokenizer are both missing: each section says which, in one line.
                        Assert.Contains(texts, t => t.StartsWith("Loss curves: skipped, ", StringComparison.Ordinal));
                        Assert.Contains(texts, t => t.StartsWith("Exact match: skipped, ", StringComparison.Ordinal) && t.Contains("has no tokenizer"));
                        Assert.Equal(0, o.Charts);
                        break;
                    case "04-attention":
                        Assert.Contains(texts, t => t.Contains(NoSample));
                        // the dataset sections (head statistics, table, distance, boundary, token classes, anomalies) skip
                        Assert.True(skips == 6, $"04: {skips} skip lines, expected 6 (one per dataset section)");
                        Assert.True(o.Charts >= 5, $"04: {o.Charts} charts; the prompt sections (heatmap, all heads, rollout, flow) need no text");
                        Assert.InRange(o.Value("rollout_row_sum_error"), 0, 1e-5);
                        Assert.InRange(o.Value("rollout_flow_rho"), -1 - 1e-9, 1 + 1e-9);
                        Assert.True(double.IsNaN(o.Value("heads")), "no dataset, no head statistics stated");
                        Assert.Equal(0, o.Value("dataset_sequences"));
                        break;
                    case "07-representations":
                        Assert.Contains(texts, t => t.Contains(NoSample));
                        Assert.True(skips >= 1, $"{name}: no skip line printed");
                        // The induction probe (random tokens) and generation (token ids) need no text: their two charts and values only.
                        Assert.Equal(2, o.Charts);
                        Assert.DoesNotContain(o.Values!.Keys, k => k.StartsWith("dla_", StringComparison.Ordinal) || k.StartsWith("patch_", StringComparison.Ordinal));
                        StatedValues.CheckAnyCheckpoint(name, o, config);
                        break;
                    case "05-expert-diagnostics":
                    case "06-surrogate-tree":
                        Assert.Contains(texts, t => t.Contains(NoSample));
                        Assert.True(skips >= 1, $"{name}: no skip line printed");
                        Assert.Null(o.Values);              // nothing measured, nothing stated
                        Assert.Equal(0, o.Charts);
                        if (name == "05-expert-diagnostics")
                            Assert.True(skips == 23, $"05: {skips} skip lines, expected 23 (every routing cell)");
                        break;
                    default:
                        StatedValues.CheckAnyCheckpoint(name, o, config);
                        break;
                }
            }
            catch (Xunit.Sdk.XunitException e) { failures.Add($"{name}: {e.Message}"); }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static string PlainText(JsonElement output)
    {
        if (output.TryGetProperty("text", out var text))
            return text.ValueKind == JsonValueKind.Array ? string.Concat(text.EnumerateArray().Select(x => x.GetString())) : text.GetString() ?? "";
        if (!output.TryGetProperty("data", out var data) || !data.TryGetProperty("text/plain", out var v)) return "";
        return v.ValueKind == JsonValueKind.Array ? string.Concat(v.EnumerateArray().Select(x => x.GetString())) : v.GetString() ?? "";
    }
}

/// <summary>The claims each notebook's text makes, checked against the values it prints and independent expectations.</summary>
internal static class StatedValues
{
    /// <summary>Claims that hold for any checkpoint (mathematical properties of the methods).</summary>
    public static void CheckAnyCheckpoint(string notebook, NotebookOutcome o, JsonObject config)
    {
        int layers = (int)config["num_hidden_layers"]!, heads = (int)config["num_attention_heads"]!;
        // MoE blocks by the rule of DeepSeek's Hugging Face modeling code, from the config file itself.
        int firstDenseBlocks = (int?)config["first_k_dense_replace"] ?? 0, moeFreq = (int?)config["moe_layer_freq"] ?? 1;
        var moeBlocks = (int?)config["n_routed_experts"] is > 0
            ? Enumerable.Range(0, layers).Where(l => l >= firstDenseBlocks && l % moeFreq == 0).ToArray() : [];
        if (moeBlocks.Length == 0 && notebook is "05-expert-diagnostics" or "06-surrogate-tree")
        {
            // A dense-only model: the routing sections say so in one line and skip; nothing routed, nothing stated.
            Assert.Contains(o.Outputs, x => x.ToString().Contains("(skipped: this model has no MoE block"));
            Assert.Null(o.Values);
            return;
        }
        switch (notebook)
        {
            case "00-quickstart":
                Assert.InRange(o.Value("attention_row_sum_error"), 0, 1e-5);   // every attention row is a distribution
                Assert.InRange(o.Value("rollout_row_sum_error"), 0, 1e-5);     // products of row-stochastic matrices
                Assert.True(o.Value("prompt_tokens") >= 1);
                break;
            case "01-architecture":
                Assert.InRange(o.Value("key_rank"), 1, (int)config["kv_lora_rank"]!);   // keys come from a kv_lora_rank latent
                Assert.Equal((int)config["kv_lora_rank"]!, o.Value("kv_lora_rank"));
                Assert.Equal(0, o.Value("future_weight"));                              // causal
                Assert.InRange(o.Value("attention_row_sum_error"), 0, 1e-5);
                Assert.InRange(o.Value("active_fraction"), 1e-6, 1 - 1e-6);           // fewer parameters active than stored (one embedding row; MoE: top-k experts)
                if (moeBlocks.Length == 0)
                {
                    Assert.False(o.Values!.ContainsKey("routing_experts_match"), "a dense-only model has no routing to recompute");
                    Assert.Contains(o.Outputs, x => x.ToString().Contains("(skipped: this model has no MoE block"));
                    break;
                }
                Assert.Equal(1, o.Value("routing_experts_match"));                      // the gate recomputed by hand agrees
                Assert.InRange(o.Value("routing_weight_error"), 0, 1e-5);
                break;
            case "03-attribution":
                Assert.Equal(5, o.Value("methods"));
                Assert.InRange(o.Value("spearman_min"), -1 - 1e-9, 1 + 1e-9);
                Assert.InRange(o.Value("spearman_max"), -1 - 1e-9, 1 + 1e-9);
                MoeAttributionValues.CheckAnyCheckpoint(o, layers, moeBlocks.Length);
                break;
            case "04-attention":
                Assert.InRange(o.Value("rollout_row_sum_error"), 0, 1e-5);
                Assert.InRange(o.Value("rollout_flow_rho"), -1 - 1e-9, 1 + 1e-9);
                Assert.Equal(layers * heads, o.Value("heads"));                        // one diagnostic per head of the config
                Assert.InRange(o.Value("sink_heads"), 0, layers * heads);
                break;
            case "05-expert-diagnostics":
            {
                var moeLayers = moeBlocks;
                var stated = o.Values!.Keys.Where(k => k.StartsWith("nmi_L", StringComparison.Ordinal)).Select(k => int.Parse(k["nmi_L".Length..])).Order().ToArray();
                Assert.Equal(moeLayers, stated);
                Assert.Equal((int)config["n_routed_experts"]!, o.Value("routed_experts"));
                foreach (var l in moeLayers)
                {
                    Assert.InRange(o.Value($"usage_sum_L{l}"), 1 - 1e-9, 1 + 1e-9);   // shares of the routing slots
                    Assert.InRange(o.Value($"nmi_L{l}"), 0, 1);
                    Assert.InRange(o.Value($"dead_experts_L{l}"), 0, (int)config["n_routed_experts"]!);
                }
                break;
            }
            case "06-surrogate-tree":
                Assert.True(o.Value("train_fidelity_min_step") >= -1e-12, "a deeper tree never fits its training tokens worse");
                Assert.InRange(o.Value("readable_leaves"), 1, 8);                       // depth 3: at most 2³ leaves
                Assert.InRange(o.Value("readable_depth"), 0, 3);
                Assert.True(o.Value("best_test_fidelity") >= o.Value("majority_test_fidelity"), "depth 0 is one of the candidates");
                break;
            case "07-representations":
                if (o.Values?.ContainsKey("patch_changed_position_block0") == true)   // the sections that need a corpus sample
                {
                    if (((int?)config["num_hash_layers"] ?? 0) == 0)
                    {
                        // The runs differ only there (a hash-routed block 0, DeepSeek-V4, routes by the corrupted ids whatever is patched in).
                        Assert.InRange(o.Value("patch_changed_position_block0"), 1 - 1e-4, 1 + 1e-4);
                        Assert.InRange(o.Value("patch_other_positions_block0_max"), 0, 1e-4);
                    }
                    Assert.InRange(o.Value("eta_min"), 0, 1);
                    Assert.InRange(o.Value("eta_max"), 0, 1);
                    Assert.InRange(o.Value("pca_top3_max"), 0, 1 + 1e-9);
                    if (config.ContainsKey("compress_ratios"))
                        // DeepSeek-V4: no attn.z, so the per-head decomposition skips and states nothing.
                        Assert.DoesNotContain(o.Values!.Keys, k => k.StartsWith("dla_", StringComparison.Ordinal) || k.StartsWith("head_patch_", StringComparison.Ordinal));
                    else
                    {
                        // RMSNorm with a frozen scale is linear: the direct logit attribution closes up to float rounding.
                        Assert.InRange(o.Value("dla_frozen_norm_error"), 0, 1e-3);
                        Assert.InRange(o.Value("dla_head_sum_error"), 0, 1e-4);
                        Assert.InRange(o.Value("dla_expert_sum_error"), 0, 1e-4);
                        Assert.InRange(o.Value("head_patch_all_heads_vs_attn_out"), 0, 1e-4);   // attn.out = wo(all heads of attn.z)
                    }
                }
                {
                    // Induction probe: n = min(24, max_position_embeddings / 2) per repeat; even attention scores mean 1/(q+1) over q = n … 2n−1.
                    int n = Math.Min(24, (int)config["max_position_embeddings"]! / 2);
                    Assert.Equal(Enumerable.Range(n, n).Average(q => 1.0 / (q + 1)), o.Value("induction_even_score"), 12);
                    Assert.Equal(Math.Log((int)config["vocab_size"]!), o.Value("induction_chance_loss"), 12);
                    Assert.InRange(o.Value("induction_score_max"), 0, 1 + 1e-9);
                    Assert.True(o.Value("induction_first_repeat_loss") > 0 && o.Value("induction_second_repeat_loss") > 0 && o.Value("induction_ablated_second_repeat_loss") > 0);
                    Assert.Equal(1, o.Value("generate_seed_reproducible"));
                    Assert.Equal(1, o.Value("generate_greedy_first_is_argmax"));
                }
                break;
            case "08-medical-imaging":
                MedicalImagingNotebookTests.CheckAnyCheckpoint(o);
                break;
            case "09-financial-fraud":
                FinancialFraudNotebookTests.CheckAnyCheckpoint(o);
                break;
            case GenerationsNotebookTests.Name:
                GenerationsNotebookTests.CheckAnyCheckpoint(o);
                break;
            case "10-your-own-checkpoint":
                Assert.InRange(o.Value("golden_logits_max_error"), 0, 1e-4);   // README: logits, hidden states, attention within 1e-4
                Assert.InRange(o.Value("golden_hidden_max_error"), 0, 1e-4);
                Assert.InRange(o.Value("golden_attention_max_error"), 0, 1e-4);
                Assert.Equal(2, o.Value("loader_errors"));                      // a truncated file and a missing directory
                // inspect on the real configs: DeepSeek's published 671B (V3) and 15.7B (V2-Lite), exactly as InspectCommandTests counts them.
                Assert.Equal(671_026_419_200, o.Value("inspect_v3_total_parameters"));
                Assert.Equal(15_706_484_224, o.Value("inspect_v2lite_total_parameters"));
                // The init checkpoint stores exactly the tensors its architecture has.
                Assert.Equal(o.Value("init_total_parameters"), o.Value("init_stored_parameters"));
                // Stream and memory residency agree (issue 12: logits <= 1e-6 relative, routing identical, gradients <= 1e-5).
                Assert.InRange(o.Value("stream_memory_logits_relative_error"), 0, 1e-6);
                Assert.Equal(0, o.Value("stream_memory_routing_mismatches"));
                Assert.InRange(o.Value("stream_memory_saliency_relative_error"), 0, 1e-5);
                // Peak memory is shown, not asserted: both residencies run in the notebook's one process (see its text).
                Assert.Equal(1, o.Value("scratch_deleted"));
                break;
        }
    }

    /// <summary>Claims the text makes about the bundled trained model.</summary>
    public static void CheckTrained(string notebook, NotebookOutcome o)
    {
        switch (notebook)
        {
            case "00-quickstart":
                Assert.InRange(o.Value("ig_relative_delta"), 0, 0.05);          // completeness within IG's 5 % warning threshold
                break;
            case "03-attribution":
                Assert.InRange(o.Value("ig_token_relative_delta"), 0, 0.05);    // the default baseline converges …
                Assert.True(o.Value("ig_zero_relative_delta") > 0.05, "the zero baseline is the trap the notebook measures");
                Assert.True(o.Value("zero_path_early_share") > 10 * o.Value("token_path_early_share"),
                    $"zero baseline jumps early: {o.Value("zero_path_early_share")} vs token baseline {o.Value("token_path_early_share")}");
                MoeAttributionValues.CheckTrained(o);
                break;
            case "05-expert-diagnostics":
                foreach (var key in o.Values!.Keys.Where(k => k.StartsWith("nmi_L", StringComparison.Ordinal)))
                {
                    var l = key["nmi_L".Length..];
                    double nmi = o.Value(key), mean = o.Value($"nmi_null_mean_L{l}"), sd = o.Value($"nmi_null_sd_L{l}");
                    Assert.True(nmi > mean + 3 * sd, $"layer {l}: top-1 expert NMI {nmi} is not above its permutation null {mean} ± {sd}");
                    Assert.Equal(0, o.Value($"dead_experts_L{l}"));
                }
                break;
            case "06-surrogate-tree":
                Assert.True(o.Value("best_test_fidelity") > o.Value("majority_test_fidelity") + 0.05,
                    "the token features explain the trained router clearly better than the majority expert");
                break;
            case "08-medical-imaging":
                MedicalImagingNotebookTests.CheckPlantedTruth(o);
                break;
            case "09-financial-fraud":
                FinancialFraudNotebookTests.CheckPlantedTruth(o);
                break;
            case GenerationsNotebookTests.Name:
                GenerationsNotebookTests.CheckAnyCheckpoint(o);
                break;
            case "10-your-own-checkpoint":
                Assert.InRange(o.Value("ig_relative_delta"), 0, 0.05);
                break;
        }
    }
}
