using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model;

/// <summary>
/// How <see cref="DeepSeekModel.Generate"/> picks each next token, with Hugging Face <c>generate</c>'s names and order:
/// greedy (argmax) unless <see cref="DoSample"/>; when sampling, logits / <see cref="Temperature"/>, then
/// <see cref="TopK"/>, then <see cref="TopP"/> (nucleus, Holtzman et al. 2020), then one draw from the renormalised
/// distribution with a generator seeded by <see cref="Seed"/>.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Sample from the distribution (true) or take the most probable token (false, greedy; the default).</summary>
    public bool DoSample { get; init; }
    /// <summary>Softmax temperature when sampling (&gt; 0; 1 = the model's distribution).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep only the k most probable tokens when sampling (null = all).</summary>
    public int? TopK { get; init; }
    /// <summary>Keep the smallest set of most probable tokens whose probability reaches p, in (0, 1] (null = all).</summary>
    public double? TopP { get; init; }
    /// <summary>Seed of the sampler: equal seeds give equal continuations (null = a seed from the system clock).</summary>
    public int? Seed { get; init; }
    /// <summary>Stop after emitting this token (it is kept in the output). Null = the config's <c>eos_token_id</c> when it has one.</summary>
    public long? EosTokenId { get; init; }

    /// <summary>Greedy decoding.</summary>
    public static GenerationOptions Greedy { get; } = new();
}

/// <summary>The result of <see cref="DeepSeekModel.Generate"/>.</summary>
/// <param name="PromptIds">The prompt as given.</param>
/// <param name="NewIds">The generated tokens, in order (the EOS token included when it ended the generation).</param>
/// <param name="StoppedAtEos">Whether generation ended at the EOS token (false: it ran to the requested number of tokens).</param>
public sealed record GenerationResult(long[] PromptIds, long[] NewIds, bool StoppedAtEos)
{
    /// <summary>Prompt followed by the generated tokens (what Hugging Face's <c>generate</c> returns).</summary>
    public long[] Sequence => PromptIds.Concat(NewIds).ToArray();
}

/// <summary>Autoregressive decoding for <see cref="DeepSeekModel.Generate"/> (recomputes the full causal forward per token: no KV cache).</summary>
internal static class Generation
{
    internal static GenerationResult Run(DeepSeekModel model, IReadOnlyList<long> prompt, int maxNewTokens, GenerationOptions? options)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= GenerationOptions.Greedy;
        var c = model.Config;
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty; give at least one token id", nameof(prompt));
        if (maxNewTokens < 0) throw new ArgumentOutOfRangeException(nameof(maxNewTokens), maxNewTokens, "the number of new tokens must be >= 0");
        if (prompt.Count + (long)maxNewTokens > c.MaxPositionEmbeddings)
            throw new ArgumentException($"the prompt ({prompt.Count} tokens) plus {maxNewTokens} new tokens exceeds max_position_embeddings = {c.MaxPositionEmbeddings}; " +
                $"ask for at most {Math.Max(0, c.MaxPositionEmbeddings - prompt.Count)} new tokens", nameof(maxNewTokens));
        if (options.DoSample)
        {
            if (!(options.Temperature > 0) || double.IsInfinity(options.Temperature))
                throw new ArgumentOutOfRangeException(nameof(options), options.Temperature, "Temperature must be a finite number > 0 when sampling (use DoSample = false for greedy)");
            if (options.TopK is { } k && (k < 1 || k > c.VocabSize))
                throw new ArgumentOutOfRangeException(nameof(options), k, $"TopK must be in [1, {c.VocabSize}] (vocab_size)");
            if (options.TopP is { } p && !(p > 0 && p <= 1))
                throw new ArgumentOutOfRangeException(nameof(options), p, "TopP must be in (0, 1]");
        }
        long? eos = options.EosTokenId ?? ConfigEos(c);
        if (eos is { } e0 && (e0 < 0 || e0 >= c.VocabSize))
            throw new ArgumentOutOfRangeException(nameof(options), e0, $"the EOS token id must be in [0, {c.VocabSize - 1}]");

        var ids = prompt.ToList();
        using (var check = tensor(ids.ToArray(), dtype: ScalarType.Int64)) model.CheckInputIds(check);
        var rng = options.DoSample ? new Random(options.Seed ?? Environment.TickCount) : null;
        var generated = new List<long>();
        bool stopped = false;
        using var _ = no_grad();
        for (int step = 0; step < maxNewTokens; step++)
        {
            double[] logits;
            using (var scope = NewDisposeScope())
            {
                var input = tensor(ids.ToArray(), dtype: ScalarType.Int64).unsqueeze(0);
                logits = model.forward(input)[0, -1].to(ScalarType.Float64).cpu().data<double>().ToArray();
            }
            long next = rng is null ? ArgMax(logits) : Sample(logits, options, rng);
            ids.Add(next);
            generated.Add(next);
            if (next == eos) { stopped = true; break; }
        }
        return new GenerationResult(prompt.ToArray(), generated.ToArray(), stopped);
    }

    private static long? ConfigEos(DeepSeekConfig c) =>
        c.ExtraFields?["eos_token_id"] is JsonValue v && v.TryGetValue<long>(out var id) ? id : null;

    /// <summary>The first index of the maximum (torch.argmax's tie rule on CPU).</summary>
    internal static long ArgMax(double[] xs)
    {
        int best = 0;
        for (int i = 1; i < xs.Length; i++) if (xs[i] > xs[best]) best = i;
        return best;
    }

    /// <summary>Temperature, top-k, top-p (Hugging Face's warper order), then one categorical draw.</summary>
    internal static long Sample(double[] logits, GenerationOptions o, Random rng)
    {
        int n = logits.Length;
        var order = Enumerable.Range(0, n).OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
        int keep = Math.Min(n, o.TopK ?? n);
        double max = logits[order[0]];
        var p = new double[keep];
        double sum = 0;
        for (int r = 0; r < keep; r++) sum += p[r] = Math.Exp((logits[order[r]] - max) / o.Temperature);
        for (int r = 0; r < keep; r++) p[r] /= sum;
        if (o.TopP is { } topP)
        {
            // Keep a token while the probability of the tokens ranked above it is below p (the top token always stays).
            double before = 0;
            int r = 0;
            while (r < keep && (r == 0 || before < topP)) before += p[r++];
            keep = r;
            double kept = p.Take(keep).Sum();
            for (int i = 0; i < keep; i++) p[i] /= kept;
        }
        double u = rng.NextDouble(), acc = 0;
        for (int r = 0; r < keep; r++)
        {
            acc += p[r];
            if (u < acc) return order[r];
        }
        return order[keep - 1];
    }
}
