using DeepSeekNotebooks.Analysis.Attention;
#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Representations;

/// <summary>The induction probe's measurements on repeated random tokens.</summary>
/// <param name="Score">[layer, head] mean attention from each token of the second repeat to the token after its first occurrence.</param>
/// <param name="FirstRepeatLoss">Mean next-token cross-entropy (nats) on tokens 2 … n of the first repeat (random: no way to predict them).</param>
/// <param name="SecondRepeatLoss">Mean next-token cross-entropy (nats) on tokens 2 … n of the second repeat (predictable by copying from the first).</param>
/// <param name="ChanceLoss">ln(vocab_size), the loss of a uniform guess.</param>
/// <param name="Tokens">The sequences probed [batch][prefix + 2·repeat length].</param>
/// <param name="RepeatStart">Index of the first token of the first repeat (1 with a BOS prefix, else 0).</param>
/// <param name="RepeatLength">Tokens per repeat.</param>
public sealed record InductionResult(double[,] Score, double FirstRepeatLoss, double SecondRepeatLoss, double ChanceLoss,
    long[][] Tokens, int RepeatStart, int RepeatLength)
{
    /// <summary>The (layer, head) with the highest induction score.</summary>
    public (int Layer, int Head, double Score) Strongest
    {
        get
        {
            (int, int, double) best = (0, 0, double.NegativeInfinity);
            for (int l = 0; l < Score.GetLength(0); l++)
                for (int h = 0; h < Score.GetLength(1); h++)
                    if (Score[l, h] > best.Item3) best = (l, h, Score[l, h]);
            return best;
        }
    }
}

/// <summary>
/// Induction heads (Olsson et al. 2022, "In-context Learning and Induction Heads"), probed as in TransformerLens's
/// main demo: random tokens repeated twice; an induction head attends from a token of the second repeat to the token
/// that followed its first occurrence, and the model's loss drops on the second repeat.
/// </summary>
public static class InductionProbe
{
    /// <summary>
    /// Draws <paramref name="batch"/> sequences of <paramref name="repeatLength"/> uniform random tokens (seeded), repeats
    /// each twice (after <paramref name="bos"/> when given, as TransformerLens prepends BOS), runs the model and returns the
    /// per-head induction score (<see cref="Score(Tensor, int, int)"/> averaged over the batch) and the mean loss on each repeat.
    /// <paramref name="hooks"/> run in the forward pass (e.g. to ablate or plant a head). On DeepSeek-V4 the scores are
    /// read from <see cref="TokenAttention"/>'s token-to-token patterns (compressed entries mapped back to their tokens), so
    /// a sliding-window layer scores 0 once repeatLength − 1 exceeds the window − 1: the earlier occurrence is out of its reach.
    /// </summary>
    /// <exception cref="ArgumentException">repeatLength &lt; 2, batch &lt; 1, the sequence longer than max_position_embeddings, or bos outside the vocabulary.</exception>
    public static InductionResult Run(DeepSeekModel model, int repeatLength = 20, int batch = 4, int seed = 0, long? bos = null,
        IReadOnlyDictionary<string, HookFunction>? hooks = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        if (repeatLength < 2) throw new ArgumentException($"repeatLength must be at least 2, got {repeatLength}", nameof(repeatLength));
        if (batch < 1) throw new ArgumentException($"batch must be at least 1, got {batch}", nameof(batch));
        int start = bos is null ? 0 : 1, seq = start + 2 * repeatLength;
        if (seq > c.MaxPositionEmbeddings)
            throw new ArgumentException($"{(bos is null ? "" : "BOS + ")}2 × {repeatLength} = {seq} tokens exceed max_position_embeddings = {c.MaxPositionEmbeddings}; use repeatLength <= {(c.MaxPositionEmbeddings - start) / 2}", nameof(repeatLength));
        if (bos is < 0 || bos >= c.VocabSize) throw new ArgumentException($"bos {bos} out of range [0, {c.VocabSize})", nameof(bos));

        var rng = new Random(seed);
        var tokens = new long[batch][];
        for (int b = 0; b < batch; b++)
        {
            var half = Enumerable.Range(0, repeatLength).Select(_ => (long)rng.Next(c.VocabSize)).ToArray();
            tokens[b] = (bos is { } t ? new[] { t } : Array.Empty<long>()).Concat(half).Concat(half).ToArray();
        }
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(tokens.SelectMany(x => x).ToArray(), dtype: ScalarType.Int64).view(batch, seq);
        bool v4 = c.CompressedAttention is not null;
        var names = (v4 ? TokenAttention.TraceNames(c) : Enumerable.Range(0, c.NumHiddenLayers).Select(HookPoints.AttnPattern)).Append(HookPoints.Logits).ToArray();
        using var trace = model.RunWithCache(ids, new TraceOptions { Names = names, Hooks = hooks });
        // DeepSeek-V4: the token-to-token patterns of TokenAttention (compressed entries' mass back on the tokens they pool).
        var mapped = v4 ? Enumerable.Range(0, batch).Select(b => TokenAttention.FromTrace(model, trace, b)).ToArray() : null;
        var score = new double[c.NumHiddenLayers, c.NumAttentionHeads];
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            var pattern = mapped is null ? trace.AttentionPattern(l)
                : stack(mapped.Select(m => tensor(m[l].Pattern.Cast<float>().ToArray(), new long[] { m[l].Heads, seq, seq })).ToArray());
            var s = Score(pattern, start, repeatLength);
            for (int h = 0; h < c.NumAttentionHeads; h++) score[l, h] = s[h];
        }
        // Position p predicts token p + 1. Targets r_2 … r_n of each repeat: start+1 … start+n−1 and start+n+1 … start+2n−1
        // (r_1 of the second repeat is left out: nothing followed r_n before, so copying cannot predict it).
        var logp = trace.Logits.to(float64).log_softmax(-1);
        var nll = -logp.narrow(1, 0, seq - 1).gather(-1, ids.narrow(1, 1, seq - 1).unsqueeze(-1)).squeeze(-1);   // [b, seq−1], target p+1
        double first = nll.narrow(1, start, repeatLength - 1).mean().item<double>();
        double second = nll.narrow(1, start + repeatLength, repeatLength - 1).mean().item<double>();
        return new InductionResult(score, first, second, Math.Log(c.VocabSize), tokens, start, repeatLength);
    }

    /// <summary>
    /// Induction score per head of one attention pattern [batch, heads, query, key] over a sequence whose repeats of
    /// <paramref name="repeatLength"/> tokens start at <paramref name="repeatStart"/>: the mean, over the batch and every
    /// query q of the second repeat, of pattern[q, q − repeatLength + 1] (the token after the query token's first occurrence).
    /// </summary>
    public static double[] Score(Tensor pattern, int repeatStart, int repeatLength)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.dim() != 4 || pattern.shape[2] != pattern.shape[3])
            throw new ArgumentException($"the pattern must be [batch, heads, query, key] with query = key, got [{string.Join(", ", pattern.shape)}]", nameof(pattern));
        long seq = pattern.shape[2];
        if (repeatStart < 0 || repeatLength < 1 || repeatStart + 2L * repeatLength > seq)
            throw new ArgumentException($"two repeats of {repeatLength} tokens from position {repeatStart} do not fit in {seq} positions", nameof(repeatLength));
        using var scope = NewDisposeScope();
        // The stripe pattern[q, q − (n − 1)] is the diagonal at offset −(n − 1); its entries for q in the second repeat.
        var stripe = pattern.to(float64).diagonal(offset: 1 - repeatLength, dim1: -2, dim2: -1);   // [b, h, seq − n + 1], entry i = q of n − 1 + i
        var second = stripe.narrow(-1, repeatStart + 1, repeatLength);                                // q = start + n … start + 2n − 1
        return second.mean(new long[] { 0, 2 }).data<double>().ToArray();
    }
}
