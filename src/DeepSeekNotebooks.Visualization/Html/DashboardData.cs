using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Experts;
namespace DeepSeekNotebooks.Visualization.Html;

/// <summary>
/// Everything the one-file <see cref="Dashboard"/> shows for one analysed input, as plain serialisable data
/// (System.Text.Json round-trips it). All parts except <see cref="Title"/> and <see cref="Tokens"/> are optional;
/// a missing part is shown as "not provided".
/// </summary>
/// <param name="Title">Page title (escaped).</param>
/// <param name="Tokens">The input tokens as strings (escaped; whitespace made visible).</param>
/// <param name="Attention">Attention probabilities [layer][head], each [query, key] with both dimensions = token count.</param>
/// <param name="Rollout">Attention rollout [query, key].</param>
/// <param name="Attributions">Attribution method name → one score per token (e.g. "Integrated gradients").</param>
/// <param name="Routing">Per MoE layer: each token's selected experts and gate weights.</param>
/// <param name="RoutedExperts">Routed experts per MoE layer (x axis of the routing chart); default: largest id + 1.</param>
public sealed record DashboardData(
    string Title,
    IReadOnlyList<string> Tokens,
    AttentionMatrix[][]? Attention = null,
    AttentionMatrix? Rollout = null,
    IReadOnlyDictionary<string, double[]>? Attributions = null,
    IReadOnlyList<LayerRouting>? Routing = null,
    int? RoutedExperts = null)
{
    /// <summary>Throws <see cref="ArgumentException"/> when a part's shape does not match the token count.</summary>
    public void Validate()
    {
        if (Tokens is null) throw new ArgumentException("Tokens is null.");
        int n = Tokens.Count;
        if (n == 0) throw new ArgumentException("No tokens.");
        if (Attention is not null)
            for (int l = 0; l < Attention.Length; l++)
            {
                if (Attention[l] is null || Attention[l].Length == 0) throw new ArgumentException($"Attention layer {l} has no heads.");
                for (int h = 0; h < Attention[l].Length; h++) Square(Attention[l][h], $"Attention[{l}][{h}]", n);
            }
        if (Rollout is not null) Square(Rollout, "Rollout", n);
        if (Attributions is not null)
            foreach (var (method, scores) in Attributions)
                if (scores is null || scores.Length != n)
                    throw new ArgumentException($"Attribution '{method}': {scores?.Length ?? 0} scores, expected {n}.");
        if (Routing is not null)
        {
            foreach (var r in Routing) r.Validate(n, RoutedExperts ?? int.MaxValue);
            if (Routing.Select(r => r.Layer).Distinct().Count() != Routing.Count) throw new ArgumentException("Routing lists a layer twice.");
        }
        if (RoutedExperts is < 1) throw new ArgumentException("RoutedExperts must be ≥ 1.");
    }

    private static void Square(AttentionMatrix? m, string what, int n)
    {
        if (m is null || m.Queries != n || m.Keys != n)
            throw new ArgumentException($"{what} must be {n}×{n} (tokens × tokens), got {(m is null ? "null" : $"{m.Queries}×{m.Keys}")}.");
    }
}
