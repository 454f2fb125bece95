#pragma warning disable CS1573 // positional record parameters documented where not self-explanatory
using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Representations;

/// <summary>Per-head activation patching: the metric after patching each head's <c>attn.z</c> from the source (clean) run.</summary>
/// <param name="Foil">Second token of the logit difference (null: the target's logit alone).</param>
/// <param name="DestinationMetric">Metric of the unpatched destination (corrupted) run.</param>
/// <param name="SourceMetric">Metric of the source (clean) run.</param>
/// <param name="PatchedMetric">[layer, head]: metric of the destination with that head's output (every position) from the source.</param>
/// <param name="Position">Patched position (null = every position).</param>
public sealed record HeadPatchingResult(long Target, long? Foil, double DestinationMetric, double SourceMetric, double[,] PatchedMetric, int? Position)
{
    /// <summary>Number of blocks (rows).</summary>
    public int Layers => PatchedMetric.GetLength(0);
    /// <summary>Heads per block (columns).</summary>
    public int Heads => PatchedMetric.GetLength(1);

    /// <summary>
    /// [layer, head] (patched − corrupted) / (clean − corrupted), the normalised logit difference of TransformerLens's
    /// patching demos: 1 = that head alone restores the clean metric, 0 = no effect (NaN when clean = corrupted).
    /// </summary>
    public double[,] Restored
    {
        get
        {
            var r = new double[Layers, Heads];
            double span = SourceMetric - DestinationMetric;
            for (int l = 0; l < Layers; l++)
                for (int h = 0; h < Heads; h++)
                    r[l, h] = span == 0 ? double.NaN : (PatchedMetric[l, h] - DestinationMetric) / span;
            return r;
        }
    }
}

public static partial class ActivationPatching
{
    /// <summary>
    /// Per-head activation patching (TransformerLens <c>patching.get_act_patch_attn_head_out_all_pos</c>; Wang et al. 2022
    /// "Interpretability in the Wild"): for every block L and head h, runs <paramref name="destination"/> (corrupted) with
    /// head h's slice of <c>blocks.L.attn.z</c> replaced by its value in <paramref name="source"/> (clean) — at every
    /// position, or only at <paramref name="position"/> — and measures logit(target) − logit(foil) at the last position.
    /// </summary>
    /// <exception cref="ArgumentException">Different lengths, empty inputs, tokens or position out of range.</exception>
    public static HeadPatchingResult SweepHeads(DeepSeekModel model, long[] destination, long[] source, long target, long? foil = null, int? position = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        CheckPair(model, destination, source, target, foil, position);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var zs = CleanZ(model, source);
        var a = tensor(destination, dtype: ScalarType.Int64).unsqueeze(0);
        double corrupted = Metric(model.forward(a), target, foil);
        double clean = Metric(model.forward(tensor(source, dtype: ScalarType.Int64).unsqueeze(0)), target, foil);
        var patched = new double[c.NumHiddenLayers, c.NumAttentionHeads];
        for (int l = 0; l < c.NumHiddenLayers; l++)
            for (int h = 0; h < c.NumAttentionHeads; h++)
                using (var inner = NewDisposeScope())
                    patched[l, h] = Metric(model.RunWithHooks(a, HeadHooks(zs, new[] { (l, h) }, position)), target, foil);
        return new HeadPatchingResult(target, foil, corrupted, clean, patched, position);
    }

    /// <summary>
    /// The metric (logit(target) − logit(foil) at the last position) of <paramref name="destination"/> with the outputs of
    /// the given heads (<c>attn.z</c> slices, every position or one) taken from <paramref name="source"/> together.
    /// Patching every head of a block equals patching that block's <c>attn.out</c>.
    /// </summary>
    public static double PatchHeads(DeepSeekModel model, long[] destination, long[] source, IReadOnlyCollection<(int Layer, int Head)> heads, long target, long? foil = null, int? position = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(heads);
        var c = model.Config;
        CheckPair(model, destination, source, target, foil, position);
        foreach (var (l, h) in heads)
            if (l < 0 || l >= c.NumHiddenLayers || h < 0 || h >= c.NumAttentionHeads)
                throw new ArgumentException($"head (layer {l}, head {h}) does not exist: the model has blocks 0..{c.NumHiddenLayers - 1} with heads 0..{c.NumAttentionHeads - 1}", nameof(heads));
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var zs = CleanZ(model, source);
        return Metric(model.RunWithHooks(tensor(destination, dtype: ScalarType.Int64).unsqueeze(0), HeadHooks(zs, heads, position)), target, foil);
    }

    /// <summary>Head patching as a DataFrame (layer, head, patched_metric, restored).</summary>
    public static DataFrame ToDataFrame(HeadPatchingResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var cells = Enumerable.Range(0, result.Layers).SelectMany(l => Enumerable.Range(0, result.Heads).Select(h => (l, h))).ToList();
        var restored = result.Restored;
        return new(Frames.Int("layer", cells, t => t.l), Frames.Int("head", cells, t => t.h),
            Frames.Double("patched_metric", cells, t => result.PatchedMetric[t.l, t.h]), Frames.Double("restored", cells, t => restored[t.l, t.h]));
    }

    private static void CheckPair(DeepSeekModel model, long[] destination, long[] source, long target, long? foil, int? position)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(source);
        if (destination.Length == 0) throw new ArgumentException("the inputs are empty", nameof(destination));
        if (destination.Length != source.Length)
            throw new ArgumentException($"activation patching needs inputs of equal length: destination has {destination.Length} tokens, source {source.Length}", nameof(source));
        int vocab = model.Config.VocabSize;
        if (target < 0 || target >= vocab) throw new ArgumentException($"target {target} out of range [0, {vocab})", nameof(target));
        if (foil is < 0 || foil >= vocab) throw new ArgumentException($"foil {foil} out of range [0, {vocab})", nameof(foil));
        if (position is { } p && (p < 0 || p >= destination.Length))
            throw new ArgumentException($"position {p} out of range [0, {destination.Length})", nameof(position));
    }

    /// <summary>The source run's attn.z of every block (owned by the caller's dispose scope).</summary>
    private static Dictionary<int, Tensor> CleanZ(DeepSeekModel model, long[] source)
    {
        var names = Enumerable.Range(0, model.Config.NumHiddenLayers).Select(HookPoints.AttnZ).ToArray();
        using var trace = model.RunWithCache(tensor(source, dtype: ScalarType.Int64).unsqueeze(0), new TraceOptions { Names = names });
        return Enumerable.Range(0, model.Config.NumHiddenLayers).ToDictionary(l => l, l => trace[HookPoints.AttnZ(l)].clone());
    }

    private static Dictionary<string, HookFunction> HeadHooks(Dictionary<int, Tensor> clean, IEnumerable<(int Layer, int Head)> heads, int? position)
    {
        var hooks = new Dictionary<string, HookFunction>();
        foreach (var group in heads.GroupBy(t => t.Layer))
        {
            var hs = group.Select(t => t.Head).Distinct().ToArray();
            var src = clean[group.Key];
            hooks[HookPoints.AttnZ(group.Key)] = (z, _) =>
            {
                var patched = z.clone();                                          // [b, seq, heads, dv]
                foreach (int h in hs)
                {
                    var to = patched.narrow(2, h, 1);
                    var from = src.narrow(2, h, 1).to(z.dtype);
                    if (position is { } p) { to = to.narrow(1, p, 1); from = from.narrow(1, p, 1); }
                    to.copy_(from);
                }
                return patched;
            };
        }
        return hooks;
    }

    private static double Metric(Tensor logits, long target, long? foil)
    {
        var last = logits[0, -1].to(ScalarType.Float64);
        double m = last[target].item<double>();
        return foil is { } f ? m - last[f].item<double>() : m;
    }
}
