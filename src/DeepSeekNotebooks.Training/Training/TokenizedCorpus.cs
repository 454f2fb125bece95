using DeepSeekNotebooks.Model.Tokenization;
using DeepSeekNotebooks.Training.Corpus;
using DeepSeekNotebooks.Training.Tokenization;

namespace DeepSeekNotebooks.Training.Training;

/// <summary>One training/evaluation batch: inputs and targets [batch, seq], a loss mask (1 = counted) and each row's domain.</summary>
public sealed record Batch(long[] Inputs, long[] Targets, float[] Mask, string[] RowDomains, int BatchSize, int SequenceLength);

/// <summary>
/// The corpus encoded with the tokenizer: per domain and split, one token stream of the documents joined by the end-of-document
/// token; instruction pairs kept as (prompt ids, answer ids). Batches are sampled deterministically from (seed, step), so a
/// resumed run draws exactly the batches the interrupted one would have.
/// </summary>
public sealed class TokenizedCorpus
{
    private readonly Dictionary<(string Domain, string Split), long[]> _streams = new();
    private readonly Dictionary<string, List<(long[] Prompt, long[] Answer, CorpusDocument Doc)>> _pairs = new();

    public TokenizedCorpus(IReadOnlyList<CorpusDocument> docs, DeepSeekTokenizer tokenizer, int eosId)
    {
        EosId = eosId;
        Domains = docs.Select(d => d.Domain).Distinct().ToArray();
        foreach (var g in docs.GroupBy(d => (d.Domain, d.Split)))
        {
            var stream = new List<long>();
            foreach (var d in g)
            {
                stream.AddRange(tokenizer.Encode(d.Text));
                stream.Add(eosId);
            }
            _streams[g.Key] = stream.ToArray();
        }
        foreach (var d in docs.Where(d => d.Prompt is not null))
        {
            if (!_pairs.TryGetValue(d.Split, out var list)) _pairs[d.Split] = list = new();
            list.Add((tokenizer.Encode(d.Prompt!), tokenizer.Encode(d.Answer!), d));
        }
    }

    public int EosId { get; }
    public IReadOnlyList<string> Domains { get; }
    /// <summary>The token stream of a domain and split (empty if absent).</summary>
    public long[] Stream(string domain, string split) => _streams.GetValueOrDefault((domain, split)) ?? Array.Empty<long>();
    /// <summary>Instruction pairs of a split.</summary>
    public IReadOnlyList<(long[] Prompt, long[] Answer, CorpusDocument Doc)> Pairs(string split) =>
        _pairs.TryGetValue(split, out var l) ? l : Array.Empty<(long[], long[], CorpusDocument)>();
    /// <summary>Total tokens in a split.</summary>
    public long Tokens(string split) => _streams.Where(kv => kv.Key.Split == split).Sum(kv => (long)kv.Value.Length);

    /// <summary>Draws the training batch of <paramref name="step"/> for a stage (deterministic in stage seed and step).</summary>
    public Batch SampleTrain(StageOptions stage, int step)
    {
        var rng = new Random(CorpusGenerator.Mix(stage.Seed, step));
        int b = stage.BatchSize, s = stage.SequenceLength;
        var inputs = new long[b * s];
        var targets = new long[b * s];
        var mask = new float[b * s];
        var domains = new string[b];
        var weights = stage.DomainWeights.Where(kv => kv.Value > 0).OrderBy(kv => kv.Key, StringComparer.Ordinal).ToArray();
        double total = weights.Sum(kv => kv.Value);
        for (int row = 0; row < b; row++)
        {
            double u = rng.NextDouble() * total;
            string domain = weights[^1].Key;
            foreach (var (d, w) in weights) { if (u < w) { domain = d; break; } u -= w; }
            domains[row] = domain;
            if (domain == Corpus.Domains.Instruct && Pairs(Splits.Train).Count > 0)
                FillPairs(rng, Pairs(Splits.Train), s, inputs, targets, mask, row * s, stage.AnswerOnlyLoss);
            else
                FillWindow(Stream(domain, Splits.Train), rng.NextInt64(Math.Max(1, Stream(domain, Splits.Train).Length - s - 1)), s, inputs, targets, mask, row * s);
        }
        return new Batch(inputs, targets, mask, domains, b, s);
    }

    /// <summary>Fixed validation (or test) windows of one domain: <paramref name="windows"/> consecutive, non-overlapping windows from the start.</summary>
    public Batch EvaluationWindows(string domain, string split, int windows, int s)
    {
        var stream = Stream(domain, split);
        int available = Math.Max(1, (stream.Length - 1) / s);
        int b = Math.Min(windows, available);
        var inputs = new long[b * s];
        var targets = new long[b * s];
        var mask = new float[b * s];
        for (int row = 0; row < b; row++) FillWindow(stream, (long)row * s, s, inputs, targets, mask, row * s);
        return new Batch(inputs, targets, mask, Enumerable.Repeat(domain, b).ToArray(), b, s);
    }

    /// <summary>
    /// Fixed evaluation rows of instruction pairs of a split, packed in corpus order as in training ([eos] prompt answer prompt
    /// answer …) with only answer tokens counted: the loss stage 3 optimises.
    /// </summary>
    public Batch InstructionWindows(string split, int windows, int s)
    {
        var pairs = Pairs(split);
        var inputs = new long[windows * s];
        var targets = new long[windows * s];
        var mask = new float[windows * s];
        int next = 0;
        for (int row = 0; row < windows; row++)
        {
            var tokens = new List<long> { EosId };
            var counted = new List<bool> { false };
            while (tokens.Count < s + 1 && pairs.Count > 0)
            {
                var (prompt, answer, _) = pairs[next++ % pairs.Count];
                foreach (var t in prompt) { tokens.Add(t); counted.Add(false); }
                foreach (var t in answer) { tokens.Add(t); counted.Add(true); }
            }
            for (int i = 0; i < s; i++)
            {
                inputs[row * s + i] = tokens[i];
                targets[row * s + i] = tokens[i + 1];
                mask[row * s + i] = counted[i + 1] ? 1 : 0;
            }
        }
        return new Batch(inputs, targets, mask, Enumerable.Repeat(Corpus.Domains.Instruct, windows).ToArray(), windows, s);
    }

    private void FillWindow(long[] stream, long start, int s, long[] inputs, long[] targets, float[] mask, int offset)
    {
        if (stream.Length < 2) throw new CorpusException("a domain's token stream is too short to train on");
        for (int i = 0; i < s; i++)
        {
            long p = start + i;
            bool valid = p + 1 < stream.Length;
            inputs[offset + i] = valid || p < stream.Length ? stream[Math.Min(p, stream.Length - 1)] : EosId;
            targets[offset + i] = valid ? stream[p + 1] : EosId;
            mask[offset + i] = valid ? 1 : 0;
        }
    }

    private void FillPairs(Random rng, IReadOnlyList<(long[] Prompt, long[] Answer, CorpusDocument Doc)> pairs, int s,
        long[] inputs, long[] targets, float[] mask, int offset, bool answerOnly)
    {
        // Pack random pairs back to back: [prompt answer prompt answer …]; with answerOnly only answer tokens are predicted.
        var tokens = new List<long> { EosId };
        var counted = new List<bool> { false };
        while (tokens.Count < s + 1)
        {
            var (prompt, answer, _) = pairs[rng.Next(pairs.Count)];
            foreach (var t in prompt) { tokens.Add(t); counted.Add(!answerOnly); }
            foreach (var t in answer) { tokens.Add(t); counted.Add(true); }
        }
        for (int i = 0; i < s; i++)
        {
            inputs[offset + i] = tokens[i];
            targets[offset + i] = tokens[i + 1];
            mask[offset + i] = counted[i + 1] ? 1 : 0;
        }
    }

    /// <summary>Checks every id fits the model's vocabulary (tokenizer/config mismatch is reported before training).</summary>
    public void CheckVocabulary(int vocabSize)
    {
        long max = _streams.Values.Where(v => v.Length > 0).Select(v => v.Max()).DefaultIfEmpty(0).Max();
        if (max >= vocabSize)
            throw new TrainingOptionsException($"the tokenizer produces id {max} but the model's vocab_size is {vocabSize}: tokenizer and config do not match");
    }

    /// <summary>Id of the tokenizer's end-of-document token.</summary>
    public static int EosIdOf(DeepSeekTokenizer tokenizer)
    {
        var ids = tokenizer.Encode(ByteLevelBpeTrainer.Eos);
        if (ids.Length != 1) throw new InvalidDataException($"the tokenizer has no single {ByteLevelBpeTrainer.Eos} token");
        return (int)ids[0];
    }
}
