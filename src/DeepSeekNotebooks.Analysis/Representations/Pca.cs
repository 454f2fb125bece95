#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Representations;

/// <summary>A fitted principal component analysis.</summary>
/// <param name="Mean">Feature means subtracted before projection.</param>
/// <param name="Axes">Principal axes [components][features], unit length; sign fixed so each axis's largest-magnitude entry is positive.</param>
/// <param name="ExplainedVariance">Variance along each axis (sample variance, n − 1).</param>
/// <param name="ExplainedVarianceRatio">Fraction of total variance along each axis (sums to ≤ 1).</param>
/// <param name="Projections">The fitted samples' coordinates [samples][components].</param>
public sealed record PcaResult(double[] Mean, double[][] Axes, double[] ExplainedVariance, double[] ExplainedVarianceRatio, double[][] Projections)
{
    /// <summary>Number of components.</summary>
    public int Components => Axes.Length;

    /// <summary>Projects a new sample onto the axes.</summary>
    public double[] Project(IReadOnlyList<double> sample)
    {
        if (sample.Count != Mean.Length) throw new ArgumentException($"sample must have {Mean.Length} features", nameof(sample));
        return Axes.Select(a => a.Select((w, j) => w * (sample[j] - Mean[j])).Sum()).ToArray();
    }

    /// <summary>Projections as a DataFrame with columns pc1, pc2, … (and a label column when labels are given).</summary>
    public DataFrame ToDataFrame(IReadOnlyList<string>? labels = null)
    {
        var cols = new List<DataFrameColumn>();
        if (labels is not null) cols.Add(new StringDataFrameColumn("label", labels));
        for (int c = 0; c < Components; c++) { int cc = c; cols.Add(new DoubleDataFrameColumn($"pc{c + 1}", Projections.Select(p => p[cc]))); }
        return new DataFrame(cols);
    }
}

/// <summary>Principal component analysis of embeddings or hidden states (2-D/3-D views of representation geometry).</summary>
public static class Pca
{
    /// <summary>
    /// PCA of rows of <paramref name="data"/> by a thin SVD of the mean-centred matrix in float64 (torch.linalg.svd):
    /// axes = rows of Vᵀ, explained variance = s²/(n − 1), ratio = s²/Σ s² over all singular values. Deterministic sign:
    /// each axis is flipped so its largest-|·| entry is positive.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than 2 samples, ragged rows, or components outside [1, min(n, features)].</exception>
    public static PcaResult Fit(IReadOnlyList<double[]> data, int components = 2)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Count < 2) throw new ArgumentException("PCA needs at least 2 samples", nameof(data));
        int d = data[0].Length;
        if (d == 0 || data.Any(r => r.Length != d)) throw new ArgumentException("every sample must have the same, positive number of features", nameof(data));
        using var scope = NewDisposeScope();
        return Fit(tensor(data.SelectMany(r => r).ToArray(), new long[] { data.Count, d }, ScalarType.Float64), components);
    }

    /// <summary>PCA of the rows of a [samples, features] tensor (see <see cref="Fit(IReadOnlyList{double[]}, int)"/>).</summary>
    public static PcaResult Fit(Tensor data, int components = 2)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.dim() != 2) throw new ArgumentException($"data must be [samples, features], got [{string.Join(", ", data.shape)}]", nameof(data));
        long n = data.shape[0], d = data.shape[1];
        if (n < 2) throw new ArgumentException("PCA needs at least 2 samples", nameof(data));
        if (components < 1 || components > Math.Min(n, d)) throw new ArgumentException($"components must be in [1, {Math.Min(n, d)}]", nameof(components));
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var x = data.detach().to(ScalarType.Float64);
        var mean = x.mean(new long[] { 0 });
        var centred = x - mean;
        var (u, s, vh) = linalg.svd(centred, fullMatrices: false);
        var sv = s.data<double>().ToArray();
        var axes = vh.narrow(0, 0, components).clone();
        var axesArr = new double[components][];
        var a = axes.data<double>().ToArray();
        for (int c = 0; c < components; c++)
        {
            var row = a.AsSpan(c * (int)d, (int)d).ToArray();
            int arg = 0;
            for (int j = 1; j < row.Length; j++) if (Math.Abs(row[j]) > Math.Abs(row[arg]) + 1e-12) arg = j;
            if (row[arg] < 0) for (int j = 0; j < row.Length; j++) row[j] = -row[j];
            axesArr[c] = row;
        }
        var axesT = tensor(axesArr.SelectMany(r => r).ToArray(), new long[] { components, d }, ScalarType.Float64);
        var proj = centred.matmul(axesT.t()).data<double>().ToArray();
        double total = sv.Sum(v => v * v);
        var variance = sv.Take(components).Select(v => v * v / (n - 1)).ToArray();
        var ratio = sv.Take(components).Select(v => total > 0 ? v * v / total : 0).ToArray();
        var projections = Enumerable.Range(0, (int)n).Select(i => proj.AsSpan(i * components, components).ToArray()).ToArray();
        return new PcaResult(mean.data<double>().ToArray(), axesArr, variance, ratio, projections);
    }

    /// <summary>PCA of the hidden states (residual stream after block <paramref name="layer"/>) of every position of every batch row in a trace.</summary>
    /// <exception cref="ArgumentException">Unknown layer.</exception>
    public static PcaResult OfHiddenStates(ModelTrace trace, int layer, int components = 2)
    {
        ArgumentNullException.ThrowIfNull(trace);
        if (layer < 0 || layer >= trace.Config.NumHiddenLayers)
            throw new ArgumentException($"layer {layer} out of range [0, {trace.Config.NumHiddenLayers})", nameof(layer));
        using var scope = NewDisposeScope();
        var h = trace.Hidden(layer);
        return Fit(h.reshape(-1, h.shape[^1]), components);
    }

    /// <summary>PCA of rows of the token-embedding table (all rows, or the given token ids).</summary>
    /// <exception cref="ArgumentException">A token id out of range.</exception>
    public static PcaResult OfEmbeddings(DeepSeekModel model, IReadOnlyList<long>? tokenIds = null, int components = 2)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = NewDisposeScope();
        var table = model.EmbeddingWeight.detach();
        if (tokenIds is null) return Fit(table, components);
        foreach (var t in tokenIds)
            if (t < 0 || t >= model.Config.VocabSize) throw new ArgumentException($"token id {t} out of range [0, {model.Config.VocabSize})", nameof(tokenIds));
        return Fit(table.index_select(0, tensor(tokenIds.ToArray(), dtype: ScalarType.Int64)), components);
    }
}
