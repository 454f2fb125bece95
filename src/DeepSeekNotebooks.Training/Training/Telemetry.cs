using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using TorchSharp;

namespace DeepSeekNotebooks.Training.Training;

/// <summary>Telemetry of one optimizer step.</summary>
public sealed record StepRecord
{
    public int GlobalStep { get; init; }
    public required string Stage { get; init; }
    public int StageStep { get; init; }
    public int StageSteps { get; init; }
    public double LearningRate { get; init; }
    public double Loss { get; init; }
    public double LmLoss { get; init; }
    public double BalanceLoss { get; init; }
    public double? ValidationLoss { get; init; }
    public IReadOnlyDictionary<string, double>? ValidationLossByDomain { get; init; }
    public double GradNorm { get; init; }
    public required IReadOnlyDictionary<string, double> GroupGradNorms { get; init; }
    public double TokensPerSecond { get; init; }
    public double ElapsedSeconds { get; init; }
    /// <summary>Per MoE layer: tokens routed to each expert in this step's batch.</summary>
    public required IReadOnlyDictionary<int, double[]> ExpertLoad { get; init; }
    /// <summary>Per MoE layer: selection bias after this step's update.</summary>
    public required IReadOnlyDictionary<int, float[]> SelectionBias { get; init; }
    /// <summary>Per MoE layer: <see cref="Balance.MaxVio(IReadOnlyList{double})"/> of <see cref="ExpertLoad"/> (NaN if nothing was routed).</summary>
    public IReadOnlyDictionary<int, double> MaxVio => ExpertLoad.ToDictionary(kv => kv.Key, kv => Balance.MaxVio(kv.Value));
}

/// <summary>
/// Writes step telemetry as <c>steps.csv</c> and <c>steps.jsonl</c> (same content) and, optionally, TensorBoard event files.
/// CSV columns (documented in <see cref="Columns"/>): <c>global_step, stage, stage_step, lr, loss, lm_loss, balance_loss,
/// val_loss, val_loss_{domain}…, grad_norm, grad_norm_{group}…, tokens_per_s, elapsed_s</c>, then per MoE layer L
/// <c>maxvio_L{L}</c>, <c>load_L{L}_e{i}</c> (tokens routed to expert i in the step's batch) and <c>bias_L{L}_e{i}</c>.
/// Empty cells mean "not measured at this step" (validation loss is computed every N steps).
/// </summary>
public sealed class TelemetryWriter : IDisposable
{
    /// <summary>Gradient-norm groups, in column order.</summary>
    public static readonly string[] GradGroups = { "embeddings", "attention", "router", "routed_experts", "shared_experts", "dense_mlp", "norms", "head" };

    private readonly string _csv, _jsonl;
    private readonly IReadOnlyList<string> _columns;
    private readonly IReadOnlyList<string> _domains;
    private readonly int[] _moeLayers;
    private readonly int _experts;
    private readonly TorchSharp.Modules.SummaryWriter? _tensorboard;

    public TelemetryWriter(string directory, DeepSeekConfig config, IReadOnlyList<string> domains, bool tensorBoard, string? tensorBoardDirectory = null)
    {
        Directory.CreateDirectory(directory);
        _csv = Path.Combine(directory, "steps.csv");
        _jsonl = Path.Combine(directory, "steps.jsonl");
        _domains = domains;
        _moeLayers = Enumerable.Range(0, config.NumHiddenLayers).Where(config.IsMoeLayer).ToArray();
        _experts = config.NRoutedExperts;
        _columns = Columns(config, domains);
        if (!File.Exists(_csv)) File.WriteAllText(_csv, string.Join(',', _columns) + "\n");
        if (tensorBoard) _tensorboard = torch.utils.tensorboard.SummaryWriter(tensorBoardDirectory ?? Path.Combine(directory, "tensorboard"));
    }

    /// <summary>The CSV header for a model configuration and domain list.</summary>
    public static IReadOnlyList<string> Columns(DeepSeekConfig config, IReadOnlyList<string> domains)
    {
        var cols = new List<string> { "global_step", "stage", "stage_step", "lr", "loss", "lm_loss", "balance_loss", "val_loss" };
        cols.AddRange(domains.Select(d => $"val_loss_{d}"));
        cols.Add("grad_norm");
        cols.AddRange(GradGroups.Select(g => $"grad_norm_{g}"));
        cols.Add("tokens_per_s");
        cols.Add("elapsed_s");
        foreach (var l in Enumerable.Range(0, config.NumHiddenLayers).Where(config.IsMoeLayer))
        {
            cols.Add($"maxvio_L{l}");
            cols.AddRange(Enumerable.Range(0, config.NRoutedExperts).Select(e => $"load_L{l}_e{e}"));
            cols.AddRange(Enumerable.Range(0, config.NRoutedExperts).Select(e => $"bias_L{l}_e{e}"));
        }
        return cols;
    }

    /// <summary>Drops rows after <paramref name="globalStep"/> (steps an interrupted run logged after its last checkpoint).</summary>
    public static void TruncateAfter(string directory, int globalStep)
    {
        var csv = Path.Combine(directory, "steps.csv");
        if (File.Exists(csv))
        {
            var lines = File.ReadAllLines(csv);
            var kept = lines.Take(1).Concat(lines.Skip(1).Where(l => int.Parse(l.Split(',')[0], CultureInfo.InvariantCulture) <= globalStep));
            DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(csv, string.Join("\n", kept) + "\n");
        }
        var jsonl = Path.Combine(directory, "steps.jsonl");
        if (File.Exists(jsonl))
        {
            var kept = File.ReadAllLines(jsonl).Where(l => l.Length > 0 && JsonNode.Parse(l)!["global_step"]!.GetValue<int>() <= globalStep);
            DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(jsonl, string.Concat(kept.Select(l => l + "\n")));
        }
    }

    public void Write(StepRecord r)
    {
        var values = new Dictionary<string, string>
        {
            ["global_step"] = I(r.GlobalStep), ["stage"] = r.Stage, ["stage_step"] = I(r.StageStep), ["lr"] = F(r.LearningRate),
            ["loss"] = F(r.Loss), ["lm_loss"] = F(r.LmLoss), ["balance_loss"] = F(r.BalanceLoss),
            ["val_loss"] = r.ValidationLoss is { } v ? F(v) : "", ["grad_norm"] = F(r.GradNorm),
            ["tokens_per_s"] = F(r.TokensPerSecond), ["elapsed_s"] = F(r.ElapsedSeconds),
        };
        foreach (var d in _domains) values[$"val_loss_{d}"] = r.ValidationLossByDomain?.TryGetValue(d, out var x) == true ? F(x) : "";
        foreach (var g in GradGroups) values[$"grad_norm_{g}"] = F(r.GroupGradNorms.GetValueOrDefault(g));
        var json = new JsonObject
        {
            ["global_step"] = r.GlobalStep, ["stage"] = r.Stage, ["stage_step"] = r.StageStep, ["lr"] = r.LearningRate, ["loss"] = r.Loss,
            ["lm_loss"] = r.LmLoss, ["balance_loss"] = r.BalanceLoss, ["val_loss"] = r.ValidationLoss, ["grad_norm"] = r.GradNorm,
            ["tokens_per_s"] = r.TokensPerSecond, ["elapsed_s"] = r.ElapsedSeconds,
        };
        if (r.ValidationLossByDomain is not null) json["val_loss_by_domain"] = new JsonObject(r.ValidationLossByDomain.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        json["grad_norms"] = new JsonObject(r.GroupGradNorms.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        var layers = new JsonObject();
        foreach (var l in _moeLayers)
        {
            var load = r.ExpertLoad.GetValueOrDefault(l) ?? new double[_experts];
            var bias = r.SelectionBias.GetValueOrDefault(l) ?? new float[_experts];
            // MaxVio of a layer whose load was not recorded, or of an all-zero load, is undefined: an empty cell / null.
            double? mv = r.ExpertLoad.ContainsKey(l) && Balance.MaxVio(load) is var m && double.IsFinite(m) ? m : null;
            values[$"maxvio_L{l}"] = mv is { } maxVio ? F(maxVio) : "";
            for (int e = 0; e < _experts; e++) { values[$"load_L{l}_e{e}"] = F(load[e]); values[$"bias_L{l}_e{e}"] = F(bias[e]); }
            layers[l.ToString(CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["maxvio"] = mv, ["load"] = new JsonArray(load.Select(x => (JsonNode?)x).ToArray()), ["bias"] = new JsonArray(bias.Select(x => (JsonNode?)x).ToArray()),
            };
        }
        json["moe_layers"] = layers;
        File.AppendAllText(_csv, string.Join(',', _columns.Select(c => values.GetValueOrDefault(c, ""))) + "\n");
        File.AppendAllText(_jsonl, json.ToJsonString() + "\n");

        if (_tensorboard is { } tb)
        {
            int s = r.GlobalStep;
            tb.add_scalar("train/loss", (float)r.Loss, s);
            tb.add_scalar("train/lm_loss", (float)r.LmLoss, s);
            tb.add_scalar("train/balance_loss", (float)r.BalanceLoss, s);
            tb.add_scalar("train/lr", (float)r.LearningRate, s);
            tb.add_scalar("train/tokens_per_s", (float)r.TokensPerSecond, s);
            tb.add_scalar("grad_norm/global", (float)r.GradNorm, s);
            foreach (var (g, n) in r.GroupGradNorms) tb.add_scalar($"grad_norm/{g}", (float)n, s);
            if (r.ValidationLoss is { } vl) tb.add_scalar("val/loss", (float)vl, s);
            if (r.ValidationLossByDomain is not null) foreach (var (d, x) in r.ValidationLossByDomain) tb.add_scalar($"val/loss_{d}", (float)x, s);
            foreach (var l in _moeLayers)
            {
                if (r.ExpertLoad.TryGetValue(l, out var load) && Balance.MaxVio(load) is var mv && double.IsFinite(mv)) tb.add_scalar($"moe/L{l}/maxvio", (float)mv, s);
                if (r.SelectionBias.TryGetValue(l, out var bias))
                    for (int e = 0; e < bias.Length; e++) tb.add_scalar($"moe/L{l}/bias_e{e}", bias[e], s);
            }
        }
    }

    private static string F(double x) => x.ToString("G6", CultureInfo.InvariantCulture);
    private static string I(int x) => x.ToString(CultureInfo.InvariantCulture);

    public void Dispose() { }
}
