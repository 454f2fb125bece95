using System.Globalization;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attention;

/// <summary>How the heads of one layer are combined into one attention matrix (as in the common rollout code).</summary>
public enum HeadFusion
{
    /// <summary>Mean over heads (Abnar &amp; Zuidema 2020).</summary>
    Mean,
    /// <summary>Element-wise maximum over heads.</summary>
    Max,
    /// <summary>Element-wise minimum over heads.</summary>
    Min,
}

/// <summary>
/// The identity of a <see cref="RolloutResult"/>: which method produced it. Saved files hold the name from
/// <see cref="RolloutMethods.Name"/> (<c>attention_rollout</c>, <c>attention_flow</c>) in the <c>method</c> metadata key.
/// </summary>
public enum RolloutMethod
{
    /// <summary><see cref="Attention.AttentionRollout"/>: products of residual-augmented attention; saved as <c>attention_rollout</c>.</summary>
    AttentionRollout,
    /// <summary><see cref="Attention.AttentionFlow"/>: max flow through the attention graph; saved as <c>attention_flow</c>.</summary>
    AttentionFlow,
}

/// <summary>The saved names and display titles of <see cref="RolloutMethod"/>.</summary>
public static class RolloutMethods
{
    /// <summary>The saved name: <c>attention_rollout</c> or <c>attention_flow</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value outside the enum.</exception>
    public static string Name(this RolloutMethod method) => method switch
    {
        RolloutMethod.AttentionRollout => "attention_rollout",
        RolloutMethod.AttentionFlow => "attention_flow",
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, "not a RolloutMethod"),
    };

    /// <summary>The human-readable name: <c>Attention rollout</c> or <c>Attention flow</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value outside the enum.</exception>
    public static string DisplayName(this RolloutMethod method) => method switch
    {
        RolloutMethod.AttentionRollout => "Attention rollout",
        RolloutMethod.AttentionFlow => "Attention flow",
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, "not a RolloutMethod"),
    };

    /// <summary>The method whose saved name is <paramref name="name"/> (exactly as <see cref="Name"/> writes it).</summary>
    /// <exception cref="ArgumentException">Any other string; the message lists the saved names.</exception>
    public static RolloutMethod FromName(string name) => name switch
    {
        "attention_rollout" => RolloutMethod.AttentionRollout,
        "attention_flow" => RolloutMethod.AttentionFlow,
        _ => throw new ArgumentException($"unknown rollout method name '{name}': saved results use attention_rollout or attention_flow", nameof(name)),
    };
}

/// <summary>A token-to-token relevance matrix [query, input token] from attention rollout or attention flow.</summary>
public sealed class RolloutResult
{
    /// <summary>Creates a result.</summary>
    public RolloutResult(RolloutMethod method, AttentionMatrix matrix, IReadOnlyDictionary<string, string> parameters, long[]? tokenIds = null, string[]? tokens = null)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        if (matrix.Queries != matrix.Keys) throw new ArgumentException($"a rollout matrix is [seq, seq], got [{matrix.Queries}, {matrix.Keys}]", nameof(matrix));
        Method = method; Matrix = matrix; Parameters = parameters; TokenIds = tokenIds; Tokens = tokens;
    }

    /// <summary>Which method produced the matrix (saved as <c>attention_rollout</c> or <c>attention_flow</c>).</summary>
    public RolloutMethod Method { get; }
    /// <summary>[seq, seq]: row q = how much each input token contributes to position q after the included layers.</summary>
    public AttentionMatrix Matrix { get; }
    /// <summary>Token ids, when known.</summary>
    public long[]? TokenIds { get; init; }
    /// <summary>Token strings, when known.</summary>
    public string[]? Tokens { get; init; }
    /// <summary>Parameters (head fusion, discard ratio, layers).</summary>
    public IReadOnlyDictionary<string, string> Parameters { get; }
    /// <summary>Number of positions.</summary>
    public int SequenceLength => Matrix.Queries;

    /// <summary>Row <paramref name="query"/> (negative counts from the end): relevance of each input token.</summary>
    public float[] Row(int query) => Matrix.Row(query);

    /// <summary>Writes <c>rollout</c> [seq, seq] F32 (and <c>input_ids</c> [seq] I64 when known); method and parameters in the metadata.</summary>
    public void SaveSafetensors(string path)
    {
        int n = SequenceLength;
        var flat = Matrix.ToRowMajor();
        var w = new SafetensorsWriter().SetMetadata("method", Method.Name()).AddFloat32("rollout", new long[] { n, n }, flat);
        if (TokenIds is { } ids) w.AddInt64("input_ids", new long[] { ids.Length }, ids);
        foreach (var (k, v) in Parameters) w.SetMetadata("param." + k, v);
        w.WriteTo(path);
    }
}

/// <summary>
/// Attention rollout (Abnar &amp; Zuidema 2020, "Quantifying Attention Flow in Transformers", ACL): per layer, the
/// head-fused attention A_l is augmented with the residual connection, A'_l = 0.5·A_l + 0.5·I, rows renormalised, and the
/// layers are multiplied in order: rollout = A'_end ··· A'_start (row q: contribution of each input token to position q).
/// </summary>
public static class AttentionRollout
{
    /// <summary>
    /// Rollout of per-layer attention given as [heads, query, key] arrays (Abnar &amp; Zuidema 2020). Heads are fused by
    /// <paramref name="headFusion"/>; see <see cref="Augment"/> for <paramref name="discardRatio"/>; layers
    /// <paramref name="startLayer"/>..<paramref name="endLayer"/> (inclusive; default all) are multiplied in double precision.
    /// </summary>
    /// <exception cref="ArgumentException">No layers, non-square or mismatched matrices, layer range or discard ratio out of range.</exception>
    public static RolloutResult Compute(IReadOnlyList<float[,,]> attentions, HeadFusion headFusion = HeadFusion.Mean, double discardRatio = 0,
        int startLayer = 0, int? endLayer = null)
    {
        ArgumentNullException.ThrowIfNull(attentions);
        return Compute(attentions.Select(a => Fuse(a, headFusion)).ToArray(), discardRatio, startLayer, endLayer, headFusion);
    }

    /// <summary>Rollout of per-layer attention tensors [heads, q, k] or [1, heads, q, k] (Abnar &amp; Zuidema 2020); see the array overload.</summary>
    public static RolloutResult Compute(IReadOnlyList<Tensor> attentions, HeadFusion headFusion = HeadFusion.Mean, double discardRatio = 0,
        int startLayer = 0, int? endLayer = null)
    {
        ArgumentNullException.ThrowIfNull(attentions);
        return Compute(attentions.Select(ToArray3).ToArray(), headFusion, discardRatio, startLayer, endLayer);
    }

    /// <summary>
    /// Rollout of already head-fused per-layer matrices [q, k] (Abnar &amp; Zuidema 2020): A'_l = <see cref="Augment"/>(A_l),
    /// rollout = A'_end ··· A'_start.
    /// </summary>
    public static RolloutResult Compute(IReadOnlyList<AttentionMatrix> fusedAttentions, double discardRatio = 0, int startLayer = 0, int? endLayer = null) =>
        Compute(fusedAttentions, discardRatio, startLayer, endLayer, null);

    /// <summary>Rollout of sequence <paramref name="batchIndex"/> of a trace that recorded attention patterns (Abnar &amp; Zuidema 2020).</summary>
    public static RolloutResult Compute(ModelTrace trace, int batchIndex = 0, HeadFusion headFusion = HeadFusion.Mean, double discardRatio = 0,
        int startLayer = 0, int? endLayer = null)
    {
        ArgumentNullException.ThrowIfNull(trace);
        return Compute(TraceLayers(trace, batchIndex), headFusion, discardRatio, startLayer, endLayer);
    }

    /// <summary>Runs the model on one sequence <paramref name="inputIds"/> ([seq] or [1, seq]) and returns its rollout (Abnar &amp; Zuidema 2020).</summary>
    public static RolloutResult Compute(DeepSeekModel model, Tensor inputIds, HeadFusion headFusion = HeadFusion.Mean, double discardRatio = 0,
        int startLayer = 0, int? endLayer = null)
    {
        var (layers, ids) = RunLayers(model, inputIds);
        var r = Compute(layers, headFusion, discardRatio, startLayer, endLayer);
        return new RolloutResult(r.Method, r.Matrix, r.Parameters, ids);
    }

    /// <summary>
    /// The residual-augmented attention of one layer: optionally discards weak links, then A' = 0.5·A + 0.5·I with rows
    /// renormalised to sum to 1 (Abnar &amp; Zuidema 2020). Discarding (as the common implementation, jacobgil/vit-explain,
    /// which zeroes the lowest <c>ratio</c> fraction of the fused weights but spares the CLS entry): here the candidates are
    /// the off-diagonal entries a query can attend to (k &lt; q when the matrix is causal, i.e. its upper triangle is zero;
    /// all off-diagonal entries otherwise), so the structural zeros of a causal mask do not consume the budget; the
    /// diagonal is never discarded; ⌊ratio · #candidates⌋ of the smallest candidates (ties by index) are set to 0.
    /// A DeepSeek-V4 row that sums to 1 − σ (σ the sink's share, <see cref="TokenAttention"/>) becomes
    /// (0.5·A + 0.5·I) / (1 − σ/2): the sink's mass goes to no token and the rest is renormalised, so the residual's share
    /// grows where the sink takes mass (the attention output is scaled by 1 − σ; docs/generations-analyses.md).
    /// </summary>
    /// <exception cref="ArgumentException">Non-square matrix or discard ratio outside [0, 1).</exception>
    public static double[,] Augment(AttentionMatrix fused, double discardRatio = 0)
    {
        ArgumentNullException.ThrowIfNull(fused);
        CheckRatio(discardRatio);
        int n = fused.Queries;
        if (fused.Keys != n) throw new ArgumentException($"attention must be square [q, k], got [{n}, {fused.Keys}]", nameof(fused));
        var a = new double[n, n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) a[i, j] = fused[i, j];
        if (discardRatio > 0)
        {
            bool causal = true;
            for (int i = 0; i < n && causal; i++) for (int j = i + 1; j < n; j++) if (a[i, j] != 0) { causal = false; break; }
            var cands = new List<(double V, int I, int J)>();
            for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) if (i != j && (!causal || j < i)) cands.Add((a[i, j], i, j));
            int drop = (int)Math.Floor(discardRatio * cands.Count);
            foreach (var c in cands.OrderBy(c => c.V).ThenBy(c => c.I).ThenBy(c => c.J).Take(drop)) a[c.I, c.J] = 0;
        }
        for (int i = 0; i < n; i++)
        {
            double s = 0;
            for (int j = 0; j < n; j++) { a[i, j] = 0.5 * a[i, j] + (i == j ? 0.5 : 0); s += a[i, j]; }
            for (int j = 0; j < n; j++) a[i, j] /= s;
        }
        return a;
    }

    /// <summary>Fuses heads [heads, q, k] → [q, k] by mean, max or min.</summary>
    public static AttentionMatrix Fuse(float[,,] attention, HeadFusion headFusion)
    {
        ArgumentNullException.ThrowIfNull(attention);
        int h = attention.GetLength(0), q = attention.GetLength(1), k = attention.GetLength(2);
        if (h == 0) throw new ArgumentException("attention has no heads", nameof(attention));
        var r = new float[q, k];
        for (int i = 0; i < q; i++)
            for (int j = 0; j < k; j++)
            {
                double acc = headFusion switch { HeadFusion.Max => double.NegativeInfinity, HeadFusion.Min => double.PositiveInfinity, _ => 0 };
                for (int x = 0; x < h; x++)
                {
                    double v = attention[x, i, j];
                    acc = headFusion switch { HeadFusion.Max => Math.Max(acc, v), HeadFusion.Min => Math.Min(acc, v), _ => acc + v };
                }
                r[i, j] = (float)(headFusion == HeadFusion.Mean ? acc / h : acc);
            }
        return new AttentionMatrix(r);
    }

    private static RolloutResult Compute(IReadOnlyList<AttentionMatrix> fused, double discardRatio, int startLayer, int? endLayer, HeadFusion? fusion)
    {
        var (s, e, n) = CheckLayers(fused, startLayer, endLayer);
        CheckRatio(discardRatio);
        var result = new double[n, n];
        for (int i = 0; i < n; i++) result[i, i] = 1;
        for (int l = s; l <= e; l++)
        {
            var a = Augment(fused[l], discardRatio);
            var next = new double[n, n];
            for (int i = 0; i < n; i++)
                for (int m = 0; m < n; m++)
                {
                    double v = a[i, m];
                    if (v == 0) continue;
                    for (int j = 0; j < n; j++) next[i, j] += v * result[m, j];
                }
            result = next;
        }
        var f = new float[n, n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) f[i, j] = (float)result[i, j];
        return new RolloutResult(RolloutMethod.AttentionRollout, f, Params(fusion, discardRatio, s, e));
    }

    internal static Dictionary<string, string> Params(HeadFusion? fusion, double discardRatio, int s, int e) => new()
    {
        ["head_fusion"] = fusion?.ToString().ToLowerInvariant() ?? "pre-fused",
        ["discard_ratio"] = discardRatio.ToString("R", CultureInfo.InvariantCulture),
        ["start_layer"] = s.ToString(CultureInfo.InvariantCulture),
        ["end_layer"] = e.ToString(CultureInfo.InvariantCulture),
    };

    internal static void CheckRatio(double discardRatio)
    {
        if (!(discardRatio >= 0 && discardRatio < 1))
            throw new ArgumentException($"discardRatio must be in [0, 1), got {discardRatio}", nameof(discardRatio));
    }

    internal static (int Start, int End, int N) CheckLayers(IReadOnlyList<AttentionMatrix> fused, int startLayer, int? endLayer)
    {
        ArgumentNullException.ThrowIfNull(fused);
        if (fused.Count == 0) throw new ArgumentException("no attention layers were given", nameof(fused));
        if (fused.Any(m => m is null)) throw new ArgumentException("an attention layer is null", nameof(fused));
        int n = fused[0].Queries;
        if (n == 0) throw new ArgumentException("the attention matrices are empty (no tokens)", nameof(fused));
        for (int l = 0; l < fused.Count; l++)
            if (fused[l].Queries != n || fused[l].Keys != n)
                throw new ArgumentException($"layer {l} attention is [{fused[l].Queries}, {fused[l].Keys}], expected [{n}, {n}]", nameof(fused));
        int e = endLayer ?? fused.Count - 1;
        if (startLayer < 0 || startLayer >= fused.Count) throw new ArgumentException($"startLayer {startLayer} is out of range for {fused.Count} layers", nameof(startLayer));
        if (e < startLayer || e >= fused.Count) throw new ArgumentException($"endLayer {e} is out of range: need {startLayer} ≤ endLayer < {fused.Count}", nameof(endLayer));
        return (startLayer, e, n);
    }

    internal static float[,,] ToArray3(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        using var scope = NewDisposeScope();
        var x = t.dim() == 4 && t.shape[0] == 1 ? t[0] : t;
        if (x.dim() != 3) throw new ArgumentException($"attention must be [heads, q, k] or [1, heads, q, k], got [{string.Join(", ", t.shape)}]", nameof(t));
        int h = (int)x.shape[0], q = (int)x.shape[1], k = (int)x.shape[2];
        var data = x.detach().to(float32).cpu().contiguous().data<float>().ToArray();
        var r = new float[h, q, k];
        Buffer.BlockCopy(data, 0, r, 0, data.Length * sizeof(float));
        return r;
    }

    internal static float[][,,] TraceLayers(ModelTrace trace, int batchIndex)
    {
        if (trace.Config.CompressedAttention is not null)
            throw new ArgumentException("a DeepSeek-V4 trace's attn.pattern has the compressed entries on its key axis; map them back to tokens with the model: " +
                "TokenAttention.FromTrace(model, trace) (then Compute on TokenAttention.Patterns), or Compute(model, inputIds)", nameof(trace));
        var layers = new List<float[,,]>();
        for (int l = 0; l < trace.Config.NumHiddenLayers; l++)
        {
            var p = trace.AttentionPattern(l);
            if (batchIndex < 0 || batchIndex >= p.shape[0]) throw new ArgumentException($"batchIndex {batchIndex} is out of range for batch {p.shape[0]}", nameof(batchIndex));
            using var row = p[batchIndex];
            layers.Add(ToArray3(row));
        }
        return layers.ToArray();
    }

    /// <summary>Ids must be one non-empty sequence, [seq] or [1, seq]; throws <see cref="ArgumentException"/> naming the shape otherwise.</summary>
    internal static void CheckOneSequence(Tensor inputIds)
    {
        if (inputIds.dim() == 2 && inputIds.shape[0] != 1)
            throw new ArgumentException($"give one sequence: ids [seq] or [1, seq], got [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        if (inputIds.numel() == 0) throw new ArgumentException("the token sequence is empty; give at least one token id", nameof(inputIds));
    }

    internal static (float[][,,] Layers, long[] Ids) RunLayers(DeepSeekModel model, Tensor inputIds)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputIds);
        TorchRuntime.EnsureLoaded();
        CheckOneSequence(inputIds);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = inputIds.dim() == 1 ? inputIds.unsqueeze(0) : inputIds;
        if (model.Config.CompressedAttention is not null)
            return (TokenAttention.Patterns(TokenAttention.Compute(model, ids)).ToArray(), ids.to(int64).data<long>().ToArray());
        using var trace = model.RunWithCache(ids, new TraceOptions { AttentionPatterns = true, Routing = false, HiddenStates = false, Logits = false });
        return (TraceLayers(trace, 0), ids.to(int64).cpu().data<long>().ToArray());
    }
}
