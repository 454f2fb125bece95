using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.IO;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>sanity</c>: validates attribution maps of one input — model-parameter randomisation (Adebayo et al. 2018,
/// cascading and independent, plus target randomisation) and deletion/insertion curves (Petsiuk et al. 2018) — for the
/// chosen methods, written as one JSON file.
/// </summary>
public static class SanityCommand
{
    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var inputIds = new Option<string>("--input-ids") { Description = "Comma-separated token ids of one sequence.", Required = true };
        var methods = new Option<string>("--methods")
        {
            Description = "Comma-separated input-attribution methods: ig, saliency, inputxgrad, smoothgrad, occlusion, attnxgrad, feature-ablation (default: all of them; the layer methods attribute to a block output and are refused).",
        };
        var position = new Option<int>("--target-position")
        {
            Description = "0-based position whose logit is attributed; negative counts from the end (default -1 = last).",
            DefaultValueFactory = _ => -1,
        };
        var token = new Option<long?>("--target-token") { Description = "Token whose logit is attributed (default: the argmax at the target position)." };
        var baseline = new Option<string?>("--baseline") { Description = "zeros | token:<id>: IG's baseline and the replacement of deleted tokens (default token:0)." };
        var nSteps = new Option<int>("--n-steps") { Description = "IG integration steps (default 32).", DefaultValueFactory = _ => 32 };
        var seed = new Option<long>("--seed") { Description = "Seed of the re-initialisation, random targets and random orders (default 0).", DefaultValueFactory = _ => 0 };
        var randomOrders = new Option<int>("--random-orders") { Description = "Random token orders averaged for the deletion/insertion reference (default 20).", DefaultValueFactory = _ => 20 };
        var checks = new Option<string>("--checks")
        {
            Description = "randomisation | faithfulness | both (default both).",
            DefaultValueFactory = _ => "both",
        };
        var output = CliSupport.OutOption("JSON: {\"randomisation\": Spearman/top-k per stage and method, flagged methods; \"faithfulness\": deletion/insertion curves and areas}");
        var allowPickle = CliSupport.AllowPickleOption();
        var quantisation = CliSupport.QuantisationOption();
        var loading = new CliSupport.ModelLoading();
        var command = new Command("sanity", "Sanity checks of attribution maps: model randomisation (Adebayo et al. 2018) and deletion/insertion curves (Petsiuk et al. 2018), as JSON.")
        {
            checkpoint, inputIds, methods, position, token, baseline, nSteps, seed, randomOrders, checks, output, allowPickle, quantisation,
        };
        loading.AddTo(command);
        command.SetAction(parse => CliSupport.Run(() =>
        {
            var ids = CliSupport.ParseIds(parse.GetValue(inputIds)!);
            var list = parse.GetValue(methods) is { } m ? ParseMethods(m) : AttributionMethods.InputAttribution.ToArray();
            int steps = parse.GetValue(nSteps), orders = parse.GetValue(randomOrders);
            if (steps < 1) throw new UsageException($"--n-steps must be at least 1, got {steps}");
            if (orders < 0) throw new UsageException($"--random-orders must be ≥ 0, got {orders}");
            Baseline? b = parse.GetValue(baseline) is { } text ? ArgumentParsers.ParseBaseline(text) : null;
            var options = new AttributionOptions { Baseline = b, NSteps = steps };
            var target = AttributionTarget.Logit(parse.GetValue(position), parse.GetValue(token));
            string which = parse.GetValue(checks)!.Trim().ToLowerInvariant();
            if (which is not ("randomisation" or "faithfulness" or "both"))
                throw new UsageException($"--checks: unknown check '{parse.GetValue(checks)}': use randomisation (Adebayo et al.'s model and target randomisation), faithfulness (deletion/insertion) or both");
            var load = loading.Apply(parse, new CheckpointLoadOptions { AllowPickle = parse.GetValue(allowPickle), Quantisation = CliSupport.ParseQuantisation(parse.GetValue(quantisation)) });
            using var ckpt = CliSupport.Load(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)), load);
            using var idsTensor = TorchSharp.torch.tensor(ids, new long[] { 1, ids.Length });
            var root = new JsonObject();
            if (which is "randomisation" or "both")
            {
                var r = SanityChecks.Run(ckpt.Model, idsTensor, target, list, options, parse.GetValue(seed));
                root["randomisation"] = JsonNode.Parse(r.ToJson());
                Console.WriteLine(SanityChecks.Summary(r));
            }
            if (which is "faithfulness" or "both")
            {
                var f = Faithfulness.Run(ckpt.Model, idsTensor, target, list, options, orders, parse.GetValue(seed));
                root["faithfulness"] = JsonNode.Parse(f.ToJson());
                Console.WriteLine(Faithfulness.Summary(f));
            }
            var outPath = AtomicFile.WriteAllText(parse.GetValue(output)!.FullName, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {outPath}");
            return 0;
        }));
        return command;
    }

    private static AttributionMethod[] ParseMethods(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException("--methods is empty: give comma-separated methods, e.g. --methods ig,saliency,occlusion");
        var r = parts.Select(p => ArgumentParsers.ParseAttributionMethod(p, "--methods")).ToArray();
        var layerMethods = r.Where(x => !AttributionMethods.InputAttribution.Contains(x)).ToArray();
        if (layerMethods.Length > 0)
            throw new UsageException($"--methods: {layerMethods[0].Name()} attributes to a block's output, not to the input tokens the checks perturb; use input methods: {string.Join(", ", AttributionMethods.InputAttribution.Select(x => x.Name()))}");
        var dup = r.GroupBy(x => x).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new UsageException($"--methods names {dup.Key.Name()} twice; give each method once");
        return r;
    }
}
