using System.Globalization;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Occlusion over tokens (Zeiler &amp; Fergus 2014, "Visualizing and Understanding Convolutional Networks"), as Captum's
/// <c>Occlusion</c> with a sliding window of <c>(window, dim)</c> over the embeddings: each window of tokens is replaced
/// by the baseline's embeddings, and F(original) − F(occluded) is credited to every element of the window; a token's
/// attribution is the mean over the windows that cover it.
/// </summary>
public static class Occlusion
{
    /// <summary>
    /// Occlusion attributions (Zeiler &amp; Fergus 2014; Captum <c>Occlusion.attribute(sliding_window_shapes=(w, dim),
    /// strides=(s, dim), baselines)</c>). Windows start at 0, s, 2s, … ; there are ⌈(seq − w)/s⌉ + 1 of them and the last
    /// one is cut at the end of the sequence (as Captum). Replacement is <paramref name="baseline"/> (default
    /// <see cref="Baseline.Default"/>, token 0's embedding; <see cref="Baseline.Zeros"/> gives Captum's default).
    /// The occluded inputs are evaluated <paramref name="perturbationsPerEval"/> at a time. <c>TokenSums</c> holds each
    /// token's mean output drop (every element of a token carries that same value).
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids, target out of range, window &lt; 1 or larger than the input, stride &lt; 1 or larger than the window, perturbationsPerEval &lt; 1.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null,
        int slidingWindow = 1, int stride = 1, Baseline? baseline = null, int perturbationsPerEval = 1)
    {
        baseline ??= Baseline.Default;
        if (slidingWindow < 1) throw new ArgumentException($"slidingWindow must be at least 1, got {slidingWindow}", nameof(slidingWindow));
        if (stride < 1) throw new ArgumentException($"stride must be at least 1, got {stride}", nameof(stride));
        if (perturbationsPerEval < 1) throw new ArgumentException($"perturbationsPerEval must be at least 1, got {perturbationsPerEval}", nameof(perturbationsPerEval));
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        int seq = (int)p.Embeddings.shape[1], dim = (int)p.Embeddings.shape[2];
        if (slidingWindow > seq)
            throw new ArgumentException($"the occlusion window ({slidingWindow} tokens) is larger than the input ({seq} tokens)", nameof(slidingWindow));
        if (slidingWindow < seq && stride > slidingWindow)
            throw new ArgumentException($"stride ({stride}) cannot be larger than the window ({slidingWindow}) unless the window covers the input (as Captum)", nameof(stride));
        var b = baseline.Build(model, p.Embeddings);
        int windows = (int)Math.Ceiling((seq - slidingWindow) / (double)stride) + 1;
        var total = new double[seq];
        var counts = new int[seq];
        for (int start = 0; start < windows; start += perturbationsPerEval)
        {
            using var inner = NewDisposeScope();
            int m = Math.Min(perturbationsPerEval, windows - start);
            var batch = p.Embeddings.expand(m, seq, dim).clone();
            var ranges = new (int From, int To)[m];
            for (int j = 0; j < m; j++)
            {
                int from = (start + j) * stride, to = Math.Min(from + slidingWindow, seq);
                ranges[j] = (from, to);
                using var _ = no_grad();
                batch[j, TensorIndex.Slice(from, to)] = b[0, TensorIndex.Slice(from, to)];
            }
            var f = AttributionCore.Evaluate(model, batch, p.Target);
            for (int j = 0; j < m; j++)
                for (int t = ranges[j].From; t < ranges[j].To; t++) { total[t] += p.FInput - f[j]; counts[t]++; }
        }
        var perToken = new float[seq];
        for (int t = 0; t < seq; t++) perToken[t] = counts[t] == 0 ? 0f : (float)(total[t] / counts[t]);
        var attr = tensor(perToken).view(seq, 1).expand(seq, dim);
        double fBaseline = AttributionCore.Evaluate(model, b, p.Target)[0];
        var parameters = new Dictionary<string, string>
        {
            ["sliding_window"] = slidingWindow.ToString(CultureInfo.InvariantCulture),
            ["stride"] = stride.ToString(CultureInfo.InvariantCulture),
            ["baseline"] = baseline.Describe(),
            ["windows"] = windows.ToString(CultureInfo.InvariantCulture),
        };
        return AttributionCore.Result(AttributionMethod.Occlusion, p, attr, parameters, fBaseline: fBaseline, tokenSumsOverride: perToken);
    }
}
