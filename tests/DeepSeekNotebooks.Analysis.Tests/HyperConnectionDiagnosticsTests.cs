using DeepSeekNotebooks.Analysis.Streams;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// mHC diagnostics: comb distances on hand-built matrices (identity → 0, uniform → fraction 1, a swap → 2 / √3), the readout
/// decomposition on hand-built streams (a plain residual network: every gain 1, D_eff by hand; a write into a stream the head
/// never reads: gain 0), and on the golden tiny V4 model the decomposition reproducing the model's own hc_head.collapsed.
/// </summary>
public class HyperConnectionDiagnosticsTests
{
    [Fact]
    public void CombDistances_IdentityIsZero_UniformIsFractionOne_ASwapIsTwoOverRootThree()
    {
        using var scope = NewDisposeScope();
        var (dI, dU, f) = HyperConnectionDiagnostics.CombDistances(eye(4, dtype: float64));
        Assert.Equal(0, dI.item<double>(), 12);
        Assert.Equal(Math.Sqrt(3), dU.item<double>(), 12);      // ‖I − J/4‖_F = √(n−1)
        Assert.Equal(0, f.item<double>(), 12);
        (dI, dU, f) = HyperConnectionDiagnostics.CombDistances(full(4, 4, 0.25, dtype: float64));
        Assert.Equal(0, dU.item<double>(), 12);
        Assert.Equal(1, f.item<double>(), 12);
        var swap = tensor(new double[] { 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 }).view(4, 4);
        (dI, _, f) = HyperConnectionDiagnostics.CombDistances(swap);
        Assert.Equal(2, dI.item<double>(), 12);
        Assert.Equal(2 / Math.Sqrt(3), f.item<double>(), 12);
        // Transport: two swaps compose to the identity.
        var t = HyperConnectionDiagnostics.TransportFractions(new[] { swap.unsqueeze(0), swap.unsqueeze(0) });
        Assert.Equal(2 / Math.Sqrt(3), t[0].item<double>(), 12);
        Assert.Equal(0, t[1].item<double>(), 12);
    }

    [Fact]
    public void Readout_OfAPlainResidualNetwork_HasUnitGains_AndTheHandComputedEffectiveDepth()
    {
        using var scope = NewDisposeScope();
        var one = ones(1, 1, dtype: float64);
        var e = tensor(new double[] { 1, 0 }).view(1, 2);
        var f1 = tensor(new double[] { 0, 1 }).view(1, 2);
        var f2 = tensor(new double[] { 2, 0 }).view(1, 2);
        var dec = HyperConnectionDiagnostics.Readout(e, new[] { (one, one.view(1, 1, 1), f1), (one, one.view(1, 1, 1), f2) }, one);
        Assert.All(dec.Gains, g => Assert.Equal(1, g.item<double>(), 12));
        Assert.Equal(new[] { 0.25, 0.25, 0.5 }, dec.Shares.Select(s => Math.Round(s.item<double>(), 12)));
        Assert.Equal(0 * 0.25 + 1 * 0.25 + 2 * 0.5, dec.EffectiveDepth.item<double>(), 12);
        Assert.Equal(new double[] { 3, 1 }, dec.Reconstruction.view(-1).data<double>().ToArray());
    }

    [Fact]
    public void Readout_AWriteIntoAStreamTheHeadNeverReads_HasGainZero()
    {
        using var scope = NewDisposeScope();
        var e = tensor(new double[] { 1, 2, 3 }).view(1, 3);
        var f = tensor(new double[] { 5, 5, 5 }).view(1, 3);
        var post = tensor(new double[] { 1, 0 }).view(1, 2);              // writes into stream 0 only
        var comb = eye(2, dtype: float64).unsqueeze(0);                   // streams kept apart
        var head = tensor(new double[] { 0, 1 }).view(1, 2);              // the head reads stream 1 only
        var dec = HyperConnectionDiagnostics.Readout(e, new[] { (post, comb, f) }, head);
        Assert.Equal(0, dec.Gains[1].item<double>(), 12);
        Assert.Equal(1, dec.Gains[0].item<double>(), 12);
        Assert.Equal(new double[] { 1, 2, 3 }, dec.Reconstruction.view(-1).data<double>().ToArray());
        // Swap the streams: now the write reaches the head with gain 1.
        var swap = tensor(new double[] { 0, 1, 1, 0 }).view(1, 2, 2);
        dec = HyperConnectionDiagnostics.Readout(e, new[] { (post, swap, f) }, head);
        Assert.Equal(0, dec.Gains[1].item<double>(), 12);   // the write happens after the mix: post_k f lands in stream 0, head reads 1
        dec = HyperConnectionDiagnostics.Readout(e, new[] { (post, swap, f), (zeros(1, 2, dtype: float64), swap, f) }, head);
        Assert.Equal(1, dec.Gains[1].item<double>(), 12);   // a later swap carries stream 0 into stream 1
        Assert.Equal(0, dec.Gains[2].item<double>(), 12);
    }

    [Fact]
    public void V4_TheDecompositionReproducesTheModelsReadout_AndSharesSumToOne()
    {
        using var ckpt = GenerationFixtures.V4();
        var r = HyperConnectionDiagnostics.Measure(ckpt, new[] { GenerationFixtures.Prompt(24, 1), GenerationFixtures.Prompt(9, 2) });
        Assert.Equal(4, r.Streams);
        Assert.Equal(33, r.Tokens);
        Assert.Equal(8, r.Sites.Length);
        Assert.Equal(8, r.NominalDepth);
        Assert.True(r.ReconstructionError < 1e-5, $"readout reconstruction error {r.ReconstructionError}");
        Assert.Equal(1, r.EmbeddingReadoutShare + r.Sites.Sum(s => s.MeanReadoutShare), 9);
        Assert.InRange(r.EffectiveDepth, 0, r.NominalDepth);
        foreach (var s in r.Sites)
        {
            // Doubly stochastic combs lie between identity and any permutation: fraction ≤ max over permutations √(2n)/√(n−1).
            Assert.InRange(s.CombFraction, 0, Math.Sqrt(8.0 / 3));
            Assert.Equal(4, s.MeanPre.Length);
            Assert.Equal(s.MeanPre.ToList().IndexOf(s.MeanPre.Max()), s.ReadsMost);
        }
        Assert.Equal(new[] { 1, 2, 3, 4, 5, 6, 7, 8 }, r.Sites.Select(s => s.Depth));
    }

    [Fact]
    public void Result_RoundTripsThroughJson_AndFrames_BadInputNamesTheProblem()
    {
        using var ckpt = GenerationFixtures.V4();
        var r = HyperConnectionDiagnostics.Measure(ckpt, new[] { GenerationFixtures.Prompt(8, 3) });
        var back = HyperConnectionDiagnosticsResult.FromJson(r.ToJson());
        Assert.Equal(r.ToJson(), back.ToJson());
        Assert.Equal(8, r.ToDataFrame().Rows.Count);
        Assert.Equal(8 * 4, r.StreamsFrame().Rows.Count);
        Assert.Contains("prompt 0 is empty", Assert.Throws<ArgumentException>(() => HyperConnectionDiagnostics.Measure(ckpt, new[] { Array.Empty<long>() })).Message);
        using var v32 = GenerationFixtures.V32();
        Assert.Contains("single residual stream", Assert.Throws<ArgumentException>(() => HyperConnectionDiagnostics.Measure(v32, new[] { new long[] { 1 } })).Message);
    }
}
