using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests.Generations;

/// <summary>
/// Attention × gradient on DeepSeek-V4 (A·∂F/∂A over the slots each query attends: window tokens, compressed entries;
/// entries mapped back to their tokens by the compressor's pooling weights) and on DeepSeek-V3.2 (keys the indexer did
/// not select have A = 0, so attribution 0). The V4 expectation is computed here without the kit's attribution code: the
/// slot probabilities replaced by a leaf tensor at <c>attn.probs</c> (the model then recomputes the output from the
/// leaf), autograd, and the pooling weights rebuilt from the compressor's own weights (<c>wgate</c>, <c>ape</c>) as the
/// official <c>Compressor.forward</c> defines them.
/// </summary>
public class GenerationAttentionGradientTests
{
    private static readonly long[] Ids = GenerationModels.Ids24.Take(16).ToArray();
    private const long TargetToken = 7;

    [Fact]
    public void V4_AttentionTimesGradient_IsNonZero_AndEqualsAHandComputationOverSlotsAndPooledEntries()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        var c = model.Config;
        int seq = Ids.Length, heads = c.NumAttentionHeads, q = seq - 1;
        using var scope = NewDisposeScope();
        var ids = tensor(Ids, dtype: int64).unsqueeze(0);
        var r = AttentionTimesGradient.Attribute(model, ids, AttributionTarget.Logit(-1, TargetToken));
        Assert.Equal(new[] { seq, c.NumHiddenLayers * heads }, r.Shape);
        Assert.All(r.Attributions, a => Assert.True(float.IsFinite(a)));
        var scores = AttentionTimesGradient.PerLayerHead(r);

        var kinds = Enumerable.Range(0, c.NumHiddenLayers).Select(c.AttentionKindOf).ToArray();
        Assert.Equal(new[] { AttentionKind.SlidingWindow, AttentionKind.CompressedSparse, AttentionKind.HeavilyCompressed, AttentionKind.SlidingWindow }, kinds);
        for (int layer = 0; layer < c.NumHiddenLayers; layer++)
        {
            var expected = HandComputed(model, ids, layer, q);   // [heads, seq]
            double scale = expected.Cast<double>().Max(Math.Abs);
            Assert.True(scale > 1e-6, $"layer {layer}: the hand computation is all zero (nothing to compare)");
            for (int h = 0; h < heads; h++)
                for (int k = 0; k < seq; k++)
                    Assert.True(Math.Abs(expected[h, k] - scores[layer, h, k]) <= 1e-5 * scale + 1e-7,
                        $"layer {layer} head {h} token {k}: kit {scores[layer, h, k]} vs hand {expected[h, k]}");
        }
        // The window is 8 tokens (8…15 for query 15); tokens 0…7 are reached only through compressed entries, so the
        // compressed layers must credit them and the sliding layers must not.
        int window = c.CompressedAttention!.SlidingWindow;
        for (int layer = 0; layer < c.NumHiddenLayers; layer++)
        {
            double outside = 0;
            for (int h = 0; h < heads; h++)
                for (int k = 0; k <= q - window; k++) outside += Math.Abs(scores[layer, h, k]);
            if (kinds[layer] == AttentionKind.SlidingWindow) Assert.Equal(0.0, outside);
            else Assert.True(outside > 0, $"layer {layer} ({kinds[layer]}): no attribution reaches the tokens outside the window through the compressed entries");
        }
        Assert.Contains(r.TokenSums, v => v != 0);
    }

    [Fact]
    public void V4_AttentionTimesGradient_WithTheOfficialQuantisation_IsFiniteAndNonZeroInEveryLayer()
    {
        using var ckpt = GenerationModels.LoadV4();
        var model = ckpt.Model;
        model.Quantisation = QuantisationSimulation.Official;
        using var scope = NewDisposeScope();
        var r = AttentionTimesGradient.Attribute(model, tensor(Ids, dtype: int64).unsqueeze(0), AttributionTarget.Logit(-1, TargetToken));
        Assert.All(r.Attributions, a => Assert.True(float.IsFinite(a)));
        var scores = AttentionTimesGradient.PerLayerHead(r);
        for (int layer = 0; layer < model.Config.NumHiddenLayers; layer++)
        {
            double total = 0;
            for (int h = 0; h < model.Config.NumAttentionHeads; h++)
                for (int k = 0; k < Ids.Length; k++) total += Math.Abs(scores[layer, h, k]);
            Assert.True(total > 0, $"layer {layer}: all-zero attention×gradient");
        }
    }

    [Fact]
    public void V32_KeysTheIndexerDidNotSelect_GetExactlyZero_SelectedKeysCarryTheAttribution()
    {
        using var ckpt = GenerationModels.LoadV32();
        var model = ckpt.Model;
        var c = model.Config;
        long[] ids12 = GenerationModels.Ids24.Take(12).ToArray();
        int seq = ids12.Length, q = seq - 1;
        using var scope = NewDisposeScope();
        var ids = tensor(ids12, dtype: int64).unsqueeze(0);
        var r = AttentionTimesGradient.Attribute(model, ids, AttributionTarget.Logit(-1, TargetToken));
        var scores = AttentionTimesGradient.PerLayerHead(r);
        var selected = new bool[c.NumHiddenLayers][];
        var hooks = Enumerable.Range(0, c.NumHiddenLayers).ToDictionary(HookPoints.IndexerTopk, l => (HookFunction)((v, _) =>
        {
            selected[l] = v[0, q].cpu().data<bool>().ToArray();
            return null;
        }));
        using (no_grad()) model.RunWithHooks(ids, hooks);
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            Assert.Equal(c.Indexer!.Topk, selected[l].Count(b => b));   // 6 of 12 keys: the mask really excludes some
            double onSelected = 0;
            for (int h = 0; h < c.NumAttentionHeads; h++)
                for (int k = 0; k < seq; k++)
                    if (selected[l][k]) onSelected += Math.Abs(scores[l, h, k]);
                    else Assert.Equal(0f, scores[l, h, k]);
            Assert.True(onSelected > 0, $"layer {l}: the selected keys carry no attribution");
        }
    }

    /// <summary>
    /// A·∂F/∂A of query <paramref name="q"/> in V4 layer <paramref name="layer"/>, [heads, seq], computed independently:
    /// the slot probabilities replaced by a leaf (the model recomputes the output from it), the logit differentiated,
    /// each slot's product credited to its token or, for a compressed entry, spread over the entry's tokens by pooling
    /// weights rebuilt from <c>attn_norm</c>, <c>wgate</c> and <c>ape</c> (softmax over the slots per channel, channel mean).
    /// </summary>
    private static double[,] HandComputed(DeepSeekModel model, Tensor ids, int layer, int q)
    {
        var c = model.Config;
        int seq = (int)ids.shape[1], heads = c.NumAttentionHeads;
        Tensor? leaf = null;
        long[]? slots = null;
        Tensor? input = null;
        var hooks = new Dictionary<string, HookFunction>
        {
            [HookPoints.AttnSlotProbs(layer)] = (v, _) => leaf = v.detach().clone().requires_grad_(true).DetachFromDisposeScope(),
            [HookPoints.AttnTopkIdxs(layer)] = (v, _) => { slots = v[0, q].cpu().data<long>().ToArray(); return null; },
            [HookPoints.HcAttnCollapsed(layer)] = (v, _) => { input = v.detach().clone().DetachFromDisposeScope(); return null; },
        };
        double[,] product;
        using (enable_grad())
        {
            var logits = model.RunWithHooks(ids, hooks);
            var g = torch.autograd.grad(new[] { logits[0, -1, TargetToken] }, new[] { leaf! })[0];
            var a = (leaf! * g)[0, TensorIndex.Colon, q].to(float64).contiguous().data<double>().ToArray();   // [heads, slots]
            int k = slots!.Length;
            product = new double[heads, k];
            for (int h = 0; h < heads; h++) for (int j = 0; j < k; j++) product[h, j] = a[h * k + j];
        }
        var pool = PoolingByHand(model, layer, input!, seq);   // entry → (token, weight)
        var expected = new double[heads, seq];
        for (int j = 0; j < slots.Length; j++)
        {
            long idx = slots[j];
            if (idx < 0) continue;
            for (int h = 0; h < heads; h++)
            {
                if (idx < seq) expected[h, idx] += product[h, j];
                else foreach (var (token, w) in pool[(int)(idx - seq)]) expected[h, token] += product[h, j] * w;
            }
        }
        leaf!.Dispose(); input!.Dispose();
        return expected;
    }

    /// <summary>
    /// The tokens each compressed entry pools and their weights, from the official compressor's definition: score = wgate·x
    /// + ape[slot]; ratio 4 (overlapping): slots 0…3 are tokens (e−1)·4 + j on the first half of the channels (none for e = 0),
    /// slots 4…7 tokens e·4 + j on the second half; other ratios: slots j are tokens e·m + j. Softmax over the slots per
    /// channel, then the mean over the channels.
    /// </summary>
    private static List<(int Token, double Weight)>[] PoolingByHand(DeepSeekModel model, int layer, Tensor input, int seq)
    {
        int m = model.Config.CompressRatio(layer);
        if (m == 0) return Array.Empty<List<(int, double)>>();
        var p = model.named_parameters().ToDictionary(t => t.name, t => t.parameter);
        using var _ = no_grad();
        var x = input[0].to(float64);
        var norm = p[$"layers.{layer}.attn_norm.weight"].to(float64);
        x = x * rsqrt(x.pow(2).mean(new long[] { -1 }, keepdim: true) + model.Config.RmsNormEps) * norm;
        var score = x.matmul(p[$"layers.{layer}.attn.compressor.wgate.weight"].to(float64).t());                  // [seq, coff·d]
        var ape = p[$"layers.{layer}.attn.compressor.ape"].to(float64);                                           // [m, coff·d]
        int d = model.Config.CompressedAttention!.HeadDim;
        var S = score.contiguous().data<double>().ToArray();
        var A = ape.contiguous().data<double>().ToArray();
        int width = (int)score.shape[1];
        bool overlap = m == 4;
        int entries = seq / m;
        var result = new List<(int, double)>[entries];
        for (int e = 0; e < entries; e++)
        {
            var slotTokens = new List<int>();
            var slotScores = new List<Func<int, double>>();   // channel → score
            if (overlap)
            {
                if (e > 0)
                    for (int j = 0; j < m; j++) { int t = (e - 1) * m + j, jj = j; slotTokens.Add(t); slotScores.Add(ch => S[t * width + ch] + A[jj * width + ch]); }
                for (int j = 0; j < m; j++) { int t = e * m + j, jj = j; slotTokens.Add(t); slotScores.Add(ch => S[t * width + d + ch] + A[jj * width + d + ch]); }
            }
            else
                for (int j = 0; j < m; j++) { int t = e * m + j, jj = j; slotTokens.Add(t); slotScores.Add(ch => S[t * width + ch] + A[jj * width + ch]); }
            var weight = new double[slotTokens.Count];
            for (int ch = 0; ch < d; ch++)
            {
                var z = slotScores.Select(f => f(ch)).ToArray();
                double max = z.Max(), sum = z.Sum(v => Math.Exp(v - max));
                for (int s = 0; s < z.Length; s++) weight[s] += Math.Exp(z[s] - max) / sum / d;
            }
            result[e] = slotTokens.Select((t, s) => (t, weight[s])).ToList();
        }
        return result;
    }
}
