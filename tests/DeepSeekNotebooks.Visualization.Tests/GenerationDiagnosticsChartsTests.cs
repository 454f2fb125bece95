using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Indexer;
using DeepSeekNotebooks.Analysis.Streams;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Visualization.Charts;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>The V3.2/V4 diagnostics charts: titles, labelled axes, one trace per layer/source, values from the result.</summary>
public class GenerationDiagnosticsChartsTests
{
    private static IndexerDiagnosticsResult Indexer() => new()
    {
        Axis = IndexerKeyAxis.Tokens, Topk = 2, Ratio = 1, Prompts = new[] { new long[] { 5, 6, 7 } }, IndexerLayers = new[] { 0, 1 },
        Layers = new[] { new IndexerLayerSummary(0, 3, 2, 0.9, 0.7, 0.1, 0.05), new IndexerLayerSummary(1, 3, 2, 0.95, 0.85, 0.2, 0.1) },
        Queries = new[]
        {
            new IndexerQuery(0, 0, 0, 1, 1, 1, 0, 0), new IndexerQuery(0, 0, 1, 2, 2, 1, 0.1, 0), new IndexerQuery(0, 0, 2, 3, 2, 0.7, 0.2, 0.1),
            new IndexerQuery(0, 1, 0, 1, 1, 1, 0, 0), new IndexerQuery(0, 1, 1, 2, 2, 1, 0.3, 0), new IndexerQuery(0, 1, 2, 3, 2, 0.85, 0.3, 0.2),
        },
        ByPosition = new[] { new IndexerSelectionCount(0, 0, 3, 3) },
        ByDistance = new[] { new IndexerSelectionCount(0, 0, 3, 3), new IndexerSelectionCount(0, 1, 2, 2), new IndexerSelectionCount(0, 2, 0, 1), new IndexerSelectionCount(1, 0, 3, 3) },
        ByToken = new[] { new IndexerTokenSelection(0, 5, 3, 3) },
        Overlaps = new[] { new IndexerLayerOverlap(0, 1, 1, 0.5) },
    };

    private static HyperConnectionDiagnosticsResult Streams() => new()
    {
        Streams = 2, Prompts = new[] { new long[] { 1 } }, Tokens = 1,
        Sites = new[]
        {
            new HyperConnectionSiteStats(0, HyperConnectionSite.Attention, 1, 0.2, 1.1, 0.2, 0.2, new[] { 0.6, 0.4 }, new[] { 1.2, 0.3 }, 0, 0, 1.1, 0.3),
            new HyperConnectionSiteStats(0, HyperConnectionSite.Ffn, 2, 0.4, 0.9, 0.4, 0.5, new[] { 0.3, 0.7 }, new[] { 0.2, 1.5 }, 1, 1, 0.9, 0.5),
        },
        EmbeddingGain = 1.3, EmbeddingReadoutShare = 0.2, EffectiveDepth = 1.3, NominalDepth = 2, ReconstructionError = 1e-7,
    };

    private static CompressionDiagnosticsResult Compression() => new()
    {
        Prompts = new[] { new long[] { 1 } }, Queries = 1, SlidingWindow = 8,
        Layers = new[] { new CompressionLayerSummary(0, AttentionKind.SlidingWindow, 0, 0.7, 0, 0.3), new CompressionLayerSummary(1, AttentionKind.CompressedSparse, 4, 0.5, 0.3, 0.2) },
        ByDistance = new[]
        {
            new CompressionMass(0, AttentionKind.SlidingWindow, AttentionMassSource.Window, 0, 0, 0.4), new CompressionMass(0, AttentionKind.SlidingWindow, AttentionMassSource.Window, 4, 7, 0.3),
            new CompressionMass(0, AttentionKind.SlidingWindow, AttentionMassSource.Sink, -1, -1, 0.3),
            new CompressionMass(1, AttentionKind.CompressedSparse, AttentionMassSource.Window, 1, 1, 0.5), new CompressionMass(1, AttentionKind.CompressedSparse, AttentionMassSource.Compressed, 8, 15, 0.3),
            new CompressionMass(1, AttentionKind.CompressedSparse, AttentionMassSource.Sink, -1, -1, 0.2),
        },
    };

    [Fact]
    public void IndexerCharts_TitledAndLabelled_OneLinePerLayer_ValuesFromTheResult()
    {
        var r = Indexer();
        var recall = ChartAssert.Figure(GenerationDiagnosticsCharts.IndexerRecall(r));
        ChartAssert.Basics(GenerationDiagnosticsCharts.IndexerRecall(r), "scatter", $"Indexer recall: dense attention mass on the top-2 keys ({r.Note})", "query position", "recall (share of dense attention mass kept)", null);
        Assert.Equal(2, recall.GetProperty("data").GetArrayLength());
        Assert.Equal(0.85, ChartAssert.Trace(recall, 1).GetProperty("y")[2].GetDouble(), 12);
        var dist = ChartAssert.Figure(GenerationDiagnosticsCharts.IndexerSelectionByDistance(r));
        Assert.Equal(0.0, ChartAssert.Trace(dist, 0).GetProperty("y")[2].GetDouble(), 12);      // kept 0 of 1 at distance 2
        Assert.Equal("query − key (tokens)", ChartAssert.Str(dist, "layout", "xaxis", "title", "text"));
        var overlap = ChartAssert.Figure(GenerationDiagnosticsCharts.IndexerLayerOverlap(r));
        Assert.Equal(0.5, ChartAssert.Trace(overlap).GetProperty("z")[0][1].GetDouble(), 12);
        Assert.Equal(1.0, ChartAssert.Trace(overlap).GetProperty("z")[1][1].GetDouble(), 12);
    }

    [Fact]
    public void StreamCharts_TitledAndLabelled_TheEffectiveDepthInTheTitleComesFromTheResult()
    {
        var r = Streams();
        ChartAssert.Basics(GenerationDiagnosticsCharts.ReadoutByDepth(r), "bar", "Where the final readout was written: effective depth 1.30 of 2 sub-layers", "origin (block.site)", "mean share of the readout (norm)", null);
        var comb = ChartAssert.Figure(GenerationDiagnosticsCharts.CombDistances(r));
        Assert.Equal(0.5, ChartAssert.Trace(comb, 1).GetProperty("y")[1].GetDouble(), 12);
        Assert.Equal("distance from identity (fraction of identity–uniform)", ChartAssert.Str(comb, "layout", "yaxis", "title", "text"));
        var rw = ChartAssert.Figure(GenerationDiagnosticsCharts.StreamReadWrite(r));
        Assert.Equal(1.5, ChartAssert.Trace(rw).GetProperty("z")[1][3].GetDouble(), 12);        // site 0.ffn, write 1
    }

    [Fact]
    public void CompressionCharts_TitledAndLabelled_StackedTotals_LinesPerBlockAndSource()
    {
        var r = Compression();
        var totals = ChartAssert.Figure(GenerationDiagnosticsCharts.CompressionTotals(r));
        Assert.Equal("stack", ChartAssert.Str(totals, "layout", "barmode"));
        Assert.Equal(3, totals.GetProperty("data").GetArrayLength());
        Assert.Equal(0.3, ChartAssert.Trace(totals, 1).GetProperty("y")[1].GetDouble(), 12);
        var byDist = ChartAssert.Figure(GenerationDiagnosticsCharts.CompressionByDistance(r));
        Assert.Equal(3, byDist.GetProperty("data").GetArrayLength());                          // 0 window, 1 window, 1 compressed
        Assert.Equal(0.3, ChartAssert.Trace(byDist, 2).GetProperty("y")[4].GetDouble(), 12);    // bucket 8–15
        Assert.Equal("distance (tokens)", ChartAssert.Str(byDist, "layout", "xaxis", "title", "text"));
    }
}
