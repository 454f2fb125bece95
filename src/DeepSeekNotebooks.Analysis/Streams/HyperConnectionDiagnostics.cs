using System.Text.Json;
using System.Text.Json.Serialization;
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Streams;

/// <summary>The two hyper-connection sites of a DeepSeek-V4 block.</summary>
public enum HyperConnectionSite
{
    /// <summary><c>hc_attn</c>: around the attention sub-layer.</summary>
    Attention,
    /// <summary><c>hc_ffn</c>: around the FFN (MoE or dense) sub-layer.</summary>
    Ffn,
}

/// <summary>One mHC site's statistics, means over every token of every prompt (definitions in docs/generations-diagnostics.md).</summary>
/// <param name="Layer">Block index.</param>
/// <param name="Site">Which sub-layer the site wraps.</param>
/// <param name="Depth">Sub-layer number in forward order, 1 … 2·layers (0 is the embedding).</param>
/// <param name="CombDistanceFromIdentity">‖C − I‖_F of the Sinkhorn-normalised comb matrix C.</param>
/// <param name="CombDistanceFromUniform">‖C − J/n‖_F (J the all-ones matrix).</param>
/// <param name="CombFraction">‖C − I‖_F / ‖I − J/n‖_F = ‖C − I‖_F / √(n−1): 0 = identity (streams kept apart), 1 = as far as uniform mixing.</param>
/// <param name="TransportFraction">The same fraction for T = C_1 C_2 ⋯ C_d, the streams' mixing from the embedding up to and including this site.</param>
/// <param name="MeanPre">Mean read weight of each stream (pre_j: x = Σ_j pre_j H_j).</param>
/// <param name="MeanPost">Mean write weight into each stream (post_k: H'_k = post_k f + Σ_j C_jk H_j).</param>
/// <param name="ReadsMost">Stream with the largest mean read weight.</param>
/// <param name="WritesMost">Stream with the largest mean write weight.</param>
/// <param name="MeanGain">Mean path gain a = r·post: how strongly this sub-layer's output reaches the final readout (1 in a plain residual network).</param>
/// <param name="MeanReadoutShare">Mean share ‖a f‖ / Σ‖·‖ of this sub-layer in the norm-decomposed final readout.</param>
public sealed record HyperConnectionSiteStats(int Layer, HyperConnectionSite Site, int Depth, double CombDistanceFromIdentity, double CombDistanceFromUniform,
    double CombFraction, double TransportFraction, double[] MeanPre, double[] MeanPost, int ReadsMost, int WritesMost, double MeanGain, double MeanReadoutShare);

/// <summary>
/// mHC diagnostics of a DeepSeek-V4 model on a set of prompts (<see cref="HyperConnectionDiagnostics.Measure(DeepSeekModel, IReadOnlyList{long[]})"/>).
/// Plain data; JSON round-trips.
/// </summary>
public sealed record HyperConnectionDiagnosticsResult
{
    /// <summary>Residual streams (hc_mult).</summary>
    public required int Streams { get; init; }
    /// <summary>The prompts, as token ids.</summary>
    public required long[][] Prompts { get; init; }
    /// <summary>Tokens averaged over.</summary>
    public required long Tokens { get; init; }
    /// <summary>Both sites of every block, in forward order.</summary>
    public required HyperConnectionSiteStats[] Sites { get; init; }
    /// <summary>Mean gain of the embedding's path to the readout (Σ_j r_j over the streams it starts in).</summary>
    public required double EmbeddingGain { get; init; }
    /// <summary>Mean share of the embedding in the norm-decomposed readout.</summary>
    public required double EmbeddingReadoutShare { get; init; }
    /// <summary>
    /// Mean readout-weighted depth D_eff = Σ_d d · w_d over the embedding (d = 0) and the sub-layers (d = 1 … 2·layers),
    /// w_d the readout shares: the sub-layer depth at which the final readout's content was written, on average.
    /// </summary>
    public required double EffectiveDepth { get; init; }
    /// <summary>2 · layers: the effective depth if the readout came only from the last sub-layer.</summary>
    public required int NominalDepth { get; init; }
    /// <summary>Largest |Σ_d contribution − hc_head.collapsed| relative to the readout's max |·|: the decomposition's check (float rounding only).</summary>
    public required double ReconstructionError { get; init; }

    /// <summary>One row per site: layer, site, depth, comb distances and fraction, transport fraction, reads/writes most, gain, readout share.</summary>
    public DataFrame ToDataFrame() => new(
        Frames.Int("layer", Sites, r => r.Layer), Frames.Str("site", Sites, r => r.Site.ToString()), Frames.Int("depth", Sites, r => r.Depth),
        Frames.Double("comb_dist_identity", Sites, r => r.CombDistanceFromIdentity), Frames.Double("comb_dist_uniform", Sites, r => r.CombDistanceFromUniform),
        Frames.Double("comb_fraction", Sites, r => r.CombFraction), Frames.Double("transport_fraction", Sites, r => r.TransportFraction),
        Frames.Int("reads_most", Sites, r => r.ReadsMost), Frames.Int("writes_most", Sites, r => r.WritesMost),
        Frames.Double("gain", Sites, r => r.MeanGain), Frames.Double("readout_share", Sites, r => r.MeanReadoutShare));

    /// <summary>Long format of the read and write weights: layer, site, stream, pre, post.</summary>
    public DataFrame StreamsFrame()
    {
        var rows = Sites.SelectMany(s => Enumerable.Range(0, Streams).Select(j => (s, j))).ToList();
        return new DataFrame(Frames.Int("layer", rows, r => r.s.Layer), Frames.Str("site", rows, r => r.s.Site.ToString()), Frames.Int("stream", rows, r => r.j),
            Frames.Double("pre", rows, r => r.s.MeanPre[r.j]), Frames.Double("post", rows, r => r.s.MeanPost[r.j]));
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>JSON (System.Text.Json; enums by name).</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(this, new JsonSerializerOptions(JsonOptions) { WriteIndented = indented });

    /// <summary>Reads <see cref="ToJson"/>'s output.</summary>
    public static HyperConnectionDiagnosticsResult FromJson(string json) =>
        JsonSerializer.Deserialize<HyperConnectionDiagnosticsResult>(json, JsonOptions) ?? throw new JsonException("the JSON holds no hyper-connection diagnostics");
}

/// <summary>
/// Diagnostics of DeepSeek-V4's manifold-constrained hyper-connections (mHC; Xie et al. 2025, "mHC: Manifold-Constrained
/// Hyper-Connections", building on Zhu et al. 2024, "Hyper-Connections"; official V4 <c>inference/model.py</c>
/// <c>hc_pre</c>/<c>hc_post</c>/<c>hc_head</c>): how far each comb matrix is from keeping the streams apart (identity) and
/// from mixing them completely (uniform), which streams each sub-layer reads and writes, and how deep the final readout's
/// content comes from. All from the <c>hc_*.pre/post/comb</c>, <c>attn.out</c>, <c>mlp.out</c>, <c>embed</c> and
/// <c>hc_head.*</c> hook points of one traced forward per prompt.
/// </summary>
/// <remarks>
/// The readout decomposition: given the observed mixing weights the stream recurrence is linear, H⁽ᵈ⁾_k = Σ_j C_d[j,k] H⁽ᵈ⁻¹⁾_j
/// + post_d[k] f_d, and the head reads h = Σ_k pre^head_k H⁽²ᴸ⁾_k. With r⁽²ᴸ⁾ = pre^head and r⁽ᵈ⁻¹⁾ = C_d r⁽ᵈ⁾, h = (Σ_j r⁽⁰⁾_j) e
/// + Σ_d a_d f_d with a_d = r⁽ᵈ⁾ · post_d exactly (the direct-path view of Elhage et al. 2021, "A Mathematical Framework for
/// Transformer Circuits", with mHC's mixing in the path). The shares w_d = ‖a_d f_d‖ / Σ‖·‖ weight the depths (in the spirit
/// of Veit et al. 2016, "Residual Networks Behave Like Ensembles of Relatively Shallow Networks").
/// </remarks>
public static class HyperConnectionDiagnostics
{
    /// <summary>Null when <paramref name="config"/> has hyper-connection streams; otherwise one line saying why there is nothing to diagnose.</summary>
    public static string? Unavailable(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.HyperConnections is null ? "the model has a single residual stream (no mHC hyper-connections, hc_mult): there are no stream-mixing diagnostics" : null;
    }

    /// <summary>The diagnostics of <paramref name="checkpoint"/>'s model on <paramref name="prompts"/>.</summary>
    public static HyperConnectionDiagnosticsResult Measure(Checkpoint checkpoint, IReadOnlyList<long[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return Measure(checkpoint.Model, prompts);
    }

    /// <summary>Runs each prompt (token ids) through <paramref name="model"/> (a model with hyper-connection streams) and measures every site.</summary>
    /// <exception cref="ArgumentException">No prompts, an empty or invalid prompt, or a model with one residual stream.</exception>
    public static HyperConnectionDiagnosticsResult Measure(DeepSeekModel model, IReadOnlyList<long[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        var c = model.Config;
        var hc = c.HyperConnections ?? throw new ArgumentException("the model has a single residual stream (no hyper-connections: hc_mult); mHC diagnostics need a DeepSeek-V4 model", nameof(model));
        CheckPrompts(model, prompts);
        int n = hc.Mult, L = c.NumHiddenLayers, sites = 2 * L;
        var names = new List<string> { HookPoints.Embed, HookPoints.HcHeadPre, HookPoints.HcHeadCollapsed };
        for (int l = 0; l < L; l++)
            names.AddRange(new[] { HookPoints.HcAttnPre(l), HookPoints.HcAttnPost(l), HookPoints.HcAttnComb(l), HookPoints.AttnOut(l),
                HookPoints.HcFfnPre(l), HookPoints.HcFfnPost(l), HookPoints.HcFfnComb(l), HookPoints.MlpOut(l) });
        var acc = new double[sites, 6];                 // dI, dU, fraction, transport fraction, gain, share
        var pre = new double[sites, n];
        var post = new double[sites, n];
        double embGain = 0, embShare = 0, depth = 0, maxErr = 0;
        long tokens = 0;
        foreach (var ids in prompts)
        {
            using var scope = NewDisposeScope();
            using var trace = model.RunWithCache(tensor(ids).unsqueeze(0), new TraceOptions { Names = NamesFilter.Exact(names) });
            var list = new List<(Tensor Post, Tensor Comb, Tensor F)>();
            for (int d = 0; d < sites; d++)
            {
                int l = d / 2;
                bool attn = d % 2 == 0;
                var pr = trace[attn ? HookPoints.HcAttnPre(l) : HookPoints.HcFfnPre(l)][0].to(float64);
                var po = trace[attn ? HookPoints.HcAttnPost(l) : HookPoints.HcFfnPost(l)][0].to(float64);
                var cb = trace[attn ? HookPoints.HcAttnComb(l) : HookPoints.HcFfnComb(l)][0].to(float64);
                var f = trace[attn ? HookPoints.AttnOut(l) : HookPoints.MlpOut(l)][0].to(float64);
                list.Add((po, cb, f));
                var (dI, dU, frac) = CombDistances(cb);
                acc[d, 0] += dI.sum().item<double>();
                acc[d, 1] += dU.sum().item<double>();
                acc[d, 2] += frac.sum().item<double>();
                var ps = pr.sum(dim: 0).data<double>().ToArray();
                var qs = po.sum(dim: 0).data<double>().ToArray();
                for (int j = 0; j < n; j++) { pre[d, j] += ps[j]; post[d, j] += qs[j]; }
            }
            var transport = TransportFractions(list.Select(x => x.Comb).ToList());
            for (int d = 0; d < sites; d++) acc[d, 3] += transport[d].sum().item<double>();
            var embed = trace[HookPoints.Embed][0].to(float64);
            var head = trace[HookPoints.HcHeadPre][0].to(float64);
            var dec = Readout(embed, list, head);
            var observed = trace[HookPoints.HcHeadCollapsed][0].to(float64);
            double scale = observed.abs().max().item<double>();
            maxErr = Math.Max(maxErr, (dec.Reconstruction - observed).abs().max().item<double>() / Math.Max(scale, 1e-30));
            embGain += dec.Gains[0].sum().item<double>();
            embShare += dec.Shares[0].sum().item<double>();
            depth += dec.EffectiveDepth.sum().item<double>();
            for (int d = 0; d < sites; d++)
            {
                acc[d, 4] += dec.Gains[d + 1].sum().item<double>();
                acc[d, 5] += dec.Shares[d + 1].sum().item<double>();
            }
            tokens += ids.Length;
        }
        var stats = Enumerable.Range(0, sites).Select(d =>
        {
            var mp = Enumerable.Range(0, n).Select(j => pre[d, j] / tokens).ToArray();
            var mq = Enumerable.Range(0, n).Select(j => post[d, j] / tokens).ToArray();
            return new HyperConnectionSiteStats(d / 2, d % 2 == 0 ? HyperConnectionSite.Attention : HyperConnectionSite.Ffn, d + 1,
                acc[d, 0] / tokens, acc[d, 1] / tokens, acc[d, 2] / tokens, acc[d, 3] / tokens, mp, mq,
                Array.IndexOf(mp, mp.Max()), Array.IndexOf(mq, mq.Max()), acc[d, 4] / tokens, acc[d, 5] / tokens);
        }).ToArray();
        return new HyperConnectionDiagnosticsResult
        {
            Streams = n, Prompts = prompts.Select(p => p.ToArray()).ToArray(), Tokens = tokens, Sites = stats,
            EmbeddingGain = embGain / tokens, EmbeddingReadoutShare = embShare / tokens, EffectiveDepth = depth / tokens,
            NominalDepth = sites, ReconstructionError = maxErr,
        };
    }

    /// <summary>
    /// Per matrix of <paramref name="comb"/> [..., n, n]: ‖C − I‖_F, ‖C − J/n‖_F and ‖C − I‖_F / √(n−1) (‖I − J/n‖_F = √(n−1);
    /// n = 1 gives fraction 0).
    /// </summary>
    internal static (Tensor FromIdentity, Tensor FromUniform, Tensor Fraction) CombDistances(Tensor comb)
    {
        long n = comb.shape[^1];
        var identity = eye(n, dtype: comb.dtype, device: comb.device);
        var dI = (comb - identity).square().sum(new long[] { -2, -1 }).sqrt();
        var dU = (comb - 1.0 / n).square().sum(new long[] { -2, -1 }).sqrt();
        var frac = n > 1 ? dI / Math.Sqrt(n - 1) : zeros_like(dI);
        return (dI, dU, frac);
    }

    /// <summary>For combs C_1 … C_D [s, n, n], the fraction (<see cref="CombDistances"/>) of T_d = C_1 ⋯ C_d per token, d = 1 … D.</summary>
    internal static List<Tensor> TransportFractions(IReadOnlyList<Tensor> combs)
    {
        var result = new List<Tensor>();
        Tensor? t = null;
        foreach (var cmb in combs)
        {
            t = t is null ? cmb : t.matmul(cmb);
            result.Add(CombDistances(t).Fraction);
        }
        return result;
    }

    /// <summary>The final readout decomposed by origin: gains a_d and shares w_d [s] for d = 0 (embedding) … D, the sum of all contributions [s, D], and D_eff [s].</summary>
    internal sealed record Decomposition(List<Tensor> Gains, List<Tensor> Shares, Tensor Reconstruction, Tensor EffectiveDepth);

    /// <summary>
    /// Decomposes h = Σ_k head_k H⁽ᴰ⁾_k for streams that start as n copies of <paramref name="embed"/> [s, dim] and pass the
    /// sites (post [s, n], comb [s, n, n], sub-layer output f [s, dim]) in order: r⁽ᴰ⁾ = head, a_d = r⁽ᵈ⁾·post_d,
    /// r⁽ᵈ⁻¹⁾ = C_d r⁽ᵈ⁾, embedding gain Σ_j r⁽⁰⁾_j.
    /// </summary>
    internal static Decomposition Readout(Tensor embed, IReadOnlyList<(Tensor Post, Tensor Comb, Tensor F)> sites, Tensor head)
    {
        var r = head;
        var gains = new Tensor[sites.Count + 1];
        var parts = new Tensor[sites.Count + 1];
        for (int d = sites.Count - 1; d >= 0; d--)
        {
            var (po, cb, f) = sites[d];
            gains[d + 1] = (r * po).sum(-1);
            parts[d + 1] = gains[d + 1].unsqueeze(-1) * f;
            r = cb.matmul(r.unsqueeze(-1)).squeeze(-1);
        }
        gains[0] = r.sum(-1);
        parts[0] = gains[0].unsqueeze(-1) * embed;
        var norms = parts.Select(p => p.square().sum(-1).sqrt()).ToArray();
        var total = stack(norms, 0).sum(dim: 0);
        var shares = norms.Select(x => x / total.clamp_min(1e-300)).ToList();
        var depth = zeros_like(total);
        for (int d = 0; d < shares.Count; d++) depth = depth + d * shares[d];
        var recon = stack(parts, 0).sum(dim: 0);
        return new Decomposition(gains.ToList(), shares, recon, depth);
    }

    internal static void CheckPrompts(DeepSeekModel model, IReadOnlyList<long[]> prompts)
    {
        if (prompts.Count == 0) throw new ArgumentException("give at least one prompt (token ids)", nameof(prompts));
        for (int p = 0; p < prompts.Count; p++)
        {
            if (prompts[p] is null || prompts[p].Length == 0) throw new ArgumentException($"prompt {p} is empty; give at least one token id", nameof(prompts));
            using var t = tensor(prompts[p]);
            try { model.CheckInputIds(t); }
            catch (ArgumentException e) { throw new ArgumentException($"prompt {p}: {e.Message}", nameof(prompts), e); }
        }
    }
}
