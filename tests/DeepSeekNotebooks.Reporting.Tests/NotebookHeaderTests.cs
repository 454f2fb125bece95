using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace DeepSeekNotebooks.Reporting.Tests;

/// <summary>
/// Every notebook starts with the same two cells: the package/kit references (package versions from
/// Directory.Packages.props, the one source of truth) ending in <c>Notebook.Setup()</c>, then loading the checkpoint.
/// </summary>
public partial class NotebookHeaderTests
{
    private static IEnumerable<string> NotebookNames() =>
        Directory.EnumerateFiles(Path.Combine(ReportTestSupport.RepoRoot, "notebooks"), "*.ipynb").Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

    public static TheoryData<string> Notebooks() => new(NotebookNames());

    private static string[] CodeCells(string notebook)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(ReportTestSupport.RepoRoot, "notebooks", notebook)));
        return doc.RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.GetProperty("cell_type").GetString() == "code")
            .Select(c => string.Concat(c.GetProperty("source").EnumerateArray().Select(s => s.GetString())))
            .ToArray();
    }

    private static Dictionary<string, string> CentralVersions() =>
        XDocument.Load(Path.Combine(ReportTestSupport.RepoRoot, "Directory.Packages.props"))
            .Descendants("PackageVersion")
            .ToDictionary(e => (string)e.Attribute("Include")!, e => (string)e.Attribute("Version")!, StringComparer.OrdinalIgnoreCase);

    [GeneratedRegex("""^#r\s+"nuget:\s*([^,"\s]+)\s*,\s*([^"\s]+)\s*"\s*$""", RegexOptions.Multiline)]
    private static partial Regex NugetReference();

    [GeneratedRegex("""^#r\s+"(?!nuget:)([^"]+)"\s*$""", RegexOptions.Multiline)]
    private static partial Regex PathReference();

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Header_package_versions_match_Directory_Packages_props(string notebook)
    {
        var header = CodeCells(notebook)[0];
        var versions = CentralVersions();
        var references = NugetReference().Matches(header).Select(m => (Package: m.Groups[1].Value, Version: m.Groups[2].Value)).ToList();
        Assert.NotEmpty(references);
        foreach (var (package, version) in references)
        {
            Assert.True(versions.TryGetValue(package, out var central),
                $"{notebook}: #r \"nuget: {package}\" is not in Directory.Packages.props; add it there (one source of truth for versions)");
            Assert.True(central == version,
                $"{notebook}: #r \"nuget: {package}, {version}\" drifted from Directory.Packages.props ({central}); use {central}");
        }
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Header_references_the_whole_kit_from_the_Interactive_build_and_calls_Setup(string notebook)
    {
        var header = CodeCells(notebook)[0];
        var kit = PathReference().Matches(header).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(
            new[] { "Model", "Analysis", "Training", "Visualization", "Interactive" }.Select(p => $"../src/DeepSeekNotebooks.Interactive/bin/Debug/net10.0/DeepSeekNotebooks.{p}.dll"),
            kit);
        var lastLine = header.TrimEnd().Split('\n')[^1].Trim();
        Assert.Equal("DeepSeekNotebooks.Interactive.Notebook.Setup()", lastLine);
    }

    [Fact]
    public void Every_notebook_has_the_same_header()
    {
        var headers = NotebookNames().Select(name => (Name: name, Header: CodeCells(name)[0])).ToList();
        var first = headers[0];
        foreach (var (name, header) in headers.Skip(1))
            Assert.True(header == first.Header, $"{name}'s first cell differs from {first.Name}'s; every notebook starts with the same header");
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Second_cell_loads_the_default_checkpoint_and_the_thread_rule_lives_in_one_helper(string notebook)
    {
        var cells = CodeCells(notebook);
        if (notebook.StartsWith('_')) return; // the kernel smoke test loads a fixture on purpose
        Assert.Contains("var checkpointDir = BundledModel.DefaultCheckpoint();", cells[1]);
        // With the load options report --residency/--dtype hand over ($DEEPSEEK_RESIDENCY, $DEEPSEEK_DTYPE).
        Assert.Contains("Checkpoint.Load(checkpointDir, Notebook.LoadOptions())", cells[1]);
        Assert.Contains("Notebook.UseThreadsFor(model)", cells[1]);
        Assert.All(cells, c => Assert.DoesNotContain("set_num_threads", c));
    }
}
