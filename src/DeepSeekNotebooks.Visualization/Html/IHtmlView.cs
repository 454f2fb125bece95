namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>Something that renders itself as a self-contained HTML fragment (all input text escaped).</summary>
public interface IHtmlView
{
    /// <summary>The HTML fragment. It needs no external resource.</summary>
    string ToHtml();
}
