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
/// On the CPU with more than one torch thread the active experts run side by side, one intra-op thread each, and their
/// outputs are added in expert order (bitwise reproducible for a thread count; see <see cref="Dispatch"/>). bf16 weights
/// on a CPU without native bf16 multiply in float32 and round to bf16 (see <see cref="Mlp.forward"/>): bf16 is then a
/// storage choice, at float32 GEMM speed. A forward that records no autograd graph runs each expert's GEMMs in blocks of
/// weight rows (bf16 blocks converted to float32 one at a time, <see cref="Mlp.ForwardUnrecorded"/>; docs/benchmarks.md §7d).
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
    /// Expert-level threads for <see cref="Dispatch"/>: null (the default) uses <c>torch.get_num_threads()</c> of the calling
    /// thread at each call; 1 runs the experts one after another on the calling thread (libtorch's intra-op threads split
    /// each GEMM); n &gt; 1 runs the active experts on n threads with one intra-op thread each. Tests and benchmarks set it.
    /// </summary>
    internal int? ExpertThreads { get; set; }

    /// <summary>
    /// Test and benchmark hook: true (the default) runs the experts of a forward that records no autograd graph through
    /// <see cref="Mlp.ForwardUnrecorded"/>; false runs them through <see cref="Mlp.forward"/> with one gather of all
    /// sorted rows, the path a recorded graph takes (and the kit's only path before docs/benchmarks.md §7d).
    /// </summary>
    internal bool UnrecordedExperts { get; set; } = true;

    /// <summary>
    /// Sort-by-expert dispatch: each expert runs once over the contiguous block of (token, slot) pairs routed to it, and its
    /// weighted output is added into a preallocated [tokens, dim] result with <c>index_add_</c> (no concatenation).
    /// One host read per layer: the per-expert counts.
    /// </summary>
    /// <remarks>
    /// <para>Per token the k contributions are summed in increasing expert order, starting from zero — the same order (and so
    /// the same floating-point result) as one <c>index_add</c> of all sorted rows, and as the official reference's loop over
    /// experts.</para>
    /// <para>Expert parallelism: with T = <see cref="ExpertThreads"/> (default <c>torch.get_num_threads()</c>) &gt; 1 and more
    /// than one active expert on the CPU, the experts run on T threads, each taking the next expert (largest blocks first)
    /// and running its GEMMs with one libtorch intra-op thread — at ~50 rows per expert (V2-Lite: 512 tokens, top-6 of 64)
    /// T small GEMMs side by side use the cores better than libtorch's split of each small GEMM (see docs/benchmarks.md
    /// §7b: 4.9× the sequential loop at V2-Lite widths). The outputs are added in increasing expert order — by the workers
    /// as soon as every lower expert's output is in (under a lock; the adds overlap the other experts' GEMMs), or on the
    /// calling thread after the join when an autograd graph is recorded — so the result does not depend on which thread
    /// ran which expert: bitwise reproducible for a given thread count. It equals the one-thread result up to
    /// the GEMM's own regrouping of sums under different intra-op thread counts. Gradient mode and inference mode of the
    /// caller hold on the worker threads, so the autograd graph is the one the sequential loop records. <c>set_num_threads</c>
    /// is process-global in libtorch (an atomic read by threads on their first op, plus per-thread OpenMP/MKL settings):
    /// the workers set 1 for themselves and the previous count is restored before this returns; a thread that makes its
    /// first libtorch call during that window starts with one intra-op thread.</para>
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
        // The gate's weights are float32; like the official Gate (`weights.type_as(x)`) they are cast to the compute dtype
        // (a no-op in float32), so a bf16 model adds bf16 into its bf16 output.
        var ws = routing.Weights.flatten().index_select(0, order).to(x.dtype).unsqueeze(1);
        var starts = new long[counts.Length];
        for (int e = 1; e < counts.Length; e++) starts[e] = starts[e - 1] + counts[e - 1];
        // With an autograd graph: one gather of all sorted rows (its backward is one index_add into x's gradient) and
        // Mlp.forward per expert. Without: each expert gathers its own rows (on its worker thread) and runs
        // Mlp.ForwardUnrecorded (GEMMs in blocks of weight rows; bf16 blocks converted to float32 one at a time).
        bool graph = !UnrecordedExperts || is_grad_enabled() && (x.requires_grad || ws.requires_grad || experts.Any(m => m.RecordsGraph(x)));
        var xs = graph ? x.index_select(0, tokenOf) : null;
        Tensor ExpertOutput(int e, ref Tensor? scratch)
        {
            var w = ws.narrow(0, starts[e], counts[e]);
            if (xs is not null) return experts[e].forward(xs.narrow(0, starts[e], counts[e])) * w;
            using var rows = x.index_select(0, tokenOf.narrow(0, starts[e], counts[e]));
            return experts[e].ForwardUnrecorded(rows, ref scratch).mul_(w);
        }
        var y = zeros_like(x);
        // index_add_'s alpha, held and disposed here: an implicit 1 → Scalar would be freed only by the GC, which can run
        // on another thread while the native add reads it (the workers add too).
        using Scalar one = 1;
        int active = counts.Count(n => n > 0);
        int threads = Math.Min(ExpertThreads ?? get_num_threads(), active);
        if (threads > 1 && x.device_type == DeviceType.CPU)
        {
            // Without a graph the workers add the outputs into y themselves, in expert order as they become ready (the
            // adds overlap the other experts' GEMMs); with one, the calling thread adds them after the join.
            Action<int, Tensor>? add = graph ? null : (e, o) => y.index_add_(0, tokenOf.narrow(0, starts[e], counts[e]), o, one);
            var outs = RunExpertsInParallel(ExpertOutput, counts, threads, add);
            try
            {
                for (int e = 0; e < counts.Length; e++)
                    if (outs[e] is { } o) y.index_add_(0, tokenOf.narrow(0, starts[e], counts[e]), o, one);
            }
            finally { foreach (var o in outs) o?.Dispose(); }
        }
        else
        {
            Tensor? scratch = null;
            try
            {
                for (int e = 0; e < counts.Length; e++)
                {
                    if (counts[e] == 0) continue;
                    using var inner = NewDisposeScope();
                    y.index_add_(0, tokenOf.narrow(0, starts[e], counts[e]), ExpertOutput(e, ref scratch), one);
                }
            }
            finally { scratch?.Dispose(); }
        }
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Expert e's weighted output rows; scratch is a float32 buffer the thread reuses across its experts (it disposes it).</summary>
    private delegate Tensor ExpertRows(int e, ref Tensor? scratch);

    /// <summary>
    /// <paramref name="expertOutput"/>(e) for every expert with rows, on <paramref name="threads"/> new threads with one
    /// intra-op thread each (the caller's grad and inference modes); entry e is null for experts without rows. With
    /// <paramref name="addInOrder"/> the workers pass each output to it in increasing expert order and dispose it (the
    /// returned entries are then null). The tensors returned belong to no dispose scope: the caller disposes them.
    /// </summary>
    private static Tensor?[] RunExpertsInParallel(ExpertRows expertOutput, long[] counts, int threads, Action<int, Tensor>? addInOrder)
    {
        // Largest blocks first, ties by index: a deterministic queue that keeps the threads' loads even.
        var queue = Enumerable.Range(0, counts.Length).Where(e => counts[e] > 0).OrderByDescending(e => counts[e]).ThenBy(e => e).ToArray();
        var outs = new Tensor?[counts.Length];
        bool grad = is_grad_enabled(), inference = is_inference_mode_enabled();
        int saved = get_num_threads();
        int next = -1;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var adding = new object();
        int nextToAdd = 0;
        // Adds every output that is ready, in increasing expert order, stopping at the first expert still running: the
        // order of the sums is fixed whichever thread adds. Added outputs are disposed and their entries cleared.
        void AddReady()
        {
            using var scope = NewDisposeScope(); // the index views addInOrder makes on this thread
            lock (adding)
                for (; nextToAdd < counts.Length; nextToAdd++)
                {
                    if (counts[nextToAdd] == 0) continue;
                    var o = Volatile.Read(ref outs[nextToAdd]);
                    if (o is null) break;
                    addInOrder!(nextToAdd, o);
                    o.Dispose();
                    outs[nextToAdd] = null;
                }
        }
        void Work()
        {
            Tensor? scratch = null;
            try
            {
                get_num_threads(); // libtorch's lazy per-thread init first, so it cannot undo the next line
                set_num_threads(1);
                using var gradMode = grad ? enable_grad() : no_grad();
                using var inferenceMode = inference ? inference_mode() : null;
                for (int i = Interlocked.Increment(ref next); i < queue.Length && failures.IsEmpty; i = Interlocked.Increment(ref next))
                {
                    int e = queue[i];
                    using (var inner = NewDisposeScope()) Volatile.Write(ref outs[e], expertOutput(e, ref scratch).DetachFromDisposeScope());
                    if (addInOrder is not null) AddReady();
                }
            }
            catch (Exception ex) { failures.Enqueue(ex); }
            finally { scratch?.Dispose(); }
        }
        var workers = Enumerable.Range(0, threads).Select(i => new Thread(Work) { IsBackground = true, Name = $"MoE experts {i}" }).ToArray();
        try
        {
            foreach (var w in workers) w.Start();
            foreach (var w in workers) w.Join();
        }
        finally { set_num_threads(saved); }
        if (!failures.IsEmpty)
        {
            foreach (var o in outs) o?.Dispose();
            var first = failures.First();
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
        }
        return outs;
    }
}
