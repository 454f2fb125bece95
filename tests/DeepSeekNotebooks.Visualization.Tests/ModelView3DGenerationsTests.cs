using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Visualization.Charts;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>The architecture and its 3D view for DeepSeek-V3.2 and V4 configurations (golden fixtures); V3 unchanged.</summary>
public class ModelView3DGenerationsTests
{
    internal static string Fixture(string generation)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DeepSeekNotebooks.sln"))) dir = dir.Parent;
        return Path.Combine(dir!.FullName, "tests", "fixtures", "golden", generation, "public.hf_config.json");
    }

    private static List<System.Text.Json.JsonElement> Traces(ModelArchitecture a) => Figure(ModelView3D.Build(a)).GetProperty("data").EnumerateArray().ToList();

    [Fact]
    public void V4_Architecture_HasItsLayerKinds_HashLayer_AndStreams()
    {
        // golden/v4 README: layer 0 sliding + hash MoE, 1 CSA ratio 4, 2 HCA ratio 8, 3 sliding; window 8, indexer top-2, hc_mult 4.
        var a = ModelArchitecture.From(DeepSeekConfig.Load(Fixture("v4")));
        Assert.Equal(new[] { LayerKind.HashMoe, LayerKind.Moe, LayerKind.Moe, LayerKind.Moe }, a.Layers);
        Assert.Equal(new[] { AttentionKind.SlidingWindow, AttentionKind.CompressedSparse, AttentionKind.HeavilyCompressed, AttentionKind.SlidingWindow }, a.AttentionKinds);
        Assert.Equal(new[] { 0, 4, 8, 0 }, a.CompressRatios);
        Assert.Equal((4, 8, 2), (a.Streams, a.SlidingWindow, a.IndexTopK));
        Assert.Equal(new[] { 0, 1, 2, 3 }, a.MoeLayers);
        Assert.Equal(new[] { 0 }, a.HashLayers);
        Assert.Equal("CSA ×4 (top-2 + window 8)", a.AttentionLabel(1));
        Assert.Equal("HCA ×8 (+ window 8)", a.AttentionLabel(2));
        Assert.Equal("SWA (window 8)", a.AttentionLabel(3));
    }

    [Fact]
    public void V4_Scene_DrawsOneLanePerStream_TheMixingSites_AndTheKindOfEveryBlock()
    {
        var a = ModelArchitecture.From(DeepSeekConfig.Load(Fixture("v4")));
        var traces = Traces(a);
        var names = traces.Select(t => Str(t, "name")).ToList();
        Assert.DoesNotContain("residual stream", names);
        var lanes = traces.Single(t => Str(t, "name") == "residual streams (4 hyper-connection lanes, mHC)");
        var ys = lanes.GetProperty("y").EnumerateArray().Where(v => v.ValueKind == System.Text.Json.JsonValueKind.Number).Select(v => v.GetDouble()).Distinct().ToList();
        Assert.Equal(4, ys.Count);                                                        // four distinct lanes
        var mix = traces.Single(t => Str(t, "name") == "mHC stream mixing (pre / post / comb)");
        Assert.Equal(2 * 4, mix.GetProperty("x").GetArrayLength());                        // attention and FFN site of 4 blocks
        var kinds = traces.Single(t => Str(t, "name") == "attention kind per block");
        Assert.Equal(new[] { "SWA", "CSA×4", "HCA×8", "SWA" }, kinds.GetProperty("text").EnumerateArray().Select(v => v.GetString()));
        var routed = traces.First(t => Str(t, "name")!.StartsWith("routed"));
        var hover = routed.GetProperty("hovertext").EnumerateArray().Select(v => v.GetString()!).ToList();
        Assert.Equal(8, hover.Count(h => h.Contains("hash-routed (tid2eid")));             // the 8 experts of layer 0 only
        Assert.All(hover.Where(h => h.StartsWith("layer 0 ")), h => Assert.Contains("hash-routed", h));
        var fig = Figure(ModelView3D.Build(a));
        Assert.Contains("L0 (hash)", fig.GetProperty("layout").GetProperty("scene").GetProperty("xaxis").GetProperty("ticktext").EnumerateArray().Select(v => v.GetString()));
        Assert.Contains("1 hash-routed, attention 2× SWA / 1× CSA / 1× HCA, 4 hyper-connection streams", Str(fig, "layout", "title", "text"));
        Assert.StartsWith("DeepSeek-V4-style model (4 blocks)", Str(fig, "layout", "title", "text"));
    }

    [Fact]
    public void V32_Scene_LabelsEveryBlockMlaWithTheIndexer_OneStream()
    {
        var a = ModelArchitecture.From(DeepSeekConfig.Load(Fixture("v32")));
        Assert.Equal(new[] { LayerKind.Dense, LayerKind.Moe, LayerKind.Moe }, a.Layers);
        Assert.All(a.AttentionKinds!, k => Assert.Equal(AttentionKind.MlaWithIndexer, k));
        Assert.Equal(1, a.Streams);
        Assert.Equal("MLA + indexer (top-6)", a.AttentionLabel(0));
        var traces = Traces(a);
        Assert.Contains(traces, t => Str(t, "name") == "residual stream");
        Assert.Equal(new[] { "MLA+idx", "MLA+idx", "MLA+idx" }, traces.Single(t => Str(t, "name") == "attention kind per block").GetProperty("text").EnumerateArray().Select(v => v.GetString()));
        var heads = traces.Single(t => Str(t, "name") == "attention heads");
        Assert.All(heads.GetProperty("hovertext").EnumerateArray(), h => Assert.EndsWith("MLA + indexer (top-6)", h.GetString()));
    }

    [Fact]
    public void V3_Architecture_AndScene_AreAsBefore()
    {
        var a = ModelArchitecture.From(DeepSeekConfig.DeepSeekV3, "DeepSeek-V3");
        Assert.Null(a.AttentionKinds);
        Assert.Null(a.CompressRatios);
        Assert.Equal(1, a.Streams);
        Assert.Empty(a.HashLayers);
        Assert.DoesNotContain(LayerKind.HashMoe, a.Layers);
        var traces = Traces(ModelArchitecture.From(DeepSeekConfig.TinyFullFeatured));
        Assert.DoesNotContain(traces, t => Str(t, "name") == "attention kind per block");
        Assert.DoesNotContain(traces, t => Str(t, "name")!.StartsWith("mHC"));
        Assert.StartsWith("DeepSeek-V3-style model (", Str(Figure(ModelView3D.Build(ModelArchitecture.From(DeepSeekConfig.TinyFullFeatured))), "layout", "title", "text"));
        // Inconsistent per-block lists are refused naming the field.
        var bad = a with { AttentionKinds = new[] { AttentionKind.Mla } };
        Assert.Contains("AttentionKinds has 1 entries for 61 blocks", Assert.Throws<ArgumentException>(bad.Validate).Message);
    }
}
