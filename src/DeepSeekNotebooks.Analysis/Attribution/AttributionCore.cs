using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// An attribution method at the embedding layer, as used by <see cref="NoiseTunnel"/>: embeddings [1, seq, dim] and a
/// resolved target → attributions [1, seq, dim] (a new tensor in the caller's dispose scope).
/// </summary>
public delegate Tensor EmbeddingAttributionMethod(DeepSeekModel model, Tensor embeddings, ResolvedTarget target);

/// <summary>Shared plumbing: input checks, target resolution, F and its gradient w.r.t. the embeddings.</summary>
internal static class AttributionCore
{
    internal sealed record Prepared(long[] Ids, Tensor Ids2D, Tensor Embeddings, ResolvedTarget Target, double FInput)
    {
        /// <summary>What the model predicts at the target position on the input (see <see cref="AttributionResult.Prediction"/>).</summary>
        public PredictionInfo? Prediction { get; init; }
    }

    /// <summary>Checks one sequence of ids, embeds it (detached) and resolves the target on the input's logits.</summary>
    internal static Prepared Prepare(DeepSeekModel model, Tensor inputIds, AttributionTarget? target)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputIds);
        TorchRuntime.EnsureLoaded();
        if (inputIds.dim() == 2 && inputIds.shape[0] != 1)
            throw new ArgumentException($"attribution explains one sequence at a time: give ids [seq] or [1, seq], got [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        if (inputIds.numel() == 0)
            throw new ArgumentException("the token sequence is empty; give at least one token id", nameof(inputIds));
        model.CheckInputIds(inputIds);
        var ids2 = (inputIds.dim() == 1 ? inputIds.unsqueeze(0) : inputIds).to(int64);
        target ??= AttributionTarget.Default;
        using var _ = no_grad();
        var e = model.Embed(ids2).detach();
        var routingIds = model.Config.NumHashLayers > 0 ? ids2 : null;
        var logits = model.ForwardFromEmbeddings(e, null, routingIds);
        var resolved = target.Resolve(e.shape[1], model.Config.VocabSize, logits);
        if (routingIds is not null) resolved.RoutingIds = ids2.cpu().data<long>().ToArray();
        double f = resolved.Evaluate(logits)[0].to(float64).item<double>(); // any compute dtype (bf16 too)
        return new Prepared(ids2.cpu().data<long>().ToArray(), ids2, e, resolved, f) { Prediction = PredictionAt(logits, resolved) };
    }

    /// <summary>softmax(logits[0, P]): its argmax and probability, and the target token's probability (null for custom targets).</summary>
    internal static PredictionInfo PredictionAt(Tensor logits, ResolvedTarget target)
    {
        using var scope = NewDisposeScope();
        var probs = logits[0, target.Position].to(float64).softmax(-1);
        long top = probs.argmax().item<long>();
        double? targetP = target.Kind == TargetKind.Custom ? null : probs[target.Token].item<double>();
        return new PredictionInfo(target.Position, top, probs[top].item<double>(), targetP);
    }

    /// <summary>F for each row of embeddings [n, seq, dim], without gradient; returns [n] (float64 values).</summary>
    internal static double[] Evaluate(DeepSeekModel model, Tensor embeddings, ResolvedTarget target)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var y = target.Evaluate(model.ForwardFromEmbeddings(embeddings, null, RoutingIds(embeddings, target)));
        return y.to(float64).cpu().data<double>().ToArray();
    }

    /// <summary>
    /// The token ids hash-routed layers (DeepSeek-V4) route a batch of embeddings [n, seq, dim] by: the explained
    /// sequence's ids for every row (routing by token id is constant along any path in embedding space); null for
    /// models without hash layers (the forward is then exactly as before).
    /// </summary>
    internal static Tensor? RoutingIds(Tensor embeddings, ResolvedTarget target) =>
        target.RoutingIds is { } ids ? tensor(ids, dtype: int64, device: embeddings.device).unsqueeze(0).expand(embeddings.shape[0], -1) : null;

    /// <summary>∂F/∂x for each row of x [n, seq, dim] (rows are independent), detached, in the caller's scope.</summary>
    internal static Tensor Gradient(DeepSeekModel model, Tensor x, ResolvedTarget target)
    {
        Tensor g;
        using (var scope = NewDisposeScope())
        {
            using var _ = enable_grad();
            var xi = x.detach().requires_grad_(true);
            var y = target.Evaluate(model.ForwardFromEmbeddings(xi, null, RoutingIds(xi, target)));
            g = torch.autograd.grad(new[] { y.sum() }, new[] { xi })[0].detach().MoveToOuterDisposeScope();
        }
        return g;
    }

    internal static AttributionResult Result(AttributionMethod method, Prepared p, Tensor attributions, IDictionary<string, string> parameters,
        double? delta = null, double? fBaseline = null, List<string>? warnings = null, float[]? tokenSumsOverride = null)
    {
        var a = attributions.detach().to(float32).contiguous();
        int seq = (int)a.shape[^2], dim = (int)a.shape[^1];
        var data = a.cpu().data<float>().ToArray();
        var (sums, norms) = AttributionResult.Summaries(data, seq, dim);
        return new AttributionResult
        {
            Method = method,
            TokenIds = p.Ids,
            Target = p.Target.ToInfo(),
            Shape = new[] { seq, dim },
            Attributions = data,
            TokenSums = tokenSumsOverride ?? sums,
            TokenNorms = norms,
            ConvergenceDelta = delta,
            FInput = p.FInput,
            FBaseline = fBaseline,
            Prediction = p.Prediction,
            Parameters = new Dictionary<string, string>(parameters),
            Warnings = warnings ?? new List<string>(),
        };
    }
}
