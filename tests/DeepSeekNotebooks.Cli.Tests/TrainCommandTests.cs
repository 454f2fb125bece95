namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// Tests that capture the process-wide Console.Error. The in-process notebook kernel of the report tests redirects the
/// console while a cell runs, so these must not run in parallel with anything else.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConsoleCaptureCollection
{
    public const string Name = "Console capture";
}

[Collection(ConsoleCaptureCollection.Name)]
public class TrainCommandTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("train-cli-tests").FullName;

    private static (int Code, string Error) Cli(params string[] args)
    {
        var err = new StringWriter();
        var old = Console.Error;
        Console.SetError(err);
        try { return (Program.BuildRootCommand().Parse(args).Invoke(), err.ToString()); }
        finally { Console.SetError(old); }
    }

    [Theory]
    [InlineData("--base-lr", "0", "learning rate")]
    [InlineData("--domain-steps", "0", "steps must be >= 1")]
    [InlineData("--bias-update-speed", "-0.5", "gamma")]
    [InlineData("--instruct-seq-len", "100000", "sequence length")]
    public void Bad_hyperparameters_fail_before_training(string option, string value, string message)
    {
        var work = Path.Combine(_tmp, "work");
        var (code, error) = Cli("train", "--corpus-dir", Path.Combine(_tmp, "corpus"), "--work-dir", work, "--out", Path.Combine(_tmp, "out"), option, value);
        Assert.Equal(1, code);
        Assert.Contains(message, error);
        Assert.False(Directory.Exists(Path.Combine(work, "state")));
    }

    [Fact]
    public void Corrupt_corpus_is_reported_with_its_line()
    {
        var corpus = Path.Combine(_tmp, "bad");
        Directory.CreateDirectory(corpus);
        File.WriteAllText(Path.Combine(corpus, "corpus.jsonl"), "{\"id\": 1\n");
        var (code, error) = Cli("train", "--corpus-dir", corpus, "--work-dir", Path.Combine(_tmp, "w"), "--out", Path.Combine(_tmp, "o"));
        Assert.Equal(1, code);
        Assert.Contains("corpus.jsonl:1", error);
    }

    public void Dispose()
    {
        try { Directory.Delete(_tmp, true); } catch (IOException) { }
    }
}
