using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Fidelity;

/// <summary>
/// DeepSeek-V3.2 (lightning indexer, DeepSeek Sparse Attention) against the official V3.2-Exp inference code
/// (tests/fixtures/golden/v32, README there): the same weights loaded from the official and the Hugging Face layout;
/// logits, hidden states, attention, index scores within the README's suggested tolerances, the selected keys and the
/// experts exactly; FP8 simulation on (official) and off.
/// </summary>
public class V32FidelityTests
{
    private static string V32Dir => V32KernelTests.V32Dir;

    /// <summary>A checkpoint directory in the given layout built from the fixture files (config + weights).</summary>
    internal sealed class FixtureCheckpoint : IDisposable
    {
        public string Directory { get; }
        public FixtureCheckpoint(CheckpointLayout layout)
        {
            Directory = Path.Combine(Path.GetTempPath(), $"v32-{layout}-{Guid.NewGuid():N}");
            System.IO.Directory.CreateDirectory(Directory);
            if (layout == CheckpointLayout.HuggingFace)
            {
                File.Copy(Path.Combine(V32Dir, "public.hf_config.json"), Path.Combine(Directory, "config.json"));
                File.Copy(Path.Combine(V32Dir, "public.weights_hf.safetensors"), Path.Combine(Directory, "model.safetensors"));
            }
            else
            {
                File.Copy(Path.Combine(V32Dir, "public.model_args.json"), Path.Combine(Directory, "config_public_v3.2.json"));
                File.Copy(Path.Combine(V32Dir, "public.weights.safetensors"), Path.Combine(Directory, "model0-mp1.safetensors"));
            }
        }
        public void Dispose() { try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { } }
    }

    internal static Checkpoint Load(CheckpointLayout layout)
    {
        using var dir = new FixtureCheckpoint(layout);
        return Checkpoint.Load(dir.Directory);
    }

    private static double MaxAbs(Tensor a, Tensor b) => (a.to(float64) - b.to(float64)).abs().max().item<double>();

    /// <summary>Largest |a − b| over entries finite in b, relative to each row's max |b|; −∞ entries must agree exactly.</summary>
    private static double RowRelative(Tensor a, Tensor b)
    {
        var finite = b.isfinite();
        Assert.True(a.isfinite().eq(finite).all().item<bool>(), "the −∞ (future-key) pattern differs");
        var b0 = b.masked_fill(finite.logical_not(), 0).to(float64);
        var a0 = a.masked_fill(finite.logical_not(), 0).to(float64);
        var rowMax = b0.abs().amax(new long[] { -1 }, keepdim: true);
        return ((a0 - b0).abs() / rowMax).max().item<double>();
    }

    /// <summary>The selected key positions per query, ascending, padded with −1 to k (the fixtures' <c>index_topk</c> format).</summary>
    internal static long[] TopkPositions(Tensor selected, int k)
    {
        long b = selected.shape[0], s = selected.shape[1], t = selected.shape[2];
        var flags = selected.to(ScalarType.Bool).contiguous().data<bool>().ToArray();
        var result = new List<long>();
        for (long i = 0; i < b * s; i++)
        {
            var row = Enumerable.Range(0, (int)t).Where(j => flags[i * t + j]).Select(j => (long)j).ToList();
            Assert.True(row.Count <= k, $"query row {i} selected {row.Count} keys, more than index_topk = {k}");
            result.AddRange(row);
            result.AddRange(Enumerable.Repeat(-1L, k - row.Count));
        }
        return result.ToArray();
    }

    /// <summary>
    /// <see cref="CheckpointLoadOptions.Quantisation"/> sets the loaded model's simulation: Off reproduces the official
    /// code run without FP8 rounding (the noquant dump) and differs from the default, which reproduces the FP8 dump.
    /// </summary>
    [Fact]
    public void LoadOptionsQuantisation_SelectsTheSimulation_TheDumpsWereMadeWith()
    {
        using var dir = new FixtureCheckpoint(CheckpointLayout.Official);
        using var plain = Checkpoint.Load(dir.Directory, new CheckpointLoadOptions { Quantisation = QuantisationSimulation.Off });
        using var official = Checkpoint.Load(dir.Directory);
        Assert.Equal(QuantisationSimulation.Off, plain.Model.Quantisation);
        Assert.Equal(QuantisationSimulation.Official, official.Model.Quantisation);
        using var scope = NewDisposeScope();
        var ids = V32KernelTests.Read("public.noquant.outputs.safetensors", "input_ids");
        using (no_grad())
        {
            var off = plain.Model.forward(ids);
            Assert.True(MaxAbs(off, V32KernelTests.Read("public.noquant.outputs.safetensors", "logits")) < 1e-5, "Quantisation = Off should reproduce the noquant dump");
            var on = official.Model.forward(V32KernelTests.Read("public.outputs.safetensors", "input_ids"));
            Assert.True(MaxAbs(on, V32KernelTests.Read("public.outputs.safetensors", "logits")) < 1e-5, "the default should reproduce the FP8 dump");
            Assert.True(MaxAbs(official.Model.forward(ids), off) > 1e-4, "FP8 simulation on and off should give different logits on the same input");
        }
    }

    public static TheoryData<CheckpointLayout, string, QuantisationSimulation> Runs => new()
    {
        { CheckpointLayout.Official, "public.outputs.safetensors", QuantisationSimulation.Official },            // scale_fmt ue8m0 (ModelArgs)
        { CheckpointLayout.Official, "public.noquant.outputs.safetensors", QuantisationSimulation.Off },
        { CheckpointLayout.HuggingFace, "public.scalefmt_none.outputs.safetensors", QuantisationSimulation.Official }, // config.json has no scale_fmt: None
        { CheckpointLayout.HuggingFace, "public.noquant.outputs.safetensors", QuantisationSimulation.Off },
    };

    [Theory]
    [MemberData(nameof(Runs))]
    public void TracedForward_MatchesOfficialV32Code(CheckpointLayout layout, string outputs, QuantisationSimulation quantisation)
    {
        using var ckpt = Load(layout);
        Assert.Equal(layout, ckpt.Layout);
        var model = ckpt.Model;
        Assert.Equal(QuantisationSimulation.Official, model.Quantisation); // the default, as the official code
        model.Quantisation = quantisation;
        using var scope = NewDisposeScope();
        Tensor G(string name) => V32KernelTests.Read(outputs, name);
        using var trace = model.RunWithCache(G("input_ids"), new TraceOptions { Names = NamesFilter.All });

        var logits = MaxAbs(trace.Logits, G("logits"));
        Assert.True(logits < 1e-5, $"logits differ by {logits}");
        int k = model.Config.Indexer!.Topk;
        for (int i = 0; i < 3; i++)
        {
            var h = MaxAbs(trace.Hidden(i), G($"hidden.{i}"));
            Assert.True(h < 1e-5, $"hidden.{i} differs by {h}");
            var a = MaxAbs(trace.AttentionPattern(i), G($"attn_probs.{i}"));
            Assert.True(a < 1e-6, $"attn_probs.{i} differs by {a}");
            var idx = RowRelative(trace[HookPoints.IndexerScores(i)], G($"index_scores.{i}"));
            Assert.True(idx < 1e-5, $"index_scores.{i} differ by {idx} of the row maximum");
            Assert.Equal(G($"index_topk.{i}").data<long>().ToArray(), TopkPositions(trace[HookPoints.IndexerTopk(i)], k));
        }
        foreach (var layer in new[] { 1, 2 })
        {
            Assert.Equal(G($"moe.{layer}.indices").data<long>().ToArray(), trace.ExpertIndices(layer).data<long>().ToArray());
            var w = MaxAbs(trace.ExpertWeights(layer), G($"moe.{layer}.weights"));
            Assert.True(w < 1e-6, $"moe.{layer}.weights differ by {w}");
            var s = MaxAbs(trace.RouterScores(layer), G($"moe.{layer}.scores"));
            Assert.True(s < 1e-6, $"moe.{layer}.scores differ by {s}");
        }
        // Attention really is sparse: every query row attends to exactly min(k, s + 1) keys.
        var nonzero = trace.AttentionPattern(0).gt(0).sum(-1);                      // [b, h, s]
        var seq = nonzero.shape[2];
        var expected = arange(seq).add(1).clamp_max(k).view(1, 1, seq).expand_as(nonzero);
        Assert.True(nonzero.eq(expected).all().item<bool>(), "attention rows do not attend to exactly min(index_topk, s+1) keys");
    }

    /// <summary>
    /// The 40-token official run (top-6 of up to 40 keys). One FP8 rounding sits on a midpoint within our float noise:
    /// block 2's KV latent at token 3, element 12, is c/s = −3.1250017 from our own block-1 output (5e-7 relative above
    /// the midpoint −3.125, so it rounds to −3.25) but −3.1249976 from the reference's block-1 output (→ −3). Blocks 0–1
    /// and every block fed the reference's input are held to the tight tolerances; the whole run's selections are exact
    /// and its layer-2 values within the README's bound for one flipped e4m3 rounding (index scores ~6e-4 of the row
    /// maximum, logits ~8e-5).
    /// </summary>
    [Fact]
    public void LongSequence_MatchesOfficialV32Code_UpToOneMidpointFp8Rounding()
    {
        using var ckpt = Load(CheckpointLayout.Official);
        var model = ckpt.Model;
        using var scope = NewDisposeScope();
        Tensor G(string name) => V32KernelTests.Read("public.long.outputs.safetensors", name);
        using var trace = model.RunWithCache(G("input_ids"), new TraceOptions { Names = NamesFilter.All });
        int k = model.Config.Indexer!.Topk;
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(G($"index_topk.{i}").data<long>().ToArray(), TopkPositions(trace[HookPoints.IndexerTopk(i)], k));
            // Each block on the reference's own input stream: tight.
            var input = i == 0 ? trace[HookPoints.ResidPre(0)] : G($"hidden.{i - 1}");
            var alone = MaxAbs(model.Layers[i].forward(input), G($"hidden.{i}"));
            Assert.True(alone < 1e-5, $"block {i} on the reference input differs by {alone}");
        }
        for (int i = 0; i < 2; i++)
        {
            Assert.True(MaxAbs(trace.Hidden(i), G($"hidden.{i}")) < 1e-5, $"hidden.{i}");
            Assert.True(RowRelative(trace[HookPoints.IndexerScores(i)], G($"index_scores.{i}")) < 1e-5, $"index_scores.{i}");
        }
        Assert.True(RowRelative(trace[HookPoints.IndexerScores(2)], G("index_scores.2")) < 1e-3, "index_scores.2");
        var logits = MaxAbs(trace.Logits, G("logits"));
        Assert.True(logits < 2e-4, $"logits differ by {logits}");
        foreach (var layer in new[] { 1, 2 })
            Assert.Equal(G($"moe.{layer}.indices").data<long>().ToArray(), trace.ExpertIndices(layer).data<long>().ToArray());
    }

    [Fact]
    public void PlainForward_EqualsTracedForward_AndQuantisationMatters()
    {
        using var ckpt = Load(CheckpointLayout.Official);
        using var scope = NewDisposeScope();
        var ids = V32KernelTests.Read("public.outputs.safetensors", "input_ids");
        var plain = ckpt.Model.forward(ids);
        using (var trace = ckpt.Model.RunWithCache(ids))
            Assert.Equal(0.0, MaxAbs(plain, trace.Logits));
        ckpt.Model.Quantisation = QuantisationSimulation.Off;
        var off = ckpt.Model.forward(ids);
        // The two fixtures differ (FP8 noise moves logits); the model must follow the option, not one of them by accident.
        var official = V32KernelTests.Read("public.outputs.safetensors", "logits");
        var noquant = V32KernelTests.Read("public.noquant.outputs.safetensors", "logits");
        Assert.True(MaxAbs(official, noquant) > 1e-3, "fixture sanity: quantisation changes the logits");
        Assert.True(MaxAbs(off, noquant) < 1e-5);
        Assert.True(MaxAbs(plain, official) < 1e-5);
    }

    [Fact]
    public void IndexerForward_StandAlone_EqualsTheTracedScores_AndTheOfficialIntermediates()
    {
        using var ckpt = Load(CheckpointLayout.Official);
        using var scope = NewDisposeScope();
        var ids = V32KernelTests.Read("public.outputs.safetensors", "input_ids");
        using var trace = ckpt.Model.RunWithCache(ids, new TraceOptions { Names = NamesFilter.ResidualStream | "blocks.0.attn.indexer.*" });
        var block = ckpt.Model.Layers[0];
        var x = block.AttentionNorm.forward(trace[HookPoints.ResidPre(0)]);
        var indexer = block.Attention.Indexer!;
        var scores = indexer.forward(x, block.Attention.QueryLatent(x)!);
        Assert.Equal(0.0, MaxAbs(scores.masked_fill(scores.isinf(), 0), trace[HookPoints.IndexerScores(0)].masked_fill(scores.isinf(), 0)));
        // Layer 0, sequence 0 of the official run, before the causal mask.
        var premask = V32KernelTests.Read("public.indexer_debug.safetensors", "layer0.index_scores_premask");
        var visible = ones(16, 16, dtype: ScalarType.Bool).tril().unsqueeze(0);
        var ours = scores[0].unsqueeze(0).masked_fill(visible.logical_not(), 0);
        var theirs = premask.masked_fill(visible.logical_not(), 0);
        var rel = MaxAbs(ours, theirs) / theirs.abs().max().item<float>();
        Assert.True(rel < 1e-5, $"index scores differ by {rel} of the max");
        var e = Assert.Throws<ArgumentException>(() => indexer.forward(x, x));
        Assert.Contains("q_lora_rank", e.Message);
    }

    [Fact]
    public void Kernels_OnTheOfficialIntermediates_AreBitwise()
    {
        using var scope = NewDisposeScope();
        Tensor D(string name) => V32KernelTests.Read("public.indexer_debug.safetensors", $"layer0.{name}");
        var fmt = ScaleFormat.Ue8m0;
        var (kv, kvScale) = Fp8Simulation.ActQuant(D("kv_latent"), fmt);
        Assert.Equal(0L, (kv != D("kv_latent_fp8")).sum().item<long>());
        Assert.Equal(0L, (kvScale != D("kv_latent_scale")).sum().item<long>());
        var qh = Fp8Simulation.Hadamard(D("q_rope"));
        Assert.Equal(0L, (qh != D("q_hadamard")).sum().item<long>());
        var kh = Fp8Simulation.Hadamard(D("k_rope"));
        Assert.Equal(0L, (kh != D("k_hadamard")).sum().item<long>());
        var (q, qs) = Fp8Simulation.ActQuant(D("q_hadamard"), fmt);
        Assert.Equal(0L, (q != D("q_fp8")).sum().item<long>());
        Assert.Equal(0L, (qs != D("q_scale")).sum().item<long>());
        var (k, ks) = Fp8Simulation.ActQuant(D("k_hadamard"), fmt);
        Assert.Equal(0L, (k != D("k_fp8")).sum().item<long>());
        var index = Fp8Simulation.Fp8Index(q, D("head_weights"), k, ks.squeeze(-1));
        Assert.Equal(0L, (index != D("index_scores_premask")).sum().item<long>());
    }
}
