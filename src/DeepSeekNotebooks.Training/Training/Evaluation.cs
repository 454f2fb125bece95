using System.Text.Json.Nodes;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tokenization;
using DeepSeekNotebooks.Model.Tracing;
using DeepSeekNotebooks.Training.Corpus;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.Training;

/// <summary>Exact-match result of greedy decoding on held-out instruction prompts.</summary>
public sealed record ExactMatchResult(int Correct, int Total, IReadOnlyList<(string Prompt, string Expected, string Got)> Examples)
{
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;
    public JsonObject ToJson() => new()
    {
        ["correct"] = Correct, ["total"] = Total, ["accuracy"] = Accuracy,
        ["examples"] = new JsonArray(Examples.Take(8).Select(e => (JsonNode?)new JsonObject { ["prompt"] = e.Prompt, ["expected"] = e.Expected, ["got"] = e.Got }).ToArray()),
    };
}

/// <summary>Validation losses, unigram baselines, domain × expert tables, NMI, MaxVio and exact match.</summary>
public static class Evaluation
{
    /// <summary>Mean next-token cross-entropy (nats/token) per domain on fixed windows of a split.</summary>
    public static Dictionary<string, double> ValidationLoss(DeepSeekModel model, TokenizedCorpus data, string split, int windows, int seq)
    {
        var result = new Dictionary<string, double>();
        using var _ = no_grad();
        foreach (var domain in Domains.All.Where(d => data.Stream(d, split).Length > 2))
            result[domain] = BatchLoss(model, Windows(data, domain, split, windows, seq));
        return result;
    }

    /// <summary>Evaluation rows of a domain: stream windows, or for instruction pairs answer-only packed rows (<see cref="TokenizedCorpus.InstructionWindows"/>).</summary>
    public static Batch Windows(TokenizedCorpus data, string domain, string split, int windows, int seq) =>
        domain == Domains.Instruct && data.Pairs(split).Count > 0
            ? data.InstructionWindows(split, windows, seq)
            : data.EvaluationWindows(domain, split, windows, Math.Min(seq, data.Stream(domain, split).Length - 1));

    private static double BatchLoss(DeepSeekModel model, Batch b)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(b.Inputs, new long[] { b.BatchSize, b.SequenceLength });
        var logits = model.forward(ids).reshape(-1, model.Config.VocabSize);
        var ce = nn.functional.cross_entropy(logits, tensor(b.Targets), reduction: nn.Reduction.None);
        var mask = tensor(b.Mask);
        return ((ce * mask).sum() / mask.sum().clamp_min(1)).item<float>();
    }

    /// <summary>
    /// Cross-entropy of a unigram model (add-½ smoothed token frequencies of the training split) on the same windows; the
    /// per-domain variant counts only that domain's training tokens (a stronger baseline).
    /// </summary>
    public static double UnigramLoss(Batch b, long[] trainTokens, int vocab)
    {
        var counts = new double[vocab];
        foreach (var t in trainTokens) counts[t]++;
        double total = trainTokens.Length + 0.5 * vocab;
        double sum = 0, n = 0;
        for (int i = 0; i < b.Targets.Length; i++)
        {
            if (b.Mask[i] == 0) continue;
            sum -= Math.Log((counts[b.Targets[i]] + 0.5) / total);
            n++;
        }
        return n == 0 ? double.NaN : sum / n;
    }

    /// <summary>Counts of (domain, expert) selections [domains, experts] per MoE layer on validation windows.</summary>
    public static Dictionary<int, double[,]> DomainExpertCounts(DeepSeekModel model, TokenizedCorpus data, string split, int windows, int seq, IReadOnlyList<string> domains)
    {
        var c = model.Config;
        var moe = Enumerable.Range(0, c.NumHiddenLayers).Where(c.IsMoeLayer).ToArray();
        var table = moe.ToDictionary(l => l, _ => new double[domains.Count, c.NRoutedExperts]);
        using var _ = no_grad();
        for (int d = 0; d < domains.Count; d++)
        {
            var stream = data.Stream(domains[d], split);
            if (stream.Length < 3) continue;
            var b = data.EvaluationWindows(domains[d], split, windows, Math.Min(seq, stream.Length - 1));
            using var scope = NewDisposeScope();
            using var trace = model.RunWithCache(tensor(b.Inputs, new long[] { b.BatchSize, b.SequenceLength }),
                new TraceOptions { AttentionPatterns = false, HiddenStates = false, Logits = false, Routing = true });
            foreach (var l in moe)
            {
                var load = LoadBalancing.ExpertLoad(trace.ExpertIndices(l), c.NRoutedExperts);
                for (int e = 0; e < load.Length; e++) table[l][d, e] += load[e];
            }
        }
        return table;
    }

    /// <summary>Greedy decoding from held-out (test split) instruction prompts; exact match of the generated answer line.</summary>
    public static ExactMatchResult ExactMatch(DeepSeekModel model, TokenizedCorpus data, DeepSeekTokenizer tokenizer, int maxPrompts, int maxNewTokens = 6)
    {
        var pairs = data.Pairs(Splits.Test).Take(maxPrompts).ToArray();
        int correct = 0;
        var examples = new List<(string, string, string)>();
        using var _ = no_grad();
        foreach (var (prompt, answer, doc) in pairs)
        {
            var ids = new List<long> { data.EosId };
            ids.AddRange(prompt);
            var generated = new List<long>();
            for (int t = 0; t < maxNewTokens; t++)
            {
                using var scope = NewDisposeScope();
                var logits = model.forward(tensor(ids.ToArray(), new long[] { 1, ids.Count }));
                long next = logits[0, -1].argmax().item<long>();
                if (next == data.EosId) break;
                ids.Add(next);
                generated.Add(next);
                if (tokenizer.Decode(generated).Contains('\n')) break;
            }
            var got = tokenizer.Decode(generated);
            var gotLine = got.Split('\n')[0].Trim();
            var expected = doc.Answer!.Trim();
            bool ok = gotLine == expected;
            if (ok) correct++;
            if (examples.Count < 8) examples.Add((doc.Prompt!, expected, gotLine));
        }
        return new ExactMatchResult(correct, pairs.Length, examples);
    }

    /// <summary>The final metrics block written to training.json.</summary>
    internal static JsonObject Final(DeepSeekModel model, TokenizedCorpus data, DeepSeekTokenizer tokenizer, TrainingRun run)
    {
        int seq = 128;
        var domains = Domains.All.Where(d => data.Stream(d, Splits.Validation).Length > 2).ToArray();
        var vocab = model.Config.VocabSize;
        var globalTrain = domains.SelectMany(d => data.Stream(d, Splits.Train)).ToArray();
        var perDomain = new JsonObject();
        using (no_grad())
            foreach (var d in domains)
            {
                var b = Windows(data, d, Splits.Validation, run.FinalEvalWindows, seq);
                double modelLoss = BatchLoss(model, b);
                perDomain[d] = new JsonObject
                {
                    ["model"] = modelLoss,
                    ["unigram_global"] = UnigramLoss(b, globalTrain, vocab),
                    ["unigram_domain"] = UnigramLoss(b, data.Stream(d, Splits.Train), vocab),
                    ["tokens"] = b.Mask.Count(m => m > 0),
                };
            }
        var tables = DomainExpertCounts(model, data, Splits.Validation, run.FinalEvalWindows, seq, domains);
        var layers = new JsonObject();
        foreach (var (l, t) in tables)
        {
            var rows = new JsonObject();
            for (int d = 0; d < domains.Length; d++)
            {
                double rowTotal = Enumerable.Range(0, t.GetLength(1)).Sum(e => t[d, e]);
                rows[domains[d]] = new JsonArray(Enumerable.Range(0, t.GetLength(1)).Select(e => (JsonNode?)Math.Round(rowTotal == 0 ? 0 : t[d, e] / rowTotal, 4)).ToArray());
            }
            var load = Enumerable.Range(0, t.GetLength(1)).Select(e => Enumerable.Range(0, domains.Length).Sum(d => t[d, e])).ToArray();
            layers[l.ToString()] = new JsonObject
            {
                ["nmi_domain_expert"] = FiniteOrNull(Information.NormalisedMutualInformation(Counts(t))),
                ["maxvio"] = FiniteOrNull(Balance.MaxVio(load)),
                ["load"] = new JsonArray(load.Select(x => (JsonNode?)x).ToArray()),
                ["domain_expert_fraction"] = rows,
                ["selection_bias"] = model.Layers[l].Moe!.Gate.SelectionBias is { } bias
                    ? new JsonArray(bias.data<float>().ToArray().Select(x => (JsonNode?)Math.Round(x, 5)).ToArray()) : null,
            };
        }
        return new JsonObject
        {
            ["validation_loss_by_domain"] = perDomain,
            ["moe_layers"] = layers,
            ["notes"] = "losses in nats/token on the first windows (128 tokens) of each domain's validation stream (instruct: packed validation pairs, answer tokens only, as trained in stage 3); unigram_domain uses that domain's training-token frequencies, unigram_global all training tokens (add-1/2 smoothing). domain_expert_fraction: share of a domain's (token, top-k slot) selections going to each expert. NMI = 2 I(domain; expert) / (H(domain) + H(expert)) over all selections (DeepSeekNotebooks.Analysis.Statistics.Information). MaxVio = (max load - mean load) / mean load over all validation selections (Statistics.Balance); null when undefined.",
        };
    }

    private static JsonNode? FiniteOrNull(double x) => double.IsFinite(x) ? JsonValue.Create(x) : null;

    /// <summary>The domain × expert selection counts as integers (they are sums of whole selections).</summary>
    private static long[,] Counts(double[,] t)
    {
        var c = new long[t.GetLength(0), t.GetLength(1)];
        for (int i = 0; i < t.GetLength(0); i++)
            for (int j = 0; j < t.GetLength(1); j++) c[i, j] = checked((long)Math.Round(t[i, j]));
        return c;
    }
}
