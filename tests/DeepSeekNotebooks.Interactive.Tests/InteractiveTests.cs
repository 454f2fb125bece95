using System.Reflection;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using DeepSeekNotebooks.Interactive;
using Microsoft.DotNet.Interactive.Formatting;

namespace DeepSeekNotebooks.Interactive.Tests;

public class InteractiveTests
{
    private static Assembly LoadedFSharpCore => typeof(Microsoft.FSharp.Core.FSharpOption<int>).Assembly;

    [Fact]
    public void RedirectAnswersHigherFSharpCoreWithLoadedOne()
    {
        var loaded = AppDomain.CurrentDomain.GetAssemblies();
        var req = new AssemblyName("FSharp.Core, Version=99.1.0.0, Culture=neutral, PublicKeyToken=b03f5f7f11d50a3a");
        Assert.Same(LoadedFSharpCore, FSharpCoreRedirect.Resolve(req, loaded));
        Assert.Null(FSharpCoreRedirect.Resolve(new AssemblyName("Some.Other, Version=1.0.0.0"), loaded));
        Assert.Null(FSharpCoreRedirect.Resolve(req, new[] { typeof(object).Assembly })); // none loaded → let others try
    }

    [Fact]
    public void InstalledRedirectMakesRuntimeLoadSucceed()
    {
        FSharpCoreRedirect.Install();
        FSharpCoreRedirect.Install(); // idempotent
        Assert.True(FSharpCoreRedirect.IsInstalled);
        _ = LoadedFSharpCore;
        var a = Assembly.Load("FSharp.Core, Version=99.1.0.0, Culture=neutral, PublicKeyToken=b03f5f7f11d50a3a");
        Assert.Same(LoadedFSharpCore, a);
    }

    [Fact]
    public void NotebookSetupDoesEverythingOnceAndReportsIt()
    {
        string status = Notebook.Setup();
        Assert.StartsWith("DeepSeekNotebooks ready:", status);
        Assert.Contains("FSharp.Core", status);
        Assert.Contains("torch:", status);
        Assert.True(FSharpCoreRedirect.IsInstalled);
        Assert.True(DeepSeekNotebooksFormatters.IsRegistered);
        Assert.NotNull(DeepSeekNotebooks.Model.Native.TorchRuntime.Status);
        Assert.Equal(status, Notebook.Setup()); // idempotent
    }

    [Fact]
    public void FormattersRenderChartsAndViewsAsHtml()
    {
        DeepSeekNotebooksFormatters.Register();
        DeepSeekNotebooksFormatters.Register();
        var chart = AttentionCharts.Rollout(new[] { "a", "<b>" }, new float[2, 2], "R");
        Assert.Equal("text/html", Formatter.GetPreferredMimeTypesFor(chart.GetType()).First());
        string html = chart.ToDisplayString("text/html");
        Assert.Contains("Plotly.newPlot(", html);
        Assert.Contains("plotly.js v" + PlotlyJs.Version, html);
        Assert.Equal("GenericChart [heatmap] \"R\"", chart.ToDisplayString("text/plain"));

        var view = new TokenAttributionView(new[] { "x" }, new[] { 1.0 });
        Assert.Equal("text/html", Formatter.GetPreferredMimeTypesFor(typeof(TokenAttributionView)).First());
        Assert.Contains("dsn-token-attr", view.ToDisplayString("text/html"));
        Assert.StartsWith("TokenAttributionView", view.ToDisplayString("text/plain"));
    }

    [Fact]
    public void FormattersRenderTheBertVizViewsAsTheirFragments()
    {
        DeepSeekNotebooksFormatters.Register();
        string[] toks = { "a", "<b>" };
        var att = new[] { new DeepSeekNotebooks.Analysis.Attention.AttentionMatrix[] { new float[,] { { 1, 0 }, { 0.25f, 0.75f } } } };
        var head = new HeadView(toks, att);
        Assert.Equal("text/html", Formatter.GetPreferredMimeTypesFor(typeof(HeadView)).First());
        string html = head.ToDisplayString("text/html");
        Assert.Contains("class=\"dsn-attn-view dsn-head-view\"", html);
        Assert.Contains("window.dsnAttentionViews.head(", html);
        Assert.DoesNotContain("<b>", html);
        Assert.Equal(head.ToString(), head.ToDisplayString("text/plain"));
        Assert.EndsWith(": layer 0 3", head.ToString());   // lines drawn: 1 + 2 non-zero weights ≥ 0.01
        var model = new ModelView(toks, att);
        Assert.Equal("text/html", Formatter.GetPreferredMimeTypesFor(typeof(ModelView)).First());
        Assert.Contains("window.dsnAttentionViews.model(", model.ToDisplayString("text/html"));
        Assert.StartsWith("ModelView: 1 layers × 1 heads, 2 tokens", model.ToDisplayString("text/plain"));
    }

    [Fact]
    public void ExtensionScriptIsPackedAndCallsRegister()
    {
        string dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "DeepSeekNotebooks.sln"))) dir = Path.GetDirectoryName(dir)!;
        Assert.NotNull(dir);
        string proj = Path.Combine(dir!, "src", "DeepSeekNotebooks.Interactive");
        string dib = File.ReadAllText(Path.Combine(proj, "extension.dib"));
        Assert.Contains("#!csharp", dib);
        Assert.Contains("DeepSeekNotebooksFormatters.Register();", dib);
        string csproj = File.ReadAllText(Path.Combine(proj, "DeepSeekNotebooks.Interactive.csproj"));
        Assert.Contains("PackagePath=\"interactive-extensions/dotnet\"", csproj);
    }

    [Fact]
    public void DataFramesRenderAsEscapedHtmlTables()
    {
        DeepSeekNotebooksFormatters.Register();
        var df = new Microsoft.Data.Analysis.DataFrame(
            new Microsoft.Data.Analysis.StringDataFrameColumn("token", new[] { "<img src=x onerror=alert(1)>", "b", "c" }),
            new Microsoft.Data.Analysis.DoubleDataFrameColumn("value", new[] { 0.123456789, 2.0, double.NaN }));
        Assert.Equal("text/html", Formatter.GetPreferredMimeTypesFor(df.GetType()).First());
        var html = df.ToDisplayString("text/html");
        Assert.Contains("<table", html);
        Assert.Contains("<th", html);
        Assert.Contains("0.1235", html);
        NoRawHostile(html);
        var cut = DeepSeekNotebooks.Visualization.Html.DataFrameHtml.ToHtml(df, maxRows: 2);
        Assert.Contains("1 more rows (3 in all)", cut);
    }

    private static DeepSeekNotebooks.Analysis.Attribution.AttributionResult AttributionWithHostileToken() => new()
    {
        Method = DeepSeekNotebooks.Analysis.Attribution.AttributionMethod.IntegratedGradients,
        TokenIds = new long[] { 5, 6, 7 },
        TokenStrings = new[] { "a", "<img src=x onerror=alert(1)>", "c" },
        Target = new DeepSeekNotebooks.Analysis.Attribution.TargetInfo(2, 9, DeepSeekNotebooks.Analysis.Attribution.TargetKind.Logit, "logit"),
        Shape = new[] { 3, 2 },
        Attributions = new float[] { 0.1f, 0.2f, -0.5f, 0.1f, 0f, 0f },
        TokenSums = new[] { 0.3f, -0.4f, 0f },
        TokenNorms = new[] { 0.22f, 0.51f, 0f },
    };

    [Fact]
    public void Formatters_RenderResultsAsHtml()
    {
        DeepSeekNotebooksFormatters.Register();
        var html = AttributionWithHostileToken().ToDisplayString("text/html");
        Assert.Contains("Plotly.newPlot", html);
        NoRawHostile(html);
    }

    [Fact]
    public void Formatters_TitleRolloutAndFlowByTheirProducer()
    {
        // A notebook cell ending in a rollout result renders through the formatter; it used to say "Attention attention_rollout".
        DeepSeekNotebooksFormatters.Register();
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DeepSeekNotebooks.sln"))) dir = dir.Parent;
        Assert.NotNull(dir);
        using var ckpt = DeepSeekNotebooks.Model.Checkpoints.Checkpoint.Load(Path.Combine(dir!.FullName, "data", "checkpoints", "golden-tiny-hf"));
        using var ids = TorchSharp.torch.tensor(new long[] { 3, 17, 42, 5, 99 }, new long[] { 1, 5 });
        var rollout = DeepSeekNotebooks.Analysis.Attention.AttentionRollout.Compute(ckpt.Model, ids).ToDisplayString("text/html");
        var flow = DeepSeekNotebooks.Analysis.Attention.AttentionFlow.Compute(ckpt.Model, ids).ToDisplayString("text/html");
        Assert.Contains("Attention rollout", rollout);
        Assert.Contains("Attention flow", flow);
        Assert.DoesNotContain("attention_rollout", rollout);
        Assert.DoesNotContain("attention_flow", flow);
    }

    private static void NoRawHostile(string html)
    {
        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<script>alert", html, StringComparison.OrdinalIgnoreCase);
    }
}
