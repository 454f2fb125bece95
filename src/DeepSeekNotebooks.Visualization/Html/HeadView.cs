using System.Globalization;
using System.Text;
using DeepSeekNotebooks.Analysis.Attention;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>
/// BertViz's head view (<c>bertviz.head_view</c>, Vig 2019, "A Multiscale Visualization of Attention in the Transformer
/// Model"; <c>bertviz/head_view.js</c>): every head of one layer as lines from query tokens (left column) to key tokens
/// (right column), one colour per head, line opacity = attention weight ÷ number of selected heads (as BertViz).
/// Hover a token to see only its lines and, beside the other column, one coloured box per selected head whose opacity
/// is that head's weight; click a head's colour square to show/hide it, double-click it to show only that head (again
/// to show all); a layer selector when several layers are given. Plain SVG drawn by an inline script, no network.
/// </summary>
/// <remarks>
/// Lines with weight below <see cref="Threshold"/> are not drawn (the view states how many and how much mass); with
/// 128 tokens a causal head has 8 256 non-zero weights, most of them invisibly faint. Token text reaches the DOM only as
/// <c>textContent</c>; the data is embedded with <see cref="HtmlText.JsonForScript"/>.
/// </remarks>
public sealed class HeadView : IHtmlView
{
    private readonly AttentionViewData.SparseRows[][] _rows;   // [included layer][head]

    /// <summary>
    /// A head view of <paramref name="attention"/> [layer][head], each [query, key] (e.g. <c>TraceSnapshot.Attention</c>)
    /// over <paramref name="tokens"/>. <paramref name="includeLayers"/> (default all) are the layers offered in the layer
    /// selector, <paramref name="layer"/> the one shown first (default the first included), <paramref name="heads"/> the
    /// heads selected at first (default all), as BertViz's <c>layer</c>, <c>heads</c> and <c>include_layers</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes that do not match the tokens, negative or non-finite weights, layers or
    /// heads out of range or repeated, <paramref name="layer"/> not among <paramref name="includeLayers"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threshold"/> outside [0, 1).</exception>
    public HeadView(IReadOnlyList<string> tokens, IReadOnlyList<AttentionMatrix[]> attention, int? layer = null,
        IReadOnlyList<int>? heads = null, IReadOnlyList<int>? includeLayers = null, double threshold = DefaultThreshold, string? title = null)
    {
        AttentionViewData.Validate(tokens, attention);
        AttentionViewData.CheckThreshold(threshold);
        int headCount = attention[0].Length;
        Layers = AttentionViewData.Indices(includeLayers, attention.Count, "layer", nameof(includeLayers));
        int first = layer ?? Layers[0];
        if (Array.IndexOf(Layers.ToArray(), first) < 0)
            throw new ArgumentException(includeLayers is null
                ? $"layer {first} is out of range: the attention has {attention.Count} layers (0..{attention.Count - 1})"
                : $"layer {first} is not among includeLayers ({string.Join(", ", Layers)}): show one of those, or include it", nameof(layer));
        Layer = first;
        SelectedHeads = AttentionViewData.Indices(heads, headCount, "head", nameof(heads));
        Tokens = tokens.ToArray();
        Heads = headCount;
        Threshold = threshold;
        Title = title;
        _rows = Layers.Select(l => attention[l].Select(m => AttentionViewData.Threshold(m, threshold)).ToArray()).ToArray();
    }

    /// <summary>As the main constructor, from plain arrays [layer][head][query][key].</summary>
    public HeadView(IReadOnlyList<string> tokens, float[][][][] attention, int? layer = null,
        IReadOnlyList<int>? heads = null, IReadOnlyList<int>? includeLayers = null, double threshold = DefaultThreshold, string? title = null)
        : this(tokens, AttentionViewData.FromArrays(attention), layer, heads, includeLayers, threshold, title) { }

    /// <summary>The default line threshold: weights below 0.01 are not drawn (at opacity ≤ 0.01 they are invisible anyway).</summary>
    public const double DefaultThreshold = 0.01;

    /// <summary>The tokens (query column = key column).</summary>
    public IReadOnlyList<string> Tokens { get; }
    /// <summary>The layers in the selector (indices into the attention given).</summary>
    public IReadOnlyList<int> Layers { get; }
    /// <summary>The layer shown first.</summary>
    public int Layer { get; }
    /// <summary>Heads per layer.</summary>
    public int Heads { get; }
    /// <summary>The heads selected when the view opens.</summary>
    public IReadOnlyList<int> SelectedHeads { get; }
    /// <summary>Weights below this are not drawn.</summary>
    public double Threshold { get; }
    /// <summary>Optional title (escaped); default "Head view".</summary>
    public string? Title { get; }

    /// <summary>Lines drawn for <paramref name="layer"/> (an included layer), over all its heads.</summary>
    public int LineCount(int layer) => RowsOf(layer).Sum(r => r.Kept);
    /// <summary>Non-zero weights of <paramref name="layer"/> below <see cref="Threshold"/> (not drawn).</summary>
    public int DroppedCount(int layer) => RowsOf(layer).Sum(r => r.Dropped);

    private AttentionViewData.SparseRows[] RowsOf(int layer)
    {
        int i = Array.IndexOf(Layers.ToArray(), layer);
        if (i < 0) throw new ArgumentException($"layer {layer} is not in this view (layers {string.Join(", ", Layers)})", nameof(layer));
        return _rows[i];
    }

    /// <summary>The JSON the view's script reads (tokens, layers, per layer and head the kept weights as [key, weight·10⁴] pairs per query row).</summary>
    internal string ToJson() => AttentionViewData.Json(w =>
    {
        w.WriteString("title", Title ?? "Head view");
        w.WriteStartArray("tokens");
        foreach (var t in Tokens) w.WriteStringValue(t ?? string.Empty);
        w.WriteEndArray();
        w.WriteStartArray("layers");
        foreach (var l in Layers) w.WriteNumberValue(l);
        w.WriteEndArray();
        w.WriteNumber("layer", Array.IndexOf(Layers.ToArray(), Layer));
        w.WriteNumber("heads", Heads);
        w.WriteStartArray("selected");
        for (int h = 0; h < Heads; h++) w.WriteBooleanValue(SelectedHeads.Contains(h));
        w.WriteEndArray();
        w.WriteNumber("threshold", Threshold);
        w.WriteNumber("scale", AttentionViewData.Scale);
        w.WriteStartArray("attn");
        foreach (var layer in _rows)
        {
            w.WriteStartArray();
            foreach (var head in layer) AttentionViewData.WriteRows(w, head);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WriteStartArray("stats");
        foreach (var layer in _rows)
        {
            w.WriteStartObject();
            w.WriteNumber("kept", layer.Sum(r => r.Kept));
            w.WriteNumber("dropped", layer.Sum(r => r.Dropped));
            w.WriteNumber("droppedMass", layer.Sum(r => r.DroppedMass));
            w.WriteNumber("totalMass", layer.Sum(r => r.TotalMass));
            w.WriteEndObject();
        }
        w.WriteEndArray();
    });

    /// <inheritdoc />
    public string ToHtml() => ToHtml(AttentionViewData.NewId("head-view"));

    /// <summary>The fragment with a fixed root id (a page that must be byte-for-byte reproducible, e.g. the dashboard).</summary>
    internal string ToHtml(string id) => AttentionViewData.Fragment(id, "dsn-head-view", ToJson(), "head");

    /// <summary>Plain-text form: the layers, heads, tokens and lines drawn.</summary>
    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder("HeadView");
        if (Title is not null) sb.Append(" \"").Append(Title).Append('"');
        sb.Append(": ").Append(Tokens.Count).Append(" tokens, layers ").Append(string.Join(", ", Layers))
          .Append(" (showing ").Append(Layer).Append("), ").Append(Heads).Append(" heads; lines with weight ≥ ")
          .Append(Threshold.ToString("G3", inv)).Append(": ").Append(string.Join(", ", Layers.Select(l => $"layer {l} {LineCount(l)}")));
        return sb.ToString();
    }
}
