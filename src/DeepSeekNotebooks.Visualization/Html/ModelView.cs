using System.Globalization;
using System.Text;
using DeepSeekNotebooks.Analysis.Attention;

namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>
/// BertViz's model view (<c>bertviz.model_view</c>, Vig 2019; <c>bertviz/model_view.js</c>): a layers × heads grid of
/// thumbnails, each the head's attention drawn as lines from query positions (left edge) to key positions (right edge),
/// opacity = weight, coloured per layer. Click a thumbnail to enlarge it: the head with its tokens, where hovering a
/// query token shows only its lines; click it again (or the close button) to close. Plain SVG, no network.
/// </summary>
/// <remarks>
/// Usable at long inputs: thumbnails are pooled to at most <see cref="ThumbnailCells"/> cells a side (<see cref="Pooling"/>,
/// max by default) and lines below <see cref="Threshold"/> are not drawn; the enlarged head is at full resolution unless
/// the whole view would carry more than <see cref="MaxDetailLines"/> lines, in which case it shows the pooled cells
/// (the view says which). Token text reaches the DOM only as <c>textContent</c>.
/// </remarks>
public sealed class ModelView : IHtmlView
{
    private readonly AttentionViewData.SparseRows[][] _thumbs;   // [included layer][included head], pooled
    private readonly AttentionViewData.SparseRows[][] _detail;   // same, full resolution

    /// <summary>
    /// A model view of <paramref name="attention"/> [layer][head], each [query, key] (e.g. <c>TraceSnapshot.Attention</c>).
    /// <paramref name="includeLayers"/> / <paramref name="includeHeads"/> restrict the grid (BertViz's
    /// <c>include_layers</c>, <c>include_heads</c>); <paramref name="thumbnailCells"/> (2–256) bounds a thumbnail's cells.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes that do not match the tokens, negative or non-finite weights, layers or
    /// heads out of range or repeated.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threshold"/> outside [0, 1) or
    /// <paramref name="thumbnailCells"/> outside 2–256.</exception>
    public ModelView(IReadOnlyList<string> tokens, IReadOnlyList<AttentionMatrix[]> attention,
        IReadOnlyList<int>? includeLayers = null, IReadOnlyList<int>? includeHeads = null, double threshold = HeadView.DefaultThreshold,
        int thumbnailCells = DefaultThumbnailCells, ThumbnailPooling pooling = ThumbnailPooling.Max, string? title = null)
    {
        AttentionViewData.Validate(tokens, attention);
        AttentionViewData.CheckThreshold(threshold);
        if (thumbnailCells is < 2 or > 256)
            throw new ArgumentOutOfRangeException(nameof(thumbnailCells), thumbnailCells, "a thumbnail needs 2 to 256 cells a side (default 32)");
        if (!Enum.IsDefined(pooling))
            throw new ArgumentOutOfRangeException(nameof(pooling), pooling, $"not a ThumbnailPooling: use {string.Join(" or ", Enum.GetNames<ThumbnailPooling>())}");
        Layers = AttentionViewData.Indices(includeLayers, attention.Count, "layer", nameof(includeLayers));
        Heads = AttentionViewData.Indices(includeHeads, attention[0].Length, "head", nameof(includeHeads));
        Tokens = tokens.ToArray();
        Threshold = threshold;
        ThumbnailCells = thumbnailCells;
        Pooling = pooling;
        Title = title;
        BlockSize = AttentionViewData.BlockSize(tokens.Count, thumbnailCells);
        _thumbs = Layers.Select(l => Heads.Select(h =>
            AttentionViewData.Threshold(AttentionViewData.Pool(attention[l][h], thumbnailCells, pooling), threshold)).ToArray()).ToArray();
        _detail = Layers.Select(l => Heads.Select(h => AttentionViewData.Threshold(attention[l][h], threshold)).ToArray()).ToArray();
        DetailAtFullResolution = _detail.Sum(l => l.Sum(h => h.Kept)) <= MaxDetailLines;
    }

    /// <summary>As the main constructor, from plain arrays [layer][head][query][key].</summary>
    public ModelView(IReadOnlyList<string> tokens, float[][][][] attention,
        IReadOnlyList<int>? includeLayers = null, IReadOnlyList<int>? includeHeads = null, double threshold = HeadView.DefaultThreshold,
        int thumbnailCells = DefaultThumbnailCells, ThumbnailPooling pooling = ThumbnailPooling.Max, string? title = null)
        : this(tokens, AttentionViewData.FromArrays(attention), includeLayers, includeHeads, threshold, thumbnailCells, pooling, title) { }

    /// <summary>Default bound on a thumbnail's cells a side.</summary>
    public const int DefaultThumbnailCells = 32;

    /// <summary>Above this many full-resolution lines in the whole grid, the enlarged head shows the pooled cells instead
    /// (each line is ~10 bytes of the page: 400 000 lines ≈ 4 MB).</summary>
    public const int MaxDetailLines = 400_000;

    /// <summary>The tokens.</summary>
    public IReadOnlyList<string> Tokens { get; }
    /// <summary>The grid's rows (layer indices).</summary>
    public IReadOnlyList<int> Layers { get; }
    /// <summary>The grid's columns (head indices).</summary>
    public IReadOnlyList<int> Heads { get; }
    /// <summary>Weights (or pooled cells) below this are not drawn.</summary>
    public double Threshold { get; }
    /// <summary>At most this many cells a thumbnail side.</summary>
    public int ThumbnailCells { get; }
    /// <summary>Positions per thumbnail cell (1: not pooled).</summary>
    public int BlockSize { get; }
    /// <summary>How thumbnails are pooled.</summary>
    public ThumbnailPooling Pooling { get; }
    /// <summary>Whether the enlarged head is drawn from the full-resolution weights (else from the pooled cells).</summary>
    public bool DetailAtFullResolution { get; }
    /// <summary>Optional title (escaped); default "Model view".</summary>
    public string? Title { get; }

    /// <summary>Lines of the thumbnail of (<paramref name="layer"/>, <paramref name="head"/>).</summary>
    public int ThumbnailLineCount(int layer, int head) => _thumbs[LayerIndex(layer)][HeadIndex(head)].Kept;

    private int LayerIndex(int layer) => Array.IndexOf(Layers.ToArray(), layer) is var i and >= 0 ? i
        : throw new ArgumentException($"layer {layer} is not in this view (layers {string.Join(", ", Layers)})", nameof(layer));
    private int HeadIndex(int head) => Array.IndexOf(Heads.ToArray(), head) is var i and >= 0 ? i
        : throw new ArgumentException($"head {head} is not in this view (heads {string.Join(", ", Heads)})", nameof(head));

    internal string ToJson() => AttentionViewData.Json(w =>
    {
        w.WriteString("title", Title ?? "Model view");
        w.WriteStartArray("tokens");
        foreach (var t in Tokens) w.WriteStringValue(t ?? string.Empty);
        w.WriteEndArray();
        w.WriteStartArray("layers");
        foreach (var l in Layers) w.WriteNumberValue(l);
        w.WriteEndArray();
        w.WriteStartArray("heads");
        foreach (var h in Heads) w.WriteNumberValue(h);
        w.WriteEndArray();
        w.WriteNumber("threshold", Threshold);
        w.WriteNumber("scale", AttentionViewData.Scale);
        w.WriteNumber("block", BlockSize);
        w.WriteNumber("cells", (Tokens.Count + BlockSize - 1) / BlockSize);
        w.WriteString("pooling", Pooling == ThumbnailPooling.Max ? "max" : "mass");
        w.WriteStartArray("thumbs");
        foreach (var layer in _thumbs)
        {
            w.WriteStartArray();
            foreach (var head in layer) AttentionViewData.WriteRows(w, head);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WritePropertyName("attn");
        if (!DetailAtFullResolution) w.WriteNullValue();
        else
        {
            w.WriteStartArray();
            foreach (var layer in _detail)
            {
                w.WriteStartArray();
                foreach (var head in layer) AttentionViewData.WriteRows(w, head);
                w.WriteEndArray();
            }
            w.WriteEndArray();
        }
        w.WriteNumber("dropped", _detail.Sum(l => l.Sum(h => h.Dropped)));
        w.WriteNumber("kept", _detail.Sum(l => l.Sum(h => h.Kept)));
    });

    /// <inheritdoc />
    public string ToHtml() => ToHtml(AttentionViewData.NewId("model-view"));

    /// <summary>The fragment with a fixed root id (a page that must be byte-for-byte reproducible, e.g. the dashboard).</summary>
    internal string ToHtml(string id) => AttentionViewData.Fragment(id, "dsn-model-view", ToJson(), "model");

    /// <summary>Plain-text form: grid size, pooling and threshold.</summary>
    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder("ModelView");
        if (Title is not null) sb.Append(" \"").Append(Title).Append('"');
        sb.Append(": ").Append(Layers.Count).Append(" layers × ").Append(Heads.Count).Append(" heads, ").Append(Tokens.Count)
          .Append(" tokens; thumbnails ").Append(BlockSize == 1 ? "not pooled" : $"{Pooling.ToString().ToLowerInvariant()}-pooled over blocks of {BlockSize} positions")
          .Append(", lines with weight ≥ ").Append(Threshold.ToString("G3", inv));
        return sb.ToString();
    }
}
