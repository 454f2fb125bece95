using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Experts;
using System.Text.Json;
using System.Text.RegularExpressions;
using DeepSeekNotebooks.Visualization.Charts;
using DeepSeekNotebooks.Visualization.Html;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

public class ModelViewAndDashboardTests
{
    [Fact]
    public void ArchitectureFromCounts()
    {
        var a = SampleData.Architecture;
        Assert.Equal(new[] { LayerKind.Dense, LayerKind.Moe, LayerKind.Moe, LayerKind.Moe }, a.Layers);
        Assert.Equal(new[] { 1, 2, 3 }, a.MoeLayers);
        Assert.Throws<ArgumentException>(() => ModelArchitecture.Create(2, _ => true, 4, 2, 1, expertsPerToken: 3));
        Assert.Throws<ArgumentException>(() => ModelArchitecture.Create(2, _ => true, 0, 2, 1, 1));
    }

    [Fact]
    public void ArchitectureFromConfigAndFullSizeScene()
    {
        // DeepSeek-V3's own shape (the DeepSeekV3 preset): 61 blocks, first 3 dense, 128 heads, 256 routed + 1 shared, top-8.
        var v3 = ModelArchitecture.From(DeepSeekNotebooks.Model.DeepSeekConfig.DeepSeekV3, "DeepSeek-V3");
        Assert.Equal(61, v3.Layers.Count);
        Assert.Equal(58, v3.MoeLayers.Count);
        Assert.Equal((128, 256, 1, 8), (v3.AttentionHeads, v3.RoutedExperts, v3.SharedExperts, v3.ExpertsPerToken));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var fig = Figure(ModelView3D.Build(v3));
        var routed = fig.GetProperty("data").EnumerateArray().First(t => Str(t, "name")!.StartsWith("routed"));
        Assert.Equal(58 * 256, routed.GetProperty("x").GetArrayLength());
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"full-size scene took {sw.Elapsed}");
        var tiny = ModelArchitecture.From(DeepSeekNotebooks.Model.DeepSeekConfig.TinyFullFeatured);
        Assert.Equal(tiny.Layers.Count, DeepSeekNotebooks.Model.DeepSeekConfig.TinyFullFeatured.NumHiddenLayers);
    }

    [Fact]
    public void ModelView3DWithoutRouting()
    {
        var fig = Figure(ModelView3D.Build(SampleData.Architecture));
        Assert.All(fig.GetProperty("data").EnumerateArray(), t => Assert.Equal("scatter3d", Str(t, "type")));
        Assert.StartsWith("golden-tiny (synthetic): 4 blocks (3 MoE), 4 heads, 16 routed + 2 shared experts", Str(fig, "layout", "title", "text"));
        Assert.Equal("depth (embedding → blocks → head)", Str(fig, "layout", "scene", "xaxis", "title", "text"));
        Assert.Equal("component", Str(fig, "layout", "scene", "zaxis", "title", "text"));
        var names = fig.GetProperty("data").EnumerateArray().Select(t => Str(t, "name")).ToList();
        Assert.Contains("attention heads", names);
        Assert.Contains("dense MLP", names);
        Assert.Contains("routed experts (16 per MoE layer, top-4)", names);
        Assert.Contains("shared experts (2 per MoE layer)", names);
        var routed = fig.GetProperty("data").EnumerateArray().First(t => Str(t, "name")!.StartsWith("routed"));
        Assert.Equal(3 * 16, routed.GetProperty("x").GetArrayLength());
        var heads = fig.GetProperty("data").EnumerateArray().First(t => Str(t, "name") == "attention heads");
        Assert.Equal(4 * 4, heads.GetProperty("x").GetArrayLength());
    }

    [Fact]
    public void ModelView3DRoutingFlows()
    {
        var arch = SampleData.Architecture;
        var routing = SampleData.Routing(arch);
        var chart = ModelView3D.Build(arch, SampleData.Tokens, routing);
        HostileSafe(chart);
        var fig = Figure(chart);
        var traces = fig.GetProperty("data").EnumerateArray().ToList();
        // one legend entry per token (escaped), flows binned by weight into line widths
        var legend = traces.Where(t => Str(t, "legendgroup")!.StartsWith("tok") && string.Equals(Str(t, "showlegend"), "true", StringComparison.OrdinalIgnoreCase)).Select(t => Str(t, "name")).ToList();
        Assert.Equal(SampleData.Tokens.Length, legend.Count);
        Assert.Contains("#3 &lt;img src=x onerror=alert(1)&gt;", legend);
        Assert.Contains("#5 ↵", legend);
        var flows = traces.Where(t => Str(t, "legendgroup")!.StartsWith("tok") && string.Equals(Str(t, "showlegend"), "false", StringComparison.OrdinalIgnoreCase)).ToList();
        int segments = flows.Sum(t => t.GetProperty("x").GetArrayLength()) / 3;
        Assert.Equal(SampleData.Tokens.Length * 3 * 4, segments); // tokens × MoE layers × top-k
        var widths = flows.Select(t => t.GetProperty("line").GetProperty("width").GetDouble()).Distinct().ToList();
        Assert.True(widths.Count >= 3, "weights should map onto several line widths");
        Assert.Contains(ModelView3D.FlowWidths[^1], widths);  // the largest weight gets the widest line
        // routed experts coloured by token count with an explained colour scale
        var routed = traces.First(t => Str(t, "name")!.StartsWith("routed"));
        Assert.Equal(SampleData.Tokens.Length * 4 * 3, routed.GetProperty("marker").GetProperty("color").EnumerateArray().Sum(x => x.GetDouble()));
        Assert.Contains("tokens of this input routed there", Str(routed, "marker", "colorbar", "title", "text"));
        string page = ModelView3D.Page(arch, SampleData.Tokens, routing, "3D " + HostileScript);
        OfflinePage(page);
        NoRawHostile(page);
        // invalid input
        Assert.Throws<ArgumentException>(() => ModelView3D.Build(arch, null, routing));
        Assert.Throws<ArgumentException>(() => ModelView3D.Build(arch, SampleData.Tokens, new[] { routing[0] with { Layer = 0 } }));
        Assert.Throws<ArgumentException>(() => ModelView3D.Build(arch, SampleData.Tokens[..3], routing));
    }

    [Fact]
    public void DashboardPageIsSelfContainedAndEscaped()
    {
        var data = SampleData.Dashboard();
        string page = Dashboard.Build(data);
        OfflinePage(page);
        NoRawHostile(page);
        Assert.Contains("<title>Dashboard for &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>", page);
        Assert.Single(Regex.Matches(page, "plotly.js v" + Regex.Escape(PlotlyJs.Version)));
        // the embedded JSON parses back to the data (script-safe escapes are JSON escapes)
        var m = Regex.Match(page, "<script type=\"application/json\" id=\"dsn-dashboard-data\">(.*?)</script>", RegexOptions.Singleline);
        Assert.True(m.Success);
        Assert.DoesNotContain("<", m.Groups[1].Value);
        var json = JsonDocument.Parse(m.Groups[1].Value).RootElement;
        Assert.Equal(SampleData.Tokens, json.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()).ToArray());
        Assert.Equal(4, json.GetProperty("attention").GetArrayLength());
        Assert.Equal(SampleData.Tokens.Length, json.GetProperty("attention")[1][2][5].GetArrayLength());
        Assert.Equal("Integrated gradients", json.GetProperty("attributions")[0].GetProperty("method").GetString());
        Assert.Equal(16, json.GetProperty("routedExperts").GetInt32());
        Assert.Equal(3, json.GetProperty("routing").GetArrayLength());
        Assert.Contains("id=\"dsn-layer\"", page);
        Assert.Contains("id=\"dsn-token\"", page);
    }

    [Fact]
    public void DashboardDataRoundTripsAndValidates()
    {
        var data = SampleData.Dashboard();
        var back = JsonSerializer.Deserialize<DashboardData>(JsonSerializer.Serialize(data))!;
        Assert.Equal(data.Tokens, back.Tokens);
        Assert.Equal(data.Attention![2][3].Row(7), back.Attention![2][3].Row(7));
        Assert.Equal(data.Routing![1].Tokens[4].Experts, back.Routing![1].Tokens[4].Experts);
        Assert.Equal(Dashboard.ToJson(data), Dashboard.ToJson(back));

        // optional parts may be missing; non-finite numbers become null
        var minimal = new DashboardData("t", new[] { "a", "b" }, Rollout: AttentionMatrix.FromRows(new[] { new[] { 1f, float.NaN }, new[] { 0.5f, 0.5f } }));
        Assert.Contains("\"rollout\":[[1,null],[0.5,0.5]]", Dashboard.ToJson(minimal));
        Assert.Contains("\"attention\":null", Dashboard.ToJson(minimal));
        Dashboard.Build(minimal);

        Assert.Throws<ArgumentException>(() => Dashboard.Build(data with { Rollout = AttentionMatrix.FromRows(new[] { new[] { 1f } }) }));
        Assert.Throws<ArgumentException>(() => Dashboard.Build(data with { Attributions = new Dictionary<string, double[]> { ["x"] = new[] { 1.0 } } }));
        Assert.Throws<ArgumentException>(() => Dashboard.Build(data with { RoutedExperts = 2 }));
        Assert.Throws<ArgumentException>(() => Dashboard.Build(data with { Tokens = Array.Empty<string>() }));
    }

    [Fact]
    public void DashboardSaveIsAtomic()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"dsn-dash-{Guid.NewGuid():N}");
        try
        {
            string path = Dashboard.Save(SampleData.Dashboard(), Path.Combine(dir, "sub", "d.html"));
            Assert.Equal(Dashboard.Build(SampleData.Dashboard()), File.ReadAllText(path));
            Dashboard.Save(new DashboardData("second", new[] { "x" }), path); // overwrite
            Assert.Contains("<title>second</title>", File.ReadAllText(path));
            Assert.Single(Directory.GetFiles(Path.Combine(dir, "sub"))); // no temp file left behind
            Assert.Throws<ArgumentException>(() => Dashboard.Save(new DashboardData("bad", Array.Empty<string>()), path));
            Assert.Contains("<title>second</title>", File.ReadAllText(path)); // failed save leaves the old file
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
