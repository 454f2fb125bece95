using DeepSeekNotebooks.Reporting;
using Microsoft.DotNet.Interactive.Documents;

namespace DeepSeekNotebooks.Reporting.Tests;

public class HtmlReportWriterTests
{
    private const string Xss = "<img src=x onerror=alert(1)>";

    private static NotebookRunResult Run(params InteractiveDocumentElement[] elements)
    {
        var doc = new InteractiveDocument(elements);
        var cells = elements.Select((e, i) => (e, i)).Where(x => x.e.KernelName != "markdown")
            .Select(x => new CellRunResult(x.i, CellStatus.Succeeded, TimeSpan.FromMilliseconds(5))).ToList();
        return new NotebookRunResult("/tmp/x/demo.ipynb", NotebookStatus.Succeeded, doc, cells, TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void Code_stream_error_and_plain_outputs_are_escaped()
    {
        var code = new InteractiveDocumentElement($"var s = \"{Xss}\";", "csharp");
        code.Outputs.Add(new TextElement(Xss, "stdout"));
        code.Outputs.Add(new TextElement(Xss, "stderr"));
        code.Outputs.Add(new ErrorElement(Xss, "Error", [Xss]));
        code.Outputs.Add(new DisplayElement(new Dictionary<string, object> { ["text/plain"] = Xss }));

        var html = HtmlReportWriter.Render(Run(code), redactInputs: false);

        Assert.DoesNotContain(Xss, html);
        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;", html);
    }

    [Fact]
    public void Markdown_raw_html_is_escaped_headings_feed_the_toc_and_script_links_are_neutralised()
    {
        var md = new InteractiveDocumentElement($"# Title {Xss}\n\n## Part two\n\n{Xss}\n\n[click](javascript:alert(1))", "markdown");
        var html = HtmlReportWriter.Render(Run(md), redactInputs: false);

        Assert.DoesNotContain(Xss, html);
        Assert.DoesNotContain("javascript:", html);
        Assert.Contains("<nav class=\"toc\">", html);
        Assert.Contains(">Part two</a>", html);
        Assert.Contains("<h2 id=\"c0-part-two\">Part two</h2>", html);
    }

    [Fact]
    public void Formatter_html_is_trusted_but_remote_scripts_are_removed()
    {
        var code = new InteractiveDocumentElement("chart", "csharp");
        code.Outputs.Add(new DisplayElement(new Dictionary<string, object>
        {
            ["text/html"] = "<div id=\"c\"></div><script src=\"https://cdn.plot.ly/plotly-2.28.0.min.js\"></script><script>Plotly.newPlot('c', [], {});</script>",
        }));
        var html = HtmlReportWriter.Render(Run(code), redactInputs: false);

        Assert.DoesNotMatch(ReportTestSupport.RemoteScriptSource(), html);
        Assert.Contains("Plotly.newPlot('c'", html);
        Assert.Contains("plotly.js v", html); // plotly.js inlined once from the Plotly.NET package
    }

    [Fact]
    public void Redact_inputs_replaces_code_with_placeholder()
    {
        var code = new InteractiveDocumentElement("var secret = 12345;", "csharp");
        code.Outputs.Add(new TextElement("out", "stdout"));
        var html = HtmlReportWriter.Render(Run(code), redactInputs: true);

        Assert.DoesNotContain("secret", html);
        Assert.Contains("code hidden", html);
        Assert.Contains(">out</pre>", html);
    }

    [Fact]
    public void Malformed_notebook_is_reported_with_its_parse_error()
    {
        var run = new NotebookRunResult("/tmp/x/bad.ipynb", NotebookStatus.Malformed, null, [], TimeSpan.Zero, $"JsonException: {Xss}");
        var html = HtmlReportWriter.Render(run, redactInputs: false);
        Assert.Contains("Notebook could not be read", html);
        Assert.DoesNotContain(Xss, html);
    }
}
