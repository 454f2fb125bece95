using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Indexer;
using DeepSeekNotebooks.Analysis.Streams;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// <c>diagnose</c>: on the golden V4 checkpoint (official layout) it writes the three diagnostics as JSON that loads back
/// and matches a direct call; a diagnostic the model lacks is skipped with one line; bad arguments are usage errors.
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class DiagnoseCommandTests : IDisposable
{
    private static string GoldenDir(string v) => Path.Combine(ReportTestSupport.RepoRoot, "tests", "fixtures", "golden", v);
    private readonly string _tmp = Directory.CreateTempSubdirectory("diagnose-tests").FullName;
    private static readonly string Ids = string.Join(",", Enumerable.Range(0, 24).Select(i => (i * 37 + 11) % 500 + 1));

    private string V4Checkpoint()
    {
        var dir = Path.Combine(_tmp, "v4");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(GoldenDir("v4"), "public.model_args.json"), Path.Combine(dir, "config_v4.json"), true);
        File.Copy(Path.Combine(GoldenDir("v4"), "public.weights.safetensors"), Path.Combine(dir, "model0-mp1.safetensors"), true);
        return dir;
    }

    private static (int Rc, string Out, string Err) Run(params string[] args)
    {
        var (o, e) = (Console.Out, Console.Error);
        var so = new StringWriter();
        var se = new StringWriter();
        Console.SetOut(so); Console.SetError(se);
        try { return (Program.Run(args), so.ToString(), se.ToString()); }
        finally { Console.SetOut(o); Console.SetError(e); }
    }

    [Fact]
    public void Diagnose_V4_WritesAllThree_AsLoadableJson_EqualToADirectCall()
    {
        var ckpt = V4Checkpoint();
        var outDir = Path.Combine(_tmp, "out");
        var (rc, stdout, stderr) = Run("diagnose", "--checkpoint", ckpt, "--input-ids", Ids, "--input-ids", "5,6,7,8,9,10,11,12,13", "--quantisation", "off", "--out", outDir);
        Assert.True(rc == 0, stderr);
        Assert.Contains("effective depth", stdout);
        var indexer = IndexerDiagnosticsResult.FromJson(File.ReadAllText(Path.Combine(outDir, "indexer.json")));
        var streams = HyperConnectionDiagnosticsResult.FromJson(File.ReadAllText(Path.Combine(outDir, "streams.json")));
        var compression = CompressionDiagnosticsResult.FromJson(File.ReadAllText(Path.Combine(outDir, "compression.json")));
        Assert.Equal(2, indexer.Prompts.Length);
        Assert.Equal(IndexerKeyAxis.CompressedEntries, indexer.Axis);
        Assert.Equal(8, streams.Sites.Length);
        Assert.Equal(4, compression.Layers.Length);
        using var loaded = Model.Checkpoints.Checkpoint.Load(ckpt, new Model.Checkpoints.CheckpointLoadOptions { Quantisation = Model.Modules.QuantisationSimulation.Off });
        var direct = CompressionDiagnostics.Measure(loaded, compression.Prompts);
        Assert.Equal(direct.ToJson(), compression.ToJson());
    }

    [Fact]
    public void Diagnose_V3_SkipsEachDiagnosticInOneLine()
    {
        var v3 = Path.Combine(ReportTestSupport.RepoRoot, "data", "checkpoints", "golden-tiny-hf");
        var (rc, stdout, _) = Run("diagnose", "--checkpoint", v3, "--input-ids", "1,2,3", "--out", Path.Combine(_tmp, "v3"));
        Assert.Equal(0, rc);
        Assert.Contains("indexer: skipped, the model has no lightning indexer", stdout);
        Assert.Contains("streams: skipped", stdout);
        Assert.Contains("nothing to diagnose", stdout);
        Assert.Empty(Directory.GetFiles(Path.Combine(_tmp, "v3")));
    }

    [Fact]
    public void Diagnose_BadArguments_AreUsageErrors_NamingTheProblem()
    {
        var (rc, _, err) = Run("diagnose", "--input-ids", "1,x", "--out", Path.Combine(_tmp, "bad"));
        Assert.Equal(2, rc);
        Assert.Contains("entry 2 ('x') is not an integer token id", err);
        (rc, _, err) = Run("diagnose", "--input-ids", "1,2", "--what", "rollout", "--out", Path.Combine(_tmp, "bad"));
        Assert.Equal(2, rc);
        Assert.Contains("rollout", err);
        (rc, _, err) = Run("diagnose", "--input-ids", "1,2", "--quantisation", "fp4", "--out", Path.Combine(_tmp, "bad"));
        Assert.Equal(2, rc);
        Assert.Contains("--quantisation must be official or off, got 'fp4'", err);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "bad")));
        (rc, _, err) = Run("diagnose", "--out", Path.Combine(_tmp, "bad"));
        Assert.Equal(2, rc);
        Assert.Contains("give at least one prompt", err);
        var noTokenizer = Path.Combine(ReportTestSupport.RepoRoot, "data", "checkpoints", "golden-tiny-hf");
        (rc, _, err) = Run("diagnose", "--checkpoint", noTokenizer, "--text", "hello", "--out", Path.Combine(_tmp, "bad"));
        Assert.Equal(2, rc);
        Assert.Contains("--text needs a checkpoint with tokenizer.json", err);
    }

    [Fact]
    public void Diagnose_Text_IsTokenizedWithTheCheckpointsTokenizer()
    {
        // The bundled model (V3-style, with a tokenizer): the text is accepted and every diagnostic is skipped in one line.
        var (rc, stdout, stderr) = Run("diagnose", "--text", "the cat sat", "--out", Path.Combine(_tmp, "bundled"));
        Assert.True(rc == 0, stderr);
        Assert.Contains("nothing to diagnose", stdout);
    }

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }
}
