using Microsoft.Data.Analysis;

namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>Small helpers to build Microsoft.Data.Analysis DataFrames from rows.</summary>
internal static class Frames
{
    internal static DataFrameColumn Int<T>(string name, IEnumerable<T> rows, Func<T, int> f) => new Int32DataFrameColumn(name, rows.Select(f));
    internal static DataFrameColumn Long<T>(string name, IEnumerable<T> rows, Func<T, long> f) => new Int64DataFrameColumn(name, rows.Select(f));
    internal static DataFrameColumn Double<T>(string name, IEnumerable<T> rows, Func<T, double> f) => new DoubleDataFrameColumn(name, rows.Select(f));
    internal static DataFrameColumn Str<T>(string name, IEnumerable<T> rows, Func<T, string?> f) => new StringDataFrameColumn(name, rows.Select(f));
    internal static DataFrameColumn Bool<T>(string name, IEnumerable<T> rows, Func<T, bool> f) => new BooleanDataFrameColumn(name, rows.Select(f));
}
