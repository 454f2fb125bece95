#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Representations;

/// <summary>The logit-lens reading of one layer's residual stream at one position.</summary>
/// <param name="Layer">Block whose output (resid_post) is decoded; −1 = the token embeddings.</param>
/// <param name="TopTokens">Top-k token ids of softmax(head(final_norm(h))), most probable first.</param>
/// <param name="TopProbabilities">Their probabilities.</param>
/// <param name="Target">Target token for this position (by default the next input token; null at the last position).</param>
/// <param name="TargetRank">1-based rank of the target (1 = top; 0 when there is no target).</param>
/// <param name="TargetProbability">Probability of the target (NaN when there is no target).</param>
public sealed record LogitLensEntry(int Layer, int Position, long[] TopTokens, double[] TopProbabilities, long? Target, int TargetRank, double TargetProbability);

/// <summary>Logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens").</summary>
public static class LogitLens
{
    /// <summary>
    /// Decodes the residual stream after every block (and the embeddings, layer −1, when <paramref name="includeEmbeddings"/>)
    /// through the model's final RMSNorm and output head — nostalgebraist 2020's logit lens — and reports, per layer and
    /// position, the top-<paramref name="topK"/> tokens with probabilities and the rank/probability of the target token.
    /// Targets default to the next input token (none at the last position); pass one per position to override (−1 = none).
    /// At the last layer this reproduces the model's own logits. On DeepSeek-V4 each layer's streams are read out through
    /// the model's <c>hc_head</c> collapse (see <see cref="Decode"/>; the embeddings as the hc_mult copies the model starts from).
    /// </summary>
    /// <exception cref="ArgumentException">Empty ids, topK outside [1, vocab], or targets of the wrong length / out of range.</exception>
    public static IReadOnlyList<LogitLensEntry> Run(DeepSeekModel model, long[] ids, int topK = 5, IReadOnlyList<long>? targets = null, bool includeEmbeddings = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Length == 0) throw new ArgumentException("the token sequence is empty", nameof(ids));
        int vocab = model.Config.VocabSize;
        if (topK < 1 || topK > vocab) throw new ArgumentException($"topK must be in [1, {vocab}]", nameof(topK));
        if (targets is not null && targets.Count != ids.Length)
            throw new ArgumentException($"give one target per position ({ids.Length}), got {targets.Count}", nameof(targets));
        var tgt = Enumerable.Range(0, ids.Length).Select(p => targets is not null ? targets[p] : p + 1 < ids.Length ? ids[p + 1] : -1).ToArray();
        foreach (var t in tgt) if (t < -1 || t >= vocab) throw new ArgumentException($"target {t} out of range [0, {vocab})", nameof(targets));

        var rows = new List<LogitLensEntry>();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var options = new TraceOptions { AttentionPatterns = false, Routing = false, HiddenStates = true, Logits = false, Extra = includeEmbeddings ? new[] { HookPoints.Embed } : Array.Empty<string>() };
        using var trace = model.RunWithCache(tensor(ids, dtype: ScalarType.Int64).unsqueeze(0), options);
        var layers = (includeEmbeddings ? new[] { -1 } : Array.Empty<int>()).Concat(Enumerable.Range(0, model.Config.NumHiddenLayers));
        foreach (int layer in layers)
        {
            var h = layer < 0 ? trace[HookPoints.Embed] : trace.Hidden(layer);
            // With hyper-connections the streams before block 0 are hc_mult copies of the embedding (as the model starts them).
            if (layer < 0 && model.Config.HyperConnections is { } hc) h = h.unsqueeze(2).repeat(1, 1, hc.Mult, 1);
            var logits = Decode(model, h)[0].to(ScalarType.Float64);
            var probs = logits.softmax(-1);
            var (vals, idx) = probs.topk(topK, dim: -1);
            var pv = vals.data<double>().ToArray();
            var iv = idx.data<long>().ToArray();
            var lg = logits.data<double>().ToArray();
            var pr = probs.data<double>().ToArray();
            for (int p = 0; p < ids.Length; p++)
            {
                long t = tgt[p];
                int rank = 0; double tp = double.NaN;
                if (t >= 0)
                {
                    double lt = lg[p * vocab + t];
                    rank = 1;
                    for (int v = 0; v < vocab; v++) if (lg[p * vocab + v] > lt) rank++;
                    tp = pr[p * vocab + t];
                }
                rows.Add(new LogitLensEntry(layer, p, iv.AsSpan(p * topK, topK).ToArray(), pv.AsSpan(p * topK, topK).ToArray(), t >= 0 ? t : null, rank, tp));
            }
        }
        return rows;
    }

    /// <summary>
    /// head(final_norm(h)) for a residual-stream tensor h [..., dim] — the logit-lens decoder (nostalgebraist 2020). With
    /// DeepSeek-V4 hyper-connections the residual is the streams [batch, seq, hc_mult, dim] (<c>resid_*</c>) and the
    /// readout is the model's own head path: the <c>hc_head</c> collapse Σ_j pre_j H_j with its learned weights
    /// (computed from the streams given), then the final norm and head — so the last layer reproduces the logits.
    /// </summary>
    /// <exception cref="ArgumentException">The last dimension is not hidden_size, or a hyper-connection model is given anything but the streams.</exception>
    public static Tensor Decode(DeepSeekModel model, Tensor residual)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(residual);
        if (residual.shape[^1] != model.Config.HiddenSize)
            throw new ArgumentException($"the residual's last dimension must be {model.Config.HiddenSize}", nameof(residual));
        if (model.Config.HyperConnections is { } hc)
        {
            if (residual.dim() != 4 || residual.shape[2] != hc.Mult)
                throw new ArgumentException($"this model has {hc.Mult} hyper-connection streams: give the streams [batch, seq, {hc.Mult}, {model.Config.HiddenSize}] (a resid_* hook point), got [{string.Join(", ", residual.shape)}]", nameof(residual));
            residual = model.CollapseStreams(residual);
        }
        return model.Unembed(model.FinalNorm.forward(residual));
    }

    /// <summary>Logit-lens entries as a DataFrame (layer, position, top1, top1_prob, top_tokens, target, target_rank, target_prob).</summary>
    public static DataFrame ToDataFrame(IReadOnlyList<LogitLensEntry> rows) => new(
        Frames.Int("layer", rows, r => r.Layer), Frames.Int("position", rows, r => r.Position),
        Frames.Long("top1", rows, r => r.TopTokens[0]), Frames.Double("top1_prob", rows, r => r.TopProbabilities[0]),
        Frames.Str("top_tokens", rows, r => string.Join(" ", r.TopTokens)), Frames.Long("target", rows, r => r.Target ?? -1),
        Frames.Int("target_rank", rows, r => r.TargetRank), Frames.Double("target_prob", rows, r => r.TargetProbability));
}
