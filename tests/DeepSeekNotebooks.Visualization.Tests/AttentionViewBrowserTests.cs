using System.Text.Json;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Visualization.Html;
using Xunit.Abstractions;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>
/// The BertViz-style head view and model view in headless Chromium (network off): they render without errors, hovering a
/// token leaves exactly its lines visible, selecting heads hides the others' lines, clicking a thumbnail enlarges it,
/// hostile token text is shown literally, and 128 tokens of the bundled model render.
/// </summary>
[Trait("Category", "Browser")]
public class AttentionViewBrowserTests : IClassFixture<ChromiumFixture>, IDisposable
{
    private readonly ChromiumFixture _fx;
    private readonly ITestOutputHelper _out;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"dsn-views-{Guid.NewGuid():N}");

    public AttentionViewBrowserTests(ChromiumFixture fx, ITestOutputHelper output)
    {
        _fx = fx; _out = output;
        Directory.CreateDirectory(_dir);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private string Write(string name, string html)
    {
        string p = Path.Combine(_dir, name);
        File.WriteAllText(p, html);
        return p;
    }

    /// <summary>DSN_SCREENSHOTS=&lt;dir&gt; also saves PNG screenshots (docs/images/head-view.png and model-view.png were made so).</summary>
    private static string? ScreenshotPath(string name)
    {
        string? dir = Environment.GetEnvironmentVariable("DSN_SCREENSHOTS");
        return string.IsNullOrEmpty(dir) ? null : Path.Combine(dir, name);
    }

    private const string Ready =
        "Array.prototype.every.call(document.querySelectorAll('.dsn-attn-view'),function(v){return v.getAttribute('data-dsn-ready')==='1';})" +
        "&&document.querySelectorAll('.dsn-attn-view').length>0";

    /// <summary>JS helpers: the head view's visible lines (its head group shown, its own visibility resolved to visible).</summary>
    private const string Helpers =
        "function hv(){return document.querySelector('.dsn-head-view');}" +
        "function mv(){return document.querySelector('.dsn-model-view');}" +
        "function visible(root){return Array.prototype.filter.call(root.querySelectorAll('.dsn-hv-lines line'),function(l){" +
        "return getComputedStyle(l).visibility==='visible'&&l.parentNode.style.display!=='none';});}" +
        "function over(node){node.dispatchEvent(new MouseEvent('mouseover',{bubbles:true}));}" +
        "function leave(node){node.dispatchEvent(new MouseEvent('mouseleave',{bubbles:false}));}" +
        "function click(node,n){node.dispatchEvent(new MouseEvent(n||'click',{bubbles:true}));}" +
        "function tok(root,side,i){return root.querySelector('.dsn-hv-col[data-side=\"'+side+'\"] .dsn-av-tok[data-i=\"'+i+'\"] text');}" +
        "function texts(root,side){return Array.prototype.map.call(root.querySelectorAll('.dsn-hv-col[data-side=\"'+side+'\"] .dsn-av-tok text'),function(t){return t.firstChild.textContent;});}" +
        "function tips(root,side){return Array.prototype.map.call(root.querySelectorAll('.dsn-hv-col[data-side=\"'+side+'\"] .dsn-av-tok text title'),function(t){return t.textContent;});}";

    private static int Kept(AttentionMatrix m, int? query = null, double threshold = HeadView.DefaultThreshold)
    {
        int c = 0;
        for (int q = 0; q < m.Queries; q++)
        {
            if (query is { } only && q != only) continue;
            for (int k = 0; k < m.Keys; k++) if (m[q, k] > 0 && m[q, k] >= threshold) c++;
        }
        return c;
    }

    private void AssertClean(PageRun run, string what)
    {
        _out.WriteLine($"{what}: ready after {run.Ready.TotalSeconds:0.00} s, total {run.Elapsed.TotalSeconds:0.00} s, browser CPU {run.BrowserCpuSeconds:0.00} s");
        Assert.True(run.Errors.Count == 0, $"{what}: JavaScript/console/CSP errors:\n" + string.Join("\n", run.Errors));
        Assert.True(run.NetworkRequests.Count == 0, $"{what}: network requests attempted:\n" + string.Join("\n", run.NetworkRequests));
        Assert.True(run.Dialogs.Count == 0, $"{what}: dialogs opened (injected script ran?): " + string.Join(", ", run.Dialogs));
    }

    private static string[] Strings(JsonElement e) => e.EnumerateArray().Select(x => x.GetString()!).ToArray();

    [Fact]
    public async Task HeadViewHoverFocusesATokenAndHeadSelectionHidesTheOthers()
    {
        var browser = _fx.Require();
        string[] toks = AttentionViewTests.HostileTokens.Concat(new[] { " the", " mat", "\n", "." }).ToArray();
        int n = toks.Length;
        var att = Enumerable.Range(0, 2).Select(l => Enumerable.Range(0, 3).Select(h => AttentionViewTests.Causal(n, 7 + 10 * l + h)).ToArray()).ToArray();
        var view = new HeadView(toks, att, title: "Head view " + HostileImg);
        var page = new HtmlReport("Head view test").AddView(view).ToPage();
        const string interact =
            "(function(){" + Helpers + "var r=hv(),s={};" +
            "s.all=visible(r).length;s.title=r.querySelector('.dsn-av-title').textContent;" +
            "s.left=texts(r,'q');s.right=texts(r,'k');s.tips=tips(r,'q');s.imgs=document.querySelectorAll('img').length;" +
            "over(tok(r,'q',6));var v=visible(r);s.hoverQ=v.length;s.hoverQrows=v.map(function(l){return +l.getAttribute('data-q');}).filter(function(x,i,a){return a.indexOf(x)===i;});" +
            "s.boxes=r.querySelectorAll('.dsn-hv-boxes[data-side=\"q\"] rect').length;" +
            "leave(r.querySelector('.dsn-hv-col[data-side=\"q\"]'));s.afterLeave=visible(r).length;" +
            "over(tok(r,'k',0));v=visible(r);s.hoverK=v.length;s.hoverKcols=v.map(function(l){return +l.getAttribute('data-k');}).filter(function(x,i,a){return a.indexOf(x)===i;});" +
            "leave(r.querySelector('.dsn-hv-col[data-side=\"k\"]'));" +
            "click(r.querySelector('.dsn-hv-check[data-head=\"1\"]'));v=visible(r);s.noHead1=v.length;" +
            "s.noHead1heads=v.map(function(l){return +l.parentNode.getAttribute('data-head');}).filter(function(x,i,a){return a.indexOf(x)===i;}).sort();" +
            "click(r.querySelector('.dsn-hv-check[data-head=\"2\"]'),'dblclick');v=visible(r);s.only2=v.length;" +
            "s.only2heads=v.map(function(l){return +l.parentNode.getAttribute('data-head');}).filter(function(x,i,a){return a.indexOf(x)===i;});" +
            "s.opacity=+v[0].getAttribute('stroke-opacity')*1e4/+v[0].getAttribute('data-w');" +
            "click(r.querySelector('.dsn-hv-check[data-head=\"2\"]'),'dblclick');s.allAgain=visible(r).length;" +
            "var sel=r.querySelector('select.dsn-hv-layer');sel.value='1';sel.dispatchEvent(new Event('change'));" +
            "s.layer1=visible(r).length;s.title1=r.querySelector('.dsn-av-title').textContent;s.note1=r.querySelector('.dsn-av-note').textContent;" +
            "return s;})()";
        var run = await browser.RunPageAsync(Write("head-view.html", page), Ready,
            "(function(){" + Helpers + "over(tok(hv(),'q',6));return 1;})()", Timeout, width: 700, height: 520, screenshotPath: ScreenshotPath("head-view.png"));
        AssertClean(run, "HeadView (hovered)");
        run = await browser.RunPageAsync(Write("head-view.html", page), Ready, interact, Timeout);
        AssertClean(run, "HeadView");
        var r = run.Result;
        int All(int layer, int? skipHead = null) => Enumerable.Range(0, 3).Where(h => h != skipHead).Sum(h => Kept(att[layer][h]));
        Assert.Equal(All(0), r.GetProperty("all").GetInt32());
        Assert.Equal("Head view " + HostileImg + " — layer 0: query tokens (left) attend to key tokens (right)", r.GetProperty("title").GetString());
        // tokens shown literally (newline made visible as ↵, U+2028/9 kept; labels over 18 characters end in …), on both
        // sides, the whole token in the tooltip, no element injected
        string[] shown = toks.Select(t => t.Replace("\n", "↵")).Select(t => t.Length > 18 ? t[..17] + "…" : t).ToArray();
        Assert.Equal(shown, Strings(r.GetProperty("left")));
        Assert.Equal(shown, Strings(r.GetProperty("right")));
        Assert.Equal(toks.Select((t, i) => $"#{i} {t}"), Strings(r.GetProperty("tips")));
        Assert.Equal("</script><script>…", shown[1]);
        Assert.Equal(0, r.GetProperty("imgs").GetInt32());
        // hover query 6: exactly its lines (every head), and one box per (head, key) it draws
        int row6 = Enumerable.Range(0, 3).Sum(h => Kept(att[0][h], 6));
        Assert.Equal(row6, r.GetProperty("hoverQ").GetInt32());
        Assert.Equal(new[] { 6 }, r.GetProperty("hoverQrows").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(row6, r.GetProperty("boxes").GetInt32());
        Assert.Equal(All(0), r.GetProperty("afterLeave").GetInt32());
        // hover key 0 (the sink): every query's line to it
        int col0 = Enumerable.Range(0, 3).Sum(h => Enumerable.Range(0, n).Count(q => att[0][h][q, 0] >= 0.01f));
        Assert.Equal(col0, r.GetProperty("hoverK").GetInt32());
        Assert.Equal(new[] { 0 }, r.GetProperty("hoverKcols").EnumerateArray().Select(x => x.GetInt32()));
        // click head 1: its lines go; double-click head 2: only head 2, at full weight opacity; again: all
        Assert.Equal(All(0, skipHead: 1), r.GetProperty("noHead1").GetInt32());
        Assert.Equal(new[] { 0, 2 }, r.GetProperty("noHead1heads").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(Kept(att[0][2]), r.GetProperty("only2").GetInt32());
        Assert.Equal(new[] { 2 }, r.GetProperty("only2heads").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(1.0, r.GetProperty("opacity").GetDouble(), 3);   // one head selected: opacity = weight
        Assert.Equal(All(0), r.GetProperty("allAgain").GetInt32());
        // layer selector
        Assert.Equal(All(1), r.GetProperty("layer1").GetInt32());
        Assert.Contains("layer 1:", r.GetProperty("title1").GetString());
        Assert.Contains($"{All(1)} lines drawn", r.GetProperty("note1").GetString());
    }

    [Fact]
    public async Task ModelViewThumbnailClickEnlargesTheHead()
    {
        var browser = _fx.Require();
        string[] toks = AttentionViewTests.HostileTokens.Concat(new[] { " on", " the", " mat" }).ToArray();
        int n = toks.Length;
        var att = Enumerable.Range(0, 3).Select(l => Enumerable.Range(0, 4).Select(h => AttentionViewTests.Causal(n, 3 + 10 * l + h)).ToArray()).ToArray();
        var view = new ModelView(toks, att, title: "Model view " + HostileScript);
        var page = new HtmlReport("Model view test").AddView(view).ToPage();
        const string interact =
            "(function(){" + Helpers + "var r=mv(),s={};" +
            "s.thumbs=r.querySelectorAll('.dsn-mv-thumb').length;s.title=r.querySelector('.dsn-av-title').textContent;" +
            "s.thumbLines=r.querySelectorAll('.dsn-mv-thumb[data-layer=\"1\"][data-head=\"2\"] line').length;" +
            "s.closedBefore=r.querySelector('.dsn-mv-detail').style.display;" +
            "click(r.querySelector('.dsn-mv-click[data-layer=\"1\"][data-head=\"2\"]'));var d=r.querySelector('.dsn-mv-detail');" +
            "s.open=d.style.display;s.heading=d.querySelector('.dsn-mv-heading').textContent;s.detailLines=d.querySelectorAll('line').length;" +
            "s.dataOpen=r.getAttribute('data-open');s.detailTokens=Array.prototype.map.call(d.querySelectorAll('.dsn-av-tok[data-side=\"q\"] text title'),function(t){return t.textContent;});" +
            "s.width=d.getBoundingClientRect().width;s.thumbWidth=r.querySelector('.dsn-mv-click').getBoundingClientRect().width;" +
            "over(d.querySelector('.dsn-av-tok[data-i=\"4\"] text'));s.hover=Array.prototype.filter.call(d.querySelectorAll('.dsn-mv-lines g'),function(g){return g.style.display!=='none';}).map(function(g){return +g.getAttribute('data-q');});" +
            "click(r.querySelector('.dsn-mv-click[data-layer=\"2\"][data-head=\"0\"]'));s.switched=d.querySelector('.dsn-mv-heading').textContent;" +
            "click(r.querySelector('.dsn-mv-click[data-layer=\"2\"][data-head=\"0\"]'));s.closed=d.style.display;s.dataOpenAfter=r.getAttribute('data-open');" +
            "s.imgs=document.querySelectorAll('img').length;return s;})()";
        var run = await browser.RunPageAsync(Write("model-view.html", page), Ready,
            "(function(){" + Helpers + "click(mv().querySelector('.dsn-mv-click[data-layer=\"1\"][data-head=\"2\"]'));return 1;})()", Timeout,
            width: 1000, height: 620, screenshotPath: ScreenshotPath("model-view.png"));
        AssertClean(run, "ModelView (enlarged)");
        run = await browser.RunPageAsync(Write("model-view.html", page), Ready, interact, Timeout);
        AssertClean(run, "ModelView");
        var r = run.Result;
        Assert.Equal(12, r.GetProperty("thumbs").GetInt32());
        Assert.StartsWith("Model view " + HostileScript + " — every layer × head", r.GetProperty("title").GetString());
        Assert.Equal(Kept(att[1][2]), r.GetProperty("thumbLines").GetInt32());   // 8 tokens ≤ 32: thumbnails not pooled
        Assert.Equal("none", r.GetProperty("closedBefore").GetString());
        Assert.Equal("", r.GetProperty("open").GetString());
        Assert.Equal("Layer 1, head 2", r.GetProperty("heading").GetString());
        Assert.Equal("1,2", r.GetProperty("dataOpen").GetString());
        Assert.Equal(Kept(att[1][2]), r.GetProperty("detailLines").GetInt32());
        Assert.True(r.GetProperty("width").GetDouble() > 2 * r.GetProperty("thumbWidth").GetDouble(), "the enlarged head is not larger than its thumbnail");
        Assert.Equal(toks.Select((t, i) => $"#{i} {t}"), Strings(r.GetProperty("detailTokens")));
        Assert.Equal(new[] { 4 }, r.GetProperty("hover").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal("Layer 2, head 0", r.GetProperty("switched").GetString());
        Assert.Equal("none", r.GetProperty("closed").GetString());
        Assert.Equal(JsonValueKind.Null, r.GetProperty("dataOpenAfter").ValueKind);
        Assert.Equal(0, r.GetProperty("imgs").GetInt32());
    }

    [Fact]
    public async Task DashboardShowsBothViews()
    {
        var browser = _fx.Require();
        string page = Dashboard.Build(SampleData.Dashboard());
        const string interact =
            "(function(){" + Helpers + "var r=hv(),m=mv(),s={};s.views=document.querySelectorAll('.dsn-attn-view').length;" +
            "s.lines=visible(r).length;over(tok(r,'q',3));s.hover=visible(r).length;" +
            "click(m.querySelector('.dsn-mv-click[data-layer=\"0\"][data-head=\"1\"]'));s.open=m.getAttribute('data-open');" +
            "s.dash=document.body.getAttribute('data-dsn-ready');s.imgs=document.querySelectorAll('img').length;return s;})()";
        var run = await browser.RunPageAsync(Write("dashboard-views.html", page), Ready + "&&document.body.getAttribute('data-dsn-ready')==='1'", interact, Timeout);
        AssertClean(run, "Dashboard with views");
        var r = run.Result;
        var att = SampleData.Dashboard().Attention!;
        Assert.Equal(2, r.GetProperty("views").GetInt32());
        Assert.Equal(Enumerable.Range(0, 4).Sum(h => Kept(att[0][h])), r.GetProperty("lines").GetInt32());
        Assert.Equal(Enumerable.Range(0, 4).Sum(h => Kept(att[0][h], 3)), r.GetProperty("hover").GetInt32());
        Assert.Equal("0,1", r.GetProperty("open").GetString());
        Assert.Equal("1", r.GetProperty("dash").GetString());
        Assert.Equal(0, r.GetProperty("imgs").GetInt32());
    }

    [Fact]
    public async Task BundledModelAt128TokensRendersBothViews()
    {
        var browser = _fx.Require();
        string dir = ChromiumFixture.FindRepoFile("data/checkpoints/deepseek-tiny-moe") ?? throw new InvalidOperationException("bundled checkpoint not found");
        var snap = AttentionViewTests.BundledSnapshot128(dir);
        var head = new HeadView(snap.Tokens, snap.Attention, layer: 1);
        var model = new ModelView(snap.Tokens, snap.Attention);
        string page = new HtmlReport("128 tokens").AddView(head).AddView(model).ToPage();
        _out.WriteLine($"page {page.Length / 1024} KB ({(page.Length - PlotlyJs.Source.Length) / 1024} KB without plotly.js)");
        const string interact =
            "(function(){" + Helpers + "var r=hv(),m=mv(),s={};var t0=performance.now();" +
            "s.all=visible(r).length;over(tok(r,'q',100));s.hover=visible(r).length;leave(r.querySelector('.dsn-hv-col[data-side=\"q\"]'));" +
            "s.hoverMs=performance.now()-t0;s.thumbs=m.querySelectorAll('.dsn-mv-thumb').length;" +
            "s.maxThumbRows=Math.max.apply(null,Array.prototype.map.call(m.querySelectorAll('.dsn-mv-thumb'),function(g){var ys={};Array.prototype.forEach.call(g.querySelectorAll('line'),function(l){ys[l.getAttribute('y1')]=1;});return Object.keys(ys).length;}));" +
            "click(m.querySelector('.dsn-mv-click[data-layer=\"3\"][data-head=\"1\"]'));s.detailLines=m.querySelectorAll('.dsn-mv-detail line').length;" +
            "s.note=m.querySelector('.dsn-av-note').textContent;return s;})()";
        var run = await browser.RunPageAsync(Write("views-128.html", page), Ready, interact, Timeout);
        AssertClean(run, "Views at 128 tokens");
        var r = run.Result;
        _out.WriteLine($"head view lines {r.GetProperty("all").GetInt32()}, hover+leave {r.GetProperty("hoverMs").GetDouble():F0} ms");
        Assert.Equal(Enumerable.Range(0, snap.Attention[1].Length).Sum(h => Kept(snap.Attention[1][h])), r.GetProperty("all").GetInt32());
        Assert.Equal(Enumerable.Range(0, snap.Attention[1].Length).Sum(h => Kept(snap.Attention[1][h], 100)), r.GetProperty("hover").GetInt32());
        Assert.Equal(snap.Attention.Length * snap.Attention[0].Length, r.GetProperty("thumbs").GetInt32());
        Assert.InRange(r.GetProperty("maxThumbRows").GetInt32(), 1, 32);          // pooled: at most 32 rows of lines per thumbnail
        Assert.Equal(Kept(snap.Attention[3][1]), r.GetProperty("detailLines").GetInt32());   // enlarged at full resolution
        Assert.Contains("blocks of 4 consecutive positions into 32 × 32 cells", r.GetProperty("note").GetString());
    }
}
