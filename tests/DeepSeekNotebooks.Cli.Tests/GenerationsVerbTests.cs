using System.Text.Json;
using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// Every verb that analyses a model runs on the golden DeepSeek-V3.2 and DeepSeek-V4 checkpoints (official layout,
/// tests/fixtures/golden/v32 and v4) and writes output with the properties that define it: attributions of the
/// sequence's shape, routing-frozen IG complete (Σ attr = F(E) − F(B), Sundararajan et al. 2017), rollout rows summing to 1
/// (Abnar &amp; Zuidema 2020), dashboards, generations, sanity checks and collect/summarize.
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class GenerationsVerbTests : IDisposable
{
    private static readonly string Ids = string.Join(",", Enumerable.Range(40, 16));
    private readonly string _tmp = Directory.CreateTempSubdirectory("gen-verbs").FullName;

    public static TheoryData<string> Generations => new() { "v32", "v4" };

    private string Checkpoint(string generation)
    {
        var fixture = Path.Combine(ReportTestSupport.RepoRoot, "tests", "fixtures", "golden", generation);
        var dir = Path.Combine(_tmp, "ckpt-" + generation);
        if (Directory.Exists(dir)) return dir;
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(fixture, "public.model_args.json"), Path.Combine(dir, generation == "v4" ? "config_v4.json" : "config_v3.2.json"));
        File.Copy(Path.Combine(fixture, "public.weights.safetensors"), Path.Combine(dir, "model0-mp1.safetensors"));
        return dir;
    }

    private string Out(string name) => Path.Combine(_tmp, name);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var oldOut = Console.Out; var oldErr = Console.Error;
        using var o = new StringWriter(); using var e = new StringWriter();
        Console.SetOut(o); Console.SetError(e);
        try { int rc = Program.Run(args); return (rc, o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    private static void Ok((int Code, string Out, string Err) r) => Assert.True(r.Code == 0, $"exit {r.Code}\n{r.Out}\n{r.Err}");

    public static TheoryData<string, string> MethodsByGeneration()
    {
        var d = new TheoryData<string, string>();
        foreach (var g in new[] { "v32", "v4" })
            foreach (var m in new[] { "ig", "saliency", "inputxgrad", "smoothgrad", "occlusion", "layer-ig", "layer-conductance", "feature-ablation", "attnxgrad" })
                d.Add(g, m);
        return d;
    }

    [Theory]
    [MemberData(nameof(MethodsByGeneration))]
    public void Attribute_EveryMethod_WritesOneRowPerToken(string generation, string method)
    {
        var output = Out($"{generation}-{method}.safetensors");
        var args = new List<string> { "attribute", "--checkpoint", Checkpoint(generation), "--input-ids", Ids, "--method", method, "--target-position", "-1", "--target-token", "7",
            "--quantisation", "off", "--out", output };
        if (method is "ig" or "layer-ig" or "layer-conductance") args.AddRange(new[] { "--n-steps", "8" });
        if (method.StartsWith("layer-", StringComparison.Ordinal)) args.AddRange(new[] { "--layer", "1" });
        Ok(Run(args.ToArray()));
        using var f = SafetensorsFile.Open(output);
        var shape = f.GetTensor("attributions").Shape;
        Assert.Equal(16, shape[^2]);
        var attr = f.ReadAsFloat32("attributions");
        Assert.All(attr, a => Assert.True(float.IsFinite(a)));
        Assert.Contains(attr, a => a != 0);
        var sums = f.ReadAsFloat32("token_sums");
        Assert.Equal(16, sums.Length);
        if (method == "attnxgrad")
        {
            // [seq, layers·heads]: every layer credits some token (V4: window slots, compressed entries mapped back to tokens).
            int columns = (int)shape[^1], layers = int.Parse(f.Metadata["param.layers"], System.Globalization.CultureInfo.InvariantCulture);
            int heads = columns / layers;
            for (int l = 0; l < layers; l++)
                Assert.True(Enumerable.Range(0, 16).Any(k => Enumerable.Range(0, heads).Any(h => attr[k * columns + l * heads + h] != 0)),
                    $"{generation}: attention×gradient of layer {l} is all zero");
            Assert.Contains(sums, s => s != 0);
        }
    }

    [Theory]
    [MemberData(nameof(Generations))]
    public void Attribute_RoutingFrozen_IsComplete(string generation)
    {
        var output = Out($"{generation}-frozen.safetensors");
        Ok(Run("attribute", "--checkpoint", Checkpoint(generation), "--input-ids", Ids, "--method", "ig", "--target-position", "-1", "--target-token", "7",
            "--n-steps", "64", "--routing", "frozen", "--quantisation", "off", "--out", output));
        using var f = SafetensorsFile.Open(output);
        double delta = f.ReadAsFloat32("delta")[0], gap = f.ReadAsFloat32("f_input")[0] - f.ReadAsFloat32("f_baseline")[0];
        Assert.True(Math.Abs(delta) < 0.01 * Math.Abs(gap), $"{generation}: frozen delta {delta} vs F_frozen gap {gap}");
        Assert.Equal(f.ReadAsFloat32("token_sums").Sum(), gap + delta, 3);
        Assert.Equal("frozen", f.Metadata["param.routing"]);
    }

    [Theory]
    [MemberData(nameof(Generations))]
    public void Rollout_RowsAreDistributionsOverEarlierTokens(string generation)
    {
        var output = Out($"{generation}-rollout.safetensors");
        Ok(Run("rollout", "--checkpoint", Checkpoint(generation), "--input-ids", Ids, "--quantisation", "off", "--out", output));
        using var f = SafetensorsFile.Open(output);
        Assert.Equal(new long[] { 16, 16 }, f.GetTensor("rollout").Shape);
        var r = f.ReadAsFloat32("rollout");
        for (int q = 0; q < 16; q++)
        {
            Assert.Equal(1.0, r.Skip(q * 16).Take(16).Sum(), 4);
            for (int k = q + 1; k < 16; k++) Assert.Equal(0f, r[q * 16 + k]);
        }
    }

    [Theory]
    [MemberData(nameof(Generations))]
    public void Dashboard_WritesTheOfflineHtml(string generation)
    {
        var output = Out($"{generation}-dashboard.html");
        Ok(Run("dashboard", "--checkpoint", Checkpoint(generation), "--input-ids", Ids, "--quantisation", "off", "--out", output));
        var html = File.ReadAllText(output);
        Assert.Contains("<html", html, StringComparison.OrdinalIgnoreCase);
        Assert.True(html.Length > 10_000);

        // The embedded attention: [layer][head][query][key], token to token.
        var m = System.Text.RegularExpressions.Regex.Match(html, "<script type=\"application/json\" id=\"dsn-dashboard-data\">(.*?)</script>",
            System.Text.RegularExpressions.RegexOptions.Singleline);
        Assert.True(m.Success, "the dashboard embeds no data block");
        using var doc = JsonDocument.Parse(m.Groups[1].Value);
        var attention = doc.RootElement.GetProperty("attention").EnumerateArray()
            .Select(l => l.EnumerateArray().Select(h => h.EnumerateArray().Select(q => q.EnumerateArray().Select(k => k.GetDouble()).ToArray()).ToArray()).ToArray()).ToArray();

        // Independent reference from the checkpoint itself: attention kinds from its config, V4 sink shares and V3.2's
        // indexer selections from a trace (attn.sink_share, attn.indexer.topk).
        using var ckpt = DeepSeekNotebooks.Model.Checkpoints.Checkpoint.Load(Checkpoint(generation));
        ckpt.Model.Quantisation = DeepSeekNotebooks.Model.Modules.QuantisationSimulation.Off;
        var c = ckpt.Model.Config;
        int n = 16, heads = c.NumAttentionHeads;
        Assert.Equal(c.NumHiddenLayers, attention.Length);
        var names = new List<string>();
        for (int l = 0; l < c.NumHiddenLayers; l++)
            names.Add(c.AttentionKindOf(l) == DeepSeekNotebooks.Model.AttentionKind.MlaWithIndexer
                ? DeepSeekNotebooks.Model.Tracing.HookPoints.IndexerTopk(l) : DeepSeekNotebooks.Model.Tracing.HookPoints.AttnSinkShare(l));
        using var ids = TorchSharp.torch.tensor(Enumerable.Range(40, 16).Select(i => (long)i).ToArray(), new long[] { 1, 16 });
        using var trace = ckpt.Model.RunWithCache(ids, new DeepSeekNotebooks.Model.Tracing.TraceOptions { Names = DeepSeekNotebooks.Model.Tracing.NamesFilter.Exact(names) });
        bool anySink = false, anyOutsideWindow = false;
        for (int l = 0; l < attention.Length; l++)
        {
            var kind = c.AttentionKindOf(l);
            Assert.Equal(heads, attention[l].Length);
            float[] sink = kind == DeepSeekNotebooks.Model.AttentionKind.MlaWithIndexer ? new float[heads * n]
                : trace[names[l]][0].to(TorchSharp.torch.ScalarType.Float32).contiguous().data<float>().ToArray();   // [heads, q]
            bool[]? selected = kind == DeepSeekNotebooks.Model.AttentionKind.MlaWithIndexer ? trace[names[l]][0].contiguous().data<bool>().ToArray() : null;   // [q, k]
            for (int h = 0; h < heads; h++)
            {
                Assert.Equal(n, attention[l][h].Length);
                for (int q = 0; q < n; q++)
                {
                    var row = attention[l][h][q];
                    Assert.Equal(n, row.Length);
                    Assert.All(row, v => Assert.True(v >= -1e-7, $"{generation} layer {l} head {h} query {q}: negative attention {v}"));
                    for (int k = q + 1; k < n; k++) Assert.Equal(0.0, row[k]);
                    double sum = row.Sum(), share = sink[h * n + q];
                    // Rows sum to at most 1; the sink's share (V4) makes up the rest.
                    Assert.True(sum <= 1 + 1e-5, $"{generation} layer {l} head {h} query {q}: row sums to {sum}");
                    Assert.True(Math.Abs(1 - share - sum) < 1e-4, $"{generation} layer {l} head {h} query {q}: row {sum} + sink {share} != 1");
                    anySink |= share > 1e-3;
                    if (kind == DeepSeekNotebooks.Model.AttentionKind.SlidingWindow)
                        for (int k = 0; k <= q - c.CompressedAttention!.SlidingWindow; k++) Assert.Equal(0.0, row[k]);   // outside the window: nothing
                    else if (kind is DeepSeekNotebooks.Model.AttentionKind.CompressedSparse or DeepSeekNotebooks.Model.AttentionKind.HeavilyCompressed)
                        anyOutsideWindow |= Enumerable.Range(0, Math.Max(0, q - c.CompressedAttention!.SlidingWindow + 1)).Any(k => row[k] > 0);
                    else if (selected is not null)
                        for (int k = 0; k <= q; k++)
                            if (!selected[q * n + k]) Assert.Equal(0.0, row[k]);   // V3.2: keys the indexer did not select
                }
            }
        }
        if (generation == "v4")
        {
            Assert.True(anySink, "v4: no row shows a sink share (rows should sum to 1 - sink)");
            Assert.True(anyOutsideWindow, "v4: no compressed layer reaches a token before the window (compressed entries not mapped to tokens?)");
        }
    }

    [Theory]
    [MemberData(nameof(Generations))]
    public void Generate_Greedy_IsTheArgmaxContinuation_AndRepeatable(string generation)
    {
        var a = Run("generate", "--checkpoint", Checkpoint(generation), "--input-ids", Ids, "--max-new-tokens", "4", "--quantisation", "off");
        var b = Run("generate", "--checkpoint", Checkpoint(generation), "--input-ids", Ids, "--max-new-tokens", "4", "--quantisation", "off");
        Ok(a); Ok(b);
        Assert.Equal(a.Out, b.Out);
        // Greedy decoding is repeated argmax of the last position's logits (Holtzman et al. 2020, §2): recompute it
        // with the model's own forward, re-run over the whole sequence each step (no cache), and compare the new ids.
        using var doc = JsonDocument.Parse(a.Out.Trim());
        var newIds = doc.RootElement.GetProperty("new_ids").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        Assert.Equal(4, newIds.Length);
        using var ckpt = DeepSeekNotebooks.Model.Checkpoints.Checkpoint.Load(Checkpoint(generation),
            new CheckpointLoadOptions { Quantisation = DeepSeekNotebooks.Model.Modules.QuantisationSimulation.Off });
        var seq = Enumerable.Range(40, 16).Select(i => (long)i).ToList();
        using (TorchSharp.torch.no_grad())
            for (int i = 0; i < 4; i++)
            {
                using var ids = TorchSharp.torch.tensor(seq.ToArray()).unsqueeze(0);
                using var logits = ckpt.Model.forward(ids);
                seq.Add(logits[0, -1].argmax().item<long>());
            }
        Assert.Equal(seq.Skip(16), newIds);
    }

    [Theory]
    [MemberData(nameof(Generations))]
    public void Sanity_RunsBothChecks(string generation)
    {
        var output = Out($"{generation}-sanity.json");
        Ok(Run("sanity", "--checkpoint", Checkpoint(generation), "--input-ids", Ids, "--methods", "ig,saliency,feature-ablation", "--n-steps", "8",
            "--random-orders", "2", "--quantisation", "off", "--out", output));
        using var doc = JsonDocument.Parse(File.ReadAllText(output));
        Assert.True(doc.RootElement.TryGetProperty("randomisation", out _) || doc.RootElement.TryGetProperty("Randomisation", out _), File.ReadAllText(output)[..Math.Min(400, File.ReadAllText(output).Length)]);
    }

    [Theory]
    [MemberData(nameof(Generations))]
    public void CollectAndSummarize_CountEveryToken(string generation)
    {
        var data = Out($"{generation}.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 3).Select(i => $"{{\"input_ids\": [{string.Join(",", Enumerable.Range(40 + i, 12))}]}}"));
        var state = Out($"{generation}-state.safetensors");
        Ok(Run("collect", "--checkpoint", Checkpoint(generation), "--dataset", data, "--quantisation", "off", "--out", state));
        var s = Run("summarize", state, "--json");
        Ok(s);
        Assert.Contains("36", s.Out);   // 3 sequences × 12 tokens
    }

    public void Dispose()
    {
        try { Directory.Delete(_tmp, true); } catch (IOException) { }
    }
}
