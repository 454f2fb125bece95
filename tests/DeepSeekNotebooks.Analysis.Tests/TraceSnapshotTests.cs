using DeepSeekNotebooks.Analysis.Tracing;

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
            Assert.Equal(new[] { (int)indices[2 * t], (int)indices[2 * t + 1] }, s.Routing[1].Experts[t]);

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
        Assert.Equal(s.Routing[0].Weights[4], back.Routing[0].Weights[4]);
        Assert.Throws<ArgumentException>(() => TraceSnapshot.FromTrace(trace, _g.InputIds, new[] { "too", "few" }));
    }
}
