using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>generate</c>: continue a prompt with <see cref="DeepSeekModel.Generate"/> — greedy by default, sampled with
/// <c>--temperature/--top-k/--top-p/--seed</c> — and print one JSON object: the prompt and new ids, whether EOS ended
/// it, the seed used, and with a tokenizer the decoded continuation and full text.
/// </summary>
public static class GenerateCommand
{
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var inputIds = new Option<string?>("--input-ids") { Description = "Comma-separated token ids of the prompt." };
        var text = new Option<string?>("--text") { Description = "Prompt text, tokenized with the checkpoint's tokenizer.json (instead of --input-ids)." };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Number of tokens to generate (fewer when EOS comes first).", Required = true };
        var temperature = new Option<double?>("--temperature") { Description = "Sample with this softmax temperature (> 0); 0 = greedy. Sampling is on when any of --temperature > 0, --top-k, --top-p, --seed is given." };
        var topK = new Option<int?>("--top-k") { Description = "Sample among the k most probable tokens." };
        var topP = new Option<double?>("--top-p") { Description = "Sample among the most probable tokens whose probability reaches p, 0 < p <= 1 (nucleus sampling)." };
        var seed = new Option<int?>("--seed") { Description = "Seed of the sampler (same seed, same continuation). Without it a seed is drawn and printed." };
        var eos = new Option<long?>("--eos-token-id") { Description = "Stop after this token (default: the config's eos_token_id, if any)." };
        var quantisation = CliSupport.QuantisationOption();
        var loading = new CliSupport.ModelLoading();
        var command = new Command("generate", "Continue a prompt (greedy, or sampled with temperature/top-k/top-p and a seed); prints ids and, with a tokenizer, text, as JSON.")
        {
            checkpoint, inputIds, text, maxNew, temperature, topK, topP, seed, eos, quantisation,
        };
        loading.AddTo(command);
        command.SetAction(parse => CliSupport.Run(() => Run(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)), parse.GetValue(inputIds), parse.GetValue(text),
            parse.GetValue(maxNew), parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(topP), parse.GetValue(seed), parse.GetValue(eos), Console.Out,
            CliSupport.ParseQuantisation(parse.GetValue(quantisation)), loading.Apply(parse, new CheckpointLoadOptions()))));
        return command;
    }

    internal static int Run(string checkpointDir, string? inputIds, string? text, int maxNewTokens, double? temperature, int? topK, double? topP,
        int? seed, long? eosTokenId, TextWriter output,
        Model.Modules.QuantisationSimulation quantisation = Model.Modules.QuantisationSimulation.Official, CheckpointLoadOptions? load = null)
    {
        if ((inputIds is null) == (text is null)) throw new UsageException("give exactly one of --input-ids 1,2,3 or --text \"…\" as the prompt");
        if (maxNewTokens < 1) throw new UsageException($"--max-new-tokens must be at least 1, got {maxNewTokens}");
        if (temperature is < 0 || temperature is { } t0 && !double.IsFinite(t0)) throw new UsageException($"--temperature must be >= 0 (0 = greedy), got {temperature}");
        bool sample = temperature is > 0 || topK is not null || topP is not null || seed is not null;
        if (temperature == 0 && sample) throw new UsageException("--temperature 0 means greedy decoding; it cannot be combined with --top-k, --top-p or --seed");
        if (topK is < 1) throw new UsageException($"--top-k must be at least 1, got {topK}");
        if (topP is { } p && !(p > 0 && p <= 1)) throw new UsageException($"--top-p must be in (0, 1], got {p}");

        using var ckpt = CliSupport.Load(checkpointDir, (load ?? new CheckpointLoadOptions()) with { Quantisation = quantisation });
        long[] prompt = inputIds is not null ? CliSupport.ParseIds(inputIds)
            : ckpt.Tokenizer?.Encode(text!) ?? throw new UsageException($"--text needs a checkpoint with tokenizer.json ({checkpointDir} has none); give --input-ids instead");
        if (prompt.Length == 0) throw new UsageException("--text tokenized to no tokens; give a non-empty prompt");
        int usedSeed = seed ?? Random.Shared.Next();
        var options = new GenerationOptions
        {
            DoSample = sample, Temperature = temperature is > 0 ? temperature.Value : 1.0, TopK = topK, TopP = topP,
            Seed = sample ? usedSeed : null, EosTokenId = eosTokenId,
        };
        var result = ckpt.Model.Generate(prompt, maxNewTokens, options);
        var o = new JsonObject
        {
            ["prompt_ids"] = new JsonArray(result.PromptIds.Select(i => (JsonNode)i).ToArray()),
            ["new_ids"] = new JsonArray(result.NewIds.Select(i => (JsonNode)i).ToArray()),
            ["stopped_at_eos"] = result.StoppedAtEos,
            ["decoding"] = sample ? "sample" : "greedy",
        };
        if (sample) o["seed"] = usedSeed;
        if (ckpt.Tokenizer is { } tok)
        {
            o["continuation"] = tok.Decode(result.NewIds);
            o["text"] = tok.Decode(result.Sequence);
        }
        output.WriteLine(o.ToJsonString(Json));
        return 0;
    }
}
