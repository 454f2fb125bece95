using DeepSeekNotebooks.Cli.Commands;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>Bad command lines and unwritable outputs (issue 8, docs/reliability.md): the exit code and no partial file.</summary>
public class CliRobustnessTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("cli-robust").FullName;

    private static string Hf()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "DeepSeekNotebooks.sln"))) return Path.Combine(d.FullName, "data", "checkpoints", "golden-tiny-hf");
        throw new InvalidOperationException("repository root not found");
    }

    [Theory]
    [InlineData("frobnicate")]                         // unknown verb
    [InlineData("trace", "--no-such-option", "1")]     // unknown option
    [InlineData()]                                     // no verb at all
    [InlineData("trace", "--input-ids", "1")]          // required --out missing
    public void MalformedCommandLine_ExitsWith2(params string[] args) => Assert.Equal(2, Program.Run(args));

    [Theory]
    [InlineData("trace", "--input-ids", "")]           // empty id list
    [InlineData("trace", "--input-ids", " , ")]        // only separators
    [InlineData("dashboard", "--text", "hello")]       // text, but the golden checkpoint ships no tokenizer.json
    public void UnusableInput_ExitsWith2_AndWritesNothing(string verb, params string[] args)
    {
        var output = Path.Combine(_tmp, "out.file");
        Assert.Equal(2, Program.Run([verb, "--checkpoint", Hf(), "--out", output, .. args]));
        Assert.Empty(Directory.GetFileSystemEntries(_tmp));
    }

    [Fact]
    public void OutIntoADirectoryThatCannotBeCreated_Exits1_AndWritesNothing()
    {
        // The parent of --out is a regular file, so the output directory cannot be created.
        var blocker = Path.Combine(_tmp, "a-file");
        File.WriteAllText(blocker, "x");
        var output = Path.Combine(blocker, "sub", "trace.safetensors");
        Assert.Equal(1, Program.Run(["trace", "--checkpoint", Hf(), "--input-ids", "1,2,3", "--out", output]));
        Assert.Equal(new[] { blocker }, Directory.GetFileSystemEntries(_tmp));
        Assert.Equal("x", File.ReadAllText(blocker));
    }

    [Theory]
    [InlineData("--iterations", "10")]   // not more than the warm-up
    [InlineData("--threads", "0")]
    public void Soak_BadArguments_ExitWith2(params string[] args) => Assert.Equal(2, Program.Run(["soak", "--checkpoint", Hf(), .. args]));

    [Fact]
    public void Soak_ShortRun_Succeeds()
    {
        Assert.Equal(0, Program.Run(["soak", "--checkpoint", Hf(), "--iterations", "52", "--report-every", "0"]));
    }

    public void Dispose() => Directory.Delete(_tmp, true);
}

[Collection("notebook-runner")]
public class ReportOutputGuardTests
{
    [Fact]
    public async Task Report_OutEqualToNotebooks_IsRefused_AndTheNotebooksAreUntouched()
    {
        var folder = ReportTestSupport.NewOutputFolder();
        File.Copy(Path.Combine(ReportTestSupport.NotebookFolder("suite"), Directory.GetFiles(ReportTestSupport.NotebookFolder("suite"), "*.ipynb")[0]),
            Path.Combine(folder, "01.ipynb"));
        var original = await File.ReadAllTextAsync(Path.Combine(folder, "01.ipynb"));
        var (exit, console) = await ReportTestSupport.InvokeReportAsync("--notebooks", folder, "--out", folder + Path.DirectorySeparatorChar);
        Assert.Equal(2, exit);
        Assert.Contains("--out must differ from --notebooks", console);
        Assert.Equal(new[] { Path.Combine(folder, "01.ipynb") }, Directory.GetFileSystemEntries(folder));
        Assert.Equal(original, await File.ReadAllTextAsync(Path.Combine(folder, "01.ipynb")));
    }
}
