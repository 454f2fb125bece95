using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.CaseStudies.Fraud;

/// <summary>Integrated Gradients of one example summed per field (<see cref="FraudAnalysis.Attribute"/>).</summary>
/// <param name="PerField">Attribution per <see cref="TransactionField"/>.</param>
/// <param name="PerPosition">Attribution per input position (and [CLS]).</param>
/// <param name="Delta">Convergence delta Σ attributions − (F(input) − F(baseline)).</param>
/// <param name="RelativeDelta">|Delta| / |F(input) − F(baseline)|.</param>
public sealed record FieldAttribution(double[] PerField, double[] PerPosition, double Delta, double RelativeDelta);

/// <summary>The [CLS] row of every head's attention for a set of examples: <c>Row(head, example)</c> is a distribution over the input positions and [CLS].</summary>
public sealed class ClsAttention
{
    private readonly double[][][] rows;

    internal ClsAttention(int layers, int heads, int keys, double[][][] rows)
    {
        Layers = layers; Heads = heads; Keys = keys; this.rows = rows;
    }

    /// <summary>Blocks of the model.</summary>
    public int Layers { get; }
    /// <summary>Heads per block.</summary>
    public int Heads { get; }
    /// <summary>Positions attended to (input tokens + [CLS]).</summary>
    public int Keys { get; }
    /// <summary>Number of examples.</summary>
    public int Count => rows.Length == 0 ? 0 : rows[0].Length;
    /// <summary>Head index <paramref name="layer"/>·Heads + <paramref name="head"/>.</summary>
    public int HeadIndex(int layer, int head) => layer * Heads + head;
    /// <summary>"L1H2".</summary>
    public string HeadName(int index) => $"L{index / Heads}H{index % Heads}";
    /// <summary>The attention of [CLS] over the keys for head <paramref name="headIndex"/> and example <paramref name="example"/>.</summary>
    public double[] Row(int headIndex, int example) => rows[headIndex][example];

    /// <summary>The mean [CLS] attention of a head over the examples in <paramref name="examples"/> (indices; may repeat, as in a bootstrap resample).</summary>
    public double[] Mean(int headIndex, IReadOnlyList<int> examples)
    {
        var m = new double[Keys];
        foreach (var e in examples)
        {
            var r = rows[headIndex][e];
            for (int k = 0; k < Keys; k++) m[k] += r[k];
        }
        for (int k = 0; k < Keys; k++) m[k] /= Math.Max(1, examples.Count);
        return m;
    }
}

/// <summary>
/// The measurements of case study 09 on a trained fraud classifier, kept out of the notebook so that its cells stay short
/// and its tests can run them: P(fraud), the [CLS] attention, routing per example, attribution per field, a selection
/// bias applied through the <c>blocks.{L}.moe.selection</c> hook points.
/// </summary>
public static class FraudAnalysis
{
    /// <summary>P(fraud) per example (softmax over the two class logits at [CLS]), optionally with hooks.</summary>
    public static double[] FraudProbability(CaseStudyClassifier classifier, IReadOnlyList<CaseStudyExample> examples, IReadOnlyDictionary<string, HookFunction>? hooks = null) =>
        classifier.ClassLogits(examples, hooks).Select(r => 1 / (1 + Math.Exp(r[0] - r[1]))).ToArray();

    /// <summary>Recall, precision … of "P(fraud) ≥ <paramref name="threshold"/>" on <paramref name="examples"/> (rows: a subset or resample).</summary>
    public static ConfusionCounts Confusion(IReadOnlyList<double> probability, IReadOnlyList<CaseStudyExample> examples, double threshold = FraudCaseStudy.Threshold,
        IReadOnlyList<int>? rows = null) =>
        BinaryClassification.Confusion(probability, examples.Select(e => e.Label == 1).ToArray(), threshold, rows);

    /// <summary>
    /// Integrated Gradients of the fraud log-odds (logit[fraud] − logit[legitimate] at [CLS]) for one example, summed per
    /// token and then per <see cref="TransactionField"/>. The baseline is the [CLS] token's embedding at every position
    /// (a token that carries no transaction field); <paramref name="nSteps"/> Gauss–Legendre steps. The relative
    /// convergence delta |Σ attributions − (F(input) − F(baseline))| / |F(input) − F(baseline)| says how far completeness
    /// fails: the top-k routing is piecewise constant along the path, so its jumps are invisible to the gradients.
    /// </summary>
    public static FieldAttribution Attribute(CaseStudyClassifier classifier, CaseStudyExample example, int nSteps = 32)
    {
        using var ids = classifier.InputIds(example);
        var r = IntegratedGradients.Attribute(classifier.Model, ids, classifier.LogOdds(), Baseline.Token(classifier.Vocabulary.ClsToken), nSteps);
        var perPosition = r.TokenSums.Select(v => (double)v).ToArray();
        double delta = r.ConvergenceDelta ?? double.NaN, span = (r.FInput ?? double.NaN) - (r.FBaseline ?? double.NaN);
        return new FieldAttribution(FraudFeatures.PerField(perPosition), perPosition, delta, Math.Abs(delta) / Math.Max(Math.Abs(span), 1e-12));
    }

    /// <summary>
    /// Field ablation (Captum's <c>FeatureAblation</c> with one feature group per field): the fraud log-odds of the example
    /// minus the log-odds with every token of one field replaced by [CLS] — <c>[example][field]</c>, positive when the
    /// field pushes towards fraud. An intervention, so no completeness to fail; it does not add up across fields.
    /// </summary>
    public static double[][] FieldAblation(CaseStudyClassifier classifier, IReadOnlyList<CaseStudyExample> examples)
    {
        var fields = FraudFeatures.Fields;
        var variants = new List<CaseStudyExample>(examples.Count * (fields.Length + 1));
        foreach (var e in examples)
        {
            variants.Add(e);
            foreach (var f in fields)
            {
                var tokens = (int[])e.Tokens.Clone();
                for (int p = 0; p < tokens.Length; p++) if (TransactionGenerator.FieldAt(p) == f) tokens[p] = -1;
                variants.Add(e with { Tokens = tokens });
            }
        }
        // [CLS] is not an input token, so the ablated sequences are built here rather than through the vocabulary check.
        var logOdds = new double[variants.Count];
        using (no_grad())
            for (int start = 0; start < variants.Count; start += 128)
            {
                using var scope = NewDisposeScope();
                var chunk = variants.Skip(start).Take(128).ToArray();
                int len = TransactionGenerator.Length + 1;
                var flat = new long[chunk.Length * len];
                for (int i = 0; i < chunk.Length; i++)
                {
                    for (int p = 0; p < len - 1; p++) flat[i * len + p] = chunk[i].Tokens[p] < 0 ? classifier.Vocabulary.ClsToken : chunk[i].Tokens[p];
                    flat[i * len + len - 1] = classifier.Vocabulary.ClsToken;
                }
                var logits = classifier.Model.forward(tensor(flat, new long[] { chunk.Length, len }));
                var cls = ClassificationObjective.ClassLogits(logits, classifier.Vocabulary).to(float64).contiguous().data<double>().ToArray();
                for (int i = 0; i < chunk.Length; i++) logOdds[start + i] = cls[i * 2 + 1] - cls[i * 2];
            }
        return Enumerable.Range(0, examples.Count).Select(i =>
        {
            int b = i * (fields.Length + 1);
            return fields.Select((_, f) => logOdds[b] - logOdds[b + 1 + f]).ToArray();
        }).ToArray();
    }

    /// <summary>The index of the largest value (the first on ties): the top-attributed field.</summary>
    public static int Top(IReadOnlyList<double> scores)
    {
        int best = 0;
        for (int i = 1; i < scores.Count; i++) if (scores[i] > scores[best]) best = i;
        return best;
    }

    /// <summary>The [CLS] attention row of every head for <paramref name="examples"/> (batches of <paramref name="batchSize"/>).</summary>
    public static ClsAttention Attention(CaseStudyClassifier classifier, IReadOnlyList<CaseStudyExample> examples, int batchSize = 64)
    {
        var cfg = classifier.Model.Config;
        int layers = cfg.NumHiddenLayers, heads = cfg.NumAttentionHeads, keys = TransactionGenerator.Length + 1;
        var rows = Enumerable.Range(0, layers * heads).Select(_ => new double[examples.Count][]).ToArray();
        var options = new TraceOptions { AttentionPatterns = true, Routing = false, HiddenStates = false, Logits = false };
        using var _ = no_grad();
        for (int start = 0; start < examples.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(start).Take(batchSize).ToArray();
            using var trace = classifier.Model.RunWithCache(ClassifierTrainer.InputIds(chunk, classifier.Vocabulary), options);
            for (int l = 0; l < layers; l++)
            {
                // [batch, heads, query, key] → the last query row (the [CLS] position)
                var cls = trace.AttentionPattern(l).select(2, -1).to(float64).contiguous().data<double>().ToArray();
                for (int b = 0; b < chunk.Length; b++)
                    for (int h = 0; h < heads; h++)
                        rows[l * heads + h][start + b] = cls.AsSpan((b * heads + h) * keys, keys).ToArray();
            }
        }
        return new ClsAttention(layers, heads, keys, rows);
    }

    /// <summary>
    /// Routing of every example: per MoE layer, per example, the share of its routing slots (tokens × k) each routed expert
    /// received — <c>[layer][example][expert]</c> — and the kit's routing diagnostics (<see cref="ExpertRoutingAccumulator"/>)
    /// with each example's <paramref name="domain"/> (e.g. "day" / "night") as its domain.
    /// </summary>
    public static (IReadOnlyDictionary<int, double[][]> Usage, ExpertRoutingAccumulator Diagnostics) Routing(CaseStudyClassifier classifier,
        IReadOnlyList<CaseStudyExample> examples, Func<CaseStudyExample, string> domain, int batchSize = 64)
    {
        var cfg = classifier.Model.Config;
        var acc = new ExpertRoutingAccumulator(cfg, trackVocabulary: false);
        var moe = Enumerable.Range(0, cfg.NumHiddenLayers).Where(cfg.IsMoeLayer).ToArray();
        var usage = moe.ToDictionary(l => l, _ => new double[examples.Count][]);
        int k = cfg.NumExpertsPerTok, e = cfg.NRoutedExperts, seq = TransactionGenerator.Length + 1;
        var options = new TraceOptions { AttentionPatterns = false, Routing = true, HiddenStates = false, Logits = false };
        using var _ = no_grad();
        for (int start = 0; start < examples.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(start).Take(batchSize).ToArray();
            var ids = ClassifierTrainer.InputIds(chunk, classifier.Vocabulary);
            var flatIds = ids.data<long>().ToArray();
            using var trace = classifier.Model.RunWithCache(ids, options);
            foreach (var l in moe)
            {
                var idx = trace.ExpertIndices(l).to(ScalarType.Int64).contiguous().data<long>().ToArray();   // [batch·seq, k]
                var w = trace.ExpertWeights(l).to(ScalarType.Float32).contiguous().data<float>().ToArray();
                var s = trace.RouterScores(l).to(ScalarType.Float32).contiguous().data<float>().ToArray();
                for (int b = 0; b < chunk.Length; b++)
                {
                    var u = new double[e];
                    for (int t = 0; t < seq * k; t++) u[idx[b * seq * k + t]] += 1.0 / (seq * k);
                    usage[l][start + b] = u;
                    acc.ObserveRouting(l, flatIds.AsSpan(b * seq, seq).ToArray(), idx.AsSpan(b * seq * k, seq * k).ToArray(),
                        w.AsSpan(b * seq * k, seq * k).ToArray(), s.AsSpan(b * seq * e, seq * e).ToArray(), domain(chunk[b]));
                }
            }
        }
        return (usage, acc);
    }

    /// <summary>
    /// A routing strategy change through the hook points: <paramref name="bias"/> added to the selection scores
    /// (<c>blocks.{L}.moe.selection</c>, used only to choose the top-k; the weights still come from the unbiased scores, as
    /// DeepSeek-V3's own selection bias) of the given experts per layer.
    /// </summary>
    public static IReadOnlyDictionary<string, HookFunction> SelectionBias(IReadOnlyDictionary<int, int[]> expertsByLayer, double bias)
    {
        var hooks = new Dictionary<string, HookFunction>();
        foreach (var (layer, experts) in expertsByLayer)
        {
            if (experts.Length == 0) continue;
            var cols = experts.Select(x => (long)x).ToArray();
            hooks[HookPoints.SelectionScores(layer)] = (scores, _) =>
            {
                using var idx = tensor(cols, device: scores.device);
                var delta = zeros(scores.shape[^1], dtype: scores.dtype, device: scores.device).index_fill_(0, idx, bias);
                return scores + delta;
            };
        }
        return hooks;
    }

    /// <summary>
    /// Another routing strategy through the hook points: top-1 instead of top-k — at <c>blocks.{L}.moe.weights</c> of the
    /// given layers the whole routed weight (their sum) goes to the first chosen expert (the highest selection score) and
    /// the others get 0, so each token is served by one routed expert (plus the shared ones), as with
    /// <c>num_experts_per_tok = 1</c> and the same gate.
    /// </summary>
    public static IReadOnlyDictionary<string, HookFunction> TopOne(IEnumerable<int> layers)
    {
        var hooks = new Dictionary<string, HookFunction>();
        foreach (var layer in layers)
            hooks[HookPoints.ExpertWeights(layer)] = (weights, _) =>
            {
                var first = zeros_like(weights);
                first.select(1, 0).copy_(weights.sum(-1));
                return first;
            };
        return hooks;
    }
}
