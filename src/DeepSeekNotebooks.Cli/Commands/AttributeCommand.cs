using System.CommandLine;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>attribute</c>: token attribution at the embedding layer for the logit of token T at position P
/// (Captum's <c>target</c> on a function returning logits), written to safetensors.
/// </summary>
public static class AttributeCommand
{
    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var inputIds = new Option<string>("--input-ids") { Description = "Comma-separated token ids of one sequence.", Required = true };
        var method = new Option<string>("--method")
        {
            Description = "ig | saliency | inputxgrad | smoothgrad | occlusion (also attnxgrad).",
            Required = true,
        };
        method.AcceptOnlyFromAmong(ArgumentParsers.AttributionMethodNames.Select(m => m.Name).ToArray());
        var position = new Option<int>("--target-position")
        {
            Description = "0-based position whose logit is attributed; negative counts from the end (-1 = last).",
            Required = true,
        };
        var token = new Option<long?>("--target-token") { Description = "Token whose logit is attributed (default: the argmax at the target position)." };
        var baseline = new Option<string?>("--baseline")
        {
            Description = "zeros | token:<id> (that token's embedding at every position). Default: token:0 — a zero baseline is degenerate for RMSNorm models.",
        };
        var nSteps = new Option<int>("--n-steps") { Description = "Integration steps for IG (default 50).", DefaultValueFactory = _ => 50 };
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
        var output = CliSupport.OutOption("safetensors: attributions [1,seq,dim], token_sums [1,seq], target int64 [1], delta [1] for IG");
        var allowPickle = CliSupport.AllowPickleOption();
        var command = new Command("attribute", "Attribute a target logit to the input tokens (IG, saliency, input×gradient, SmoothGrad, occlusion).")
        {
            checkpoint, inputIds, method, position, token, baseline, nSteps, integration, batch, routing, output, allowPickle,
        };
        command.SetAction(parse => CliSupport.Run(() =>
        {
            var ids = CliSupport.ParseIds(parse.GetValue(inputIds)!);
            Baseline? b = parse.GetValue(baseline) is { } text ? ArgumentParsers.ParseBaseline(text) : null;
            var options = new AttributionOptions
            {
                Baseline = b,
                NSteps = parse.GetValue(nSteps),
                Integration = ArgumentParsers.ParseIntegration(parse.GetValue(integration)!),
                InternalBatchSize = parse.GetValue(batch),
            };
            var target = AttributionTarget.Logit(parse.GetValue(position), parse.GetValue(token));
            using var ckpt = Checkpoint.Load(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)),
                new CheckpointLoadOptions { AllowPickle = parse.GetValue(allowPickle) });
            var chosen = ArgumentParsers.ParseAttributionMethod(parse.GetValue(method)!);
            IgRouting igRouting;
            try { igRouting = MoeIntegratedGradients.ParseRouting(parse.GetValue(routing)!); }
            catch (ArgumentException e) { throw new UsageException($"--routing: {e.Message.Split(" (Parameter")[0]}"); }
            if (igRouting == IgRouting.Frozen && chosen != AttributionMethod.IntegratedGradients)
                throw new UsageException($"--routing frozen applies to --method ig only (it freezes the routing along IG's path), not to {parse.GetValue(method)}");
            var result = igRouting == IgRouting.Frozen
                ? MoeIntegratedGradients.Attribute(ckpt.Model, ids, target, options.Baseline, options.NSteps, options.Integration, options.InternalBatchSize, IgRouting.Frozen)
                : Attributor.Run(chosen, ckpt.Model, ids, target, options);
            var outPath = parse.GetValue(output)!.FullName;
            result.SaveSafetensors(outPath);
            Console.WriteLine($"{result.Method.Name()}: target token {result.Target.TokenId} at position {result.Target.Position}" +
                              (result.ConvergenceDelta is { } d ? $", convergence delta {d:G4} (F(x) − F(baseline) = {result.FInput - result.FBaseline:G4})" : ""));
            foreach (var w in result.Warnings) Console.Error.WriteLine($"warning: {w}");
            Console.WriteLine($"wrote {outPath}");
            return 0;
        }));
        return command;
    }
}
