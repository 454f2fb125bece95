using System.CommandLine;
using System.Globalization;
using DeepSeekNotebooks.Training.CaseStudies;
using DeepSeekNotebooks.Training.CaseStudies.Imaging;
using DeepSeekNotebooks.Training.CaseStudies.Fraud;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>case-study NAME --out DIR [--seed S] [--model-seeds 1,2,3] [--steps N]</c>: regenerates a case study's seeded data
/// (examples, data card, manifest) and retrains its classifier(s) into DIR. Each case study is one entry of
/// <see cref="Builders"/>.
/// </summary>
public static class CaseStudyCommand
{
    /// <summary>What a case study builds: (out dir, data seed or null for its default, model seeds or null, steps or null, log) → exit code.</summary>
    internal delegate int Builder(string outDir, long? dataSeed, long[]? modelSeeds, int? steps, TextWriter log);

    internal static readonly Dictionary<string, Builder> Builders = new(StringComparer.Ordinal)
    {
        [ImagingCaseStudy.Name] = BuildImaging,
        [FraudCaseStudy.Name] = FraudCaseStudyBuilder.Build,
    };

    public static Command Create()
    {
        var name = new Argument<string>("name") { Description = $"Case study: {string.Join(" | ", Builders.Keys)}." };
        var outDir = new Option<DirectoryInfo>("--out") { Description = "Directory to write (e.g. data/case-studies/imaging).", Required = true };
        var seed = new Option<long?>("--seed") { Description = "Data generator seed (default: the bundled data's seed)." };
        var modelSeeds = new Option<string?>("--model-seeds") { Description = "Comma-separated training seeds; the first is classifier/, the others classifier-seed{N}/ (default 1,2,3)." };
        var steps = new Option<int?>("--steps") { Description = "Optimizer steps per classifier (default: the bundled recipe's)." };
        var permuted = new Option<bool>("--permuted-labels")
        {
            Description = "imaging only: also train the first seed's recipe on permuted train labels into classifier-permuted-labels/ (the data-randomisation sanity check of Adebayo et al. 2018; 1500 steps unless --steps is given).",
        };
        var command = new Command("case-study", "Regenerate a case study's data (manifest, data card) and retrain its classifier(s).")
        {
            name, outDir, seed, modelSeeds, steps, permuted,
        };
        command.SetAction(parse => CliSupport.Run(() =>
            Run(parse.GetValue(name)!, parse.GetValue(outDir)!.FullName, parse.GetValue(seed), parse.GetValue(modelSeeds), parse.GetValue(steps), Console.Out, parse.GetValue(permuted))));
        return command;
    }

    internal static int Run(string name, string outDir, long? seed, string? modelSeeds, int? steps, TextWriter log, bool permutedLabels = false)
    {
        if (!Builders.TryGetValue(name, out var build))
            throw new UsageException($"unknown case study '{name}': use one of {string.Join(", ", Builders.Keys)}");
        if (permutedLabels && name != ImagingCaseStudy.Name)
            throw new UsageException($"--permuted-labels is offered for the {ImagingCaseStudy.Name} case study only, not {name}");
        long[]? seeds = null;
        if (modelSeeds is not null)
        {
            try { seeds = modelSeeds.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray(); }
            catch (FormatException) { throw new UsageException($"--model-seeds must be comma-separated integers, e.g. 1,2,3; got '{modelSeeds}'"); }
            if (seeds.Length == 0) throw new UsageException("--model-seeds needs at least one seed, e.g. 1");
        }
        if (steps is < 1) throw new UsageException($"--steps must be >= 1, got {steps}");
        try
        {
            int rc = build(outDir, seed, seeds, steps, log);
            if (rc != 0 || !permutedLabels) return rc;
            var r = ImagingCaseStudy.TrainPermutedLabels(outDir, seeds?[0] ?? ImagingCaseStudy.DefaultModelSeeds[0], 1, steps ?? ImagingCaseStudy.PermutedLabelsSteps);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {r.OutputDirectory} (permuted train labels): validation accuracy {r.ValidationAccuracy:P1}, trained in {r.TrainSeconds:F1} s"));
            return 0;
        }
        catch (CaseStudyException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static int BuildImaging(string outDir, long? dataSeed, long[]? modelSeeds, int? steps, TextWriter log)
    {
        var results = ImagingCaseStudy.Build(outDir, dataSeed ?? ImagingCaseStudy.DefaultDataSeed, modelSeeds, steps ?? 300,
            progress: (s, step) =>
            {
                if (step.ValidationAccuracy is { } v)
                    log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"seed {s} step {step.Step}: loss {step.ClassLoss:F3}, validation accuracy {v:P1} ({step.ElapsedSeconds:F1} s)"));
            });
        foreach (var r in results)
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {r.OutputDirectory}: validation accuracy {r.ValidationAccuracy:P1}, trained in {r.TrainSeconds:F1} s"));
        return 0;
    }
}
