using System.Reflection;
using System.Runtime.CompilerServices;
using BenchmarkDotNet.Running;

namespace DeepSeekNotebooks.Benchmarks;

/// <summary>
/// Per-case measurements the benchmark process hands to the host's summary columns: peak RSS (VmHWM) after the
/// operation ran, written to a temp file keyed by method name and parameter values.
/// </summary>
public static class Measure
{
    private static string Dir => Path.Combine(Path.GetTempPath(), "dsn-bench-rss");

    /// <summary>Call at the end of a benchmark method with its parameter values (same order as declared).</summary>
    public static void PeakRss(object[] parameters, [CallerMemberName] string method = "")
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        if (line is null) return;
        Directory.CreateDirectory(Dir);
        // "VmHWM:\t 123 kB": the tab is the only separator once the value fills its 8-character field (>= 9.5 GiB).
        var kb = long.Parse(line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[1]);
        File.WriteAllText(Path.Combine(Dir, Key(method, parameters.Select(p => p?.ToString() ?? ""))), (kb / 1024).ToString());
    }

    internal static long? PeakRssOf(BenchmarkCase c)
    {
        var f = Path.Combine(Dir, Key(c.Descriptor.WorkloadMethod.Name, c.Parameters.Items.Select(i => i.Value?.ToString() ?? "")));
        return File.Exists(f) ? long.Parse(File.ReadAllText(f)) : null;
    }

    /// <summary>FLOPs of a case, from the benchmark class's static <c>FlopsOf(string method, object[] parameterValues)</c> if it has one.</summary>
    internal static double? FlopsOf(BenchmarkCase c)
    {
        var m = c.Descriptor.Type.GetMethod("FlopsOf", BindingFlags.Public | BindingFlags.Static);
        return m?.Invoke(null, new object[] { c.Descriptor.WorkloadMethod.Name, c.Parameters.Items.Select(i => i.Value).ToArray() }) as double?;
    }

    // Values sorted: the host lists a case's parameters in its own order, which need not be the declaration order.
    private static string Key(string method, IEnumerable<string> values) =>
        string.Concat((method + "_" + string.Join("_", values.OrderBy(v => v, StringComparer.Ordinal))).Select(ch => char.IsLetterOrDigit(ch) ? ch : '_'));
}
