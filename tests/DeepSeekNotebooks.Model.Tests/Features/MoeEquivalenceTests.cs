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

    private static MoE NewMoe(DeepSeekConfig c, bool weightsRequireGrad)
    {
        manual_seed(7);
        var moe = new MoE("ffn", c, 1);
        using (no_grad())
            foreach (var (_, p) in moe.named_parameters())
            {
                if (p.dtype == float32 && p.dim() == 2) p.normal_(0, 0.05);
                p.requires_grad_(weightsRequireGrad && p.dim() == 2);
            }
        return moe;
    }

    private static Dictionary<string, Tensor> P(nn.Module m) => m.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    /// <summary>silu(x·W1ᵀ) ⊙ (x·W3ᵀ) · W2ᵀ from the parameters, by name.</summary>
    private static Tensor Expert(Dictionary<string, Tensor> p, string prefix, Tensor x) =>
        nn.functional.silu(x.matmul(p[prefix + "w1.weight"].t())).mul(x.matmul(p[prefix + "w3.weight"].t())).matmul(p[prefix + "w2.weight"].t());

    /// <summary>The official reference, expert by expert; the routing is recomputed here from the gate weight (softmax, top-k).</summary>
    private static (Tensor Y, Tensor Indices) Reference(MoE moe, DeepSeekConfig c, Tensor x)
    {
        var p = P(moe);
        var scores = x.matmul(p["gate.weight"].t()).softmax(-1);
        var (weights, indices) = scores.topk(c.NumExpertsPerTok, dim: -1);
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
        (actual - expected).abs().max().item<float>() / (double)expected.abs().max().item<float>();

    [Fact]
    public void Forward_EqualsPerExpertReference_Fp32_WithIdenticalRouting()
    {
        var c = V2LiteLike;
        using var moe = NewMoe(c, weightsRequireGrad: false);
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
    [InlineData(true)]  // weights record gradients: separate w1/w3 GEMMs
    [InlineData(false)] // weights frozen, as attribution runs: the fused GEMM
    public void Backward_GradientsEqualPerExpertReference(bool weightsRequireGrad)
    {
        var c = V2LiteLike;
        using var moe = NewMoe(c, weightsRequireGrad);
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
