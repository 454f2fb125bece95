using System.Text.Json;
using System.Text.Json.Serialization;

namespace DeepSeekNotebooks.Analysis.Attention;

/// <summary>
/// A token-to-token matrix [query, key] — one head's attention probabilities, or a rollout/flow relevance matrix. The
/// kit's one attention-matrix type: trace snapshots, rollout and flow results, the attention charts and the dashboard all
/// hold it. Row q is what query position q attends to (or draws relevance from); JSON form: an array of rows. Immutable.
/// </summary>
[JsonConverter(typeof(AttentionMatrixJsonConverter))]
public sealed class AttentionMatrix
{
    private readonly float[,] _values;

    /// <summary>A copy of <paramref name="values"/> [query, key].</summary>
    public AttentionMatrix(float[,] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _values = (float[,])values.Clone();
    }

    private AttentionMatrix(float[,] values, bool _) => _values = values;

    /// <summary>From rows (each row one query, all of the same length).</summary>
    /// <exception cref="ArgumentException">Ragged or null rows.</exception>
    public static AttentionMatrix FromRows(IReadOnlyList<float[]> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        int keys = rows.Count == 0 ? 0 : rows[0]?.Length ?? 0;
        var m = new float[rows.Count, keys];
        for (int q = 0; q < rows.Count; q++)
        {
            if (rows[q] is null || rows[q].Length != keys)
                throw new ArgumentException($"row {q} has {rows[q]?.Length ?? 0} values but row 0 has {keys}: an attention matrix needs equally long rows", nameof(rows));
            for (int k = 0; k < keys; k++) m[q, k] = rows[q][k];
        }
        return new AttentionMatrix(m, true);
    }

    /// <summary>From row-major values [queries · keys].</summary>
    /// <exception cref="ArgumentException">values.Length ≠ queries · keys.</exception>
    public static AttentionMatrix FromRowMajor(int queries, int keys, ReadOnlySpan<float> values)
    {
        if (queries < 0 || keys < 0 || values.Length != (long)queries * keys)
            throw new ArgumentException($"{values.Length} values do not fill a [{queries}, {keys}] matrix", nameof(values));
        var m = new float[queries, keys];
        if (values.Length > 0) Buffer.BlockCopy(values.ToArray(), 0, m, 0, values.Length * sizeof(float));
        return new AttentionMatrix(m, true);
    }

    /// <summary>Wraps a 2-D array (copied).</summary>
    public static implicit operator AttentionMatrix(float[,] values) => new(values);

    /// <summary>Number of query positions (rows).</summary>
    public int Queries => _values.GetLength(0);
    /// <summary>Number of key positions (columns).</summary>
    public int Keys => _values.GetLength(1);
    /// <summary>The weight of query <paramref name="query"/> on key <paramref name="key"/>.</summary>
    public float this[int query, int key] => _values[query, key];

    /// <summary>Row <paramref name="query"/> (negative counts from the end) as a new array.</summary>
    /// <exception cref="ArgumentException">Query out of range.</exception>
    public float[] Row(int query)
    {
        int q = query < 0 ? Queries + query : query;
        if (q < 0 || q >= Queries) throw new ArgumentException($"query {query} is out of range for {Queries} positions", nameof(query));
        var r = new float[Keys];
        for (int k = 0; k < Keys; k++) r[k] = _values[q, k];
        return r;
    }

    /// <summary>A copy as a 2-D array [query, key].</summary>
    public float[,] ToArray() => (float[,])_values.Clone();

    /// <summary>A copy as rows.</summary>
    public float[][] ToRows() => Enumerable.Range(0, Queries).Select(Row).ToArray();

    /// <summary>A copy in row-major order [queries · keys].</summary>
    public float[] ToRowMajor()
    {
        var flat = new float[_values.Length];
        Buffer.BlockCopy(_values, 0, flat, 0, flat.Length * sizeof(float));
        return flat;
    }
}

/// <summary>Writes and reads <see cref="AttentionMatrix"/> as an array of rows.</summary>
internal sealed class AttentionMatrixJsonConverter : JsonConverter<AttentionMatrix>
{
    public override AttentionMatrix Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var rows = JsonSerializer.Deserialize<float[][]>(ref reader, options) ?? throw new JsonException("an attention matrix must be an array of rows, got null");
        try { return AttentionMatrix.FromRows(rows); }
        catch (ArgumentException e) { throw new JsonException(e.Message, e); }
    }

    public override void Write(Utf8JsonWriter writer, AttentionMatrix value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value.ToRows(), options);
}
