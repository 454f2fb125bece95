using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// SwiGLU feed-forward network (Shazeer 2020): w2(silu(w1·x) ⊙ w3·x). Used for dense layers, routed and shared experts.
/// With a SwiGLU limit L &gt; 0 (DeepSeek-V4's <c>swiglu_limit</c>, the official <c>Expert</c>): w2(silu(min(w1·x, L)) ⊙ clamp(w3·x, −L, L)).
/// </summary>
/// <remarks>
/// The gate and up projections w1 and w3 are two parameters (their checkpoint names and shapes), but at construction
/// they are placed in one contiguous [2·inter, dim] storage, w1's rows first. While they still share it, a forward that
/// needs no weight gradients runs them as one fused [dim → 2·inter] GEMM over that storage (no copy); once either
/// parameter is replaced by another tensor (a reload by name), or when weight gradients are recorded, it runs the two
/// GEMMs separately; <c>Module.to(dtype/device)</c> fuses the converted parameters again. Both paths compute the same function.
/// </remarks>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear w1, w2, w3;
    private readonly double _limit;

    internal Mlp(string name, long dim, long interDim, double swigluLimit = 0, ParameterFactory? parameters = null) : base(name)
    {
        _limit = swigluLimit;
        var p = parameters ?? ParameterFactory.Initialised;
        if (p.Initialises)
        {
            w1 = p.Linear(dim, interDim);
            w2 = p.Linear(interDim, dim);
            w3 = p.Linear(dim, interDim);
            RegisterComponents();
            FuseGateUp();
            return;
        }
        // For loading: w1 and w3 are made as the two halves of one uninitialised [2·inter, dim] storage, the layout
        // FuseGateUp would copy them into, so the loader fills the fused storage in place (no concatenated copy).
        using (var fused = p.Uninitialised(2 * interDim, dim))
        {
            w1 = ParameterFactory.Linear(fused.narrow(0, 0, interDim));
            w3 = ParameterFactory.Linear(fused.narrow(0, interDim, interDim));
        }
        w2 = p.Linear(interDim, dim);
        RegisterComponents();
        _fusedW1 = w1.weight!.Handle;
        _fusedW3 = w3.weight!.Handle;
    }

    /// <summary>Hidden width of this MLP.</summary>
    public long InterDim => w1.weight!.shape[0];
    /// <summary>The SwiGLU clamp L (0 = none).</summary>
    public double SwigluLimit => _limit;

    // Native handles of the w1/w3 parameters FuseGateUp created (not references: they must not keep replaced tensors alive).
    private IntPtr _fusedW1, _fusedW3;

    /// <summary>
    /// Puts w1 and w3 (values, dtype, device, requires_grad unchanged) into one contiguous [2·inter, dim] storage so the
    /// forward can run them as one GEMM; the separate tensors are released, so no second copy stays resident. Call after
    /// replacing either parameter (e.g. a dtype conversion) to get the fused path back; a no-op when already fused.
    /// </summary>
    internal void FuseGateUp()
    {
        if (FusedGateUp() is { } already) { already.Dispose(); return; }
        var a = w1.weight!;
        var b = w3.weight!;
        if (a.dtype != b.dtype || a.device_type != b.device_type || a.device_index != b.device_index || !a.shape.SequenceEqual(b.shape)) return;
        long inter = a.shape[0];
        bool g1 = a.requires_grad, g3 = b.requires_grad;
        using (no_grad())
        using (var fused = cat(new[] { a.detach(), b.detach() }, 0))
        {
            w1.weight = new Parameter(fused.narrow(0, 0, inter), g1);
            w3.weight = new Parameter(fused.narrow(0, inter, inter), g3);
        }
        _fusedW1 = w1.weight!.Handle;
        _fusedW3 = w3.weight!.Handle;
    }

    /// <summary>
    /// The [2·inter, dim] view over w1 and w3 while they are still the parameters <see cref="FuseGateUp"/> placed back to
    /// back in one storage (same parameter objects, w1 at offset 0, w3 at offset inter·dim and right after w1 in memory,
    /// contiguous, on the CPU), else null.
    /// </summary>
    internal Tensor? FusedGateUp()
    {
        var a = w1.weight;
        var b = w3.weight;
        if (a is null || b is null || _fusedW1 == IntPtr.Zero || a.Handle != _fusedW1 || b.Handle != _fusedW3) return null;
        if (a.dtype != b.dtype || a.device_type != b.device_type || a.device_index != b.device_index) return null;
        if (a.ndim != 2 || !a.shape.SequenceEqual(b.shape) || !a.is_contiguous() || !b.is_contiguous()) return null;
        if (a.storage_offset() != 0 || b.storage_offset() != a.NumberOfElements) return null;
        // Same storage: w3's first byte is exactly inter·dim elements after w1's. A parameter whose storage was swapped
        // (set_, as the streamed residency does) to a buffer of its own fails this or the bounds check below. The
        // addresses are read through the CPU byte view; on other devices the two GEMMs run separately.
        if (a.device_type != DeviceType.CPU) return null;
        long gap = (long)Unsafe.ByteOffset(ref MemoryMarshal.GetReference(a.bytes), ref MemoryMarshal.GetReference(b.bytes));
        if (gap != a.NumberOfElements * a.ElementSize) return null;
        try
        {
            // as_strided checks the bounds against the storage: a replaced w1 with a storage of its own cannot pass.
            return a.detach().as_strided(new[] { 2 * a.shape[0], a.shape[1] }, new[] { a.shape[1], 1L }, 0);
        }
        catch (Exception ex) when (ex is ExternalException or InvalidOperationException or ArgumentException)
        {
            _fusedW1 = _fusedW3 = IntPtr.Zero;
            return null;
        }
    }

    // Module.to(...) replaces every parameter with a converted copy; fuse the new w1/w3 again (still one resident copy).
    protected override nn.Module _to(ScalarType dtype, bool non_blocking)
    {
        var m = base._to(dtype, non_blocking);
        FuseGateUp();
        return m;
    }

    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking)
    {
        var m = base._to(device, dtype, non_blocking);
        FuseGateUp();
        return m;
    }

    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        var m = base._to(deviceType, deviceIndex, non_blocking);
        FuseGateUp();
        return m;
    }

    /// <summary>
    /// True when this process's CPU multiplies bfloat16 natively: x86 with AVX512_BF16 (CPUID leaf 7 subleaf 1, EAX bit 5)
    /// or AMX-BF16 (leaf 7, EDX bit 22). Without them libtorch's bf16 GEMM is emulated (oneDNN on AVX-512, a reference
    /// loop on AVX2: ~240× slower than float32 measured here, docs/benchmarks.md §7).
    /// </summary>
    internal static bool CpuHasNativeBf16 { get; } = DetectNativeBf16();

    private static bool DetectNativeBf16()
    {
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported) return false;
        var (maxLeaf, _, _, _) = System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0);
        if (maxLeaf < 7) return false;
        var (_, _, _, edx) = System.Runtime.Intrinsics.X86.X86Base.CpuId(7, 0);
        var (eax1, _, _, _) = System.Runtime.Intrinsics.X86.X86Base.CpuId(7, 1);
        return (eax1 & (1 << 5)) != 0 || (edx & (1 << 22)) != 0;
    }

    /// <summary>
    /// Whether the three GEMMs of a forward on <paramref name="x"/> run in float32: x and the weights are bfloat16 on a CPU
    /// without <see cref="CpuHasNativeBf16"/> (null: decide from the CPU; tests force either path).
    /// </summary>
    internal static bool GemmsInFloat32(Tensor x, Tensor weight, bool? force = null) =>
        x.dtype == ScalarType.BFloat16 && weight.dtype == ScalarType.BFloat16 && x.device_type == DeviceType.CPU
        && (force ?? !CpuHasNativeBf16);

    /// <summary>Test hook: null decides <see cref="GemmsInFloat32"/> from the CPU; true/false forces the float32 or the bf16 GEMMs.</summary>
    internal bool? Float32Gemms { get; set; }

    /// <summary>x·Wᵀ; in float32 and rounded once to x's dtype when <paramref name="up"/> (a bf16 GEMM accumulating in float32).</summary>
    internal static Tensor Linear(Tensor x, Tensor w, bool up)
    {
        if (!up) return nn.functional.linear(x, w);
        using var x32 = x.to(ScalarType.Float32);
        using var w32 = w.to(ScalarType.Float32);
        using var y32 = nn.functional.linear(x32, w32);
        return y32.to(x.dtype);
    }

    /// <summary>
    /// Rows of a weight per GEMM of <see cref="ForwardUnrecorded"/> (512 × 2048 floats: 4 MB). Process-wide; benchmarks
    /// set it to compare block sizes (docs/benchmarks.md §7d), nothing else should.
    /// </summary>
    internal static int BlockRows { get; set; } = 512;

    /// <summary>
    /// Whether a forward on <paramref name="x"/> records an autograd graph: grad mode on and x or a weight requiring grad.
    /// </summary>
    internal bool RecordsGraph(Tensor x) =>
        is_grad_enabled() && (x.requires_grad || w1.weight!.requires_grad || w2.weight!.requires_grad || w3.weight!.requires_grad);

    /// <summary>
    /// The function of <see cref="forward"/> for a forward that records no autograd graph (<see cref="RecordsGraph"/> false)
    /// on a thread with one intra-op thread (<c>MoE.Dispatch</c>'s expert threads): each GEMM x·Wᵀ runs in blocks of
    /// <see cref="BlockRows"/> rows of W, each into its columns of a preallocated result (addmm_ with β = 0), so MKL packs
    /// a block that stays in cache instead of the whole [2·inter, dim] matrix (at ~48 rows per expert, V2-Lite at 512
    /// tokens, docs/benchmarks.md §7d). bfloat16 weights on a CPU without native bf16 (<see cref="GemmsInFloat32"/>): each
    /// block is converted to float32 into <paramref name="scratch"/> (allocated here when null or too small; the caller
    /// disposes it and may reuse it for the next call) before its GEMM, so the weight is read once from memory in bf16 and
    /// no float32 copy of a whole matrix is made; the products are rounded to bf16 once per GEMM and SwiGLU runs in bf16, as
    /// in <see cref="forward"/>. Each output element is the same dot product as in <see cref="forward"/>, so the results
    /// agree up to the GEMM's grouping of the sum. Falls back to <see cref="forward"/> when a graph is recorded, w1/w3 are
    /// not fused, x is not 2-D or not on the CPU, or the thread has more than one intra-op thread (blocks are too small to
    /// split across threads).
    /// </summary>
    internal Tensor ForwardUnrecorded(Tensor x, ref Tensor? scratch)
    {
        if (x.ndim != 2 || x.device_type != DeviceType.CPU || RecordsGraph(x) || get_num_threads() > 1) return forward(x);
        using var scope = NewDisposeScope();
        if (FusedGateUp() is not { } fused) return forward(x).MoveToOuterDisposeScope();
        var w2w = w2.weight!.detach();
        long inter = w1.weight!.shape[0];
        bool widen = GemmsInFloat32(x, w2w, Float32Gemms);
        int block = BlockRows;
        if (widen)
        {
            long need = (long)block * Math.Max(fused.shape[1], w2w.shape[1]);
            if (scratch is null || scratch.NumberOfElements < need || scratch.dtype != ScalarType.Float32)
            {
                scratch?.Dispose();
                scratch = empty(new[] { need }, ScalarType.Float32).DetachFromDisposeScope();
            }
        }
        var g = BlockedLinear(widen ? x.to(ScalarType.Float32) : x, fused, block, widen ? scratch : null);
        if (widen) g = g.to(x.dtype);
        var gate = g.narrow(1, 0, inter);
        var up = g.narrow(1, inter, inter);
        if (_limit > 0)
        {
            // Scalars held and disposed here (not implicit conversions the GC frees): MoE runs experts on several threads.
            using Scalar hi = _limit, lo = -_limit;
            gate = gate.clamp_max(hi);
            up = up.clamp(lo, hi);
        }
        var h = nn.functional.silu(gate).mul_(up);
        var y = BlockedLinear(widen ? h.to(ScalarType.Float32) : h, w2w, block, widen ? scratch : null);
        return (widen ? y.to(x.dtype) : y).MoveToOuterDisposeScope();
    }

    /// <summary>x·wᵀ [n, rows] in blocks of <paramref name="step"/> rows of w, each converted to float32 into scratch when given.</summary>
    private static Tensor BlockedLinear(Tensor x, Tensor w, long step, Tensor? scratch)
    {
        long rows = w.shape[0], k = w.shape[1];
        var output = empty(new[] { x.shape[0], rows }, x.dtype);
        for (long r = 0; r < rows; r += step)
        {
            using var scope = NewDisposeScope();
            long n = Math.Min(step, rows - r);
            var block = w.narrow(0, r, n);
            if (scratch is not null)
            {
                var converted = scratch.narrow(0, 0, n * k).view(n, k);
                converted.copy_(block);
                block = converted;
            }
            output.narrow(1, r, n).addmm_(x, block.t(), 0, 1);
        }
        return output;
    }

    /// <summary>
    /// w2(silu(w1·x) ⊙ w3·x). bfloat16 weights on a CPU without native bf16 (<see cref="CpuHasNativeBf16"/>): each GEMM
    /// converts its weight and input to float32 for the call only (the bf16 parameters stay the one resident copy; the
    /// float32 copy of one matrix lives for one GEMM), multiplies in float32 and rounds the product to bf16 — what a bf16
    /// GEMM with float32 accumulation returns, at float32 GEMM speed; the elementwise SwiGLU stays in bf16. bf16 is then a
    /// storage and memory choice, not a slower compute path.
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor gate, up;
        bool weightGrads = is_grad_enabled() && (w1.weight!.requires_grad || w3.weight!.requires_grad);
        bool f32 = GemmsInFloat32(x, w2.weight!, Float32Gemms);
        if (!weightGrads && FusedGateUp() is { } fused)
        {
            long inter = w1.weight!.shape[0];
            var gu = Linear(x, fused, f32);
            gate = gu.narrow(-1, 0, inter);
            up = gu.narrow(-1, inter, inter);
        }
        else
        {
            gate = f32 ? Linear(x, w1.weight!, true) : w1.forward(x);
            up = f32 ? Linear(x, w3.weight!, true) : w3.forward(x);
        }
        if (_limit > 0)
        {
            // Scalars held and disposed here (not implicit conversions the GC frees): MoE runs experts on several threads.
            using Scalar hi = _limit, lo = -_limit;
            gate = gate.clamp_max(hi);
            up = up.clamp(lo, hi);
        }
        var h = nn.functional.silu(gate) * up;
        return (f32 ? Linear(h, w2.weight!, true) : w2.forward(h)).MoveToOuterDisposeScope();
    }
}
