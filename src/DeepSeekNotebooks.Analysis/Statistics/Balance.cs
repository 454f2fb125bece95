namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Load-balance statistics of a per-expert load vector (tokens, or (token, top-k slot) selections, routed to each
/// expert) — the one implementation the trainer's telemetry, training.json, the expert diagnostics and the charts use.
/// Edge cases, once for all: an empty load vector or a negative/NaN entry is an error; an all-zero load (nothing routed)
/// makes every ratio 0/0 and gives NaN ("undefined", not "balanced"); equal non-zero loads give MaxVio = CV = 0 and
/// normalised entropy 1.
/// </summary>
public static class Balance
{
    /// <summary>
    /// MaxVio = (max load − mean load) / mean load: DeepSeek-V3's maximal violation of balance (arXiv:2412.19437 §2.1.2;
    /// Wang et al. 2024, auxiliary-loss-free balancing). 0 = perfectly balanced; NaN when the total load is 0.
    /// </summary>
    /// <exception cref="ArgumentException">Empty load, or a negative or NaN entry.</exception>
    public static double MaxVio(IReadOnlyList<double> load)
    {
        double mean = Mean(load, nameof(load));
        return mean == 0 ? double.NaN : (load.Max() - mean) / mean;
    }

    /// <inheritdoc cref="MaxVio(IReadOnlyList{double})"/>
    public static double MaxVio(IReadOnlyList<long> load) => MaxVio(ToDouble(load));

    /// <summary>
    /// Coefficient of variation: population standard deviation (divides by the number of experts) / mean. 0 = perfectly
    /// balanced; NaN when the total load is 0.
    /// </summary>
    /// <exception cref="ArgumentException">Empty load, or a negative or NaN entry.</exception>
    public static double CoefficientOfVariation(IReadOnlyList<double> load)
    {
        double mean = Mean(load, nameof(load));
        if (mean == 0) return double.NaN;
        double v = 0;
        foreach (var x in load) v += (x - mean) * (x - mean);
        return Math.Sqrt(v / load.Count) / mean;
    }

    /// <inheritdoc cref="CoefficientOfVariation(IReadOnlyList{double})"/>
    public static double CoefficientOfVariation(IReadOnlyList<long> load) => CoefficientOfVariation(ToDouble(load));

    internal static double Mean(IReadOnlyList<double> load, string name)
    {
        ArgumentNullException.ThrowIfNull(load, name);
        if (load.Count == 0) throw new ArgumentException("the load vector is empty: give one entry per expert", name);
        double total = 0;
        for (int i = 0; i < load.Count; i++)
        {
            if (!(load[i] >= 0)) throw new ArgumentException($"expert loads must be non-negative numbers, got {load[i]} for expert {i}", name);
            total += load[i];
        }
        return total / load.Count;
    }

    private static double[] ToDouble(IReadOnlyList<long> load)
    {
        ArgumentNullException.ThrowIfNull(load);
        return load.Select(v => (double)v).ToArray();
    }
}
