using DeepSeekNotebooks.Analysis.Surrogates;
using Plotly.NET;
using static DeepSeekNotebooks.Visualization.Charts.Fig;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>Charts of surrogate models: the fitted decision tree and its feature importances.</summary>
public static class SurrogateCharts
{
    /// <summary>
    /// The tree as an icicle chart (root on top, each node split into its two children side by side): a tile's width is
    /// its share of the training samples, its label the split condition leading to it and, at leaves, the prediction;
    /// colour = node purity (1 − Gini impurity) for classification trees, the predicted value for regression trees.
    /// <paramref name="className"/> names class labels (default "class c").
    /// </summary>
    public static GenericChart Tree(DecisionTree tree, string title = "Surrogate decision tree", Func<int, string>? className = null)
    {
        ArgumentNullException.ThrowIfNull(tree);
        var nodes = tree.Nodes;
        var parent = new int[nodes.Count];
        var edge = new string[nodes.Count];
        parent[0] = -1; edge[0] = "all samples";
        string F(double v) => v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
        foreach (var n in nodes)
            if (n.Feature is not null)
            {
                parent[n.Left!.Value] = n.Id; edge[n.Left.Value] = $"{n.FeatureName} ≤ {F(n.Threshold)}";
                parent[n.Right!.Value] = n.Id; edge[n.Right.Value] = $"{n.FeatureName} > {F(n.Threshold)}";
            }
        bool cls = tree.Task == TreeTask.Classification;
        string Pred(TreeNode n) => cls ? (className?.Invoke((int)n.Value) ?? $"class {(int)n.Value}") : F(n.Value);
        var labels = nodes.Select(n => T(edge[n.Id] + (n.IsLeaf ? $" → {Pred(n)}" : ""))).ToArray();
        var colour = nodes.Select(n => cls ? 1 - n.Impurity : n.Value).ToArray();
        var trace = TraceDomain("icicle",
            ("ids", nodes.Select(n => $"n{n.Id}").ToArray()),
            ("labels", labels),
            ("parents", nodes.Select(n => parent[n.Id] < 0 ? "" : $"n{parent[n.Id]}").ToArray()),
            ("values", nodes.Select(n => n.Samples).ToArray()),
            ("branchvalues", "total"),
            ("text", nodes.Select(n => T($"n = {n.Samples}, prediction {Pred(n)}, {(cls ? "purity" : "value")} {F(colour[n.Id])}")).ToArray()),
            ("textinfo", "label"),
            ("hovertemplate", "%{label}<br>%{text}<extra></extra>"),
            ("tiling", Obj(("orientation", "v"))),
            ("maxdepth", -1),
            ("marker", Obj(("colors", colour), ("colorscale", "Viridis"), ("showscale", true),
                ("colorbar", ColorBar(cls ? "node purity (1 − Gini)" : "predicted value")))));
        return Chart(new[] { trace }, title,
            ("height", Math.Clamp(160 + 90 * (tree.Depth + 1), 380, 1000)),
            ("margin", Obj(("t", 60), ("l", 10), ("r", 10), ("b", 10))));
    }

    /// <summary>Feature importances (mean decrease in impurity) as bars, most important first.</summary>
    public static GenericChart FeatureImportances(DecisionTree tree, string title = "Surrogate feature importances (mean decrease in impurity)")
    {
        ArgumentNullException.ThrowIfNull(tree);
        var order = Enumerable.Range(0, tree.FeatureNames.Count).OrderByDescending(i => tree.FeatureImportances[i]).ToArray();
        return GeneralCharts.Bars(title, "feature", "importance (share of impurity decrease)", order.Select(i => tree.FeatureNames[i]).ToArray(),
            new Dictionary<string, IReadOnlyList<double>> { ["importance"] = order.Select(i => tree.FeatureImportances[i]).ToArray() });
    }
}
