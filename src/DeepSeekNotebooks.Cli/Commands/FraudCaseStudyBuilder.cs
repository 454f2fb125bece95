using System.Globalization;
using DeepSeekNotebooks.Training.CaseStudies.Fraud;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary><c>case-study fraud --out DIR [--seed S] [--model-seeds 1] [--steps N]</c>: case study 09's transactions and classifier.</summary>
internal static class FraudCaseStudyBuilder
{
    public static int Build(string outDir, long? dataSeed, long[]? modelSeeds, int? steps, TextWriter log)
    {
        var results = FraudCaseStudy.Build(outDir, dataSeed ?? FraudCaseStudy.DefaultDataSeed, modelSeeds, steps ?? FraudCaseStudy.DefaultSteps,
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
