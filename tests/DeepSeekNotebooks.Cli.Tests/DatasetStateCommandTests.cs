using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Cli.Commands;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// <c>collect</c> / <c>merge</c> / <c>summarize</c> on the golden checkpoint with small generated JSONL datasets: three
/// shards merged summarise exactly as one pass; bad shards, malformed lines, text without a tokenizer and states of
/// different datasets are refused naming the problem.
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]   // swaps Console.Error: not in parallel with the other classes that do
public sealed class DatasetStateCommandTests : IDisposable
{
    private static readonly string Root = ReportTestSupport.RepoRoot;
    private static string GoldenHf => Path.Combine(Root, "data", "checkpoints", "golden-tiny-hf");
    private static string Bundled => Path.Combine(Root, "data", "checkpoints", "deepseek-tiny-moe");
    private readonly string _tmp = Directory.CreateTempSubdirectory("collect-tests").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private string Tmp(string name) => Path.Combine(_tmp, name);

    /// <summary>A JSONL file of <paramref name="lines"/> id sequences (lengths 1…13, ids &lt; 512), two domains and some unlabelled lines.</summary>
    private string Dataset(string name, int lines, int seed)
    {
        var rng = new Random(seed);
        var path = Tmp(name);
        File.WriteAllLines(path, Enumerable.Range(0, lines).Select(i =>
        {
            var o = new JsonObject { ["input_ids"] = new JsonArray(Enumerable.Range(0, rng.Next(1, 14)).Select(_ => (JsonNode)rng.Next(512)).ToArray()) };
            if (i % 3 != 0) o["domain"] = i % 2 == 0 ? "code" : "math";
            return o.ToJsonString();
        }));
        return path;
    }

    private static (int Code, string Out, string Err) Cli(Func<TextWriter, int> body)
    {
        var w = new StringWriter();
        var err = new StringWriter();
        var old = Console.Error;
        Console.SetError(err);
        try { return (CliSupport.Run(() => body(w)), w.ToString(), err.ToString()); }
        finally { Console.SetError(old); }
    }

    private string Collect(string dataset, string shard, string name, string? checkpoint = null)
    {
        var path = Tmp(name);
        var (code, _, err) = Cli(w => CollectCommand.Run(checkpoint ?? GoldenHf, dataset, shard, path, false, w));
        Assert.True(code == 0, err);
        return path;
    }

    private static JsonObject Summary(string state)
    {
        var (code, text, err) = Cli(w => SummarizeCommand.Run(state, json: true, w));
        Assert.True(code == 0, err);
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>Numbers equal to 1e-9 relative (integers exactly), everything else equal.</summary>
    private static void AssertSameJson(JsonNode? expected, JsonNode? actual, string path)
    {
        switch (expected)
        {
            case null: Assert.True(actual is null, $"{path}: expected null, got {actual?.ToJsonString()}"); break;
            case JsonObject eo:
                var ao = Assert.IsType<JsonObject>(actual);
                Assert.Equal(eo.Select(kv => kv.Key), ao.Select(kv => kv.Key));
                foreach (var (k, v) in eo) AssertSameJson(v, ao[k], $"{path}.{k}");
                break;
            case JsonArray ea:
                var aa = Assert.IsType<JsonArray>(actual);
                Assert.True(ea.Count == aa.Count, $"{path}: {ea.Count} vs {aa.Count} elements");
                for (int i = 0; i < ea.Count; i++) AssertSameJson(ea[i], aa[i], $"{path}[{i}]");
                break;
            default:
                var ev = expected.AsValue();
                if (ev.GetValueKind() == JsonValueKind.Number && !ev.ToJsonString().Contains('.') && !ev.ToJsonString().Contains('E'))
                    Assert.True(ev.ToJsonString() == actual!.ToJsonString(), $"{path}: count {ev.ToJsonString()} vs {actual.ToJsonString()}");
                else if (ev.GetValueKind() == JsonValueKind.Number)
                {
                    double x = (double)ev, y = (double)actual!;
                    Assert.True(Math.Abs(x - y) <= 1e-9 * Math.Abs(x), $"{path}: {x:R} vs {y:R}");
                }
                else Assert.Equal(ev.ToJsonString(), actual!.ToJsonString());
                break;
        }
    }

    [Fact]
    public void ThreeShardsCollectedAndMerged_SummarizeAsOnePass()
    {
        var data = Dataset("data.jsonl", lines: 14, seed: 5);
        var whole = Collect(data, "0/1", "whole.safetensors");
        var shards = new[] { "2/3", "0/3", "1/3" }.Select((s, i) => Collect(data, s, $"part{i}.safetensors")).ToArray();
        var total = Tmp("total.safetensors");
        var (code, text, err) = Cli(w => MergeCommand.Run(shards, total, w));
        Assert.True(code == 0, err);
        Assert.Contains("shards 0,1,2 of 3 (complete)", text);

        var one = Summary(whole);
        var merged = Summary(total);
        Assert.Equal(1, (int)one["shard_count"]!);
        Assert.Equal(3, (int)merged["shard_count"]!);
        Assert.True((bool)merged["complete"]!);
        foreach (var key in new[] { "shard_count", "shards" }) { one.Remove(key); merged.Remove(key); }
        AssertSameJson(one, merged, "$");

        // Independent of the accumulators: every MoE layer routed every token of the file.
        long tokens = File.ReadLines(data).Sum(l => JsonNode.Parse(l)!["input_ids"]!.AsArray().Count);
        var layers = merged["moe_layers"]!.AsArray();
        Assert.Equal([1, 2], layers.Select(l => (int)l!["layer"]!));
        Assert.All(layers, l => Assert.Equal(tokens, (long)l!["tokens"]!));
        Assert.All(layers, l => Assert.NotNull(l!["domain_nmi"]));
        Assert.Equal(["code", "math"], layers[0]!["domains"]!.AsArray().Select(d => (string)d!));
    }

    [Fact]
    public void Collect_ShardSplitsLinesByIndexModN()
    {
        var data = Dataset("data.jsonl", lines: 7, seed: 9);
        var state = DatasetState.Load(Collect(data, "1/3", "s1.safetensors"));
        // Lines 1 and 4 (0-based) belong to shard 1 of 3.
        var lines = File.ReadAllLines(data);
        long expected = new[] { 1, 4 }.Sum(k => JsonNode.Parse(lines[k])!["input_ids"]!.AsArray().Count);
        Assert.Equal(expected, state.Routing!.Tokens(1));
        Assert.Equal([1], state.Shards);
        Assert.Equal(CollectCommand.Sha256(data), state.Provenance.DatasetHash);
        Assert.Equal("golden-tiny-hf", state.Provenance.Checkpoint);
    }

    [Fact]
    public void SummarizeJson_HasTheDocumentedKeys()
    {
        var o = Summary(Collect(Dataset("data.jsonl", lines: 4, seed: 1), "0/1", "s.safetensors"));
        foreach (var key in new[] { "checkpoint", "config_hash", "dataset_hash", "shard_count", "shards", "complete", "analyses", "moe_layers", "sink_rate", "heads" })
            Assert.True(o.ContainsKey(key), $"missing key {key}");
        var layer = o["moe_layers"]![0]!.AsObject();
        foreach (var key in new[] { "layer", "tokens", "max_vio", "cv", "load_entropy", "dead_experts", "routing_entropy", "top1_margin", "top1_repeat", "domain_nmi", "top_coactivation" })
            Assert.True(layer.ContainsKey(key), $"missing layer key {key}");
        var pair = layer["top_coactivation"]![0]!.AsObject();
        Assert.Equal(2, pair["experts"]!.AsArray().Count);
        Assert.True((long)pair["count"]! >= (long)layer["top_coactivation"]!.AsArray().Last()!["count"]!);
        var head = o["heads"]![0]!.AsObject();
        foreach (var key in new[] { "layer", "head", "queries", "entropy", "sink_score", "sink_query_rate", "is_sink", "max_attention" })
            Assert.True(head.ContainsKey(key), $"missing head key {key}");
        Assert.Equal(12, o["heads"]!.AsArray().Count); // 3 layers × 4 heads
    }

    [Theory]
    [InlineData("3/2", "0 ≤ i < N")]
    [InlineData("2/2", "0 ≤ i < N")]
    [InlineData("-1/2", "0 ≤ i < N")]
    [InlineData("0/0", "0 ≤ i < N")]
    [InlineData("1", "is not i/N")]
    [InlineData("a/4", "is not i/N")]
    public void Collect_RefusesABadShard(string shard, string rule)
    {
        var data = Dataset("data.jsonl", lines: 2, seed: 1);
        var (code, _, err) = Cli(w => CollectCommand.Run(GoldenHf, data, shard, Tmp("s.safetensors"), false, w));
        Assert.Equal(2, code);
        Assert.Contains(rule, err);
        Assert.Contains("k mod N", err);
        Assert.False(File.Exists(Tmp("s.safetensors")));
    }

    [Theory]
    [InlineData("{\"input_ids\": [1, 2", "line 3 is not a JSON object")]
    [InlineData("[1, 2]", "line 3 is a JSON array")]
    [InlineData("{\"input_ids\": [1, \"x\"]}", "line 3: input_ids[1] = \"x\" is not an integer")]
    [InlineData("{\"input_ids\": [1, 512]}", "line 3: token id 512 is outside the model's vocabulary [0, 512)")]
    [InlineData("{\"input_ids\": []}", "line 3 has no tokens")]
    [InlineData("{\"domain\": \"x\"}", "line 3: give exactly one of \"text\" or \"input_ids\"")]
    [InlineData("{\"input_ids\": [1], \"domain\": 4}", "line 3: \"domain\" must be a string")]
    public void Collect_NamesTheMalformedLine(string badLine, string expected)
    {
        var path = Tmp("bad.jsonl");
        File.WriteAllLines(path, ["{\"input_ids\": [1, 2]}", "{\"input_ids\": [3]}", badLine, "{\"input_ids\": [4]}"]);
        var (code, _, err) = Cli(w => CollectCommand.Run(GoldenHf, path, "0/1", Tmp("s.safetensors"), false, w));
        Assert.Equal(1, code);
        Assert.Contains("bad.jsonl " + expected, err);
    }

    [Fact]
    public void Collect_TextWithoutATokenizer_NamesTheFix()
    {
        var path = Tmp("text.jsonl");
        File.WriteAllLines(path, ["{\"text\": \"hello\"}"]);
        var (code, _, err) = Cli(w => CollectCommand.Run(GoldenHf, path, "0/1", Tmp("s.safetensors"), false, w));
        Assert.Equal(2, code);
        Assert.Contains("no tokenizer.json", err);
        Assert.Contains("input_ids", err);
    }

    [Fact]
    public void Collect_TextLines_AreTokenizedWithTheCheckpointsTokenizer()
    {
        var path = Tmp("text.jsonl");
        File.WriteAllLines(path, ["{\"text\": \"The model routes tokens.\", \"domain\": \"prose\"}", "{\"text\": \"x = 1 + 2\", \"domain\": \"code\"}"]);
        var state = DatasetState.Load(Collect(path, "0/1", "s.safetensors", Bundled));
        using var tok = Model.Tokenization.DeepSeekTokenizer.FromFile(Path.Combine(Bundled, "tokenizer.json"));
        long tokens = tok.Encode("The model routes tokens.").Length + tok.Encode("x = 1 + 2").Length;
        int layer = state.Routing!.Layers.First();
        Assert.Equal(tokens, state.Routing.Tokens(layer));
        Assert.Equal(["code", "prose"], state.Routing.DomainTop1Counts(layer).Domains);
        // Token strings were available: the boundary dimension is defined.
        Assert.All(state.Heads!.Heads(), h => Assert.False(double.IsNaN(h.BoundaryMass)));
    }

    [Fact]
    public void Merge_RefusesStatesOfDifferentDatasets()
    {
        var a = Collect(Dataset("a.jsonl", lines: 4, seed: 1), "0/2", "a0.safetensors");
        var b = Collect(Dataset("b.jsonl", lines: 4, seed: 2), "1/2", "b1.safetensors");
        var (code, _, err) = Cli(w => MergeCommand.Run([a, b], Tmp("t.safetensors"), w));
        Assert.Equal(1, code);
        Assert.Contains("b1.safetensors does not merge with a0.safetensors: cannot merge states of different datasets", err);
        Assert.False(File.Exists(Tmp("t.safetensors")));
    }

    [Fact]
    public void Merge_RefusesStatesOfDifferentModels()
    {
        var data = Dataset("a.jsonl", lines: 4, seed: 1);
        var a = Collect(data, "0/2", "a0.safetensors");
        var b = Collect(data, "1/2", "b1.safetensors", Path.Combine(Root, "data", "checkpoints", "golden-tiny-official"));
        var (code, _, err) = Cli(w => MergeCommand.Run([a, b], Tmp("t.safetensors"), w));
        Assert.Equal(1, code);
        Assert.Contains("cannot merge states of different", err);
        Assert.Contains("golden-tiny-official", err);
    }

    [Fact]
    public void Merge_ReportsMissingShards()
    {
        var data = Dataset("a.jsonl", lines: 6, seed: 1);
        var (code, text, _) = Cli(w => MergeCommand.Run([Collect(data, "0/3", "a0.safetensors"), Collect(data, "2/3", "a2.safetensors")], Tmp("t.safetensors"), w));
        Assert.Equal(0, code);
        Assert.Contains("incomplete: missing 1", text);
        Assert.False((bool)Summary(Tmp("t.safetensors"))["complete"]!);
    }

    [Fact]
    public void Verbs_RunFromTheCommandLine()
    {
        var data = Dataset("a.jsonl", lines: 3, seed: 4);
        string s0 = Tmp("c0.safetensors"), s1 = Tmp("c1.safetensors"), t = Tmp("t.safetensors");
        Assert.Equal(0, Program.Run(["collect", "--checkpoint", GoldenHf, "--dataset", data, "--shard", "0/2", "--out", s0]));
        Assert.Equal(0, Program.Run(["collect", "--checkpoint", GoldenHf, "--dataset", data, "--shard", "1/2", "--out", s1]));
        Assert.Equal(0, Program.Run(["merge", s0, s1, "--out", t]));
        Assert.True(DatasetState.Load(t).IsComplete);
        Assert.Equal(0, Program.Run(["summarize", t, "--json"]));
        Assert.Equal(2, Program.Run(["collect", "--checkpoint", GoldenHf, "--dataset", data, "--shard", "3/2", "--out", Tmp("x.safetensors")]));
        Assert.Equal(2, Program.Run(["merge", "--out", Tmp("x.safetensors")]));
    }
}
