namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>
/// Streaming count, mean, variance, minimum and maximum of a scalar (Welford 1962), mergeable with Chan, Golub &amp; LeVeque's
/// (1979) pairwise update, so statistics over shards merged together equal one pass over all values (to rounding,
/// ≈1e-12 relative). Memory is constant. Used by every dataset-scale accumulator in this kit.
/// </summary>
public sealed class RunningMoments
{
    private double _m2;

    /// <summary>Number of values seen.</summary>
    public long Count { get; private set; }
    /// <summary>Mean of the values (0 when empty).</summary>
    public double Mean { get; private set; }
    /// <summary>Smallest value (+∞ when empty).</summary>
    public double Min { get; private set; } = double.PositiveInfinity;
    /// <summary>Largest value (−∞ when empty).</summary>
    public double Max { get; private set; } = double.NegativeInfinity;
    /// <summary>Population variance (divides by n; 0 for fewer than two values).</summary>
    public double Variance => Count > 1 ? _m2 / Count : 0;
    /// <summary>Sample variance (divides by n − 1; 0 for fewer than two values).</summary>
    public double SampleVariance => Count > 1 ? _m2 / (Count - 1) : 0;
    /// <summary>Population standard deviation.</summary>
    public double StandardDeviation => Math.Sqrt(Variance);

    /// <summary>Adds one value (Welford's update). NaN values are rejected with <see cref="ArgumentException"/>.</summary>
    public void Add(double x)
    {
        if (double.IsNaN(x)) throw new ArgumentException("cannot accumulate NaN", nameof(x));
        Count++;
        double delta = x - Mean;
        Mean += delta / Count;
        _m2 += delta * (x - Mean);
        if (x < Min) Min = x;
        if (x > Max) Max = x;
    }

    /// <summary>Folds another accumulator into this one (Chan et al. 1979 parallel update); the other is unchanged.</summary>
    public void Merge(RunningMoments other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Count == 0) return;
        if (Count == 0)
        {
            Count = other.Count; Mean = other.Mean; _m2 = other._m2; Min = other.Min; Max = other.Max;
            return;
        }
        long n = Count + other.Count;
        double delta = other.Mean - Mean;
        Mean += delta * other.Count / n;
        _m2 += other._m2 + delta * delta * ((double)Count * other.Count / n);
        Count = n;
        Min = Math.Min(Min, other.Min);
        Max = Math.Max(Max, other.Max);
    }

    /// <summary>Sum of squared deviations from the mean (Welford's M2): with Count, Mean, Min and Max the whole state.</summary>
    internal double M2 => _m2;

    /// <summary>Rebuilds an accumulator from its saved state (<see cref="Count"/>, <see cref="Mean"/>, <see cref="M2"/>, <see cref="Min"/>, <see cref="Max"/>).</summary>
    /// <exception cref="InvalidDataException">A negative count or M2, or NaN fields.</exception>
    internal static RunningMoments FromState(long count, double mean, double m2, double min, double max)
    {
        if (count < 0 || !(m2 >= 0) || double.IsNaN(mean) || double.IsNaN(min) || double.IsNaN(max))
            throw new InvalidDataException($"invalid running-moments state (count {count}, mean {mean}, M2 {m2}, min {min}, max {max}): count and M2 must be ≥ 0 and no field NaN");
        return new() { Count = count, Mean = mean, _m2 = m2, Min = min, Max = max };
    }

    /// <summary>A copy of this accumulator.</summary>
    public RunningMoments Clone() => new() { Count = Count, Mean = Mean, _m2 = _m2, Min = Min, Max = Max };
}
