using System.CommandLine;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Model.Checkpoints;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary><c>rollout</c>: attention rollout (Abnar &amp; Zuidema 2020) of one sequence, written to safetensors as <c>rollout</c> [seq, seq].</summary>
public static class RolloutCommand
{
    public static Command Create()
    {
        var checkpoint = CliSupport.CheckpointOption();
        var inputIds = new Option<string>("--input-ids") { Description = "Comma-separated token ids of one sequence.", Required = true };
        var fusion = new Option<string>("--head-fusion") { Description = "mean | max | min (default mean).", DefaultValueFactory = _ => "mean" };
        fusion.AcceptOnlyFromAmong("mean", "max", "min");
        var discard = new Option<double>("--discard-ratio") { Description = "Fraction of the lowest attention weights dropped per layer, in [0, 1) (default 0).", DefaultValueFactory = _ => 0 };
        var output = CliSupport.OutOption("safetensors: rollout [seq, seq] float32");
        var allowPickle = CliSupport.AllowPickleOption();
        var quantisation = CliSupport.QuantisationOption();
        var loading = new CliSupport.ModelLoading();
        var command = new Command("rollout", "Attention rollout of one sequence (residual-augmented attention multiplied over layers).")
        {
            checkpoint, inputIds, fusion, discard, output, allowPickle, quantisation,
        };
        loading.AddTo(command);
        command.SetAction(parse => CliSupport.Run(() =>
        {
            var ids = CliSupport.ParseIds(parse.GetValue(inputIds)!);
            var load = loading.Apply(parse, new CheckpointLoadOptions { AllowPickle = parse.GetValue(allowPickle), Quantisation = CliSupport.ParseQuantisation(parse.GetValue(quantisation)) });
            using var ckpt = CliSupport.Load(CliSupport.ResolveCheckpoint(parse.GetValue(checkpoint)), load);
            using var idTensor = tensor(ids, new long[] { 1, ids.Length });
            var result = AttentionRollout.Compute(ckpt.Model, idTensor, ArgumentParsers.ParseHeadFusion(parse.GetValue(fusion)!), parse.GetValue(discard));
            var outPath = parse.GetValue(output)!.FullName;
            result.SaveSafetensors(outPath);
            Console.WriteLine($"rollout over {ckpt.Config.NumHiddenLayers} layers of {ids.Length} tokens; wrote {outPath}");
            return 0;
        }));
        return command;
    }
}
