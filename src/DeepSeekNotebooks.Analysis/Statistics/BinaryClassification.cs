namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>Counts of a binary decision against the truth at one threshold.</summary>
/// <param name="TruePositives">Flagged and positive.</param>
/// <param name="FalsePositives">Flagged but negative.</param>
/// <param name="FalseNegatives">Positive but not flagged.</param>
/// <param name="TrueNegatives">Neither.</param>
public sealed record ConfusionCounts(int TruePositives, int FalsePositives, int FalseNegatives, int TrueNegatives)
{
    /// <summary>TP / (TP + FN), the share of positives flagged; NaN without positives.</summary>
    public double Recall => TruePositives + FalseNegatives == 0 ? double.NaN : TruePositives / (double)(TruePositives + FalseNegatives);
    /// <summary>TP / (TP + FP), the share of flagged cases that are positive; NaN when nothing is flagged (scikit-learn warns and gives 0).</summary>
    public double Precision => TruePositives + FalsePositives == 0 ? double.NaN : TruePositives / (double)(TruePositives + FalsePositives);
    /// <summary>(TP + TN) / all.</summary>
    public double Accuracy => (TruePositives + TrueNegatives) / (double)Math.Max(1, TruePositives + FalsePositives + FalseNegatives + TrueNegatives);
    /// <summary>Harmonic mean of precision and recall.</summary>
    public double F1 => 2.0 * TruePositives / Math.Max(1, 2 * TruePositives + FalsePositives + FalseNegatives);
}

/// <summary>Recall and precision of scores at a fixed threshold (the definitions of scikit-learn's <c>recall_score</c> / <c>precision_score</c>).</summary>
public static class BinaryClassification
{
    /// <summary>The confusion counts of "score ≥ threshold" against <paramref name="positive"/>, over the rows in <paramref name="rows"/> (all rows when null).</summary>
    /// <exception cref="ArgumentException">Scores and truths of different lengths, or a NaN score.</exception>
    public static ConfusionCounts Confusion(IReadOnlyList<double> scores, IReadOnlyList<bool> positive, double threshold, IReadOnlyList<int>? rows = null)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(positive);
        if (scores.Count != positive.Count) throw new ArgumentException($"{scores.Count} scores but {positive.Count} truths", nameof(positive));
        int tp = 0, fp = 0, fn = 0, tn = 0;
        int n = rows?.Count ?? scores.Count;
        for (int k = 0; k < n; k++)
        {
            int i = rows?[k] ?? k;
            if (double.IsNaN(scores[i])) throw new ArgumentException($"scores[{i}] is NaN", nameof(scores));
            bool flagged = scores[i] >= threshold;
            if (flagged && positive[i]) tp++;
            else if (flagged) fp++;
            else if (positive[i]) fn++;
            else tn++;
        }
        return new ConfusionCounts(tp, fp, fn, tn);
    }
}
