#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using System.Globalization;
using System.Text;
using DeepSeekNotebooks.Analysis.Statistics;
using Microsoft.Data.Analysis;

namespace DeepSeekNotebooks.Analysis.Surrogates;

/// <summary>What a tree predicts.</summary>
public enum TreeTask
{
    /// <summary>Class labels; splits minimise Gini impurity.</summary>
    Classification,
    /// <summary>Real values; splits minimise variance (squared error).</summary>
    Regression,
}

/// <summary>Growth limits of a CART tree.</summary>
public sealed record DecisionTreeOptions
{
    /// <summary>Maximum depth (root = depth 0); default 5.</summary>
    public int MaxDepth { get; init; } = 5;
    /// <summary>Minimum samples in each leaf; default 1.</summary>
    public int MinSamplesLeaf { get; init; } = 1;
    /// <summary>Minimum samples in a node for it to be split; default 2.</summary>
    public int MinSamplesSplit { get; init; } = 2;
}

/// <summary>One node of a fitted tree, as plain data (for drawing).</summary>
/// <param name="Id">Index in <see cref="DecisionTree.Nodes"/> (root = 0).</param>
/// <param name="Feature">Split feature index (null for a leaf). Samples with x[Feature] ≤ Threshold go Left.</param>
/// <param name="Impurity">Gini impurity (classification) or variance (regression) of the node's training samples.</param>
/// <param name="Value">Predicted value: majority class label (classification) or mean (regression).</param>
/// <param name="ClassCounts">Training samples per class (in <see cref="DecisionTree.Classes"/> order); empty for regression.</param>
public sealed record TreeNode(int Id, int Depth, int? Feature, string? FeatureName, double Threshold, int? Left, int? Right, int Samples, double Impurity,
    double Value, int[] ClassCounts)
{
    /// <summary>Whether the node is a leaf.</summary>
    public bool IsLeaf => Feature is null;
}

/// <summary>
/// A CART decision tree (Breiman, Friedman, Olshen &amp; Stone 1984, "Classification and Regression Trees"): binary
/// axis-aligned splits x[f] ≤ t (t = midpoint between consecutive distinct values) chosen greedily to minimise the
/// samples-weighted Gini impurity (classification) or variance (regression) of the children. Ties between equally good
/// splits go to the most balanced one, then the lower feature index, so symmetric problems such as XOR split at their
/// centre. An impure node is split even when no split lowers its impurity (as scikit-learn does with
/// min_impurity_decrease = 0). No library on the project's NuGet feed implements single CART trees (ML.NET's FastTree
/// is gradient boosting), hence this small implementation.
/// </summary>
public sealed class DecisionTree
{
    private readonly List<TreeNode> _nodes = new();
    private readonly double[] _importance;

    private DecisionTree(TreeTask task, IReadOnlyList<string> names, int[] classes, double[] importance)
    {
        Task = task;
        FeatureNames = names.ToArray();
        Classes = classes;
        _importance = importance;
    }

    /// <summary>Classification or regression.</summary>
    public TreeTask Task { get; }
    /// <summary>Feature names, in column order.</summary>
    public IReadOnlyList<string> FeatureNames { get; }
    /// <summary>Class labels seen in training, ascending (empty for regression).</summary>
    public IReadOnlyList<int> Classes { get; }
    /// <summary>The nodes, root first; children reference nodes by <see cref="TreeNode.Id"/>.</summary>
    public IReadOnlyList<TreeNode> Nodes => _nodes;
    /// <summary>Depth of the deepest leaf (a single leaf has depth 0).</summary>
    public int Depth => _nodes.Max(n => n.Depth);
    /// <summary>Number of leaves.</summary>
    public int LeafCount => _nodes.Count(n => n.IsLeaf);
    /// <summary>
    /// Mean decrease in impurity per feature (Breiman et al. 1984): Σ over the feature's splits of
    /// (n·I − n_L·I_L − n_R·I_R) / N, normalised to sum 1 (all 0 when no split lowered impurity).
    /// </summary>
    public IReadOnlyList<double> FeatureImportances => _importance;

    /// <summary>
    /// Fits a CART classification tree (Gini; Breiman et al. 1984) to rows <paramref name="x"/> and labels <paramref name="y"/>.
    /// </summary>
    /// <exception cref="ArgumentException">No rows, ragged rows, non-finite features, length mismatch, names ≠ columns, or invalid options.</exception>
    public static DecisionTree FitClassifier(IReadOnlyList<double[]> x, IReadOnlyList<int> y, IReadOnlyList<string> featureNames, DecisionTreeOptions? options = null)
    {
        Check(x, y?.Count ?? 0, featureNames, options ??= new());
        var classes = y!.Distinct().Order().ToArray();
        var index = classes.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i);
        var yc = y!.Select(v => (double)index[v]).ToArray();
        var tree = new DecisionTree(TreeTask.Classification, featureNames, classes, new double[featureNames.Count]);
        tree.Grow(x, yc, options);
        return tree;
    }

    /// <summary>Fits a CART regression tree (variance reduction; Breiman et al. 1984).</summary>
    /// <exception cref="ArgumentException">As <see cref="FitClassifier"/>, or non-finite targets.</exception>
    public static DecisionTree FitRegressor(IReadOnlyList<double[]> x, IReadOnlyList<double> y, IReadOnlyList<string> featureNames, DecisionTreeOptions? options = null)
    {
        Check(x, y?.Count ?? 0, featureNames, options ??= new());
        if (y!.Any(v => !double.IsFinite(v))) throw new ArgumentException("targets must be finite", nameof(y));
        var tree = new DecisionTree(TreeTask.Regression, featureNames, Array.Empty<int>(), new double[featureNames.Count]);
        tree.Grow(x, y!.ToArray(), options);
        return tree;
    }

    private static void Check(IReadOnlyList<double[]> x, int yCount, IReadOnlyList<string> names, DecisionTreeOptions o)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(names);
        if (x.Count == 0) throw new ArgumentException("no training rows", nameof(x));
        if (yCount != x.Count) throw new ArgumentException($"{x.Count} rows but {yCount} targets", "y");
        int d = names.Count;
        if (d == 0) throw new ArgumentException("no features", nameof(names));
        for (int i = 0; i < x.Count; i++)
        {
            if (x[i] is null || x[i].Length != d) throw new ArgumentException($"row {i} has {x[i]?.Length ?? 0} features but {d} names were given", nameof(x));
            if (x[i].Any(v => !double.IsFinite(v))) throw new ArgumentException($"row {i} has a non-finite feature", nameof(x));
        }
        if (o.MaxDepth < 0) throw new ArgumentException("MaxDepth must be ≥ 0", nameof(o));
        if (o.MinSamplesLeaf < 1) throw new ArgumentException("MinSamplesLeaf must be ≥ 1", nameof(o));
        if (o.MinSamplesSplit < 2) throw new ArgumentException("MinSamplesSplit must be ≥ 2", nameof(o));
    }

    private void Grow(IReadOnlyList<double[]> x, double[] y, DecisionTreeOptions o)
    {
        int n = x.Count;
        var root = Enumerable.Range(0, n).ToArray();
        var stack = new Stack<(int[] Rows, int Depth, int Id)>();
        _nodes.Add(null!);
        stack.Push((root, 0, 0));
        while (stack.Count > 0)
        {
            var (rows, depth, id) = stack.Pop();
            var (imp, value, counts) = Summarise(rows, y);
            (int Feature, double Threshold, double Weighted, int[] Left, int[] Right)? best = null;
            if (imp > 1e-15 && depth < o.MaxDepth && rows.Length >= o.MinSamplesSplit && rows.Length >= 2 * o.MinSamplesLeaf)
                best = BestSplit(x, y, rows, o.MinSamplesLeaf);
            if (best is not { } b)
            {
                _nodes[id] = new TreeNode(id, depth, null, null, double.NaN, null, null, rows.Length, imp, value, counts);
                continue;
            }
            _importance[b.Feature] += (rows.Length * imp - b.Weighted) / n;
            int left = _nodes.Count; _nodes.Add(null!);
            int right = _nodes.Count; _nodes.Add(null!);
            _nodes[id] = new TreeNode(id, depth, b.Feature, FeatureNames[b.Feature], b.Threshold, left, right, rows.Length, imp, value, counts);
            stack.Push((b.Right, depth + 1, right));
            stack.Push((b.Left, depth + 1, left));
        }
        double total = _importance.Sum();
        for (int f = 0; f < _importance.Length; f++) _importance[f] = total > 1e-15 ? Math.Max(0, _importance[f]) / total : 0;
    }

    private (double Impurity, double Value, int[] Counts) Summarise(int[] rows, double[] y)
    {
        if (Task == TreeTask.Classification)
        {
            var counts = new int[Classes.Count];
            foreach (var r in rows) counts[(int)y[r]]++;
            int arg = 0;
            for (int c = 1; c < counts.Length; c++) if (counts[c] > counts[arg]) arg = c;
            return (Gini(counts, rows.Length), Classes[arg], counts);
        }
        double mean = rows.Average(r => y[r]);
        return (rows.Average(r => (y[r] - mean) * (y[r] - mean)), mean, Array.Empty<int>());
    }

    private static double Gini(int[] counts, int n)
    {
        if (n == 0) return 0;
        double s = 0;
        foreach (var c in counts) { double p = (double)c / n; s += p * p; }
        return 1 - s;
    }

    /// <summary>Best split of the rows: minimal Σ n_child · impurity_child; ties → most balanced, then lowest feature.</summary>
    private (int, double, double, int[], int[])? BestSplit(IReadOnlyList<double[]> x, double[] y, int[] rows, int minLeaf)
    {
        int n = rows.Length, d = FeatureNames.Count, k = Classes.Count;
        (int F, double T, double W, int Pos, int Imbalance)? best = null;
        int[]? bestOrder = null;
        for (int f = 0; f < d; f++)
        {
            var order = rows.OrderBy(r => x[r][f]).ToArray();
            var leftCounts = new int[k]; var rightCounts = new int[k];
            double lSum = 0, lSq = 0, rSum = 0, rSq = 0;
            foreach (var r in order)
                if (Task == TreeTask.Classification) rightCounts[(int)y[r]]++; else { rSum += y[r]; rSq += y[r] * y[r]; }
            for (int i = 0; i < n - 1; i++)
            {
                int r = order[i];
                if (Task == TreeTask.Classification) { leftCounts[(int)y[r]]++; rightCounts[(int)y[r]]--; }
                else { lSum += y[r]; lSq += y[r] * y[r]; rSum -= y[r]; rSq -= y[r] * y[r]; }
                int nl = i + 1, nr = n - nl;
                if (nl < minLeaf || nr < minLeaf) continue;
                double a = x[r][f], b = x[order[i + 1]][f];
                if (!(b > a)) continue;
                double w = Task == TreeTask.Classification
                    ? nl * Gini(leftCounts, nl) + nr * Gini(rightCounts, nr)
                    : Math.Max(0, lSq - lSum * lSum / nl) + Math.Max(0, rSq - rSum * rSum / nr);
                int imbalance = Math.Abs(nl - nr);
                if (best is not { } cur || w < cur.W - 1e-12 || (Math.Abs(w - cur.W) <= 1e-12 && imbalance < cur.Imbalance))
                {
                    double t = a + (b - a) / 2;
                    best = (f, t, w, nl, imbalance);
                    bestOrder = order;
                }
            }
        }
        if (best is not { } s) return null;
        return (s.F, s.T, s.W, bestOrder![..s.Pos], bestOrder[s.Pos..]);
    }

    /// <summary>Predicts one row: the leaf's majority class label (as a double) or mean.</summary>
    /// <exception cref="ArgumentException">Wrong number of features.</exception>
    public double Predict(IReadOnlyList<double> row) => Leaf(row).Value;

    /// <summary>The leaf a row falls in.</summary>
    public TreeNode Leaf(IReadOnlyList<double> row)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.Count != FeatureNames.Count) throw new ArgumentException($"row has {row.Count} features, the tree {FeatureNames.Count}", nameof(row));
        var node = _nodes[0];
        while (node.Feature is { } f) node = _nodes[row[f] <= node.Threshold ? node.Left!.Value : node.Right!.Value];
        return node;
    }

    /// <summary>
    /// Fidelity of the tree to the targets: accuracy (classification) or coefficient of determination R² = 1 − SS_res/SS_tot
    /// (regression; 1 when SS_tot = 0 and the fit is exact).
    /// </summary>
    /// <exception cref="ArgumentException">No rows or length mismatch.</exception>
    public double Score(IReadOnlyList<double[]> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count == 0 || x.Count != y.Count) throw new ArgumentException($"need equally many (≥1) rows and targets, got {x.Count} and {y.Count}", nameof(y));
        var pred = x.Select(Predict).ToArray();
        if (Task == TreeTask.Classification) return pred.Zip(y).Count(p => p.First == p.Second) / (double)x.Count;
        double mean = y.Average(), ssTot = y.Sum(v => (v - mean) * (v - mean)), ssRes = pred.Zip(y).Sum(p => (p.First - p.Second) * (p.First - p.Second));
        return ssTot > 0 ? 1 - ssRes / ssTot : ssRes == 0 ? 1 : 0;
    }

    /// <summary>The tree as indented text in the style of scikit-learn's export_text.</summary>
    public string ToText(int decimals = 3)
    {
        var sb = new StringBuilder();
        string F(double v) => v.ToString("F" + decimals, CultureInfo.InvariantCulture);
        void Walk(TreeNode node, int depth)
        {
            string pad = string.Concat(Enumerable.Repeat("|   ", depth));
            if (node.Feature is null)
            {
                sb.Append(pad).Append("|--- ").Append(Task == TreeTask.Classification ? $"class: {(int)node.Value}" : $"value: {F(node.Value)}")
                  .Append($" (n={node.Samples})").Append('\n');
                return;
            }
            sb.Append(pad).Append($"|--- {node.FeatureName} <= {F(node.Threshold)}\n");
            Walk(_nodes[node.Left!.Value], depth + 1);
            sb.Append(pad).Append($"|--- {node.FeatureName} >  {F(node.Threshold)}\n");
            Walk(_nodes[node.Right!.Value], depth + 1);
        }
        Walk(_nodes[0], 0);
        return sb.ToString();
    }

    /// <summary>The node list as a DataFrame (id, depth, feature, threshold, left, right, samples, impurity, value; −1 = none).</summary>
    public DataFrame ToDataFrame() => new(
        Frames.Int("id", _nodes, n => n.Id), Frames.Int("depth", _nodes, n => n.Depth), Frames.Str("feature", _nodes, n => n.FeatureName),
        Frames.Double("threshold", _nodes, n => n.Threshold), Frames.Int("left", _nodes, n => n.Left ?? -1), Frames.Int("right", _nodes, n => n.Right ?? -1),
        Frames.Int("samples", _nodes, n => n.Samples), Frames.Double("impurity", _nodes, n => n.Impurity), Frames.Double("value", _nodes, n => n.Value));
}
