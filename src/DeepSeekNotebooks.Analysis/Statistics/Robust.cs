namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Robust location and scale — behind the attention-head anomaly ranking. Edge cases, once for all: NaN values are
/// ignored for the median and the scale and stay NaN in the output; the median of no values is NaN; a sample with no
/// spread (MAD and mean absolute deviation both 0) has no outliers, so every z-score is 0.
/// </summary>
public static class Robust
{
    /// <summary>The median (mean of the two middle values for an even count) of the non-NaN values; NaN when there are none.</summary>
    public static double Median(IEnumerable<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var s = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (s.Length == 0) return double.NaN;
        return s.Length % 2 == 1 ? s[s.Length / 2] : 0.5 * (s[s.Length / 2 - 1] + s[s.Length / 2]);
    }

    /// <summary>
    /// Modified z-scores (Iglewicz &amp; Hoaglin 1993) 0.6745·(x − median)/MAD; when the MAD is 0 the mean absolute deviation
    /// ×1.2533 is the scale instead, and when that is 0 too every z-score is 0. NaN inputs give NaN.
    /// </summary>
    public static double[] ModifiedZ(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) return Array.Empty<double>();
        double med = Median(values);
        var deviations = values.Where(v => !double.IsNaN(v)).Select(v => Math.Abs(v - med)).ToArray();
        double mad = Median(deviations);
        double scale = mad > 0 ? mad / 0.6745 : deviations.DefaultIfEmpty(0).Average() * 1.2533;
        return values.Select(v => double.IsNaN(v) ? double.NaN : scale > 0 ? (v - med) / scale : 0).ToArray();
    }
}
