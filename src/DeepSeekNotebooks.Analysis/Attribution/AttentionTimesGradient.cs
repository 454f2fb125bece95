using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>
/// Attention × gradient: for each layer l and head h, the attention probabilities of the target's query row P times
/// their gradient, A[l,h,P,k]·∂F/∂A[l,h,P,k], a gradient-weighted attention score per key token k (in the spirit of
/// attention-gradient methods such as Chefer, Gur &amp; Wolf 2021 and Barkan et al. 2021, and of Captum's
/// <c>LayerGradientXActivation</c> applied at the attention probabilities).
/// </summary>
public static class AttentionTimesGradient
{
    /// <summary>
    /// Records every layer's attention probabilities on the autograd graph (<c>TraceOptions { KeepGraph = true }</c>),
    /// differentiates the target with <c>torch.autograd.grad</c>, and returns an <see cref="AttributionResult"/> whose
    /// attributions are [seq, layers·heads]: element (k, l·heads + h) = A[l,h,P,k]·∂F/∂A[l,h,P,k]. <c>TokenSums</c> are the
    /// sums over all layers and heads. Use <see cref="PerLayerHead"/> for the [layer, head, token] view.
    /// </summary>
    /// <exception cref="ArgumentException">Empty/invalid ids or target out of range.</exception>
    public static AttributionResult Attribute(DeepSeekModel model, Tensor inputIds, AttributionTarget? target = null)
    {
        using var scope = NewDisposeScope();
        var p = AttributionCore.Prepare(model, inputIds, target);
        int layers = model.Config.NumHiddenLayers, heads = model.Config.NumAttentionHeads, seq = p.Ids.Length, pos = p.Target.Position;
        var scores = new float[seq * layers * heads];
        using (var _ = enable_grad())
        {
            var hooks = new Dictionary<string, HookFunction> { [HookPoints.Embed] = (v, _) => v.detach().requires_grad_(true) };
            var options = new TraceOptions { AttentionPatterns = true, Routing = false, HiddenStates = false, Logits = true, KeepGraph = true, Hooks = hooks };
            using var trace = model.RunWithCache(p.Ids2D, options);
            var y = p.Target.Evaluate(trace.Logits).sum();
            var patterns = Enumerable.Range(0, layers).Select(trace.AttentionPattern).ToArray();
            var grads = torch.autograd.grad(new[] { y }, patterns, allow_unused: true);
            for (int l = 0; l < layers; l++)
            {
                if (grads[l] is null || grads[l].IsInvalid || grads[l].numel() == 0) continue;
                var row = (patterns[l][0, TensorIndex.Colon, pos] * grads[l][0, TensorIndex.Colon, pos]).detach().to(float32).cpu().contiguous(); // [heads, k]
                var data = row.data<float>().ToArray();
                for (int h = 0; h < heads; h++)
                    for (int k = 0; k < seq; k++)
                        scores[k * layers * heads + l * heads + h] = data[h * seq + k];
            }
        }
        var attr = tensor(scores).view(seq, layers * heads);
        var parameters = new Dictionary<string, string>
        {
            ["layers"] = layers.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["heads"] = heads.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["columns"] = "layer*heads+head",
            ["query_position"] = pos.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        return AttributionCore.Result(AttributionMethod.AttentionXGradient, p, attr, parameters);
    }

    /// <summary>The scores of an attention×gradient result as [layer, head, token].</summary>
    public static float[,,] PerLayerHead(AttributionResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Method != AttributionMethod.AttentionXGradient) throw new ArgumentException($"not an attention×gradient result: {result.Method.Name()} (give the result of AttentionTimesGradient.Attribute)", nameof(result));
        int layers = int.Parse(result.Parameters["layers"], System.Globalization.CultureInfo.InvariantCulture);
        int heads = int.Parse(result.Parameters["heads"], System.Globalization.CultureInfo.InvariantCulture);
        int seq = result.SequenceLength;
        var r = new float[layers, heads, seq];
        for (int k = 0; k < seq; k++)
            for (int l = 0; l < layers; l++)
                for (int h = 0; h < heads; h++)
                    r[l, h, k] = result.Attributions[k * layers * heads + l * heads + h];
        return r;
    }
}
