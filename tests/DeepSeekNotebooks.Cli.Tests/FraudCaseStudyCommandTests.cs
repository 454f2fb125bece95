using System.Text.Json.Nodes;
using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Training.CaseStudies;
using DeepSeekNotebooks.Training.CaseStudies.Fraud;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary><c>case-study fraud --out DIR</c>: the shipped transactions byte for byte (manifest hashes) and a loadable classifier with its log.</summary>
[Collection(ConsoleCaptureCollection.Name)]
public class FraudCaseStudyCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("case-study-fraud-tests").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_tmp, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void Fraud_writes_the_shipped_data_and_a_classifier()
    {
        var dir = Path.Combine(_tmp, "fraud");
        var o = new StringWriter();
        int code = CliSupport.Run(() => CaseStudyCommand.Run("fraud", dir, null, null, 3, o));
        Assert.Equal(0, code);
        var shipped = JsonNode.Parse(File.ReadAllText(Path.Combine(ReportTestSupport.RepoRoot, "data", "case-studies", "fraud", CaseStudyDataset.ManifestFile)))!;
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, CaseStudyDataset.ManifestFile)))!;
        Assert.Equal(shipped["sha256"]!.ToJsonString(), written["sha256"]!.ToJsonString());   // default seed = the shipped data
        Assert.Equal(shipped["data_card"]!.ToJsonString(), written["data_card"]!.ToJsonString());
        using var c = CaseStudyClassifier.Load(Path.Combine(dir, CaseStudyData.ClassifierFolder));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, CaseStudyData.ClassifierFolder, ClassifierTrainer.LogFile)).Length);
        Assert.Equal(TransactionGenerator.Classes, c.Vocabulary.ClassNames);
        Assert.False(Directory.Exists(Path.Combine(dir, "classifier-seed1")));                 // one default training seed
        Assert.Contains("wrote ", o.ToString());
    }

    [Fact]
    public void Unknown_case_study_lists_fraud_among_the_valid_names()
    {
        var e = new StringWriter();
        var saved = Console.Error;
        Console.SetError(e);
        try { Assert.Equal(2, CliSupport.Run(() => CaseStudyCommand.Run("banking", Path.Combine(_tmp, "x"), null, null, null, TextWriter.Null))); }
        finally { Console.SetError(saved); }
        Assert.Contains("fraud", e.ToString());
    }
}
