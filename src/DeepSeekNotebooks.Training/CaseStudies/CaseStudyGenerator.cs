namespace DeepSeekNotebooks.Training.CaseStudies;

/// <summary>
/// Base of the seeded case-study generators: a name and version recorded in the manifest, and one deterministic
/// <see cref="Generate"/> (the same seed and settings give the same examples, byte for byte, on every machine: all
/// randomness comes from <see cref="Random"/> seeded per example, never from the clock or the thread pool).
/// </summary>
public abstract class CaseStudyGenerator
{
    /// <summary>Short name: the folder under <c>data/case-studies</c> and the CLI's <c>case-study NAME</c>.</summary>
    public abstract string Name { get; }
    /// <summary>Generator version; bump it whenever the same seed would produce different data.</summary>
    public abstract string Version { get; }
    /// <summary>The data set of <paramref name="seed"/>.</summary>
    public abstract CaseStudyDataset Generate(long seed);

    /// <summary>An independent stream for example <paramref name="index"/> of <paramref name="seed"/> (SplitMix64 mixing,
    /// so neighbouring seeds and indices do not give correlated streams).</summary>
    protected static Random ExampleRandom(long seed, long index, long stream = 0)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index * 0xBF58476D1CE4E5B9UL + (ulong)stream * 0x94D049BB133111EBUL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return new Random(unchecked((int)(z ^ (z >> 32))));
    }

    /// <summary>A standard normal draw (Box–Muller).</summary>
    protected static double Normal(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Uniform in [lo, hi).</summary>
    protected static double Uniform(Random random, double lo, double hi) => lo + (hi - lo) * random.NextDouble();
}
