using DeepSeekNotebooks.Analysis.Attention;
using System.Text.Json;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using Xunit.Abstractions;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>
/// The generated pages in a real browser (headless Chromium, network disabled): every plot drawn, no JavaScript
/// error, no network request, no CSP violation, hostile tokens shown as text. Set DSN_SCREENSHOTS=&lt;dir&gt; to also
/// save PNG screenshots of the dashboard and the 3D view (docs/images was made that way).
/// </summary>
[Trait("Category", "Browser")]
public class BrowserTests : IClassFixture<ChromiumFixture>, IDisposable
{
    private readonly ChromiumFixture _fx;
    private readonly ITestOutputHelper _out;
    // DSN_BROWSER_PAGES=<dir> keeps the generated pages there (for debugging in a real browser).
    private static readonly string? s_keep = Environment.GetEnvironmentVariable("DSN_BROWSER_PAGES");
    private readonly string _dir = string.IsNullOrEmpty(s_keep) ? Path.Combine(Path.GetTempPath(), $"dsn-browser-{Guid.NewGuid():N}") : s_keep;

    public BrowserTests(ChromiumFixture fx, ITestOutputHelper output)
    {
        _fx = fx; _out = output;
        Directory.CreateDirectory(_dir);
    }

    public void Dispose()
    {
        if (!string.IsNullOrEmpty(s_keep)) return;
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Every plotly graph div: drawn (SVG layers present) and, for 3D scenes, a WebGL canvas with a live scene.</summary>
    private const string PlotsDrawn =
        "(function(){var d=document.querySelectorAll('.js-plotly-plot');if(!d.length)return false;" +
        "return Array.prototype.every.call(d,function(p){if(!p._fullLayout||!p.querySelector('.main-svg'))return false;" +
        "if(p._fullLayout._has&&p._fullLayout._has('gl3d'))return !!(p.querySelector('canvas')&&p._fullLayout.scene._scene&&p._fullLayout.scene._scene.glplot);" +
        "return true;});})()";

    private const string Summary =
        "(function(){var d=Array.prototype.slice.call(document.querySelectorAll('.js-plotly-plot'));" +
        "return {plots:d.length," +
        "drawn:d.filter(function(p){return p._fullLayout&&p.querySelector('.main-svg');}).length," +
        "svgTitles:d.map(function(p){var t=p.querySelector('.gtitle');return t?t.textContent:'';})," +
        "canvases:d.map(function(p){return p.querySelectorAll('canvas').length;})," +
        "gl3d:d.filter(function(p){return p._fullLayout&&p._fullLayout._has('gl3d');}).length," +
        "text:document.body.textContent,imgs:document.querySelectorAll('img').length," +
        "noWebGl:/webgl is not supported/i.test(document.body.textContent)};})()";

    private string Write(string name, string html)
    {
        string p = Path.Combine(_dir, name);
        File.WriteAllText(p, html);
        return p;
    }

    private static string? ScreenshotPath(string name)
    {
        string? dir = Environment.GetEnvironmentVariable("DSN_SCREENSHOTS");
        return string.IsNullOrEmpty(dir) ? null : Path.Combine(dir, name);
    }

    private void AssertClean(PageRun run, string what)
    {
        _out.WriteLine($"{what}: ready after {run.Ready.TotalSeconds:0.00} s, total {run.Elapsed.TotalSeconds:0.00} s, browser CPU {run.BrowserCpuSeconds:0.00} s in {_fx.Browser?.Version} (browser start {_fx.StartTime.TotalSeconds:0.00} s)");
        Assert.True(run.Errors.Count == 0, $"{what}: JavaScript/console/CSP errors:\n" + string.Join("\n", run.Errors));
        Assert.True(run.NetworkRequests.Count == 0, $"{what}: network requests attempted:\n" + string.Join("\n", run.NetworkRequests));
        Assert.True(run.Dialogs.Count == 0, $"{what}: dialogs opened (injected script ran?): " + string.Join(", ", run.Dialogs));
        var r = run.Result;
        int plots = r.GetProperty("plots").GetInt32();
        Assert.True(plots > 0, $"{what}: no plot");
        Assert.Equal(plots, r.GetProperty("drawn").GetInt32());
        Assert.False(r.GetProperty("noWebGl").GetBoolean(), $"{what}: plotly reports no WebGL");
        Assert.Equal(0, r.GetProperty("imgs").GetInt32());
        Assert.Contains(HostileImg, r.GetProperty("text").GetString());
        Assert.All(r.GetProperty("svgTitles").EnumerateArray(), t => Assert.False(string.IsNullOrWhiteSpace(t.GetString()), $"{what}: untitled plot"));
    }

    [Fact]
    public async Task ReportWithSeveralChartsRenders()
    {
        var browser = _fx.Require();
        string[] toks = SampleData.Tokens;
        var att = SampleData.Attention();
        var report = new HtmlReport("Report " + HostileScript)
            .AddHeading(HostileImg)
            .AddChart(AttentionCharts.Heatmap(toks, toks, AttentionMatrix.FromRows(att[1][0]), causalMask: true))
            .AddChart(AttributionCharts.TokenScores(toks, SampleData.Attributions()["Integrated gradients"]))
            .AddChart(ExpertCharts.UsageHeatmap(new double[,] { { 0.1, 0.5, 0.4 }, { 0.3, 0.3, 0.4 } }))
            .AddChart(TrainingCharts.LossCurves(new[] { 1, 2, 3 }, new[] { 3.0, 2.0, 1.5 }))
            .AddView(new TokenAttributionView(toks, SampleData.Attributions()["Occlusion"], "Occlusion", "Occlusion"));
        var run = await browser.RunPageAsync(Write("report.html", report.ToPage()), PlotsDrawn, Summary, Timeout);
        AssertClean(run, "HtmlReport");
        Assert.Equal(4, run.Result.GetProperty("plots").GetInt32());
    }

    [Fact]
    public async Task DashboardRendersAndReactsToControls()
    {
        var browser = _fx.Require();
        // (The hostile page title is covered by the unit tests; this one is also the docs screenshot.)
        var data = SampleData.Dashboard() with { Title = "DeepSeekNotebooks dashboard — synthetic input (golden-tiny shapes)" };
        string file = Write("dashboard.html", Dashboard.Build(data));
        // After the first render: pick layer 2 / mean over heads / 2nd method / MoE layer 3 / token 3, then summarise.
        const string interact =
            "new Promise(function(res){function set(id,v){var e=document.getElementById(id);e.value=String(v);e.dispatchEvent(new Event(id==='dsn-token'?'input':'change'));}" +
            "set('dsn-layer',2);set('dsn-head',-1);set('dsn-method',1);set('dsn-route-layer',2);set('dsn-token',3);" +
            "setTimeout(function(){var s=" + Summary + ";s.attnTitle=document.querySelector('#dsn-attn .gtitle').textContent;" +
            "s.routeTitle=document.querySelector('#dsn-route .gtitle').textContent;s.attrTitle=document.getElementById('dsn-attr-title').textContent;" +
            "s.selected=document.querySelector('#dsn-attr-text .dsn-tok.sel').textContent;s.tokenSpans=document.querySelectorAll('#dsn-attr-text .dsn-tok').length;" +
            "s.routeRows=document.querySelectorAll('#dsn-route-token tr').length;s.heads=document.getElementById('dsn-head').options.length;" +
            "s.h1=document.querySelector('h1').textContent;res(s);},400);})";
        var run = await browser.RunPageAsync(file, "document.body.getAttribute('data-dsn-ready')==='1'&&" + PlotsDrawn, interact, Timeout,
            height: 1150, screenshotPath: ScreenshotPath("dashboard.png"));
        AssertClean(run, "Dashboard");
        var r = run.Result;
        Assert.Equal(4, r.GetProperty("plots").GetInt32());  // attention, rollout, attribution bar, routing
        Assert.Equal("Attention — layer 2, mean over 4 heads", r.GetProperty("attnTitle").GetString());
        Assert.Equal("Routing — MoE layer 3: experts chosen per token", r.GetProperty("routeTitle").GetString());
        Assert.Equal("Attribution — Gradient × input " + HostileImg + " (token colour = score)", r.GetProperty("attrTitle").GetString());
        Assert.Equal(HostileImg, r.GetProperty("selected").GetString());
        Assert.Equal(SampleData.Tokens.Length, r.GetProperty("tokenSpans").GetInt32());
        Assert.Equal(1 + 3, r.GetProperty("routeRows").GetInt32());
        Assert.Equal(5, r.GetProperty("heads").GetInt32());
        Assert.Equal(data.Title, r.GetProperty("h1").GetString());
    }

    [Fact]
    public async Task ModelView3DRendersWithWebGl()
    {
        var browser = _fx.Require();
        var arch = SampleData.Architecture;
        string page = ModelView3D.Page(arch, SampleData.Tokens, SampleData.Routing(arch),
            "golden-tiny (synthetic): routing of one input");
        var run = await browser.RunPageAsync(Write("model3d.html", page), PlotsDrawn, Summary, Timeout,
            width: 1300, height: 800, screenshotPath: ScreenshotPath("model-3d.png"));
        AssertClean(run, "ModelView3D");
        Assert.Equal(1, run.Result.GetProperty("gl3d").GetInt32());
        Assert.True(run.Result.GetProperty("canvases")[0].GetInt32() >= 1, "no WebGL canvas");
    }

    [Fact]
    public async Task ModelView3D_OfTheV4Fixture_RendersWithItsStreamsAndKinds()
    {
        var browser = _fx.Require();
        var arch = ModelArchitecture.From(DeepSeekNotebooks.Model.DeepSeekConfig.Load(ModelView3DGenerationsTests.Fixture("v4")));
        // Routing flows on every MoE layer, the hash-routed layer 0 included (hostile tokens shown as text).
        string page = ModelView3D.Page(arch, SampleData.Tokens, SampleData.Routing(arch), "golden V4: attention kinds, hash layer, 4 streams");
        var run = await browser.RunPageAsync(Write("model3d-v4.html", page), PlotsDrawn, Summary, Timeout,
            width: 1300, height: 800, screenshotPath: ScreenshotPath("model-3d-v4.png"));
        AssertClean(run, "ModelView3D V4");
        Assert.Equal(1, run.Result.GetProperty("gl3d").GetInt32());
    }

    [Fact]
    public async Task BrokenPageIsReported()
    {
        // The harness itself: an error thrown by the page and an attempted network load must be seen.
        var browser = _fx.Require();
        string file = Write("broken.html",
            "<!DOCTYPE html><html><body><script>fetch('https://example.invalid/x').catch(function(){});throw new Error('boom');</script></body></html>");
        var run = await browser.RunPageAsync(file, "true", "1", TimeSpan.FromSeconds(10));
        Assert.Contains(run.Errors, e => e.Contains("boom"));
        Assert.Contains(run.NetworkRequests, u => u.StartsWith("https://example.invalid"));
    }
}
