using System.Text.Json.Nodes;
using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Training.CaseStudies;
using DeepSeekNotebooks.Training.CaseStudies.Imaging;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary><c>case-study NAME --out DIR</c>: regenerates the data (same bytes as the shipped manifest for the same seed) and trains.</summary>
[Collection(ConsoleCaptureCollection.Name)]
public class CaseStudyCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("case-study-tests").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_tmp, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Out, string Err) CaseStudy(string name, string outDir, long? seed = null, string? modelSeeds = null, int? steps = null, bool permuted = false)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var saved = Console.Error;
        Console.SetError(e);
        try { return (CliSupport.Run(() => CaseStudyCommand.Run(name, outDir, seed, modelSeeds, steps, o, permuted)), o.ToString(), e.ToString()); }
        finally { Console.SetError(saved); }
    }

    [Fact]
    public void Imaging_writes_the_shipped_data_and_a_classifier_per_seed()
    {
        var dir = Path.Combine(_tmp, "imaging");
        var (code, output, err) = CaseStudy("imaging", dir, modelSeeds: "1, 7", steps: 2, permuted: true);
        Assert.True(code == 0, err);
        var shipped = JsonNode.Parse(File.ReadAllText(Path.Combine(ReportTestSupport.RepoRoot, "data", "case-studies", "imaging", CaseStudyDataset.ManifestFile)))!;
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, CaseStudyDataset.ManifestFile)))!;
        Assert.Equal(shipped["sha256"]!.ToJsonString(), written["sha256"]!.ToJsonString());   // default seed = the shipped data
        Assert.True(File.Exists(Path.Combine(dir, CaseStudyDataset.DataCardFile)));
        foreach (var sub in new[] { "classifier", "classifier-seed7" })
        {
            using var c = CaseStudyClassifier.Load(Path.Combine(dir, sub));
            Assert.Equal(2, File.ReadAllLines(Path.Combine(dir, sub, ClassifierTrainer.LogFile)).Length);
            Assert.Equal(Path.GetFullPath(dir), c.DataDirectory);
        }
        Assert.Contains("wrote ", output);
        Assert.Contains("classifier-seed7", output);
        // --permuted-labels: the first seed's recipe on permuted train labels (data randomisation), recorded in training.json.
        var permutedTraining = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "classifier-permuted-labels", ClassifierTrainer.TrainingFile)))!;
        Assert.Equal(1, permutedTraining["permuted_labels_seed"]!.GetValue<long>());
        Assert.Equal(1, permutedTraining["seed"]!.GetValue<long>());
        Assert.Equal(2, permutedTraining["steps"]!.GetValue<int>());
    }

    [Fact]
    public void Bad_names_and_seeds_are_usage_errors_naming_the_valid_form()
    {
        var (code, _, err) = CaseStudy("radiology", Path.Combine(_tmp, "x"));
        Assert.Equal(2, code);
        Assert.Contains("unknown case study 'radiology': use one of imaging", err);
        (code, _, err) = CaseStudy("imaging", Path.Combine(_tmp, "y"), modelSeeds: "1,two");
        Assert.Equal(2, code);
        Assert.Contains("comma-separated integers, e.g. 1,2,3; got '1,two'", err);
        (code, _, err) = CaseStudy("imaging", Path.Combine(_tmp, "z"), steps: 0);
        Assert.Equal(2, code);
        Assert.Contains("--steps must be >= 1, got 0", err);
        (code, _, err) = CaseStudy("fraud", Path.Combine(_tmp, "w"), permuted: true);
        Assert.Equal(2, code);
        Assert.Contains("--permuted-labels is offered for the imaging case study only, not fraud", err);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "w")));
        Assert.False(Directory.Exists(Path.Combine(_tmp, "x")) || Directory.Exists(Path.Combine(_tmp, "y")) || Directory.Exists(Path.Combine(_tmp, "z")));
    }
}
