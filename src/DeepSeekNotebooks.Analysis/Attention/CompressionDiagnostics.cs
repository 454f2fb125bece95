using System.Text.Json;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attention;

/// <summary>Where a DeepSeek-V4 attention head's probability mass goes.</summary>
public enum AttentionMassSource
{
    /// <summary>Raw tokens of the sliding window.</summary>
    Window,
    /// <summary>Compressed entries (CSA: the indexer's picks; HCA: every completed entry).</summary>
    Compressed,
    /// <summary>The learnable sink: mass that goes to no token.</summary>
    Sink,
}

/// <summary>Mean attention mass per query and head from one source at query–key distances [From, To] in one block.</summary>
/// <param name="Layer">Block index.</param>
/// <param name="Kind">The block's attention kind.</param>
/// <param name="Source">Window, compressed or sink (the sink has no distance: From = To = −1).</param>
/// <param name="From">Smallest distance of the bucket (query − key; for an entry, query − its last pooled token).</param>
/// <param name="To">Largest distance of the bucket.</param>
/// <param name="Mass">Mean over queries and heads of the mass in the bucket.</param>
public sealed record CompressionMass(int Layer, AttentionKind Kind, AttentionMassSource Source, int From, int To, double Mass);

/// <summary>One block's mean mass per query and head on the window, the compressed entries and the sink (they sum to 1).</summary>
public sealed record CompressionLayerSummary(int Layer, AttentionKind Kind, int Ratio, double Window, double Compressed, double Sink);

/// <summary>
/// Compression diagnostics of a DeepSeek-V4 model on a set of prompts (<see cref="CompressionDiagnostics.Measure(DeepSeekModel, IReadOnlyList{long[]})"/>):
/// attention mass on sliding-window tokens vs compressed entries vs the sink, by distance bucket and block. Plain data; JSON round-trips.
/// </summary>
public sealed record CompressionDiagnosticsResult
{
    /// <summary>The prompts, as token ids.</summary>
    public required long[][] Prompts { get; init; }
    /// <summary>Queries (tokens) averaged over, per block.</summary>
    public required long Queries { get; init; }
    /// <summary>The sliding window (raw tokens each query sees, itself included).</summary>
    public required int SlidingWindow { get; init; }
    /// <summary>Every block's totals.</summary>
    public required CompressionLayerSummary[] Layers { get; init; }
    /// <summary>Mass by block, source and distance bucket (buckets 0, 1, 2–3, 4–7, 8–15, …; empty buckets omitted).</summary>
    public required CompressionMass[] ByDistance { get; init; }

    /// <summary>The block totals averaged over the blocks of each attention kind present.</summary>
    [JsonIgnore]
    public CompressionLayerSummary[] ByKind => Layers.GroupBy(l => l.Kind).OrderBy(g => g.Key)
        .Select(g => new CompressionLayerSummary(-1, g.Key, g.First().Ratio, g.Average(l => l.Window), g.Average(l => l.Compressed), g.Average(l => l.Sink))).ToArray();

    /// <summary>
    /// Mass by attention kind, source and distance bucket: each bucket's mass averaged over the blocks of that kind (a block
    /// with nothing in the bucket counts as 0), so each kind's rows sum to 1 like a block's. Layer is −1.
    /// </summary>
    [JsonIgnore]
    public CompressionMass[] ByKindAndDistance => ByDistance.GroupBy(r => (r.Kind, r.Source, r.From, r.To))
        .OrderBy(g => g.Key.Kind).ThenBy(g => g.Key.Source).ThenBy(g => g.Key.From)
        .Select(g => new CompressionMass(-1, g.Key.Kind, g.Key.Source, g.Key.From, g.Key.To, g.Sum(r => r.Mass) / Layers.Count(l => l.Kind == g.Key.Kind))).ToArray();

    /// <summary><see cref="ByKind"/> as a DataFrame (kind, ratio, window, compressed, sink).</summary>
    public DataFrame KindFrame()
    {
        var rows = ByKind;
        return new DataFrame(Frames.Str("kind", rows, r => r.Kind.ToString()), Frames.Int("ratio", rows, r => r.Ratio),
            Frames.Double("window", rows, r => r.Window), Frames.Double("compressed", rows, r => r.Compressed), Frames.Double("sink", rows, r => r.Sink));
    }

    /// <summary>Block totals as a DataFrame (layer, kind, ratio, window, compressed, sink).</summary>
    public DataFrame ToDataFrame() => new(
        Frames.Int("layer", Layers, r => r.Layer), Frames.Str("kind", Layers, r => r.Kind.ToString()), Frames.Int("ratio", Layers, r => r.Ratio),
        Frames.Double("window", Layers, r => r.Window), Frames.Double("compressed", Layers, r => r.Compressed), Frames.Double("sink", Layers, r => r.Sink));

    /// <summary>Mass by distance as a DataFrame (layer, kind, source, from, to, mass).</summary>
    public DataFrame DistanceFrame() => new(
        Frames.Int("layer", ByDistance, r => r.Layer), Frames.Str("kind", ByDistance, r => r.Kind.ToString()), Frames.Str("source", ByDistance, r => r.Source.ToString()),
        Frames.Int("from", ByDistance, r => r.From), Frames.Int("to", ByDistance, r => r.To), Frames.Double("mass", ByDistance, r => r.Mass));

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>JSON (System.Text.Json; enums by name).</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(this, new JsonSerializerOptions(JsonOptions) { WriteIndented = indented });

    /// <summary>Reads <see cref="ToJson"/>'s output.</summary>
    public static CompressionDiagnosticsResult FromJson(string json) =>
        JsonSerializer.Deserialize<CompressionDiagnosticsResult>(json, JsonOptions) ?? throw new JsonException("the JSON holds no compression diagnostics");
}

/// <summary>
/// Where DeepSeek-V4's attention puts its mass (official V4 <c>inference/model.py</c>: each query attends its sliding window
/// of raw tokens, plus compressed entries — CSA: the indexer's top-k of the ratio-4 entries; HCA: every completed entry — plus a
/// per-head sink), by query–key distance. Read from the <c>attn.pattern</c> (slot probabilities on the key axis of raw tokens
/// then entries) and <c>attn.sink_share</c> hook points; an entry's distance is the query's position minus the last token the
/// entry pools (<see cref="CompressedAttention.EntryTokens"/>), the most recent token in it.
/// </summary>
public static class CompressionDiagnostics
{
    /// <summary>Null when <paramref name="config"/> has DeepSeek-V4 attention; otherwise one line saying why there is nothing to diagnose.</summary>
    public static string? Unavailable(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.CompressedAttention is null ? "the model has no DeepSeek-V4 attention (sliding window / CSA / HCA with sinks): every key is a raw token, nothing is compressed" : null;
    }

    /// <summary>The diagnostics of <paramref name="checkpoint"/>'s model on <paramref name="prompts"/>.</summary>
    public static CompressionDiagnosticsResult Measure(Checkpoint checkpoint, IReadOnlyList<long[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return Measure(checkpoint.Model, prompts);
    }

    /// <summary>Runs each prompt through <paramref name="model"/> (DeepSeek-V4 attention) and tallies every block's attention mass.</summary>
    /// <exception cref="ArgumentException">No prompts, an empty or invalid prompt, or a model without DeepSeek-V4 attention.</exception>
    public static CompressionDiagnosticsResult Measure(DeepSeekModel model, IReadOnlyList<long[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        var c = model.Config;
        var a = c.CompressedAttention ?? throw new ArgumentException("the model has no DeepSeek-V4 attention (sliding window / CSA / HCA with sinks); compression diagnostics need a DeepSeek-V4 model", nameof(model));
        Streams.HyperConnectionDiagnostics.CheckPrompts(model, prompts);
        var layers = Enumerable.Range(0, c.NumHiddenLayers)
            .Where(l => c.AttentionKindOf(l) is AttentionKind.SlidingWindow or AttentionKind.CompressedSparse or AttentionKind.HeavilyCompressed).ToArray();
        var names = layers.SelectMany(l => new[] { HookPoints.AttnPattern(l), HookPoints.AttnSinkShare(l) }).ToArray();
        var sums = layers.ToDictionary(l => l, _ => new Tally());
        long queries = 0;
        foreach (var ids in prompts)
        {
            using var scope = NewDisposeScope();
            using var trace = model.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Exact(names) });
            foreach (var l in layers)
                sums[l].Add(trace[HookPoints.AttnPattern(l)][0], trace[HookPoints.AttnSinkShare(l)][0], c.CompressRatio(l));
            queries += ids.Length;
        }
        var summaries = new List<CompressionLayerSummary>();
        var rows = new List<CompressionMass>();
        foreach (var l in layers)
        {
            var t = sums[l];
            var kind = c.AttentionKindOf(l);
            double norm = t.Count;
            summaries.Add(new CompressionLayerSummary(l, kind, c.CompressRatio(l), t.Window.Sum() / norm, t.Compressed.Sum() / norm, t.Sink / norm));
            for (int src = 0; src < 2; src++)
            {
                var v = src == 0 ? t.Window : t.Compressed;
                for (int b = 0; b < v.Count; b++)
                {
                    if (v[b] == 0) continue;
                    var (from, to) = BucketRange(b);
                    rows.Add(new CompressionMass(l, kind, src == 0 ? AttentionMassSource.Window : AttentionMassSource.Compressed, from, to, v[b] / norm));
                }
            }
            rows.Add(new CompressionMass(l, kind, AttentionMassSource.Sink, -1, -1, t.Sink / norm));
        }
        return new CompressionDiagnosticsResult
        {
            Prompts = prompts.Select(p => p.ToArray()).ToArray(), Queries = queries, SlidingWindow = a.SlidingWindow,
            Layers = summaries.ToArray(), ByDistance = rows.ToArray(),
        };
    }

    /// <summary>Distance bucket: 0 → 0, 1 → 1, 2–3 → 2, 4–7 → 3, …, i.e. ⌊log2 d⌋ + 1 for d ≥ 1.</summary>
    internal static int Bucket(int distance)
    {
        if (distance < 0) throw new ArgumentOutOfRangeException(nameof(distance), distance, "a visible key is never after its query");
        return distance == 0 ? 0 : 1 + (int)Math.Floor(Math.Log2(distance) + 1e-12);
    }

    /// <summary>The distances bucket <paramref name="b"/> covers, inclusive.</summary>
    internal static (int From, int To) BucketRange(int b) => b == 0 ? (0, 0) : (1 << (b - 1), (1 << b) - 1);

    /// <summary>Sums of mass per (source, bucket) over (head, query) pairs of one block.</summary>
    internal sealed class Tally
    {
        public List<double> Window { get; } = new();
        public List<double> Compressed { get; } = new();
        public double Sink { get; private set; }
        /// <summary>(head, query) pairs added.</summary>
        public long Count { get; private set; }

        /// <summary>pattern [heads, s, s + C] (raw tokens, then entries), sink [heads, s], compress ratio (0: no entries).</summary>
        public void Add(Tensor pattern, Tensor sink, int ratio)
        {
            int h = (int)pattern.shape[0], s = (int)pattern.shape[1], width = (int)pattern.shape[2];
            if (sink.shape[0] != h || sink.shape[1] != s)
                throw new ArgumentException($"sink shares must be [{h}, {s}] (heads, queries), got [{string.Join(", ", sink.shape)}]", nameof(sink));
            var p = pattern.to(float64).contiguous().data<double>().ToArray();
            var k = sink.to(float64).contiguous().data<double>().ToArray();
            int entries = width - s;
            if (entries > 0 && ratio < 2) throw new ArgumentException($"the pattern has {entries} compressed-entry columns but the compress ratio is {ratio}", nameof(ratio));
            var last = Enumerable.Range(0, entries).Select(e => CompressedAttention.EntryTokens(ratio, e).Last).ToArray();
            for (int hh = 0; hh < h; hh++)
                for (int q = 0; q < s; q++)
                {
                    int row = (hh * s + q) * width;
                    for (int col = 0; col <= q; col++) Put(Window, Bucket(q - col), p[row + col]);
                    for (int e = 0; e < entries; e++)
                    {
                        double m = p[row + s + e];
                        if (m == 0) continue;
                        if (last[e] > q) throw new InvalidOperationException($"query {q} puts mass {m} on compressed entry {e}, which pools tokens up to {last[e]}: a future entry");
                        Put(Compressed, Bucket(q - last[e]), m);
                    }
                    Sink += k[hh * s + q];
                    Count++;
                }
        }

        private static void Put(List<double> v, int b, double m)
        {
            while (v.Count <= b) v.Add(0);
            v[b] += m;
        }
    }
}
