using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// Compression diagnostics: the distance buckets and the tally on a hand-built pattern, and on the golden tiny V4 model
/// (sliding, CSA ratio 4, HCA ratio 8, sliding; window 8) what the architecture fixes: window + compressed + sink = 1 per
/// query, no compressed mass in sliding blocks, no window mass at distance ≥ the window.
/// </summary>
public class CompressionDiagnosticsTests
{
    [Fact]
    public void Buckets_ArePowersOfTwo()
    {
        Assert.Equal(new[] { 0, 1, 2, 2, 3, 3, 3, 3, 4 }, Enumerable.Range(0, 9).Select(CompressionDiagnostics.Bucket));
        Assert.Equal((4, 7), CompressionDiagnostics.BucketRange(3));
        Assert.Equal((0, 0), CompressionDiagnostics.BucketRange(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => CompressionDiagnostics.Bucket(-1));
    }

    [Fact]
    public void Tally_OfAHandBuiltPattern()
    {
        using var scope = NewDisposeScope();
        // One head, 4 tokens, ratio 2: entries 0 (tokens 0–1) and 1 (tokens 2–3). Query 3 spreads its mass; the others give all to the sink.
        var p = zeros(1, 4, 6, dtype: float64);
        p[0, 3, 3] = tensor(0.2); p[0, 3, 2] = tensor(0.1);      // window: distance 0 and 1
        p[0, 3, 4] = tensor(0.3);                                 // entry 0, last token 1: distance 2
        p[0, 3, 5] = tensor(0.1);                                 // entry 1, last token 3: distance 0
        var sink = tensor(new double[] { 1, 1, 1, 0.3 }).view(1, 4);
        var t = new CompressionDiagnostics.Tally();
        t.Add(p, sink, 2);
        Assert.Equal(new[] { 0.2, 0.1, 0 }, t.Window.Select(x => Math.Round(x, 12)));
        Assert.Equal(new[] { 0.1, 0, 0.3 }, t.Compressed.Select(x => Math.Round(x, 12)));
        Assert.Equal(3.3, t.Sink, 12);
        Assert.Equal(4, t.Count);
        // Mass on an entry that pools a future token is a bug upstream: refused.
        p[0, 1, 5] = tensor(0.5);
        Assert.Contains("a future entry", Assert.Throws<InvalidOperationException>(() => new CompressionDiagnostics.Tally().Add(p, sink, 2)).Message);
    }

    [Fact]
    public void V4_MassSumsToOne_SlidingBlocksHaveNoCompressedMass_TheWindowEndsAtItsWidth()
    {
        using var ckpt = GenerationFixtures.V4();
        var r = CompressionDiagnostics.Measure(ckpt, new[] { GenerationFixtures.Prompt(40, 21), GenerationFixtures.Prompt(17, 22) });
        Assert.Equal(57, r.Queries);
        Assert.Equal(8, r.SlidingWindow);
        Assert.Equal(new[] { AttentionKind.SlidingWindow, AttentionKind.CompressedSparse, AttentionKind.HeavilyCompressed, AttentionKind.SlidingWindow }, r.Layers.Select(l => l.Kind));
        foreach (var l in r.Layers)
        {
            Assert.Equal(1, l.Window + l.Compressed + l.Sink, 5);
            var rows = r.ByDistance.Where(x => x.Layer == l.Layer).ToList();
            Assert.Equal(1, rows.Sum(x => x.Mass), 5);
            Assert.DoesNotContain(rows, x => x.Source == AttentionMassSource.Window && x.From >= 8);
            if (l.Kind == AttentionKind.SlidingWindow) { Assert.Equal(0, l.Compressed); Assert.DoesNotContain(rows, x => x.Source == AttentionMassSource.Compressed); }
            else Assert.True(l.Compressed > 0, $"block {l.Layer} ({l.Kind}) puts no mass on its compressed entries");
        }
        var byKind = r.ByKind;
        Assert.Equal(3, byKind.Length);
        Assert.Equal((r.Layers[0].Window + r.Layers[3].Window) / 2, byKind.Single(k => k.Kind == AttentionKind.SlidingWindow).Window, 12);
        // By kind and distance: each kind's rows sum to 1; the sliding kind's bucket 0 is the mean of blocks 0 and 3.
        foreach (var g in r.ByKindAndDistance.GroupBy(x => x.Kind)) Assert.Equal(1, g.Sum(x => x.Mass), 5);
        double b0 = r.ByDistance.Where(x => x.Kind == AttentionKind.SlidingWindow && x.Source == AttentionMassSource.Window && x.From == 0).Sum(x => x.Mass) / 2;
        Assert.Equal(b0, r.ByKindAndDistance.Single(x => x.Kind == AttentionKind.SlidingWindow && x.Source == AttentionMassSource.Window && x.From == 0).Mass, 12);
        Assert.Equal(3, r.KindFrame().Rows.Count);
    }

    [Fact]
    public void Result_RoundTripsThroughJson_AndFrames_BadInputNamesTheProblem()
    {
        using var ckpt = GenerationFixtures.V4();
        var r = CompressionDiagnostics.Measure(ckpt, new[] { GenerationFixtures.Prompt(12, 3) });
        var back = CompressionDiagnosticsResult.FromJson(r.ToJson());
        Assert.Equal(r.ToJson(), back.ToJson());
        Assert.Equal(4, r.ToDataFrame().Rows.Count);
        Assert.Equal(r.ByDistance.Length, r.DistanceFrame().Rows.Count);
        using var v32 = GenerationFixtures.V32();
        Assert.Contains("no DeepSeek-V4 attention", Assert.Throws<ArgumentException>(() => CompressionDiagnostics.Measure(v32, new[] { new long[] { 1 } })).Message);
    }

    [Fact]
    public void Unavailable_IsNullExactlyWhereTheGenerationHasTheMechanism_ElseSaysWhyInOneLine()
    {
        var v3 = DeepSeekConfig.TinyFullFeatured;
        var v32 = DeepSeekConfig.Load(Path.Combine(GoldenFixture.GoldenDir, "v32", "public.hf_config.json"));
        var v4 = DeepSeekConfig.Load(Path.Combine(GoldenFixture.GoldenDir, "v4", "public.hf_config.json"));
        Assert.Contains("no lightning indexer", Analysis.Indexer.IndexerDiagnostics.Unavailable(v3));
        Assert.Null(Analysis.Indexer.IndexerDiagnostics.Unavailable(v32));
        Assert.Null(Analysis.Indexer.IndexerDiagnostics.Unavailable(v4));
        Assert.Contains("single residual stream", Analysis.Streams.HyperConnectionDiagnostics.Unavailable(v32));
        Assert.Null(Analysis.Streams.HyperConnectionDiagnostics.Unavailable(v4));
        Assert.Contains("no DeepSeek-V4 attention", CompressionDiagnostics.Unavailable(v3));
        Assert.Null(CompressionDiagnostics.Unavailable(v4));
        Assert.DoesNotContain('\n', CompressionDiagnostics.Unavailable(v32)!);
    }
}
