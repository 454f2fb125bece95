using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>summarize</c>: the metrics of a state written by <c>collect</c>/<c>merge</c> — per MoE layer load balance (MaxVio, CV,
/// normalised load entropy), dead experts, routing entropy and margin, repetition, domain NMI and the top co-activation
/// pairs; per attention head entropy, sink share and sparsity.
/// </summary>
public static class SummarizeCommand
{
    /// <summary>Co-activation pairs listed per layer.</summary>
    internal const int TopPairs = 5;

    public static Command Create()
    {
        var input = new Argument<FileInfo>("state") { Description = "A state file written by collect or merge." };
        var json = new Option<bool>("--json") { Description = "Write one JSON object instead of the tables." };
        var command = new Command("summarize", "Metrics of a collect/merge state: per MoE layer balance, entropy, domain NMI, co-activation; per head entropy and sinks.") { input, json };
        command.SetAction(parse => CliSupport.Run(() => Run(parse.GetValue(input)!.FullName, parse.GetValue(json), Console.Out)));
        return command;
    }

    internal static int Run(string path, bool json, TextWriter output)
    {
        var state = DatasetState.Load(path);
        var o = ToJson(state);
        if (json) { output.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true })); return 0; }
        var p = state.Provenance;
        output.WriteLine($"{path}: checkpoint {p.Checkpoint} (config {p.ConfigHash[..12]}), dataset {p.DatasetHash[..12]}, shards {string.Join(",", state.Shards)} of {p.ShardCount}{(state.IsComplete ? "" : " — INCOMPLETE: merge the missing shards for whole-dataset statistics")}");
        if (o["moe_layers"] is JsonArray layers && layers.Count > 0)
        {
            output.WriteLine();
            output.WriteLine("layer   tokens   max_vio      cv  load_ent  dead  route_ent  margin  top1_rep  domain_nmi  top co-activation (e,f: rate)");
            foreach (var l in layers.OfType<JsonObject>())
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(int)l["layer"]!,5} {(long)l["tokens"]!,8} {F(l["max_vio"]),9} {F(l["cv"]),7} {F(l["load_entropy"]),9} {(int)l["dead_experts"]!,5} {F(l["routing_entropy"]),10} {F(l["top1_margin"]),7} {F(l["top1_repeat"]),9} {F(l["domain_nmi"]),11}  {Pairs(l)}"));
        }
        else output.WriteLine("no MoE layer (dense-only model or empty state)");
        if (o["heads"] is JsonArray heads && heads.Count > 0)
        {
            output.WriteLine();
            output.WriteLine($"sink rate (heads with mean attention to token 0 > ε = {state.Heads!.Epsilon}): {F(o["sink_rate"])}");
            output.WriteLine("layer  head   queries  entropy  sink_score  sink_rate  max_attn  boundary");
            foreach (var h in heads.OfType<JsonObject>())
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(int)h["layer"]!,5} {(int)h["head"]!,5} {(long)h["queries"]!,9} {F(h["entropy"]),8} {F(h["sink_score"]),11}{((bool)h["is_sink"]! ? "*" : " ")} {F(h["sink_query_rate"]),9} {F(h["max_attention"]),9} {F(h["boundary_mass"]),9}"));
        }
        else output.WriteLine("no attention query observed (empty state or only one-token lines)");
        return 0;
    }

    private static string Pairs(JsonObject layer) =>
        string.Join("  ", layer["top_coactivation"]!.AsArray().OfType<JsonObject>().Select(c => $"{c["experts"]![0]},{c["experts"]![1]}: {F(c["rate"])}"));

    private static string F(JsonNode? v) => v is null ? "—" : ((double)v).ToString("F4", CultureInfo.InvariantCulture);

    private static JsonNode? Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    /// <summary>The <c>--json</c> object (keys listed in README's CLI table); NaN (undefined) metrics are null.</summary>
    internal static JsonObject ToJson(DatasetState state)
    {
        var p = state.Provenance;
        var layers = new JsonArray();
        if (state.Routing is { } r)
            foreach (int layer in r.Layers)
            {
                var s = r.Summary(layer);
                var co = r.CoActivation(layer);
                var pairs = new List<(int E, int F, long N)>();
                for (int e = 0; e < r.Experts; e++) for (int f = e + 1; f < r.Experts; f++) if (co[e, f] > 0) pairs.Add((e, f, co[e, f]));
                var top = new JsonArray(pairs.OrderByDescending(x => x.N).ThenBy(x => x.E).ThenBy(x => x.F).Take(TopPairs)
                    .Select(x => (JsonNode)new JsonObject { ["experts"] = new JsonArray(x.E, x.F), ["count"] = x.N, ["rate"] = Num((double)x.N / s.Tokens) }).ToArray());
                bool domains = r.DomainTop1Counts(layer).Domains.Count > 0;
                layers.Add(new JsonObject
                {
                    ["layer"] = layer, ["tokens"] = s.Tokens, ["experts"] = s.Experts, ["top_k"] = s.TopK,
                    ["max_vio"] = Num(s.Balance.MaxVio), ["cv"] = Num(s.Balance.CoefficientOfVariation), ["load_entropy"] = Num(s.Balance.NormalisedEntropy),
                    ["dead_experts"] = s.DeadExperts, ["routing_entropy"] = Num(s.MeanRoutingEntropy), ["routing_entropy_std"] = Num(s.StdRoutingEntropy),
                    ["top1_margin"] = Num(s.MeanTop1Margin), ["top1_repeat"] = Num(s.Repetition.Top1Repeat), ["top1_repeat_baseline"] = Num(s.Repetition.Top1Baseline),
                    ["domain_nmi"] = domains ? Num(r.DomainTop1Nmi(layer)) : null,
                    ["domains"] = new JsonArray(r.DomainTop1Counts(layer).Domains.Select(d => (JsonNode)d).ToArray()),
                    ["top_coactivation"] = top,
                });
            }
        var heads = new JsonArray();
        double? sinkRate = null;
        if (state.Heads is { } h)
        {
            IReadOnlyList<Analysis.Attention.Diagnostics.HeadDiagnostics>? rows = null;
            try { rows = h.Heads(); } catch (InvalidOperationException) { }
            if (rows is not null)
            {
                sinkRate = rows.Count(x => x.IsSink) / (double)rows.Count;
                foreach (var x in rows)
                    heads.Add(new JsonObject
                    {
                        ["layer"] = x.Layer, ["head"] = x.Head, ["queries"] = x.Queries, ["entropy"] = Num(x.MeanEntropy), ["entropy_std"] = Num(x.StdEntropy),
                        ["sink_score"] = Num(x.SinkScore), ["sink_query_rate"] = Num(x.SinkQueryRate), ["is_sink"] = x.IsSink,
                        ["max_attention"] = Num(x.MeanMaxAttention), ["boundary_mass"] = Num(x.BoundaryMass),
                    });
            }
        }
        return new JsonObject
        {
            ["checkpoint"] = p.Checkpoint, ["config_hash"] = p.ConfigHash, ["dataset_hash"] = p.DatasetHash,
            ["shard_count"] = p.ShardCount, ["shards"] = new JsonArray(state.Shards.Select(s => (JsonNode)s).ToArray()), ["complete"] = state.IsComplete,
            ["analyses"] = state.Analyses,
            ["moe_layers"] = layers,
            ["sink_rate"] = sinkRate is { } sr ? Num(sr) : null,
            ["heads"] = heads,
        };
    }
}
