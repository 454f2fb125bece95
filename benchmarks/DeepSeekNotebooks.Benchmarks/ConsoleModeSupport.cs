namespace DeepSeekNotebooks.Benchmarks;

/// <summary>Argument, statistics and load helpers shared by the console modes (<c>interleaved-moe</c>, <c>expert-gemms</c>).</summary>
internal static class ConsoleModeSupport
{
    /// <summary>The value after <paramref name="name"/> in <paramref name="args"/>, or null when the option is absent.</summary>
    internal static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>The median of <paramref name="v"/> (mean of the two middle values for an even count).</summary>
    internal static double Median(List<double> v)
    {
        var s = v.OrderBy(t => t).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>The 1-, 5- and 15-minute load averages from /proc/loadavg ("?" elsewhere).</summary>
    internal static string Load() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";
}
