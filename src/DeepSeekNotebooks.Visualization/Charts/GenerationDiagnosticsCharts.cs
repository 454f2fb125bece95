using System.Globalization;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Indexer;
using DeepSeekNotebooks.Analysis.Streams;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>
/// Charts of the DeepSeek-V3.2 / V4 diagnostics (docs/generations-diagnostics.md): the indexer's recall, selection and
/// layer overlap; the mHC comb distances, stream reads/writes and readout by depth; attention mass on window, compressed
/// entries and sink. Every chart has a title and labelled axes; numbers shown come from the result.
/// </summary>
public static class GenerationDiagnosticsCharts
{
    private static string F(double v, string fmt = "0.###") => double.IsFinite(v) ? v.ToString(fmt, CultureInfo.InvariantCulture) : "n/a";

    /// <summary>Mean recall of the dense attention's mass on the indexer's kept keys by query position, one line per indexer layer.</summary>
    public static GenericChart IndexerRecall(IndexerDiagnosticsResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Queries.Length == 0) throw new ArgumentException("the result has no indexer decisions (no query saw a key)", nameof(result));
        var traces = result.IndexerLayers.Select(l =>
        {
            var byQuery = result.Queries.Where(q => q.Layer == l).GroupBy(q => q.Query).OrderBy(g => g.Key).ToArray();
            return Trace2D("scatter", ("mode", "lines+markers"), ("name", T($"block {l}")),
                ("x", byQuery.Select(g => g.Key).ToArray()), ("y", byQuery.Select(g => Num(g.Average(q => q.Recall))).ToArray()),
                ("hovertemplate", T($"block {l}") + ": query %{x}, recall %{y:.4f}<extra></extra>"));
        });
        string what = result.Axis == IndexerKeyAxis.Tokens ? "keys" : "compressed entries";
        return Chart(traces, $"Indexer recall: dense attention mass on the top-{result.Topk} {what} ({result.Note})",
            ("xaxis", Axis("query position")),
            ("yaxis", Axis("recall (share of dense attention mass kept)", ("range", new[] { 0.0, 1.05 }))),
            ("legend", Obj(("title", Title("indexer layer")))));
    }

    /// <summary>Selection rate (kept / visible) by query–key distance, one line per indexer layer.</summary>
    public static GenericChart IndexerSelectionByDistance(IndexerDiagnosticsResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var traces = result.IndexerLayers.Select(l =>
        {
            var rows = result.ByDistance.Where(r => r.Layer == l).OrderBy(r => r.Key).ToArray();
            return Trace2D("scatter", ("mode", "lines+markers"), ("name", T($"block {l}")),
                ("x", rows.Select(r => r.Key).ToArray()), ("y", rows.Select(r => Num(r.Rate)).ToArray()),
                ("customdata", rows.Select(r => new object[] { r.Selected, r.Visible }).ToArray()),
                ("hovertemplate", T($"block {l}") + ": distance %{x}, kept %{customdata[0]} of %{customdata[1]}<extra></extra>"));
        });
        string x = result.Axis == IndexerKeyAxis.Tokens ? "query − key (tokens)" : "query − last token of the entry (tokens)";
        return Chart(traces, $"How often the indexer keeps a key, by distance (top-{result.Topk})",
            ("xaxis", Axis(x)), ("yaxis", Axis("selection rate (kept / visible)", ("range", new[] { 0.0, 1.05 }))),
            ("legend", Obj(("title", Title("indexer layer")))));
    }

    /// <summary>Mean Jaccard overlap of the kept sets between indexer layers (1 on the diagonal).</summary>
    public static GenericChart IndexerLayerOverlap(IndexerDiagnosticsResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var layers = result.IndexerLayers;
        var z = new double[layers.Length, layers.Length];
        for (int i = 0; i < layers.Length; i++)
            for (int j = 0; j < layers.Length; j++)
            {
                if (i == j) { z[i, j] = 1; continue; }
                var o = result.Overlaps.SingleOrDefault(x => x.LayerA == Math.Min(layers[i], layers[j]) && x.LayerB == Math.Max(layers[i], layers[j]));
                z[i, j] = o?.MeanJaccard ?? double.NaN;
            }
        var labels = layers.Select(l => $"block {l}").ToArray();
        return GeneralCharts.Heatmap("Selection stability: mean Jaccard overlap of the kept keys between layers (queries that had to choose)",
            "indexer layer", "indexer layer", labels, labels, z, "mean Jaccard", showValues: true);
    }

    /// <summary>Comb matrices' distance from the identity as a fraction of the identity–uniform distance, per site, and the same for the product along depth.</summary>
    public static GenericChart CombDistances(HyperConnectionDiagnosticsResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var cats = result.Sites.Select(s => $"{s.Layer}.{(s.Site == HyperConnectionSite.Attention ? "attn" : "ffn")}").ToArray();
        var x = Enumerable.Range(0, cats.Length).ToArray();
        var traces = new[]
        {
            Trace2D("bar", ("name", T("comb C at the site")), ("x", x), ("y", result.Sites.Select(s => Num(s.CombFraction)).ToArray())),
            Trace2D("bar", ("name", T("product C_1 ⋯ C_d up to the site")), ("x", x), ("y", result.Sites.Select(s => Num(s.TransportFraction)).ToArray())),
        };
        return Chart(traces, $"mHC stream mixing: ‖C − I‖ / ‖I − J/n‖ per site (0 = streams kept apart, 1 = as far as uniform mixing; n = {result.Streams})",
            ("barmode", "group"), ("xaxis", LabelledAxis("block.site", cats, tokens: false)), ("yaxis", Axis("distance from identity (fraction of identity–uniform)")),
            ("legend", Obj(("title", Title("matrix")))));
    }

    /// <summary>Heatmap of the mean read (pre) and write (post) weight of every stream at every site.</summary>
    public static GenericChart StreamReadWrite(HyperConnectionDiagnosticsResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        int n = result.Streams;
        var rows = result.Sites.Select(s => $"{s.Layer}.{(s.Site == HyperConnectionSite.Attention ? "attn" : "ffn")}").ToArray();
        var cols = Enumerable.Range(0, n).Select(j => $"read {j}").Concat(Enumerable.Range(0, n).Select(j => $"write {j}")).ToArray();
        var z = new double[rows.Length, 2 * n];
        for (int i = 0; i < rows.Length; i++)
            for (int j = 0; j < n; j++) { z[i, j] = result.Sites[i].MeanPre[j]; z[i, n + j] = result.Sites[i].MeanPost[j]; }
        return GeneralCharts.Heatmap("Which stream each sub-layer reads (pre) and writes (post): mean mHC weights", "stream", "block.site", cols, rows, z, "mean weight", showValues: true);
    }

    /// <summary>Share of the final readout written at each depth (embedding, then every sub-layer), with the effective depth in the title.</summary>
    public static GenericChart ReadoutByDepth(HyperConnectionDiagnosticsResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var cats = new[] { "embedding" }.Concat(result.Sites.Select(s => $"{s.Layer}.{(s.Site == HyperConnectionSite.Attention ? "attn" : "ffn")}")).ToArray();
        var shares = new[] { result.EmbeddingReadoutShare }.Concat(result.Sites.Select(s => s.MeanReadoutShare)).ToArray();
        var gains = new[] { result.EmbeddingGain }.Concat(result.Sites.Select(s => s.MeanGain)).ToArray();
        var trace = Trace2D("bar", ("name", T("readout share")), ("x", Enumerable.Range(0, cats.Length).ToArray()), ("y", shares.Select(Num).ToArray()),
            ("customdata", gains.Select(Num).ToArray()), ("hovertemplate", "%{y:.3f} of the readout; path gain %{customdata:.3f}<extra></extra>"));
        return Chart(new[] { trace }, $"Where the final readout was written: effective depth {F(result.EffectiveDepth, "0.00")} of {result.NominalDepth} sub-layers",
            ("xaxis", LabelledAxis("origin (block.site)", cats, tokens: false)), ("yaxis", Axis("mean share of the readout (norm)")));
    }

    /// <summary>Stacked mean attention mass per block on the window, the compressed entries and the sink.</summary>
    public static GenericChart CompressionTotals(CompressionDiagnosticsResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var cats = result.Layers.Select(l => $"{l.Layer} {KindName(l.Kind, l.Ratio)}").ToArray();
        var x = Enumerable.Range(0, cats.Length).ToArray();
        var traces = new[]
        {
            Trace2D("bar", ("name", T($"window (last {result.SlidingWindow} tokens)")), ("x", x), ("y", result.Layers.Select(l => Num(l.Window)).ToArray())),
            Trace2D("bar", ("name", T("compressed entries")), ("x", x), ("y", result.Layers.Select(l => Num(l.Compressed)).ToArray())),
            Trace2D("bar", ("name", T("sink (no token)")), ("x", x), ("y", result.Layers.Select(l => Num(l.Sink)).ToArray())),
        };
        return Chart(traces, "Where V4 attention goes: sliding-window tokens, compressed entries, sink (mean per query and head)",
            ("barmode", "stack"), ("xaxis", LabelledAxis("block and attention kind", cats, tokens: false)), ("yaxis", Axis("attention mass", ("range", new[] { 0.0, 1.0 }))),
            ("legend", Obj(("title", Title("source")))));
    }

    /// <summary>Mean attention mass by distance bucket, one line per block and source (window / compressed).</summary>
    public static GenericChart CompressionByDistance(CompressionDiagnosticsResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var rows = result.ByDistance.Where(r => r.Source != AttentionMassSource.Sink).ToArray();
        if (rows.Length == 0) throw new ArgumentException("the result has no window or compressed mass", nameof(result));
        int buckets = rows.Max(r => Bucket(r.From)) + 1;
        var labels = Enumerable.Range(0, buckets).Select(b => b == 0 ? "0" : $"{1 << (b - 1)}–{(1 << b) - 1}").ToArray();
        var traces = rows.GroupBy(r => (r.Layer, r.Kind, r.Source)).OrderBy(g => g.Key.Layer).ThenBy(g => g.Key.Source).Select(g =>
        {
            var y = new double?[buckets];
            foreach (var r in g) y[Bucket(r.From)] = r.Mass;
            var ratio = result.Layers.Single(l => l.Layer == g.Key.Layer).Ratio;
            string name = $"{g.Key.Layer} {KindName(g.Key.Kind, ratio)}: {(g.Key.Source == AttentionMassSource.Window ? "window" : "compressed")}";
            return Trace2D("scatter", ("mode", "lines+markers"), ("name", T(name)), ("x", Enumerable.Range(0, buckets).ToArray()), ("y", y),
                ("line", Obj(("dash", g.Key.Source == AttentionMassSource.Window ? "solid" : "dot"))));
        });
        return Chart(traces, "Attention mass by query–key distance: raw window tokens vs compressed entries (entries at their last pooled token)",
            ("xaxis", LabelledAxis("distance (tokens)", labels, tokens: false)), ("yaxis", Axis("mean attention mass per query and head")),
            ("legend", Obj(("title", Title("block and source")))));
    }

    private static int Bucket(int from) => from == 0 ? 0 : 1 + (int)Math.Round(Math.Log2(from));

    private static string KindName(Model.AttentionKind kind, int ratio) => kind switch
    {
        Model.AttentionKind.SlidingWindow => "sliding",
        Model.AttentionKind.CompressedSparse => $"CSA (÷{ratio})",
        Model.AttentionKind.HeavilyCompressed => $"HCA (÷{ratio})",
        _ => kind.ToString(),
    };
}
