using DeepSeekNotebooks.Analysis.Representations;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests.Generations;

/// <summary>Logit lens, direct logit attribution and activation patching on DeepSeek-V4 hyper-connection streams (golden V4 model).</summary>
public class GenerationRepresentationTests
{
    private static readonly long[] Ids = GenerationModels.Ids24.Take(16).ToArray();

    [Fact]
    public void LogitLens_OnV4_ReadsThroughTheHcHead_AndTheLastLayerIsTheModelsOwnLogits()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var rows = LogitLens.Run(model, Ids, topK: 3);
        Assert.Equal(5 * Ids.Length, rows.Count);                                                      // embeddings + 4 layers
        using var _ = no_grad();
        var probs = model.forward(tensor(Ids, dtype: int64).unsqueeze(0))[0].to(float64).softmax(-1);
        foreach (var row in rows.Where(r => r.Layer == 3))
        {
            var (v, i) = probs[row.Position].topk(3);
            Assert.Equal(i.data<long>().ToArray(), row.TopTokens);
            for (int k = 0; k < 3; k++) Assert.True(Math.Abs(v[k].item<double>() - row.TopProbabilities[k]) < 1e-6);
            if (row.Target is { } t) Assert.True(Math.Abs(probs[row.Position, t].item<double>() - row.TargetProbability) < 1e-6);
        }
        // Earlier layers read something else (the lens is not the final logits everywhere).
        var final = rows.Where(r => r.Layer == 3).ToDictionary(r => r.Position);
        Assert.Contains(rows.Where(r => r.Layer == 0), r => r.TopTokens[0] != final[r.Position].TopTokens[0]
            || Math.Abs(r.TopProbabilities[0] / final[r.Position].TopProbabilities[0] - 1) > 1e-2);
    }

    [Fact]
    public void InductionProbe_OnV4_SlidingLayersCannotReachTheFirstRepeat_CompressedLayersCan()
    {
        // Repeats of 12 tokens: the induction key q − 11 is outside a window of 8 (keys q − 7 … q), so the two sliding
        // layers score exactly 0; CSA and HCA reach it through the compressed entries that pool it.
        using var ckpt = GenerationModels.LoadV4();
        using var scope = NewDisposeScope();
        var r = InductionProbe.Run(ckpt.Model, repeatLength: 12, batch: 2, seed: 3);
        for (int h = 0; h < 4; h++)
        {
            Assert.Equal(0.0, r.Score[0, h]);
            Assert.Equal(0.0, r.Score[3, h]);
            Assert.True(r.Score[1, h] > 0 && r.Score[2, h] > 0, $"head {h}: CSA {r.Score[1, h]}, HCA {r.Score[2, h]}");
        }
    }

    [Fact]
    public void LogitLens_Decode_OnV4_RefusesASingleStream_NamingTheStreamsShape()
    {
        using var ckpt = GenerationModels.LoadV4();
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => LogitLens.Decode(ckpt.Model, zeros(1, 3, 64)));
        Assert.Contains("[batch, seq, 4, 64]", e.Message);
    }

    [Fact]
    public void DirectLogitAttribution_OnV4_PartsWeightedByTheirStreamWeights_SumToTheLogit()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var r = DirectLogitAttribution.Run(model, Ids, target: 7, foil: 11);
        // Exact with the norm scale and the mHC weights frozen: only float error remains.
        Assert.True(Math.Abs(r.FrozenNormError) < 1e-4 * Math.Max(1, Math.Abs(r.Logit)), $"Σ parts {r.SumOfParts} vs logit {r.Logit}");
        Assert.True(r.ExpertSumError < 1e-4, $"experts + shared vs FFN output: {r.ExpertSumError}");
        Assert.Empty(r.Of(LogitComponentKind.Head));                                                    // V4 attention has no per-head output
        Assert.Equal(4, r.Of(LogitComponentKind.Attention).Count);
        Assert.Equal(4 * 2, r.Of(LogitComponentKind.RoutedExpert).Count);                               // top-2 in every layer, hash layer 0 included
        // The weights are not all 1: the streams really reweight the parts.
        Assert.Contains(r.Components, c => Math.Abs(c.StreamWeight - 1) > 1e-3);
        // Independently: the embedding's weight is Σ_k pre_k · (comb chain applied to the all-ones vector); with every comb
        // doubly stochastic the chain keeps 1 → 1, so α_embed = Σ_k pre_k of the head.
        using var trace = model.RunWithCache(tensor(Ids, dtype: int64).unsqueeze(0), new TraceOptions { Names = new[] { HookPoints.HcHeadPre } });
        double preSum = trace[HookPoints.HcHeadPre][0, Ids.Length - 1].to(float64).sum().item<double>();
        Assert.True(Math.Abs(preSum - r.Of(LogitComponentKind.Embedding)[0].StreamWeight) < 1e-4);
    }

    [Fact]
    public void Patching_V4Streams_PatchesEveryStream_AndHashLayersStillRouteByTheDestinationsIds()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var source = Ids.Select((t, i) => i == 5 ? 300L : t).ToArray();                               // B differs from A at token 5
        // Everything after block 0 reads only the streams: patching resid_pre of block 1 (all 4 streams, every position)
        // restores B's logits completely; the same patch before block 0 does not, since block 0 routes by A's token 5.
        var after = ActivationPatching.Patch(model, Ids, source, HookPoints.ResidPre(1), target: 7, foil: 11);
        Assert.True(Math.Abs(after.RestoredFraction - 1) < 1e-4, $"restored {after.RestoredFraction}");
        var before = ActivationPatching.Patch(model, Ids, source, HookPoints.ResidPre(0), target: 7, foil: 11);
        Assert.True(Math.Abs(before.RestoredFraction - 1) > 1e-3, $"restored {before.RestoredFraction}: the hash layer should still see A's token");
        // Positions before the changed token are equal in A and B (causal): patching them restores nothing.
        var elsewhere = ActivationPatching.Patch(model, Ids, source, HookPoints.ResidPre(1), target: 7, foil: 11, position: 4);
        Assert.True(Math.Abs(elsewhere.RestoredFraction) < 1e-4, $"restored {elsewhere.RestoredFraction}");
    }

    [Fact]
    public void Patching_V4SinkShareAndSlotProbs_AtOnePosition_UsesTheQueryAxis()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        var source = Ids.Select((t, i) => i == 2 ? 300L : t).ToArray();
        // attn.probs [b, heads, seq, slots]: patching query 15 of layer 3 changes the last position (a wrong axis — heads — would fail or differ).
        var r = ActivationPatching.Patch(model, Ids, source, HookPoints.AttnSlotProbs(3), target: 7, foil: 11, position: Ids.Length - 1);
        Assert.NotEqual(r.DestinationMetric, r.PatchedMetric);
        var early = ActivationPatching.Patch(model, Ids, source, HookPoints.AttnSlotProbs(3), target: 7, foil: 11, position: 1);
        Assert.Equal(early.DestinationMetric, early.PatchedMetric, 10);                                     // query 1 does not feed the last position in layer 3
    }
}
