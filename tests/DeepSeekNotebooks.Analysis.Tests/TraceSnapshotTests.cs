using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

public class TraceSnapshotTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    public TraceSnapshotTests(GoldenFixture g) => _g = g;

    [Fact]
    public void Snapshot_CopiesAttentionAndRoutingOfTheGoldenSequence()
    {
        using var ids = _g.Ids();
        using var trace = _g.Model.RunWithCache(ids);
        var s = TraceSnapshot.FromTrace(trace, _g.InputIds);

        var (probs, shape) = GoldenFixture.ReadF32("public.outputs.safetensors", "attn_probs.1"); // [2, 4, 12, 12], sequence 0 first
        Assert.Equal(new long[] { 2, 4, 12, 12 }, shape);
        for (int h = 0; h < 4; h++)
            for (int q = 0; q < 12; q++)
                for (int k = 0; k < 12; k++)
                    Assert.Equal(probs[(h * 12 + q) * 12 + k], s.Attention[1][h][q, k], 4);

        var (indices, _) = GoldenFixture.ReadI64("public.outputs.safetensors", "moe.2.indices"); // [24, 2]
        Assert.Equal(new[] { 1, 2 }, s.Routing.Select(r => r.Layer));
        for (int t = 0; t < 12; t++)
            Assert.Equal(new[] { (int)indices[2 * t], (int)indices[2 * t + 1] }, s.Routing[1].Tokens[t].Experts);

        var usage = s.ExpertUsage();
        for (int l = 0; l < 2; l++)
            Assert.Equal(1.0, Enumerable.Range(0, 8).Sum(e => usage[l, e]), 9);
        Assert.Equal(12, s.Predictions.Length);
        Assert.Equal(468, s.Predictions[^1]); // the golden argmax at the last position
    }

    [Fact]
    public void Snapshot_RoundTripsThroughJson()
    {
        using var ids = _g.Ids();
        using var trace = _g.Model.RunWithCache(ids);
        var s = TraceSnapshot.FromTrace(trace, _g.InputIds, _g.InputIds.Select(i => $"<t{i}>").ToArray());
        var back = TraceSnapshot.FromJson(s.ToJson());
        Assert.Equal(s.Tokens, back.Tokens);
        Assert.Equal(s.Attention[2][3][11, 5], back.Attention[2][3][11, 5]);
        Assert.Equal(s.Routing[0].Tokens[4].Weights, back.Routing[0].Tokens[4].Weights);
        Assert.Equal(s.Routing[0].Tokens[4].Scores, back.Routing[0].Tokens[4].Scores);
        Assert.Throws<ArgumentException>(() => TraceSnapshot.FromTrace(trace, _g.InputIds, new[] { "too", "few" }));
    }

    [Fact]
    public void LayerRouting_OfTheSecondSequence_IsTheOfficialCodesRouting()
    {
        // tests/fixtures/golden: DeepSeek's inference/model.py on the same weights, two sequences of 12 tokens.
        var (ids, shape) = GoldenFixture.ReadI64("public.outputs.safetensors", "input_ids");
        using var input = tensor(ids, shape);
        using var trace = _g.Model.RunWithCache(input);
        var (indices, _) = GoldenFixture.ReadI64("public.outputs.safetensors", "moe.2.indices");   // [24, 2], batch-major
        var (weights, _) = GoldenFixture.ReadF32("public.outputs.safetensors", "moe.2.weights");
        var (scores, _) = GoldenFixture.ReadF32("public.outputs.safetensors", "moe.2.scores");     // [24, 8]
        var r = LayerRouting.FromTrace(trace, 2, sequenceLength: 12, batchIndex: 1);
        Assert.Equal(2, r.Layer);
        Assert.Equal(12, r.Tokens.Length);
        for (int t = 0; t < 12; t++)
        {
            int row = 12 + t;
            Assert.Equal(new[] { (int)indices[2 * row], (int)indices[2 * row + 1] }, r.Tokens[t].Experts);
            Assert.Equal(weights[2 * row], r.Tokens[t].Weights[0], 4);
            Assert.Equal(weights[2 * row + 1], r.Tokens[t].Weights[1], 4);
            for (int e = 0; e < 8; e++) Assert.Equal(scores[8 * row + e], r.Tokens[t].Scores![e], 4);
        }
        Assert.Contains("batchIndex 2", Assert.Throws<ArgumentException>(() => LayerRouting.FromTrace(trace, 2, 12, 2)).Message);
        Assert.Contains("not a whole number of sequences of 5", Assert.Throws<ArgumentException>(() => LayerRouting.FromTrace(trace, 2, 5)).Message);
        Assert.Contains("MoE blocks with routing in this trace: [1, 2]", Assert.Throws<ArgumentException>(() => LayerRouting.FromTrace(trace, 0, 12)).Message);
    }

    [Fact]
    public void Snapshot_JsonWrittenBeforeTheOneRoutingType_StillReads()
    {
        const string json = """
            {"TokenIds":[7,8],"Tokens":["a","b"],"Attention":[[[[1,0],[0.5,0.5]]]],
             "Routing":[{"Layer":1,"Experts":[[3,1],[0,2]],"Weights":[[0.75,0.25],[0.5,0.5]],"Scores":[[0.1,0.2,0.3,0.4],[0.4,0.3,0.2,0.1]]}],
             "Predictions":[8,9],"RoutedExperts":4}
            """;
        var s = TraceSnapshot.FromJson(json);
        Assert.Equal(new[] { 3, 1 }, s.Routing[0].Tokens[0].Experts);
        Assert.Equal(new[] { 0.5f, 0.5f }, s.Routing[0].Tokens[1].Weights);
        Assert.Equal(0.4f, s.Routing[0].Tokens[1].Scores![0]);
        Assert.Equal(0.25, s.ExpertUsage()[0, 3]);         // expert 3 takes 1 of the 4 (token, slot) choices
    }
}
