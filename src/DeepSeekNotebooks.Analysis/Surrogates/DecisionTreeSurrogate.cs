#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
namespace DeepSeekNotebooks.Analysis.Surrogates;

/// <summary>A surrogate tree and how faithfully it mimics the model's decisions.</summary>
/// <param name="TrainFidelity">Accuracy / R² on the training part.</param>
/// <param name="TestFidelity">Accuracy / R² on the held-out part (NaN when nothing was held out).</param>
public sealed record SurrogateReport(DecisionTree Tree, double TrainFidelity, double TestFidelity, int TrainSamples, int TestSamples)
{
    /// <summary>Depth of the tree.</summary>
    public int Depth => Tree.Depth;
    /// <summary>Leaves of the tree.</summary>
    public int LeafCount => Tree.LeafCount;
    /// <summary>Feature importances by name (mean decrease in impurity).</summary>
    public IReadOnlyDictionary<string, double> FeatureImportances =>
        Tree.FeatureNames.Zip(Tree.FeatureImportances).ToDictionary(p => p.First, p => p.Second);
}

/// <summary>
/// Global surrogate models: a CART tree (Breiman et al. 1984) fitted on interpretable, caller-chosen features to
/// reproduce the model's decisions (e.g. which expert the router picks, or whether a head is a sink), with fidelity
/// measured on held-out rows.
/// </summary>
public static class DecisionTreeSurrogate
{
    /// <summary>
    /// Fits a classification surrogate (Gini CART) to the model's discrete decisions, holding out a seeded random
    /// <paramref name="testFraction"/> of the rows to measure fidelity (accuracy).
    /// </summary>
    /// <exception cref="ArgumentException">testFraction outside [0, 1), or bad data (see <see cref="DecisionTree.FitClassifier"/>).</exception>
    public static SurrogateReport FitClassifier(IReadOnlyList<double[]> features, IReadOnlyList<int> decisions, IReadOnlyList<string> featureNames,
        DecisionTreeOptions? options = null, double testFraction = 0.25, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(decisions);
        var (train, test) = Split(features.Count, decisions.Count, testFraction, seed);
        var tree = DecisionTree.FitClassifier(train.Select(i => features[i]).ToArray(), train.Select(i => decisions[i]).ToArray(), featureNames, options);
        double Score(int[] rows) => rows.Length == 0 ? double.NaN : tree.Score(rows.Select(i => features[i]).ToArray(), rows.Select(i => (double)decisions[i]).ToArray());
        return new SurrogateReport(tree, Score(train), Score(test), train.Length, test.Length);
    }

    /// <summary>Fits a regression surrogate (variance CART) to the model's continuous outputs; fidelity is held-out R².</summary>
    /// <exception cref="ArgumentException">testFraction outside [0, 1), or bad data (see <see cref="DecisionTree.FitRegressor"/>).</exception>
    public static SurrogateReport FitRegressor(IReadOnlyList<double[]> features, IReadOnlyList<double> outputs, IReadOnlyList<string> featureNames,
        DecisionTreeOptions? options = null, double testFraction = 0.25, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(outputs);
        var (train, test) = Split(features.Count, outputs.Count, testFraction, seed);
        var tree = DecisionTree.FitRegressor(train.Select(i => features[i]).ToArray(), train.Select(i => outputs[i]).ToArray(), featureNames, options);
        double Score(int[] rows) => rows.Length == 0 ? double.NaN : tree.Score(rows.Select(i => features[i]).ToArray(), rows.Select(i => outputs[i]).ToArray());
        return new SurrogateReport(tree, Score(train), Score(test), train.Length, test.Length);
    }

    private static (int[] Train, int[] Test) Split(int rows, int targets, double testFraction, int seed)
    {
        if (rows != targets) throw new ArgumentException($"{rows} feature rows but {targets} targets", nameof(targets));
        if (rows == 0) throw new ArgumentException("no rows", nameof(rows));
        if (!(testFraction >= 0 && testFraction < 1)) throw new ArgumentException("testFraction must be in [0, 1)", nameof(testFraction));
        var order = Enumerable.Range(0, rows).ToArray();
        new Random(seed).Shuffle(order);
        int nTest = (int)Math.Floor(rows * testFraction);
        if (rows - nTest < 1) throw new ArgumentException("no training rows left after holding out the test part", nameof(testFraction));
        return (order[nTest..], order[..nTest]);
    }
}
