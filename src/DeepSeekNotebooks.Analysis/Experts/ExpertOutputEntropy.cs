#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Experts;

/// <summary>
/// How sharply one expert's output, decoded on its own, points at particular next tokens.
/// </summary>
/// <param name="Tokens">Tokens routed to the expert (the entropies are means over these); 0 → NaN entropies.</param>
/// <param name="MeanEntropy">Mean entropy (nats) of softmax(head(final_norm(expert output))).</param>
/// <param name="NormalisedEntropy">MeanEntropy / log(vocab) (1 = uniform).</param>
/// <param name="TopPromotedTokens">Token ids with the highest mean decoded logit over those tokens.</param>
public sealed record ExpertOutputEntropy(int Layer, int Expert, long Tokens, double MeanEntropy, double NormalisedEntropy, long[] TopPromotedTokens);

/// <summary>Decodes individual experts' outputs through the unembedding (logit-lens style).</summary>
public static class ExpertOutputDecoding
{
    /// <summary>
    /// Expert output entropy. For every token a MoE layer routes to expert e, takes e's (unweighted) output on that token's
    /// FFN input (ffn_norm of the residual stream after attention), decodes it alone through the final RMSNorm and the
    /// output head — the logit lens of nostalgebraist 2020 applied to a single expert's direct contribution — and averages
    /// the entropy of the resulting next-token distribution. Low entropy = the expert writes a direction that by itself
    /// selects few tokens (a vocabulary-specialised expert in the sense of OLMoE arXiv:2409.02060); high = diffuse.
    /// This ignores later layers (direct path only) and the RMSNorm scale of the full residual.
    /// </summary>
    /// <exception cref="ArgumentException">Not an MoE layer, or no sequences.</exception>
    public static IReadOnlyList<ExpertOutputEntropy> Compute(DeepSeekModel model, IEnumerable<long[]> sequences, int layer, int topTokens = 5)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        ExpertAblation.CheckMoeLayer(model.Config, layer);
        var moe = model.Layers[layer].Moe!;
        var normWeight = model.named_parameters().First(p => p.name == $"layers.{layer}.ffn_norm.weight").parameter;
        int experts = model.Config.NRoutedExperts;
        long vocab = model.Config.VocabSize;
        var entropySum = new double[experts];
        var counts = new long[experts];
        var logitSums = new double[experts][];
        int seen = 0;
        var options = new TraceOptions { AttentionPatterns = false, HiddenStates = false, Logits = false, Routing = true, Extra = new[] { HookPoints.ResidMid(layer) } };
        using var _ = no_grad();
        foreach (var ids in sequences)
        {
            seen++;
            using var scope = NewDisposeScope();
            using var trace = model.RunWithCache(tensor(ids, dtype: ScalarType.Int64).unsqueeze(0), options);
            var h = trace[HookPoints.ResidMid(layer)].reshape(-1, model.Config.HiddenSize).to(ScalarType.Float32);
            var x = h * rsqrt(h.pow(2).mean(new long[] { -1 }, keepdim: true) + model.Config.RmsNormEps) * normWeight;
            var idx = trace.ExpertIndices(layer);
            for (int e = 0; e < experts; e++)
            {
                var tokens = idx.eq(e).any(1).nonzero().flatten();
                long n = tokens.shape[0];
                if (n == 0) continue;
                var y = moe.Experts[e].forward(x.index_select(0, tokens));
                var logits = model.Unembed(model.FinalNorm.forward(y)).to(ScalarType.Float64);
                var logp = logits.log_softmax(-1);
                entropySum[e] += (-(logp.exp() * logp).sum(-1)).sum().item<double>();
                counts[e] += n;
                var sum = logits.sum(new long[] { 0 }).data<double>().ToArray();
                logitSums[e] ??= new double[vocab];
                for (int v = 0; v < vocab; v++) logitSums[e][v] += sum[v];
            }
        }
        if (seen == 0) throw new ArgumentException("no sequences given", nameof(sequences));
        return Enumerable.Range(0, experts).Select(e =>
        {
            double mean = counts[e] > 0 ? entropySum[e] / counts[e] : double.NaN;
            var top = logitSums[e] is { } s ? Enumerable.Range(0, (int)vocab).OrderByDescending(v => s[v]).Take(topTokens).Select(v => (long)v).ToArray() : Array.Empty<long>();
            return new ExpertOutputEntropy(layer, e, counts[e], mean, mean / Math.Log(vocab), top);
        }).ToArray();
    }
}
