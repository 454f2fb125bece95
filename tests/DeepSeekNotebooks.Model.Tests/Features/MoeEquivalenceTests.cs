using DeepSeekNotebooks.Model.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>
/// The MoE layer's optimised forward (sort-by-expert dispatch into a preallocated result, fused gate/up GEMM) against the
/// straightforward per-expert reference of DeepSeek-V3's official <c>MoE.forward</c>, written here with explicit matmuls
/// of the parameters (torch.where(indices == i) per expert, y[idx] += expert(x[idx]) · weights[idx, top]), in fp32 at
/// V2-Lite's expert count, top-k and shared experts (narrower widths so the test stays fast).
/// </summary>
public class MoeEquivalenceTests
{
    private static DeepSeekConfig V2LiteLike => (DeepSeekConfig.TinyFullFeatured with
    {
        HiddenSize = 256, IntermediateSize = 512, MoeIntermediateSize = 176, NRoutedExperts = 64, NSharedExperts = 2,
        NumExpertsPerTok = 6, NGroup = 1, TopkGroup = 1, ScoringFunc = ScoringFunc.Softmax, TopkMethod = TopkMethod.Greedy,
        NormTopkProb = false, RoutedScalingFactor = 1.0,
    }).Validate();

    private const int Tokens = 512;

    private static MoE NewMoe(DeepSeekConfig c, bool weightsRequireGrad, int? expertThreads = null, ScalarType? dtype = null)
    {
        manual_seed(7);
        var moe = new MoE("ffn", c, 1);
        using (no_grad())
            foreach (var (_, p) in moe.named_parameters())
            {
                if (p.dtype == float32 && p.dim() == 2) p.normal_(0, 0.05);
                p.requires_grad_(weightsRequireGrad && p.dim() == 2);
            }
        // A bf16 model: every parameter converted, as the benchmark and the loader do (the experts re-fuse w1/w3).
        if (dtype is { } dt)
        {
            moe.to(dt);
            foreach (var (_, p) in moe.named_parameters()) p.requires_grad_(weightsRequireGrad && p.dim() == 2);
        }
        moe.ExpertThreads = expertThreads;
        return moe;
    }

    private static Dictionary<string, Tensor> P(nn.Module m) => m.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    /// <summary>silu(x·W1ᵀ) ⊙ (x·W3ᵀ) · W2ᵀ from the parameters, by name, in x's dtype (the parameters converted to it).</summary>
    private static Tensor Expert(Dictionary<string, Tensor> p, string prefix, Tensor x)
    {
        Tensor W(string n) => p[prefix + n].to(x.dtype).t();
        return nn.functional.silu(x.matmul(W("w1.weight"))).mul(x.matmul(W("w3.weight"))).matmul(W("w2.weight"));
    }

    /// <summary>
    /// The official reference, expert by expert, in x's dtype; the routing is recomputed here from the gate weight (softmax,
    /// top-k), or, given <paramref name="indices"/>, those experts with their softmax scores.
    /// </summary>
    private static (Tensor Y, Tensor Indices) Reference(MoE moe, DeepSeekConfig c, Tensor x, Tensor? indices = null)
    {
        var p = P(moe);
        var scores = x.matmul(p["gate.weight"].to(x.dtype).t()).softmax(-1);
        Tensor weights;
        if (indices is null) (weights, indices) = scores.topk(c.NumExpertsPerTok, dim: -1);
        else weights = scores.gather(1, indices);
        var y = zeros_like(x);
        for (int e = 0; e < c.NRoutedExperts; e++)
        {
            var hits = nonzero(indices.eq(e));
            if (hits.shape[0] == 0) continue;
            var idx = hits.select(1, 0);
            var top = hits.select(1, 1);
            y = y.index_add(0, idx, Expert(p, $"experts.{e}.", x.index_select(0, idx)) * weights[idx, top].unsqueeze(1), 1);
        }
        return (y + Expert(p, "shared_experts.", x), indices);
    }

    private static double RelativeError(Tensor actual, Tensor expected) =>
        (actual.to(float64) - expected.to(float64)).abs().max().item<double>() / expected.to(float64).abs().max().item<double>();

    [Theory]
    [InlineData(1)]    // experts one after another on the calling thread
    [InlineData(3)]    // experts on 3 threads, one intra-op thread each
    [InlineData(null)] // the default: torch.get_num_threads() expert threads
    public void Forward_EqualsPerExpertReference_Fp32_WithIdenticalRouting(int? expertThreads)
    {
        var c = V2LiteLike;
        using var moe = NewMoe(c, weightsRequireGrad: false, expertThreads);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(new long[] { Tokens, c.HiddenSize }, generator: new Generator(3));
        var routing = moe.Gate.Route(x, null);
        var (want, wantIndices) = Reference(moe, c, x);
        Assert.True(routing.Indices.eq(wantIndices).all().item<bool>(), "the gate chose other experts than softmax + top-k of x·Wgᵀ");
        var counts = bincount(wantIndices.flatten(), minlength: c.NRoutedExperts);
        Assert.True(counts.gt(0).sum().item<long>() == c.NRoutedExperts, "the test must route to every expert");

        var y = moe.forward(x.view(2, Tokens / 2, c.HiddenSize)).view(Tokens, c.HiddenSize);
        var rel = RelativeError(y, want);
        Assert.True(rel <= 1e-6, $"MoE forward differs from the per-expert reference by {rel:E2} (relative to max |y|); allowed 1e-6");
        Assert.True(moe.Experts.All(e => e.FusedGateUp() is not null), "the experts should run the fused gate/up GEMM here");
    }

    [Theory]
    [InlineData(true, 1)]  // weights record gradients: separate w1/w3 GEMMs
    [InlineData(false, 1)] // weights frozen, as attribution runs: the fused GEMM
    [InlineData(true, 3)]  // the same with the experts on 3 threads (the graph is recorded on the worker threads)
    [InlineData(false, 3)]
    public void Backward_GradientsEqualPerExpertReference(bool weightsRequireGrad, int expertThreads)
    {
        var c = V2LiteLike;
        using var moe = NewMoe(c, weightsRequireGrad, expertThreads);
        using var scope = NewDisposeScope();
        var g = new Generator(5);
        var x0 = randn(new long[] { 128, c.HiddenSize }, generator: g);
        var r = randn(new long[] { 128, c.HiddenSize }, generator: g);

        var x = x0.clone().requires_grad_(true);
        (moe.forward(x) * r).sum().backward();
        var p = P(moe);
        var names = weightsRequireGrad ? new[] { "experts.0.w1.weight", "experts.0.w3.weight", "experts.0.w2.weight", "experts.63.w1.weight", "shared_experts.w3.weight" } : [];
        var got = names.ToDictionary(n => n, n => p[n].grad!.clone());
        foreach (var n in names) p[n].grad!.zero_();

        var xr = x0.clone().requires_grad_(true);
        (Reference(moe, c, xr).Y * r).sum().backward();
        var relX = RelativeError(x.grad!, xr.grad!);
        Assert.True(relX <= 1e-5, $"d/dx differs from the reference by {relX:E2}; allowed 1e-5");
        foreach (var n in names)
        {
            Assert.True(p[n].grad!.abs().max().item<float>() > 0, $"{n}: the reference gradient is zero; the test routes nothing there");
            var rel = RelativeError(got[n], p[n].grad!);
            Assert.True(rel <= 1e-5, $"d/d{n} differs from the reference by {rel:E2}; allowed 1e-5");
        }
    }

    [Fact]
    public void ParallelExperts_AreBitwiseReproducible_EqualTheSequentialLoop_AndRestoreTheThreadCount()
    {
        var c = V2LiteLike;
        using var moe = NewMoe(c, weightsRequireGrad: false);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(new long[] { Tokens, c.HiddenSize }, generator: new Generator(11));
        var routing = moe.Gate.Route(x, null);
        int threadsBefore = get_num_threads();

        moe.ExpertThreads = 1;
        var sequential = moe.Dispatch(x, routing);
        moe.ExpertThreads = 4;
        var a = moe.Dispatch(x, routing);
        Assert.Equal(threadsBefore, get_num_threads());
        var b = moe.Dispatch(x, routing);
        moe.ExpertThreads = 2;
        var d = moe.Dispatch(x, routing);

        // Which thread ran which expert changes between calls; the sum order does not, so the bits do not either.
        Assert.True(a.eq(b).all().item<bool>(), "two parallel dispatches of the same input differ: the result depends on thread scheduling");
        // Each expert's rows are single-threaded GEMMs in either parallel setting, so 2 and 4 threads agree bitwise too.
        Assert.True(a.eq(d).all().item<bool>(), "2 and 4 expert threads differ");
        var rel = RelativeError(a, sequential);
        Assert.True(rel <= 1e-6, $"parallel experts differ from the sequential loop by {rel:E2}; allowed 1e-6 (float reassociation)");
        Assert.True(a.abs().max().item<float>() > 0, "the dispatch returned zeros");
        Assert.Equal(threadsBefore, get_num_threads());
    }

    [Fact]
    public void ParallelExperts_AFailingExpert_FailsTheCall_AndRestoresTheThreadCount()
    {
        var c = V2LiteLike;
        using var moe = NewMoe(c, weightsRequireGrad: false, expertThreads: 3);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(new long[] { 64, c.HiddenSize }, generator: new Generator(13));
        var routing = moe.Gate.Route(x, null);
        long busiest = bincount(routing.Indices.flatten(), minlength: c.NRoutedExperts).argmax().item<long>();
        // A w2 of the wrong width (as a bad reload would leave it): that expert's GEMM throws on a worker thread.
        var w2 = (Linear)moe.Experts[(int)busiest].named_children().Single(m => m.name == "w2").module;
        w2.weight = new Parameter(zeros(c.HiddenSize, c.MoeIntermediateSize + 1), requires_grad: false);
        int threadsBefore = get_num_threads();
        var ex = Assert.ThrowsAny<Exception>(() => moe.Dispatch(x, routing));
        Assert.Contains("shape", ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(threadsBefore, get_num_threads());
    }

    /// <summary>bf16 model (experts bf16, gate float32) against the float64 reference computed from the same bf16 weights.</summary>
    [Theory]
    [InlineData(true, 1)]  // GEMMs in float32 (what a CPU without native bf16 gets by default), experts sequential
    [InlineData(true, 3)]  // ... on 3 expert threads
    [InlineData(false, 3)] // libtorch's bf16 GEMMs (slow on such CPUs: fewer tokens)
    public void Bf16_ForwardAndGradients_EqualTheReferenceWithinBf16Rounding(bool float32Gemms, int expertThreads)
    {
        var c = V2LiteLike;
        using var moe = NewMoe(c, weightsRequireGrad: false, expertThreads, bfloat16);
        foreach (var e in moe.Experts) e.Float32Gemms = float32Gemms;
        moe.SharedExperts!.Float32Gemms = float32Gemms;
        Assert.All(moe.Experts, e => Assert.NotNull(e.FusedGateUp()));
        using var scope = NewDisposeScope();
        int tokens = float32Gemms ? Tokens : 96;
        var g = new Generator(17);
        var x0 = randn(new long[] { tokens, c.HiddenSize }, generator: g).to(bfloat16);
        var r = randn(new long[] { tokens, c.HiddenSize }, generator: g);

        var x = x0.clone().requires_grad_(true);
        var y = moe.forward(x);
        Assert.Equal(bfloat16, y.dtype);
        (y.to(float32) * r).sum().backward();
        Assert.Equal(bfloat16, x.grad!.dtype);

        // Reference: the same bf16 values in float64, routed to the experts the model's gate chose (its bf16 logits may
        // break near-ties differently from float64), weighted by the float64 softmax scores of those experts.
        var x64 = x0.to(float64).requires_grad_(true);
        var (want, _) = Reference(moe, c, x64, moe.Gate.Route(x0, null).Indices);
        var rel = RelativeError(y, want);
        // bf16 keeps 8 significant bits: each rounding is ≤ 2^-9 relative; three GEMM outputs, SwiGLU and the sum add up
        // to a few of them. 2^-5 (3.1e-2) relative to max |y| allows them and fails any real error (a dropped expert or
        // a wrong weight is O(1)).
        Assert.True(rel <= 1.0 / 32, $"bf16 MoE forward differs from the float64 reference by {rel:E2}; allowed 2^-5");
        (want * r.to(float64)).sum().backward();
        var relX = RelativeError(x.grad!, x64.grad!);
        Assert.True(relX <= 1.0 / 32, $"bf16 d/dx differs from the float64 reference by {relX:E2}; allowed 2^-5");
    }

    [Fact]
    public void Bf16_Float32Gemms_RoundLikeABf16GemmAccumulatingInFloat32()
    {
        // One expert, no SwiGLU rounding in between to hide behind: the float32 path of each GEMM must return exactly
        // bf16(x·Wᵀ computed in float32) — libtorch's bf16 GEMM contract (float accumulation, one rounding) — within one
        // bf16 ulp of libtorch's own bf16 GEMM.
        manual_seed(19);
        using var mlp = new Mlp("mlp", 64, 48);
        mlp.to(bfloat16);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var p = P(mlp);
        var x = randn(40, 64).to(bfloat16);
        mlp.Float32Gemms = true;
        var fast = mlp.forward(x);
        mlp.Float32Gemms = false;
        var native = mlp.forward(x);
        var h = nn.functional.silu(x.to(float32).matmul(p["w1.weight"].to(float32).t()).to(bfloat16))
            * x.to(float32).matmul(p["w3.weight"].to(float32).t()).to(bfloat16);
        var want = h.to(float32).matmul(p["w2.weight"].to(float32).t()).to(bfloat16);
        // bf16 ulp at |v| is 2^(floor(log2|v|) - 7). The fused [w1; w3] GEMM may regroup float32 sums against the two
        // separate ones here, which can flip a rounding: one ulp of the largest output. A missing rounding step (SwiGLU in
        // float32) or a float32 result would still pass a loose tolerance, so the dtype is asserted too.
        Assert.Equal(bfloat16, fast.dtype);
        double ulp = Math.Pow(2, Math.Floor(Math.Log2(want.to(float32).abs().max().item<float>())) - 7);
        double dFast = (fast.to(float32) - want.to(float32)).abs().max().item<float>();
        Assert.True(dFast <= ulp, $"the float32-GEMM path differs from bf16(float32 product) at each GEMM by {dFast:E2} (bf16 ulp of max |y|: {ulp:E2})");
        double d = (native.to(float32) - fast.to(float32)).abs().max().item<float>();
        Assert.True(d <= 2 * ulp, $"float32-GEMM path and libtorch's bf16 GEMMs differ by {d:E2} (bf16 ulp of max |y|: {ulp:E2})");
    }

    /// <summary>
    /// Forwards that record no graph run each expert through Mlp.ForwardUnrecorded on expert threads (GEMMs in 512-row
    /// blocks of W; bf16: each block converted to float32); the same input with <see cref="MoE.UnrecordedExperts"/> false runs the recorded-graph
    /// path (Mlp.forward per expert). Both against the reference, each other, and themselves (bitwise per thread count).
    /// </summary>
    [Theory]
    [InlineData(false, 1)] // float32, experts on the calling thread: more than one intra-op thread, so Mlp.forward
    [InlineData(false, 3)] // float32 on 3 expert threads
    [InlineData(true, 1)]  // bf16, calling thread: more than one intra-op thread, so Mlp.forward's float32 GEMMs
    [InlineData(true, 3)]  // bf16 on 3 expert threads: blocks converted to float32
    public void UnrecordedExperts_EqualTheRecordedPath_AndTheReference_AndAreBitwiseReproducible(bool bf16, int expertThreads)
    {
        var c = V2LiteLike with { MoeIntermediateSize = 300 }; // gate/up 600 rows: a full 512-row block and a partial one
        using var moe = NewMoe(c, weightsRequireGrad: true, expertThreads, bf16 ? bfloat16 : null);
        Assert.All(moe.Experts, e => Assert.NotNull(e.FusedGateUp()));
        using var scope = NewDisposeScope();
        var x0 = randn(new long[] { Tokens, c.HiddenSize }, generator: new Generator(23));
        if (bf16) x0 = x0.to(bfloat16);
        Tensor fast, fastAgain, recorded;
        Routing routing;
        using (no_grad())
        {
            routing = moe.Gate.Route(x0, null);
            fast = moe.Dispatch(x0, routing);
            fastAgain = moe.Dispatch(x0, routing);
            moe.UnrecordedExperts = false;
            recorded = moe.Dispatch(x0, routing);
            moe.UnrecordedExperts = true;
        }
        // Grad mode on, but nothing requires grad (x plain, the weights frozen): no graph either, the same fast path.
        foreach (var p in moe.parameters()) p.requires_grad_(false);
        var gradModeOn = moe.Dispatch(x0, new Routing(routing.Weights.detach(), routing.Indices, routing.Scores.detach()));
        Assert.False(gradModeOn.requires_grad);

        Assert.Equal(x0.dtype, fast.dtype);
        Assert.True(fast.abs().max().to(float32).item<float>() > 0, "the dispatch returned zeros");
        Assert.True(fast.eq(fastAgain).all().item<bool>(), "two dispatches of the same input differ: the result depends on thread scheduling");
        Assert.True(fast.eq(gradModeOn).all().item<bool>(), "grad mode without anything requiring grad changed the result");
        var (want, _) = Reference(moe, c, x0.to(float64), routing.Indices);
        var routedOnly = want - Expert(P(moe), "shared_experts.", x0.to(float64));
        double rel = RelativeError(fast, routedOnly), relRecorded = RelativeError(fast, recorded);
        if (bf16)
        {
            // bf16 rounding per GEMM output, SwiGLU and the weighting (see Bf16_ForwardAndGradients_...): 2^-5 of max |y|.
            Assert.True(rel <= 1.0 / 32, $"bf16 unrecorded dispatch differs from the float64 reference by {rel:E2}; allowed 2^-5");
            // The two paths compute the same float32 dot products grouped differently; a flipped bf16 rounding of a GEMM
            // output moves y by a few ulps of its own magnitude, far below a wrong block or row (O(1) of max |y|).
            Assert.True(relRecorded <= 1.0 / 64, $"bf16 unrecorded and recorded paths differ by {relRecorded:E2}; allowed 2^-6");
        }
        else
        {
            Assert.True(rel <= 1e-6, $"unrecorded dispatch differs from the reference by {rel:E2}; allowed 1e-6");
            Assert.True(relRecorded <= 1e-6, $"unrecorded and recorded paths differ by {relRecorded:E2}; allowed 1e-6");
        }
    }

    [Fact]
    public void ForwardUnrecorded_BlockedBf16_RoundsLikeABf16GemmAccumulatingInFloat32_AndFallsBackWhenAGraphIsRecorded()
    {
        // 600 gate/up rows and 64 down rows: blocks of 512 and 88 rows, and one partial block.
        manual_seed(29);
        using var mlp = new Mlp("mlp", 64, 300);
        mlp.to(bfloat16);
        mlp.Float32Gemms = true;
        using var scope = NewDisposeScope();
        var p = P(mlp);
        var x = randn(40, 64).to(bfloat16);
        Tensor? blocked = null;
        int threadsBefore = get_num_threads();
        // On a thread with one intra-op thread, as MoE's expert threads run (the blocked path needs it).
        var worker = new Thread(() =>
        {
            get_num_threads();
            set_num_threads(1);
            using var _ = no_grad();
            Tensor? scratch = null;
            blocked = mlp.ForwardUnrecorded(x, ref scratch).contiguous().DetachFromDisposeScope();
            Assert.NotNull(scratch);
            Assert.True(scratch!.NumberOfElements >= Mlp.BlockRows * 300, "the scratch must hold a block of the widest weight rows");
            scratch.Dispose();
        });
        worker.Start();
        worker.Join();
        set_num_threads(threadsBefore);
        Assert.NotNull(blocked);
        using var _g = no_grad();
        var h = nn.functional.silu(x.to(float32).matmul(p["w1.weight"].to(float32).t()).to(bfloat16))
            * x.to(float32).matmul(p["w3.weight"].to(float32).t()).to(bfloat16);
        var want = h.to(float32).matmul(p["w2.weight"].to(float32).t()).to(bfloat16);
        Assert.Equal(bfloat16, blocked!.dtype);
        Assert.Equal(new long[] { 40, 64 }, blocked.shape);
        double ulp = Math.Pow(2, Math.Floor(Math.Log2(want.to(float32).abs().max().item<float>())) - 7);
        double d = (blocked.to(float32) - want.to(float32)).abs().max().item<float>();
        Assert.True(d <= ulp, $"the blocked path differs from bf16(float32 product) at each GEMM by {d:E2} (bf16 ulp of max |y|: {ulp:E2})");
        blocked.Dispose();

        // With a graph recorded (x requires grad) it is Mlp.forward: the same values and a gradient.
        using var _e = enable_grad();
        var xg = x.clone().requires_grad_(true);
        Tensor? none = null;
        var y = mlp.ForwardUnrecorded(xg, ref none);
        Assert.Null(none);
        Assert.True(y.requires_grad, "a recorded forward must keep its graph");
        y.to(float32).sum().backward();
        var xr = x.clone().requires_grad_(true);
        mlp.forward(xr).to(float32).sum().backward();
        Assert.True(xg.grad!.eq(xr.grad!).all().item<bool>(), "the recorded fallback must be Mlp.forward");
    }

    [Fact]
    public void CpuHasNativeBf16_MatchesProcCpuinfo()
    {
        if (!File.Exists("/proc/cpuinfo") || !System.Runtime.Intrinsics.X86.X86Base.IsSupported) return; // Linux x86 only: the independent source
        var flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal)).Split(' ', ':', '\t');
        bool want = flags.Contains("avx512_bf16") || flags.Contains("amx_bf16");
        Assert.Equal(want, Mlp.CpuHasNativeBf16);
        using var x = zeros(2, 4, dtype: bfloat16);
        using var w = zeros(3, 4, dtype: bfloat16);
        using var w32 = zeros(3, 4);
        Assert.Equal(!want, Mlp.GemmsInFloat32(x, w));
        Assert.False(Mlp.GemmsInFloat32(x.to(float32), w32), "float32 models must not take the bf16 path");
    }

    [Fact]
    public void FusedGateUp_IsOneStorage_AndAReplacedParameterIsUsed()
    {
        manual_seed(1);
        using var mlp = new Mlp("mlp", 32, 24);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var p = P(mlp);
        var fused = mlp.FusedGateUp();
        Assert.NotNull(fused);
        Assert.Equal(new long[] { 48, 32 }, fused!.shape);
        Assert.True(fused.narrow(0, 0, 24).eq(p["w1.weight"]).all().item<bool>() && fused.narrow(0, 24, 24).eq(p["w3.weight"]).all().item<bool>(),
            "the fused view must be w1's rows then w3's");
        // Writing into a parameter in place (as the loader does) is seen by the fused path.
        p["w3.weight"].normal_(0, 1);
        var x = randn(5, 32);
        Assert.True(RelativeError(mlp.forward(x), Expert(p, "", x)) <= 1e-6, "in-place write to w3 not seen");

        // Replacing w1 by a new parameter (a reload by name) must drop the fused path, not compute with the old w1.
        var w1 = (Linear)mlp.named_children().Single(m => m.name == "w1").module;
        w1.weight = new Parameter(randn(24, 32), requires_grad: false);
        p = P(mlp);
        Assert.Null(mlp.FusedGateUp());
        Assert.True(RelativeError(mlp.forward(x), Expert(p, "", x)) <= 1e-6, "the replaced w1 is not what the forward used");
        // Re-fusing keeps the values and names (it releases the separate tensors: read the parameters again).
        var before = mlp.forward(x);
        mlp.FuseGateUp();
        Assert.NotNull(mlp.FusedGateUp());
        p = P(mlp);
        Assert.Equal(new[] { "w1.weight", "w2.weight", "w3.weight" }, mlp.named_parameters().Select(q => q.name).OrderBy(n => n, StringComparer.Ordinal).ToArray());
        Assert.True(RelativeError(mlp.forward(x), Expert(p, "", x)) <= 1e-6, "re-fused forward differs from the reference");
        Assert.True(RelativeError(mlp.forward(x), before) <= 1e-6, "re-fusing changed the function");

        // Swapping w3's storage in place (set_, as the streamed residency brings weights in and out) keeps the parameter
        // object and its offset-0 geometry: the forward must use the new values, not the old fused rows.
        using (var fresh = randn(24, 32)) p["w3.weight"].set_(fresh);
        Assert.Null(mlp.FusedGateUp());
        Assert.True(RelativeError(mlp.forward(x), Expert(p, "", x)) <= 1e-6, "w3 swapped with set_ is not what the forward used");
        // ... also when the new storage puts w3 at offset inter·dim of a buffer of its own.
        mlp.FuseGateUp();
        p = P(mlp);
        using (var buffer = randn(48, 32)) p["w3.weight"].set_(buffer.narrow(0, 24, 24));
        Assert.Equal(24 * 32, p["w3.weight"].storage_offset());
        Assert.Null(mlp.FusedGateUp());
        Assert.True(RelativeError(mlp.forward(x), Expert(p, "", x)) <= 1e-6, "w3 at offset n of another buffer is not what the forward used");
        mlp.FuseGateUp();
        p = P(mlp);

        // A dtype conversion (Module.to) replaces every parameter; the converted w1/w3 are fused again.
        mlp.to(float64);
        p = P(mlp);
        Assert.Equal(float64, p["w1.weight"].dtype);
        Assert.NotNull(mlp.FusedGateUp());
        var x64 = x.to(float64);
        Assert.True((mlp.forward(x64) - Expert(p, "", x64)).abs().max().item<double>() <= 1e-12, "float64 forward differs from the reference");
    }
}
