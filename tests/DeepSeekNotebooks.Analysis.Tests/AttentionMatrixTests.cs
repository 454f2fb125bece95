using System.Text.Json;
using DeepSeekNotebooks.Analysis.Attention;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>The one attention-matrix type (issue 11): construction from each former shape, JSON, and its use in results.</summary>
public class AttentionMatrixTests
{
    private static readonly float[,] M = { { 1, 0, 0 }, { 0.25f, 0.75f, 0 } };   // 2 queries × 3 keys

    [Fact]
    public void TheFormerShapes_AllGiveTheSameMatrix()
    {
        var fromArray = new AttentionMatrix(M);
        var fromRows = AttentionMatrix.FromRows(new[] { new[] { 1f, 0, 0 }, new[] { 0.25f, 0.75f, 0 } });
        var fromFlat = AttentionMatrix.FromRowMajor(2, 3, new[] { 1f, 0, 0, 0.25f, 0.75f, 0 });
        foreach (var m in new[] { fromArray, fromRows, fromFlat })
        {
            Assert.Equal((2, 3), (m.Queries, m.Keys));
            Assert.Equal(0.75f, m[1, 1]);
            Assert.Equal(new[] { 0.25f, 0.75f, 0 }, m.Row(-1));
            Assert.Equal(new[] { 1f, 0, 0, 0.25f, 0.75f, 0 }, m.ToRowMajor());
            Assert.Equal(M, m.ToArray());
        }
    }

    [Fact]
    public void IsACopy_SoResultsCannotBeChangedThroughTheSourceArray()
    {
        var source = (float[,])M.Clone();
        var m = new AttentionMatrix(source);
        source[0, 0] = 42;
        m.ToArray()[0, 1] = 42;
        Assert.Equal(1f, m[0, 0]);
        Assert.Equal(0f, m[0, 1]);
    }

    [Fact]
    public void Json_IsAnArrayOfRows_AndRoundTrips()
    {
        var json = JsonSerializer.Serialize(new AttentionMatrix(M));
        Assert.Equal("[[1,0,0],[0.25,0.75,0]]", json);
        Assert.Equal(M, JsonSerializer.Deserialize<AttentionMatrix>(json)!.ToArray());
        var e = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<AttentionMatrix>("[[1,0],[1]]"));
        Assert.Contains("row 1 has 1 values but row 0 has 2", e.Message);
    }

    [Fact]
    public void BadShapes_NameWhatIsWrong()
    {
        Assert.Contains("5 values do not fill a [2, 3] matrix",
            Assert.Throws<ArgumentException>(() => AttentionMatrix.FromRowMajor(2, 3, new float[5])).Message);
        Assert.Contains("query 2 is out of range for 2 positions", Assert.Throws<ArgumentException>(() => new AttentionMatrix(M).Row(2)).Message);
        Assert.Contains("[seq, seq], got [2, 3]",
            Assert.Throws<ArgumentException>(() => new RolloutResult(RolloutMethod.AttentionRollout, M, new Dictionary<string, string>())).Message);
    }

    [Fact]
    public void PreFusedRollout_TakesAttentionMatrices_AndEqualsTheHeadOverload()
    {
        // Two heads, two layers, 2 tokens (causal): mean fusion by hand, then the pre-fused overload must agree.
        var layer = new float[,,] { { { 1, 0 }, { 0.2f, 0.8f } }, { { 1, 0 }, { 0.6f, 0.4f } } };
        var fused = AttentionRollout.Fuse(layer, HeadFusion.Mean);
        Assert.Equal(new[] { 0.4f, 0.6f }, fused.Row(1));
        var byHeads = AttentionRollout.Compute(new[] { layer, layer });
        var preFused = AttentionRollout.Compute(new[] { fused, fused });
        Assert.Equal(byHeads.Matrix.ToRowMajor(), preFused.Matrix.ToRowMajor());
        Assert.Equal("pre-fused", preFused.Parameters["head_fusion"]);
        // A' = 0.5·A + 0.5·I → row 1 = (0.2, 0.8); two layers: row 1 = 0.2·(1, 0) + 0.8·(0.2, 0.8) = (0.36, 0.64)
        Assert.Equal(0.36f, preFused.Matrix[1, 0], 6);
        Assert.Contains("layer 1 attention is [3, 3], expected [2, 2]",
            Assert.Throws<ArgumentException>(() => AttentionRollout.Compute(new AttentionMatrix[] { fused, new float[3, 3] })).Message);
    }
}
