using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// The layer plumbing of Captum's layer methods on a block's output (<c>blocks.{L}.resid_post</c>): read the activation
/// of a forward from given embeddings, and differentiate the target w.r.t. that activation — through the hook point,
/// as Captum's forward hook on <c>model.layers[L]</c> does (<c>captum/_utils/gradient.py</c>,
/// <c>compute_layer_gradients_and_eval</c> and <c>_forward_layer_eval</c>).
/// </summary>
internal static class LayerActivations
{
    /// <summary>Checks <paramref name="layer"/> names a block of <paramref name="model"/> and returns its <c>resid_post</c> hook point.</summary>
    internal static string HookPoint(DeepSeekModel model, int layer)
    {
        int n = model.Config.NumHiddenLayers;
        if (layer < 0 || layer >= n)
            throw new ArgumentException($"layer {layer} does not exist: this model has {n} blocks, use a layer in 0..{n - 1} (blocks.{{L}}.resid_post)", nameof(layer));
        return HookPoints.ResidPost(layer);
    }

    /// <summary>
    /// The activation at <paramref name="point"/> of the forward from embeddings [n, seq, dim] (detached, in the caller's
    /// scope); hash-routed layers route by <paramref name="target"/>'s <see cref="ResolvedTarget.RoutingIds"/>.
    /// </summary>
    internal static Tensor Read(DeepSeekModel model, Tensor embeddings, string point, ResolvedTarget target)
    {
        Tensor? captured = null;
        using (var _ = no_grad())
        using (var scope = NewDisposeScope())
        {
            var hooks = new Dictionary<string, HookFunction>
            {
                [point] = (v, _) => { captured = v.detach().clone().DetachFromDisposeScope(); return null; },
            };
            model.ForwardFromEmbeddings(embeddings, hooks, AttributionCore.RoutingIds(embeddings, target));
        }
        if (captured is null) throw new InvalidOperationException($"the forward pass did not reach the hook point '{point}'");
        // The capture was detached from the forward's dispose scope so that it survives it; a copy joins the caller's scope.
        using (captured) return captured.clone();
    }

    /// <summary>
    /// Runs the forward from <paramref name="embeddings"/> [n, seq, dim] with the activation at <paramref name="point"/>
    /// replaced by <paramref name="replacement"/> [n, seq, dim] (null: kept, but made a leaf), and returns
    /// (∂F/∂activation [n, seq, dim], the activation used [n, seq, dim], F [n]), all detached, in the caller's scope.
    /// Rows are independent; everything before the hook point is computed but does not reach F when replaced.
    /// </summary>
    internal static (Tensor Gradient, Tensor Activation, Tensor F) Gradient(DeepSeekModel model, Tensor embeddings, string point, Tensor? replacement, ResolvedTarget target)
    {
        Tensor g, act, f;
        using (var scope = NewDisposeScope())
        {
            using var _ = enable_grad();
            Tensor? leaf = null;
            var hooks = new Dictionary<string, HookFunction>
            {
                // The leaf is made inside the forward's dispose scopes; detached from them, it outlives the pass (disposed below).
                [point] = (v, _) => leaf = (replacement ?? v).detach().requires_grad_(true).DetachFromDisposeScope(),
            };
            try
            {
                var y = target.Evaluate(model.ForwardFromEmbeddings(embeddings.detach(), hooks, AttributionCore.RoutingIds(embeddings, target)));
                if (leaf is null) throw new InvalidOperationException($"the forward pass did not reach the hook point '{point}'");
                g = torch.autograd.grad(new[] { y.sum() }, new[] { leaf })[0].detach().MoveToOuterDisposeScope();
                act = leaf.detach().clone().MoveToOuterDisposeScope();
                f = y.detach().MoveToOuterDisposeScope();
            }
            finally { leaf?.Dispose(); }
        }
        return (g, act, f);
    }

    /// <summary>[m, 1, …, 1] with as many dimensions as <paramref name="activation"/>: per-row path coefficients.</summary>
    internal static long[] BatchShape(long m, Tensor activation) => new[] { m }.Concat(Enumerable.Repeat(1L, (int)activation.dim() - 1)).ToArray();

    /// <summary>
    /// One sequence's layer attributions as [seq, features]: [seq, hidden] as is; hyper-connection streams
    /// [seq, hc_mult, hidden] (DeepSeek-V4 <c>resid_post</c>) flattened stream-major to [seq, hc_mult·hidden], so token
    /// sums add every stream's share.
    /// </summary>
    internal static Tensor PerToken(Tensor attributions) =>
        attributions.dim() == 2 ? attributions : attributions.reshape(attributions.shape[0], -1);
}
