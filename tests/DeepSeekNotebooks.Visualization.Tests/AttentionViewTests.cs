using System.Text.Json;
using System.Text.RegularExpressions;
using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Tracing;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Visualization.Html;
using Xunit.Abstractions;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>The data behind the BertViz-style head and model views: thresholding, pooling, checks, the embedded JSON.</summary>
public class AttentionViewTests(ITestOutputHelper output)
{
    /// <summary>Hand-made 3×3 causal attention (rows sum to 1) with one weight on the threshold and one just below.</summary>
    private static readonly float[,] Hand =
    {
        { 1f, 0f, 0f },
        { 0.3f, 0.7f, 0f },
        { 0.005f, 0.01f, 0.985f },
    };

    [Fact]
    public void ThresholdKeepsExactlyTheWeightsAtOrAboveIt()
    {
        var r = AttentionViewData.Threshold(Hand, 0.01);
        Assert.Equal(new[] { new[] { 0 }, new[] { 0, 1 }, new[] { 1, 2 } }, r.Keys);   // 0.01 itself is kept, 0.005 is not
        Assert.Equal(new[] { 0.01f, 0.985f }, r.Weights[2]);
        Assert.Equal(5, r.Kept);
        Assert.Equal(1, r.Dropped);
        Assert.Equal(0.005, r.DroppedMass, 6);
        Assert.Equal(3.0, r.TotalMass, 5);
        // Threshold 0: every non-zero weight is a line, the causal mask's zeros never are.
        var all = AttentionViewData.Threshold(Hand, 0);
        Assert.Equal(6, all.Kept);
        Assert.Equal(0, all.Dropped);
        // Just above 0.01: the on-threshold weight goes too.
        var above = AttentionViewData.Threshold(Hand, 0.0101);
        Assert.Equal(new[] { 2 }, above.Keys[2]);
        Assert.Equal(2, above.Dropped);
        Assert.Equal(0.015, above.DroppedMass, 6);
    }

    [Fact]
    public void ThresholdBoundsTheLinesOfAProbabilityRow()
    {
        // A row summing to 1 has at most ⌊1/t⌋ weights ≥ t (else they would sum to more than 1): the head view's size bound.
        var a = Causal(128, seed: 9);
        foreach (double t in new[] { 0.01, 0.05, 0.3 })
        {
            var r = AttentionViewData.Threshold(a, t);
            Assert.All(r.Keys, row => Assert.True(row.Length <= (int)Math.Floor(1 / t + 1e-9), $"{row.Length} lines at threshold {t}"));
        }
        // … and the bound is reached: a uniform row of 100 keys at threshold 0.01 keeps all 100.
        var uniform = new float[1, 100];
        for (int k = 0; k < 100; k++) uniform[0, k] = 0.01f;
        Assert.Equal(100, AttentionViewData.Threshold(uniform, 0.01).Kept);
    }

    /// <summary>5×5 matrix with distinct entries 1..25 (row-major), pooled to ≤ 2 cells: blocks of ⌈5/2⌉ = 3 positions, last block of 2.</summary>
    private static AttentionMatrix Counting5()
    {
        var m = new float[5, 5];
        for (int q = 0; q < 5; q++) for (int k = 0; k < 5; k++) m[q, k] = (q * 5 + k + 1) / 100f;
        return m;
    }

    [Fact]
    public void MaxPoolingKeepsEachBlocksLargestWeight()
    {
        var p = AttentionViewData.Pool(Counting5(), 2, ThumbnailPooling.Max);
        // blocks {0,1,2} and {3,4}; the largest entry of a block is at its bottom-right corner: row*5+col+1
        Assert.Equal(new float[,] { { 0.13f, 0.15f }, { 0.23f, 0.25f } }, p);
        Assert.Equal(0.25f, p.Cast<float>().Max());   // the matrix's largest weight survives
        // n ≤ cells: nothing pooled
        Assert.Equal(Counting5().ToArray(), AttentionViewData.Pool(Counting5(), 5, ThumbnailPooling.Max));
        Assert.Equal(Counting5().ToArray(), AttentionViewData.Pool(Counting5(), 32, ThumbnailPooling.Mass));
    }

    [Fact]
    public void MassPoolingAveragesOverQueriesAndSumsOverKeys()
    {
        var p = AttentionViewData.Pool(Counting5(), 2, ThumbnailPooling.Mass);
        // cell (0,0): rows 0..2, cols 0..2: (1+2+3 + 6+7+8 + 11+12+13) / 100 / 3 = 63/300
        // cell (0,1): rows 0..2, cols 3..4: (4+5 + 9+10 + 14+15) / 100 / 3 = 57/300
        // cell (1,0): rows 3..4, cols 0..2: (16+17+18 + 21+22+23) / 100 / 2 = 117/200
        // cell (1,1): rows 3..4, cols 3..4: (19+20 + 24+25) / 100 / 2 = 88/200
        Assert.Equal(63 / 300f, p[0, 0], 5);
        Assert.Equal(57 / 300f, p[0, 1], 5);
        Assert.Equal(117 / 200f, p[1, 0], 5);
        Assert.Equal(88 / 200f, p[1, 1], 5);
    }

    [Fact]
    public void MassPoolingOfAttentionIsAgainAnAttentionMatrix()
    {
        // Softmax rows (each sums to 1) over 128 causal positions, pooled to 32 × 32: each pooled row sums to 1 as well.
        var a = Causal(128, seed: 5);
        var p = AttentionViewData.Pool(a, 32, ThumbnailPooling.Mass);
        Assert.Equal(32, p.GetLength(0));
        for (int q = 0; q < 32; q++) Assert.Equal(1.0, Enumerable.Range(0, 32).Sum(k => (double)p[q, k]), 4);
        // Max pooling of the same matrix: block 4, and the global max is preserved.
        var m = AttentionViewData.Pool(a, 32, ThumbnailPooling.Max);
        Assert.Equal(a.ToArray().Cast<float>().Max(), m.Cast<float>().Max());
        // 100 tokens into ≤ 32 cells: blocks of 4, 25 cells (not 32 — the block size is what is bounded).
        Assert.Equal(25, AttentionViewData.Pool(Causal(100, 1), 32, ThumbnailPooling.Max).GetLength(0));
    }

    internal static AttentionMatrix Causal(int n, int seed)
    {
        var rng = new Random(seed);
        var m = new float[n, n];
        for (int q = 0; q < n; q++)
        {
            double s = 0;
            var e = new double[q + 1];
            for (int k = 0; k <= q; k++) { e[k] = Math.Exp(3 * rng.NextDouble() + (k == 0 ? 3 : 0) + (k == q - 1 ? 2 : 0)); s += e[k]; }
            for (int k = 0; k <= q; k++) m[q, k] = (float)(e[k] / s);
        }
        return m;
    }

    private static AttentionMatrix[][] Grid(int layers, int heads, int n, int seed = 1) =>
        Enumerable.Range(0, layers).Select(l => Enumerable.Range(0, heads).Select(h => Causal(n, seed + 31 * l + h)).ToArray()).ToArray();

    [Fact]
    public void BadInputIsRefusedNamingWhatIsWrong()
    {
        string[] toks = { "a", "b", "c" };
        var ok = Grid(2, 2, 3);
        var e = Assert.Throws<ArgumentException>(() => new HeadView(new[] { "a", "b", "c", "d" }, ok));
        Assert.Contains("attention[0][0] is 3×3 but there are 4 tokens", e.Message);
        var ragged = new[] { ok[0], new[] { ok[1][0] } };
        Assert.Contains("layer 1 has 1 heads but layer 0 has 2", Assert.Throws<ArgumentException>(() => new ModelView(toks, ragged)).Message);
        var nan = (float[,])Hand.Clone(); nan[1, 0] = float.NaN;
        Assert.Contains("attention[1][0] has weight NaN at query 1, key 0", Assert.Throws<ArgumentException>(() => new HeadView(toks, new[] { ok[0], new AttentionMatrix[] { nan, Hand } })).Message);
        var neg = (float[,])Hand.Clone(); neg[2, 1] = -0.1f;
        Assert.Contains("finite and ≥ 0", Assert.Throws<ArgumentException>(() => new ModelView(toks, new[] { new AttentionMatrix[] { Hand, neg } })).Message);
        Assert.Contains("layer 1 is not among includeLayers (0)", Assert.Throws<ArgumentException>(() => new HeadView(toks, ok, layer: 1, includeLayers: new[] { 0 })).Message);
        Assert.Contains("head 2 is out of range: the attention has 2 heads (0..1)", Assert.Throws<ArgumentException>(() => new HeadView(toks, ok, heads: new[] { 2 })).Message);
        Assert.Contains("layer 0 is listed twice", Assert.Throws<ArgumentException>(() => new ModelView(toks, ok, includeLayers: new[] { 0, 0 })).Message);
        Assert.Contains("[0, 1)", Assert.Throws<ArgumentOutOfRangeException>(() => new HeadView(toks, ok, threshold: 1)).Message);
        Assert.Contains("2 to 256 cells", Assert.Throws<ArgumentOutOfRangeException>(() => new ModelView(toks, ok, thumbnailCells: 1)).Message);
        Assert.Contains("no tokens", Assert.Throws<ArgumentException>(() => new HeadView(Array.Empty<string>(), Array.Empty<AttentionMatrix[]>())).Message);
        Assert.Contains("attention[0][1]: row 1 has 2 values but row 0 has 3",
            Assert.Throws<ArgumentException>(() => new HeadView(toks, new[] { new[] { new[] { new[] { 1f, 0, 0 }, new[] { .5f, .5f, 0 }, new[] { .2f, .3f, .5f } }, new[] { new[] { 1f, 0, 0 }, new[] { .5f, .5f }, new[] { .2f, .3f, .5f } } } })).Message);
    }

    private static JsonElement Data(string fragment)
    {
        var m = Regex.Match(fragment, "<script type=\"application/json\" id=\"([^\"]+)-data\">(.*?)</script>", RegexOptions.Singleline);
        Assert.True(m.Success, "no data element");
        return JsonDocument.Parse(m.Groups[2].Value).RootElement.Clone();
    }

    public static readonly string[] HostileTokens = { "<s>", HostileScript, "say \"hi\" & 'bye'", "line\u2028sep\u2029para", HostileImg };

    [Fact]
    public void HeadViewFragmentIsSafeAndCarriesTheKeptWeights()
    {
        var toks = HostileTokens;
        var att = Grid(2, 3, toks.Length);
        var view = new HeadView(toks, att, layer: 1, heads: new[] { 0, 2 }, title: "Head view of " + HostileImg);
        string html = view.ToHtml();
        NoRawHostile(html);
        Assert.DoesNotContain('\u2028', html);
        Assert.DoesNotContain('\u2029', html);
        Assert.DoesNotMatch(new Regex(@"<script[^>]*\bsrc\s*=", RegexOptions.IgnoreCase), html);
        Assert.Equal(2, Regex.Matches(html, "<script", RegexOptions.IgnoreCase).Count);   // the data and the script, nothing injected
        Assert.Equal(2, Regex.Matches(html, "</script", RegexOptions.IgnoreCase).Count);
        var d = Data(html);
        Assert.Equal(toks, d.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()).ToArray());   // the JSON value is the token, literally
        Assert.Equal("Head view of " + HostileImg, d.GetProperty("title").GetString());
        Assert.Equal(1, d.GetProperty("layer").GetInt32());
        Assert.Equal(new[] { true, false, true }, d.GetProperty("selected").EnumerateArray().Select(x => x.GetBoolean()).ToArray());
        // layer 1, head 2, query 4: pairs [key, round(w·10⁴)] of exactly the weights ≥ 0.01
        var row = d.GetProperty("attn")[1][2][4].EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var expected = Enumerable.Range(0, toks.Length).Where(k => att[1][2][4, k] >= 0.01f)
            .SelectMany(k => new[] { k, (int)Math.Round(att[1][2][4, k] * 10_000, MidpointRounding.AwayFromZero) }).ToArray();
        Assert.Equal(expected, row);
        Assert.Equal(view.LineCount(1), d.GetProperty("stats")[1].GetProperty("kept").GetInt32());
        Assert.Equal(view.DroppedCount(1), d.GetProperty("stats")[1].GetProperty("dropped").GetInt32());
        Assert.Equal(3 * toks.Length * (toks.Length + 1) / 2, view.LineCount(1) + view.DroppedCount(1));  // every causal weight is > 0 here
        Assert.Contains("HeadView \"Head view of", view.ToString());
    }

    [Fact]
    public void ModelViewPoolsThumbnailsAndKeepsTheFullHeadForEnlarging()
    {
        var toks = Enumerable.Range(0, 70).Select(i => $"t{i}").ToArray();
        var att = Grid(3, 2, toks.Length);
        var view = new ModelView(toks, att, includeLayers: new[] { 2, 0 }, includeHeads: new[] { 1 });
        Assert.Equal(3, view.BlockSize);                    // ⌈70 / 32⌉
        var d = Data(view.ToHtml());
        Assert.Equal(new[] { 2, 0 }, d.GetProperty("layers").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(24, d.GetProperty("cells").GetInt32());   // ⌈70 / 3⌉
        var thumb = d.GetProperty("thumbs")[0][0];             // layer 2, head 1
        Assert.Equal(24, thumb.GetArrayLength());
        var pooled = AttentionViewData.Pool(att[2][1], 32, ThumbnailPooling.Max);
        // thumbnail row 5: every pooled cell ≥ 0.01, as [cell, round(w·10⁴)]
        var expected = Enumerable.Range(0, 24).Where(k => pooled[5, k] >= 0.01f)
            .SelectMany(k => new[] { k, (int)Math.Round(pooled[5, k] * 10_000, MidpointRounding.AwayFromZero) }).ToArray();
        Assert.Equal(expected, thumb[5].EnumerateArray().Select(x => x.GetInt32()).ToArray());
        Assert.Equal(view.ThumbnailLineCount(2, 1), thumb.EnumerateArray().Sum(r => r.GetArrayLength() / 2));
        Assert.True(view.DetailAtFullResolution);
        Assert.Equal(70, d.GetProperty("attn")[0][0].GetArrayLength());
        Assert.Contains("max-pooled over blocks of 3 positions", view.ToString());
    }

    [Fact]
    public void DashboardCarriesBothViewsReproducibly()
    {
        var data = SampleData.Dashboard();
        string page = Dashboard.Build(data);
        Assert.Equal(page, Dashboard.Build(data));   // fixed view ids: the same data gives the same file
        Assert.Contains("<h2>Head view (BertViz)</h2><div class=\"dsn-attn-view dsn-head-view\" id=\"dsn-dashboard-head-view\">", page);
        Assert.Contains("id=\"dsn-dashboard-model-view\"", page);
        var d = Data(page[page.IndexOf("id=\"dsn-dashboard-head-view\"", StringComparison.Ordinal)..].Insert(0, "<div "));
        Assert.Equal(SampleData.Tokens, d.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()).ToArray());
        Assert.Equal(4, d.GetProperty("layers").GetArrayLength());
        // views refuse NaN weights; the dashboard still builds and says why
        var bad = data.Attention!.Select(l => l.ToArray()).ToArray();
        var m = bad[2][1].ToArray(); m[3, 1] = float.NaN; bad[2][1] = m;
        string withNaN = Dashboard.Build(data with { Attention = bad });
        Assert.Contains("Head view (BertViz) not available: attention[2][1] has weight NaN at query 3, key 1", withNaN);
        Assert.Contains("Attention not provided for this input.", Dashboard.Build(data with { Attention = null }));
    }

    [Fact]
    public void BundledModelAt128TokensStaysSmall()
    {
        // The real thing: the bundled model's attention on 128 tokens of text, all 4 layers × 4 heads.
        string dir = ChromiumFixture.FindRepoFile("data/checkpoints/deepseek-tiny-moe") ?? throw new InvalidOperationException("bundled checkpoint not found");
        var snap = BundledSnapshot128(dir);
        Assert.Equal(128, snap.Tokens.Length);
        var head = new HeadView(snap.Tokens, snap.Attention).ToHtml();
        var model = new ModelView(snap.Tokens, snap.Attention).ToHtml();
        int script = AttentionViewData.Script.Length;
        output.WriteLine($"128 tokens, {snap.Attention.Length} layers × {snap.Attention[0].Length} heads: head view {head.Length / 1024.0:F0} KB, model view {model.Length / 1024.0:F0} KB (script {script / 1024.0:F0} KB each)");
        Assert.True(head.Length < 1_500_000, $"head view {head.Length} bytes");
        Assert.True(model.Length < 2_500_000, $"model view {model.Length} bytes");
    }

    internal static TraceSnapshot BundledSnapshot128(string dir)
    {
        using var ckpt = Checkpoint.Load(dir);
        const string text = "The cat sat on the mat. Q: 12+7=? A: 19. def add(a, b):\n    return a + b\n";
        var ids = new List<long>();
        if (ckpt.Tokenizer is { } tok) while (ids.Count < 128) ids.AddRange(tok.Encode(text));
        else for (int i = 0; ids.Count < 128; i++) ids.Add((i * 37 + 11) % ckpt.Config.VocabSize);
        var idArr = ids.Take(128).ToArray();
        var strings = ckpt.Tokenizer?.TokenStrings(idArr);
        using var t = tensor(idArr, new long[] { 1, idArr.Length });
        using var trace = ckpt.Model.RunWithCache(t);
        return TraceSnapshot.FromTrace(trace, idArr, strings);
    }
}
