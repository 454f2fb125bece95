using System.CommandLine;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>attribute</c>: token attribution for the logit of token T at position P (Captum's <c>target</c> on a function
/// returning logits), or a contrast T − T2, at the embedding layer or a block's output; or, with a continuation, each
/// continuation token's log-probability attributed to each prompt token (Captum's <c>LLMGradientAttribution</c>).
/// Written to safetensors.
/// </summary>
public static class AttributeCommand
{
    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var inputIds = new Option<string?>("--input-ids") { Description = "Comma-separated token ids of one sequence (the prompt with --continuation)." };
        var text = new Option<string?>("--text") { Description = "Text to tokenize with the checkpoint's tokenizer.json (instead of --input-ids)." };
        var method = new Option<string?>("--method")
        {
            Description = "ig | saliency | inputxgrad | smoothgrad | occlusion | layer-ig | layer-conductance | feature-ablation (also attnxgrad). " +
                          "Required unless --continuation/--continuation-ids (which use ig).",
        };
        method.AcceptOnlyFromAmong(ArgumentParsers.AttributionMethodNames.Select(m => m.Name).ToArray());
        var position = new Option<int?>("--target-position")
        {
            Description = "0-based position whose logit is attributed; negative counts from the end (-1 = last). Required unless a continuation is given.",
        };
        var token = new Option<long?>("--target-token") { Description = "Token whose logit is attributed (default: the argmax at the target position)." };
        var contrast = new Option<long?>("--contrast-token") { Description = "Attribute logit[T] - logit[T2] instead (\"why T rather than T2\"); T2 must differ from T." };
        var layer = new Option<int?>("--layer") { Description = "Block L whose output (blocks.L.resid_post) layer-ig / layer-conductance attribute to." };
        var continuation = new Option<string?>("--continuation") { Description = "Text whose tokens, teacher-forced after the prompt, are attributed to the prompt tokens (writes token_attr [targets, prompt])." };
        var continuationIds = new Option<string?>("--continuation-ids") { Description = "Comma-separated token ids of the continuation (instead of --continuation)." };
        var baseline = new Option<string?>("--baseline")
        {
            Description = "zeros | token:<id> (that token's embedding at every position) | pad (the tokenizer's pad token). " +
                          "Default: the tokenizer's pad token when it has one (measured better, docs/attribution-captum.md), else token:0; a zero baseline is degenerate for RMSNorm models.",
        };
        var nSteps = new Option<int>("--n-steps") { Description = "Integration steps for IG, layer IG and layer conductance (default 50).", DefaultValueFactory = _ => 50 };
        var integration = new Option<string>("--integration")
        {
            Description = "gausslegendre | riemann_left | riemann_right | riemann_middle | riemann_trapezoid (default gausslegendre).",
            DefaultValueFactory = _ => "gausslegendre",
        };
        integration.AcceptOnlyFromAmong("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid");
        var batch = new Option<int?>("--internal-batch-size") { Description = "Rows of scaled inputs per forward/backward in IG (bounds memory)." };
        var routing = new Option<string>("--routing")
        {
            Description = "standard | frozen: for --method ig on a MoE model, frozen fixes every token's experts to the input's choice along the whole path (the gate recomputes the weights), so completeness holds (default standard).",
            DefaultValueFactory = _ => "standard",
        };
        var output = CliSupport.OutOption("safetensors: attributions [1,seq,dim], token_sums [1,seq], target int64 [1], delta [1] for IG-type methods; " +
                                          "with a continuation token_attr [targets,prompt], seq_attr [prompt], delta [targets]");
        var allowPickle = CliSupport.AllowPickleOption();
        var quantisation = CliSupport.QuantisationOption();
        var loading = new CliSupport.ModelLoading();
        var command = new Command("attribute",
            "Attribute a target logit (or a contrast of two) to the input tokens or a block's output (IG, saliency, input×gradient, SmoothGrad, occlusion, " +
            "layer IG, layer conductance, feature ablation), or a continuation's log-probabilities to the prompt tokens.")
        {
            checkpoint, inputIds, text, method, position, token, contrast, layer, continuation, continuationIds, baseline, nSteps, integration, batch, routing, output, allowPickle, quantisation,
        };
        loading.AddTo(command);
        command.SetAction(parse => CliSupport.Run(() =>
        {
            string? idsText = parse.GetValue(inputIds), promptText = parse.GetValue(text);
            string? contText = parse.GetValue(continuation), contIds = parse.GetValue(continuationIds);
            string? methodText = parse.GetValue(method);
            int? layerValue = parse.GetValue(layer);
            long? contrastToken = parse.GetValue(contrast);
            if ((idsText is null) == (promptText is null))
                throw new UsageException("give exactly one of --input-ids or --text (the sequence to explain; the prompt with a continuation)");
            if (contText is not null && contIds is not null)
                throw new UsageException("--continuation and --continuation-ids are mutually exclusive: give the continuation once, as text or as ids");
            bool isContinuation = contText is not null || contIds is not null;
            AttributionMethod? chosen = methodText is null ? null : ArgumentParsers.ParseAttributionMethod(methodText);
            if (isContinuation)
            {
                var option = contText is not null ? "--continuation" : "--continuation-ids";
                if (chosen is { } m && m != AttributionMethod.IntegratedGradients)
                    throw new UsageException($"{option} attributes with integrated gradients on the embeddings (Captum's LLMGradientAttribution): leave out --method or give --method ig, not {methodText}");
                foreach (var (given, name) in new[] { (parse.GetValue(position) is not null, "--target-position"), (parse.GetValue(token) is not null, "--target-token"),
                                                       (contrastToken is not null, "--contrast-token"), (layerValue is not null, "--layer") })
                    if (given) throw new UsageException($"{name} and {option} are mutually exclusive: with a continuation the targets are its tokens, each at the position before it");
                if (contText is { Length: 0 } || (contIds is not null && contIds.Trim().Length == 0))
                    throw new UsageException($"{option} is empty: give at least one continuation token to attribute");
            }
            else
            {
                if (chosen is null) throw new UsageException("--method is required: ig, saliency, inputxgrad, smoothgrad, occlusion, layer-ig, layer-conductance or feature-ablation");
                if (parse.GetValue(position) is null) throw new UsageException("--target-position is required: the position whose logit is attributed, e.g. --target-position -1 (the last token)");
                bool layerMethod = chosen is AttributionMethod.LayerIntegratedGradients or AttributionMethod.LayerConductance;
                if (layerMethod && layerValue is null) throw new UsageException($"--method {methodText} attributes to a block's output: give --layer L (0-based block index)");
                if (!layerMethod && layerValue is not null) throw new UsageException($"--layer applies to layer-ig and layer-conductance only, not to --method {methodText}");
                if (contrastToken is { } t2 && parse.GetValue(token) == t2)
                    throw new UsageException($"--contrast-token {t2} equals --target-token: the logit difference would be identically 0; contrast with another token");
            }

            IgRouting igRouting;
            try { igRouting = MoeIntegratedGradients.ParseRouting(parse.GetValue(routing)!); }
            catch (ArgumentException e) { throw new UsageException($"--routing: {e.Message.Split(" (Parameter")[0]}"); }
            if (igRouting == IgRouting.Frozen && (isContinuation || chosen != AttributionMethod.IntegratedGradients))
                throw new UsageException(isContinuation
                    ? "--routing frozen applies to --method ig on one target, not to a continuation"
                    : $"--routing frozen applies to --method ig only (it freezes the routing along IG's path), not to {methodText}");

            var load = loading.Apply(parse, new CheckpointLoadOptions { AllowPickle = parse.GetValue(allowPickle), Quantisation = CliSupport.ParseQuantisation(parse.GetValue(quantisation)) });
            using var ckpt = CliSupport.Load(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)), load);
            long[] ids = idsText is not null ? CliSupport.ParseIds(idsText) : Encode(ckpt, promptText!, "--text");
            Baseline b = parse.GetValue(baseline) is { } bt ? ParseBaseline(bt, ckpt) : Baseline.For(ckpt.Tokenizer);
            var outPath = parse.GetValue(output)!.FullName;
            if (isContinuation)
            {
                long[] targets = contIds is not null ? CliSupport.ParseIds(contIds, "--continuation-ids") : Encode(ckpt, contText!, "--continuation");
                var r = LlmGradientAttribution.Attribute(ckpt.Model, ids, targets, b, parse.GetValue(nSteps),
                    ArgumentParsers.ParseIntegration(parse.GetValue(integration)!), parse.GetValue(batch));
                r.SaveSafetensors(outPath);
                Console.WriteLine($"continuation of {r.Targets} tokens attributed to {r.PromptLength} prompt tokens; convergence deltas {string.Join(", ", r.Deltas.Select(d => d.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)))}");
                foreach (var w in r.Warnings) Console.Error.WriteLine($"warning: {w}");
                Console.WriteLine($"wrote {outPath}");
                return 0;
            }
            var options = new AttributionOptions
            {
                Baseline = b,
                NSteps = parse.GetValue(nSteps),
                Integration = ArgumentParsers.ParseIntegration(parse.GetValue(integration)!),
                InternalBatchSize = parse.GetValue(batch),
                Layer = layerValue,
            };
            int pos = parse.GetValue(position)!.Value;
            var target = contrastToken is { } c ? AttributionTarget.Contrast(c, pos, parse.GetValue(token)) : AttributionTarget.Logit(pos, parse.GetValue(token));
            var result = igRouting == IgRouting.Frozen
                ? MoeIntegratedGradients.Attribute(ckpt.Model, ids, target, options.Baseline, options.NSteps, options.Integration, options.InternalBatchSize, IgRouting.Frozen)
                : Attributor.Run(chosen!.Value, ckpt.Model, ids, target, options);
            result.SaveSafetensors(outPath);
            Console.WriteLine($"{result.Method.Name()}: target token {result.Target.TokenId}" +
                              (result.Target.ContrastTokenId is { } ct ? $" minus token {ct}" : "") + $" at position {result.Target.Position}" +
                              (result.Parameters.TryGetValue("layer", out var l) ? $", attributed to {l}" : "") +
                              (result.ConvergenceDelta is { } d ? $", convergence delta {d:G4} (F(x) − F(baseline) = {result.FInput - result.FBaseline:G4})" : ""));
            foreach (var w in result.Warnings) Console.Error.WriteLine($"warning: {w}");
            Console.WriteLine($"wrote {outPath}");
            return 0;
        }));
        return command;
    }

    private static long[] Encode(Checkpoint ckpt, string text, string option)
    {
        if (ckpt.Tokenizer is null) throw new UsageException($"{option} needs a checkpoint with tokenizer.json; give token ids instead ({(option == "--text" ? "--input-ids" : "--continuation-ids")})");
        // The prompt as the dashboard and the notebooks encode text; the continuation without the template's special tokens.
        var ids = option == "--text" ? ckpt.Tokenizer.Encode(text) : ckpt.Tokenizer.Encode(text, addSpecialTokens: false);
        if (ids.Length == 0) throw new UsageException($"{option} is empty: '{text}' gives no tokens");
        return ids;
    }

    private static Baseline ParseBaseline(string text, Checkpoint ckpt)
    {
        if (!text.Trim().Equals("pad", StringComparison.OrdinalIgnoreCase)) return ArgumentParsers.ParseBaseline(text);
        return Baseline.PadToken(ckpt.Tokenizer) ?? throw new UsageException(
            ckpt.Tokenizer is null ? "--baseline pad needs the checkpoint's tokenizer.json to name the pad token; give --baseline token:<id> instead"
                                   : "--baseline pad: the checkpoint's tokenizer has no pad token; give --baseline token:<id> or zeros");
    }
}
