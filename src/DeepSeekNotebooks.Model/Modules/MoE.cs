using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// DeepSeekMoE layer (Dai et al. 2024, arXiv:2401.06066; DeepSeek-V3 §2.1.2): <c>n_routed_experts</c> fine-grained routed
/// SwiGLU experts of width <c>moe_intermediate_size</c> chosen per token by the <see cref="Gate"/>, plus always-active shared
/// experts (one MLP of width <c>n_shared_experts · moe_intermediate_size</c>), as <c>MoE</c> in the official inference code.
/// </summary>
/// <remarks>
/// Dispatch sorts the (token, slot) pairs by expert and runs each expert once on the contiguous block of tokens routed
/// to it, adding its weighted output into a preallocated result with <c>index_add_</c>; no per-token loop, one host read
/// (the counts) per layer. Each expert's gate and up projections run as one fused GEMM when possible (see <see cref="Mlp"/>).
/// </remarks>
public sealed class MoE : nn.Module<Tensor, Tensor>
{
    private readonly DeepSeekConfig _c;
    private readonly int _layer;
    private readonly Gate gate;
    private readonly ModuleList<Mlp> experts;
    private readonly Mlp? shared_experts;

    internal MoE(string name, DeepSeekConfig c, int layer, ParameterFactory? parameters = null) : base(name)
    {
        _c = c;
        _layer = layer;
        gate = new Gate("gate", c, layer, parameters);
        experts = new ModuleList<Mlp>(Enumerable.Range(0, c.NRoutedExperts)
            .Select(i => new Mlp($"experts.{i}", c.HiddenSize, c.MoeIntermediateSize, c.SwigluLimit, parameters)).ToArray());
        // The shared expert is clamped too (current official V4 revision, HF 60d8d707).
        if (c.NSharedExperts > 0) shared_experts = new Mlp("shared_experts", c.HiddenSize, (long)c.NSharedExperts * c.MoeIntermediateSize, c.SwigluLimit, parameters);
        RegisterComponents();
    }

    /// <summary>The router.</summary>
    public Gate Gate => gate;
    /// <summary>The routed experts.</summary>
    public IReadOnlyList<Mlp> Experts => experts.ToList();
    /// <summary>The shared experts (null when <c>n_shared_experts</c> is 0).</summary>
    public Mlp? SharedExperts => shared_experts;

    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary>x [..., dim] → MoE output; <paramref name="inputIds"/> (the tokens of x, any shape with the same count) is needed by hash-routed layers.</summary>
    internal Tensor Forward(Tensor x, ForwardContext? ctx, Tensor? inputIds = null)
    {
        using var scope = NewDisposeScope();
        var shape = x.shape;
        var flat = x.reshape(-1, _c.HiddenSize);
        var routing = gate.Route(flat, ctx, inputIds);
        var y = Dispatch(flat, routing);
        if (shared_experts is not null)
        {
            var z = shared_experts.forward(flat);
            if (ctx is not null) z = ctx.Point(HookPoints.SharedExpertsOut(_layer), z);
            y = y + z;
        }
        return y.view(shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Sort-by-expert dispatch: each expert runs once over the contiguous block of (token, slot) pairs routed to it, and its
    /// weighted output is added into a preallocated [tokens, dim] result with <c>index_add_</c> (no concatenation).
    /// One host read per layer: the per-expert counts.
    /// </summary>
    /// <remarks>
    /// Per token the k contributions are summed in increasing expert order, starting from zero — the same order (and so the
    /// same floating-point result) as one <c>index_add</c> of all sorted rows, and as the official reference's loop over experts.
    /// </remarks>
    internal Tensor Dispatch(Tensor x, Routing routing)
    {
        using var scope = NewDisposeScope();
        long k = routing.Indices.shape[1];
        var flatExperts = routing.Indices.flatten();
        var (_, order) = flatExperts.sort(stable: true);
        var tokenOf = order.div(k, rounding_mode: RoundingMode.floor);
        long[] counts;
        using (var c = bincount(flatExperts, minlength: _c.NRoutedExperts).cpu()) counts = c.data<long>().ToArray();
        var xs = x.index_select(0, tokenOf);
        // The gate's weights are float32; like the official Gate (`weights.type_as(x)`) they are cast to the compute dtype
        // (a no-op in float32), so a bf16 model adds bf16 into its bf16 output.
        var ws = routing.Weights.flatten().index_select(0, order).to(x.dtype).unsqueeze(1);
        var y = zeros_like(x);
        long start = 0;
        for (int e = 0; e < counts.Length; e++)
        {
            long n = counts[e];
            if (n == 0) continue;
            using var inner = NewDisposeScope();
            y.index_add_(0, tokenOf.narrow(0, start, n), experts[e].forward(xs.narrow(0, start, n)) * ws.narrow(0, start, n), 1);
            start += n;
        }
        return y.MoveToOuterDisposeScope();
    }
}
