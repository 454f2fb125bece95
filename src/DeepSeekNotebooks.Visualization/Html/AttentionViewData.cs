using System.Reflection;
using System.Text;
using System.Text.Json;
using DeepSeekNotebooks.Analysis.Attention;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>How <see cref="ModelView"/> shrinks a long sequence's attention matrix into a thumbnail of at most N × N cells.</summary>
/// <remarks>
/// With n tokens and at most N cells a side, consecutive positions are grouped into blocks of b = ⌈n / N⌉ positions
/// (the last block may be shorter), giving ⌈n / b⌉ ≤ N blocks per axis; a thumbnail line joins query block Q to key
/// block K. When n ≤ N nothing is pooled (b = 1) and the thumbnail is BertViz's <c>model_view</c> thumbnail exactly.
/// </remarks>
public enum ThumbnailPooling
{
    /// <summary>
    /// Cell (Q, K) = max over q ∈ Q, k ∈ K of A[q, k]: every weight's block shows at least that weight, so the matrix's
    /// largest weight and every strong line (sinks, previous-token heads) stay visible at the same opacity.
    /// </summary>
    Max,
    /// <summary>
    /// Cell (Q, K) = (1 / |Q|) · Σ_{q ∈ Q} Σ_{k ∈ K} A[q, k]: the mean attention mass a query of block Q puts on block K.
    /// Mass is preserved: each pooled row sums to the mean row sum of its queries (1 for attention probabilities), so
    /// the thumbnail is itself an attention matrix over the blocks.
    /// </summary>
    Mass,
}

/// <summary>
/// The data side of <see cref="HeadView"/> and <see cref="ModelView"/>: input checks, thresholding, pooling, and the
/// compact JSON the views' script reads. Weights are sent as integers in units of 1 / <see cref="Scale"/>.
/// </summary>
internal static class AttentionViewData
{
    /// <summary>Weights travel as round(w · Scale) (4 decimals; opacity has 256 levels).</summary>
    internal const int Scale = 10_000;

    /// <summary>Lines drawn for one matrix: per query row the kept (key, weight) pairs, and what was dropped.</summary>
    internal sealed record SparseRows(int[][] Keys, float[][] Weights, int Kept, int Dropped, double DroppedMass, double TotalMass);

    /// <summary>
    /// Keeps exactly the weights w with w ≥ <paramref name="threshold"/> and w &gt; 0 (a zero weight draws nothing, so
    /// the causal mask's zeros are never lines, even at threshold 0); counts and sums the others. The comparison is in
    /// single precision, the weights' own (so a weight of 0.01f is at, not below, a threshold of 0.01).
    /// </summary>
    internal static SparseRows Threshold(float[,] m, double threshold)
    {
        float t = (float)threshold;
        int rows = m.GetLength(0), cols = m.GetLength(1);
        var keys = new int[rows][];
        var weights = new float[rows][];
        int kept = 0, dropped = 0;
        double droppedMass = 0, total = 0;
        var kRow = new List<int>(cols);
        var wRow = new List<float>(cols);
        for (int q = 0; q < rows; q++)
        {
            kRow.Clear(); wRow.Clear();
            for (int k = 0; k < cols; k++)
            {
                float w = m[q, k];
                total += w;
                if (w > 0 && w >= t) { kRow.Add(k); wRow.Add(w); }
                else if (w > 0) { dropped++; droppedMass += w; }
            }
            keys[q] = kRow.ToArray();
            weights[q] = wRow.ToArray();
            kept += kRow.Count;
        }
        return new SparseRows(keys, weights, kept, dropped, droppedMass, total);
    }

    internal static SparseRows Threshold(AttentionMatrix m, double threshold) => Threshold(m.ToArray(), threshold);

    /// <summary>Block size b = ⌈n / maxCells⌉ (1 when n ≤ maxCells).</summary>
    internal static int BlockSize(int n, int maxCells) => Math.Max(1, (n + maxCells - 1) / maxCells);

    /// <summary>Pools [n, n] into [⌈n / b⌉, ⌈n / b⌉] blocks of b positions as <paramref name="pooling"/> documents.</summary>
    internal static float[,] Pool(AttentionMatrix m, int maxCells, ThumbnailPooling pooling)
    {
        int nq = m.Queries, nk = m.Keys;
        int b = BlockSize(Math.Max(nq, nk), maxCells);
        int cq = (nq + b - 1) / b, ck = (nk + b - 1) / b;
        var cells = new double[cq, ck];
        for (int q = 0; q < nq; q++)
            for (int k = 0; k < nk; k++)
            {
                double w = m[q, k];
                int Q = q / b, K = k / b;
                if (pooling == ThumbnailPooling.Max) cells[Q, K] = Math.Max(cells[Q, K], w);
                else cells[Q, K] += w;
            }
        var r = new float[cq, ck];
        for (int Q = 0; Q < cq; Q++)
        {
            int rowsInBlock = Math.Min(b, nq - Q * b);
            for (int K = 0; K < ck; K++)
                r[Q, K] = (float)(pooling == ThumbnailPooling.Max ? cells[Q, K] : cells[Q, K] / rowsInBlock);
        }
        return r;
    }

    /// <summary>
    /// Checks the attention input of a view: at least one layer, every layer with the same number (≥ 1) of heads, every
    /// matrix tokens × tokens, every weight finite and ≥ 0. Messages name the layer, head and position at fault.
    /// </summary>
    internal static void Validate(IReadOnlyList<string> tokens, IReadOnlyList<AttentionMatrix[]> attention)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(attention);
        int n = tokens.Count;
        if (n == 0) throw new ArgumentException("no tokens: an attention view needs at least one token", nameof(tokens));
        if (attention.Count == 0) throw new ArgumentException("no layers: give attention as [layer][head], each [query, key]", nameof(attention));
        int heads = attention[0]?.Length ?? 0;
        for (int l = 0; l < attention.Count; l++)
        {
            var layer = attention[l];
            if (layer is null || layer.Length == 0)
                throw new ArgumentException($"attention layer {l} has no heads: give attention as [layer][head], each [query, key]", nameof(attention));
            if (layer.Length != heads)
                throw new ArgumentException($"attention layer {l} has {layer.Length} heads but layer 0 has {heads}: every layer needs the same heads", nameof(attention));
            for (int h = 0; h < layer.Length; h++)
            {
                var m = layer[h] ?? throw new ArgumentException($"attention[{l}][{h}] is null", nameof(attention));
                if (m.Queries != n || m.Keys != n)
                    throw new ArgumentException($"attention[{l}][{h}] is {m.Queries}×{m.Keys} but there are {n} tokens: each head's matrix must be tokens × tokens (query × key)", nameof(attention));
                for (int q = 0; q < n; q++)
                    for (int k = 0; k < n; k++)
                    {
                        float w = m[q, k];
                        if (!float.IsFinite(w) || w < 0)
                            throw new ArgumentException($"attention[{l}][{h}] has weight {w} at query {q}, key {k}: attention weights must be finite and ≥ 0 (probabilities)", nameof(attention));
                    }
            }
        }
    }

    internal static void CheckThreshold(double threshold)
    {
        if (!double.IsFinite(threshold) || threshold < 0 || threshold >= 1)
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "the line threshold must be in [0, 1): lines with a weight below it are not drawn (0 draws every non-zero weight)");
    }

    /// <summary>Distinct indices in [0, count), in the given order; null means all.</summary>
    internal static int[] Indices(IReadOnlyList<int>? chosen, int count, string what, string paramName)
    {
        if (chosen is null) return Enumerable.Range(0, count).ToArray();
        if (chosen.Count == 0) throw new ArgumentException($"{paramName} is empty: give at least one {what} (0..{count - 1}), or null for all", paramName);
        var seen = new HashSet<int>();
        foreach (int i in chosen)
        {
            if (i < 0 || i >= count) throw new ArgumentException($"{what} {i} is out of range: the attention has {count} {what}s (0..{count - 1})", paramName);
            if (!seen.Add(i)) throw new ArgumentException($"{what} {i} is listed twice in {paramName}", paramName);
        }
        return chosen.ToArray();
    }

    /// <summary>From [layer][head][query][key] arrays.</summary>
    internal static AttentionMatrix[][] FromArrays(float[][][][] attention)
    {
        ArgumentNullException.ThrowIfNull(attention);
        return attention.Select((layer, l) => (layer ?? throw new ArgumentException($"attention layer {l} is null", nameof(attention)))
            .Select((head, h) =>
            {
                try { return AttentionMatrix.FromRows(head ?? throw new ArgumentException($"attention[{l}][{h}] is null", nameof(attention))); }
                catch (ArgumentException e) when (!e.Message.StartsWith("attention[", StringComparison.Ordinal))
                { throw new ArgumentException($"attention[{l}][{h}]: {e.Message}", nameof(attention), e); }
            }).ToArray()).ToArray();
    }

    /// <summary>Writes sparse rows as [[k, w, k, w, …], …] with w in units of 1 / <see cref="Scale"/>.</summary>
    internal static void WriteRows(Utf8JsonWriter w, SparseRows rows)
    {
        w.WriteStartArray();
        for (int q = 0; q < rows.Keys.Length; q++)
        {
            w.WriteStartArray();
            for (int i = 0; i < rows.Keys[q].Length; i++)
            {
                w.WriteNumberValue(rows.Keys[q][i]);
                w.WriteNumberValue(Quantise(rows.Weights[q][i]));
            }
            w.WriteEndArray();
        }
        w.WriteEndArray();
    }

    internal static int Quantise(float weight) => (int)Math.Round(Math.Min(weight, 1e6) * Scale, MidpointRounding.AwayFromZero);

    private static readonly Lazy<string> s_script = new(() =>
    {
        using Stream s = typeof(AttentionViewData).Assembly.GetManifestResourceStream("DeepSeekNotebooks.Visualization.Html.AttentionViews.js")
            ?? throw new InvalidOperationException("AttentionViews.js resource missing.");
        using var r = new StreamReader(s, Encoding.UTF8);
        return r.ReadToEnd();
    });

    /// <summary>The views' script (defines <c>window.dsnAttentionViews</c> once per page).</summary>
    internal static string Script => s_script.Value;

    private static int s_counter;

    internal static string NewId(string kind) => $"dsn-{kind}-{Guid.NewGuid():N}-{Interlocked.Increment(ref s_counter)}";

    /// <summary>The fragment: an empty root, the data as script-safe JSON, and the script that renders into the root.</summary>
    internal static string Fragment(string id, string cssClass, string json, string entry)
    {
        var sb = new StringBuilder(json.Length + Script.Length + 512);
        sb.Append("<div class=\"dsn-attn-view ").Append(cssClass).Append("\" id=\"").Append(id).Append("\"></div>")
          .Append("<script type=\"application/json\" id=\"").Append(id).Append("-data\">").Append(HtmlText.JsonForScript(json)).Append("</script>")
          .Append("<script type=\"text/javascript\">").Append(Script)
          .Append("\nwindow.dsnAttentionViews.").Append(entry).Append("('").Append(id).Append("');</script>");
        return sb.ToString();
    }

    internal static string Json(Action<Utf8JsonWriter> body)
    {
        using var ms = new MemoryStream();
        // Relaxed escaping keeps non-ASCII tokens readable and small; HtmlText.JsonForScript then makes < > & U+2028/9 script-safe.
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
