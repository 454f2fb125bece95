#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;

namespace DeepSeekNotebooks.Analysis.Attention.Diagnostics;

/// <summary>A head's robust z-scores over the dataset's heads and the resulting anomaly score.</summary>
/// <param name="Score">max |z| over the three metrics.</param>
/// <param name="Reasons">Which way the head is abnormal ("over-active sink", "abnormally sparse", "abnormally diffuse"); empty when |z| ≤ threshold for all.</param>
public sealed record HeadAnomaly(int Layer, int Head, double Score, double EntropyZ, double SinkZ, double MaxAttentionZ, string[] Reasons);

/// <summary>Ranking of attention heads by how far their diagnostics sit from the population of heads.</summary>
public static class HeadAnomalies
{
    /// <summary>
    /// Ranks heads by robust z-scores (<see cref="Robust.ModifiedZ"/>: Iglewicz &amp; Hoaglin 1993 modified z = 0.6745·(x − median)/MAD; when the MAD is 0 the
    /// mean absolute deviation ×1.2533 is used, and when that is 0 too the z-score is 0) of normalised entropy, sink score
    /// and max-attention over all heads. Flags persistently over-active sinks (sink z &gt; threshold; cf. Gu et al. 2024 sink
    /// analysis), abnormally sparse heads (max-attention z &gt; threshold or entropy z &lt; −threshold) and abnormally diffuse
    /// heads (entropy z &gt; threshold), in the spirit of Voita et al. 2019's search for specialised heads. Sorted by score,
    /// highest first.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than 3 heads (a median/MAD needs a population).</exception>
    public static IReadOnlyList<HeadAnomaly> Rank(IReadOnlyList<HeadDiagnostics> heads, double threshold = 3.5)
    {
        ArgumentNullException.ThrowIfNull(heads);
        if (heads.Count < 3) throw new ArgumentException($"need at least 3 heads to rank anomalies, got {heads.Count}", nameof(heads));
        var ez = Robust.ModifiedZ(heads.Select(h => h.MeanEntropy).ToArray());
        var sz = Robust.ModifiedZ(heads.Select(h => h.SinkScore).ToArray());
        var mz = Robust.ModifiedZ(heads.Select(h => h.MeanMaxAttention).ToArray());
        return heads.Select((h, i) =>
        {
            var reasons = new List<string>();
            if (sz[i] > threshold) reasons.Add("over-active sink");
            if (mz[i] > threshold || ez[i] < -threshold) reasons.Add("abnormally sparse");
            if (ez[i] > threshold) reasons.Add("abnormally diffuse");
            double score = new[] { Math.Abs(ez[i]), Math.Abs(sz[i]), Math.Abs(mz[i]) }.Max();
            return new HeadAnomaly(h.Layer, h.Head, score, ez[i], sz[i], mz[i], reasons.ToArray());
        }).OrderByDescending(a => a.Score).ThenBy(a => a.Layer).ThenBy(a => a.Head).ToArray();
    }
}
