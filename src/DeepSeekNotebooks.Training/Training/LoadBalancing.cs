using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.Training;

/// <summary>DeepSeek-V3/V2 load-balancing pieces: balance losses and the auxiliary-loss-free bias update (MaxVio and the other
/// balance statistics live in <see cref="DeepSeekNotebooks.Analysis.Statistics.Balance"/>).</summary>
public static class LoadBalancing
{
    /// <summary>
    /// DeepSeek-V3 complementary sequence-wise balance loss (eq. 17–20), averaged over the sequences of the batch:
    /// L = α Σ_i f_i P_i with f_i = N_r/(K_r T) Σ_t 1[expert i ∈ top-k of token t], s'_{i,t} = s_{i,t} / Σ_j s_{j,t},
    /// P_i = (1/T) Σ_t s'_{i,t}. <paramref name="scores"/> are the gate's affinities [batch·seq, experts] (with gradient),
    /// <paramref name="indices"/> the selected experts [batch·seq, k]. With perfectly uniform routing the loss is α.
    /// </summary>
    public static Tensor SequenceWiseLoss(Tensor scores, Tensor indices, long batch, double alpha)
    {
        using var scope = NewDisposeScope();
        long experts = scores.shape[1], k = indices.shape[1], tokens = scores.shape[0];
        long seq = tokens / batch;
        var normalised = scores / scores.sum(-1, keepdim: true);                           // s'_{i,t}
        var p = normalised.view(batch, seq, experts).mean(new long[] { 1 });                 // P_i per sequence [b, E]
        var selected = zeros(tokens, experts, dtype: scores.dtype, device: scores.device)
            .scatter_(1, indices, ones(indices.shape, dtype: scores.dtype, device: scores.device));
        var f = selected.view(batch, seq, experts).sum(1) * ((double)experts / (k * seq));   // f_i per sequence [b, E]
        return ((f.detach() * p).sum(-1).mean() * alpha).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// DeepSeek-V2 expert-level balance loss over the whole batch: α Σ_i f_i P_i with f_i = N/(K T) Σ_t 1[i selected for t]
    /// and P_i = (1/T) Σ_t s_{i,t} (scores normalised per token so they sum to 1 also for sigmoid gates).
    /// </summary>
    public static Tensor ExpertLevelLoss(Tensor scores, Tensor indices, double alpha) =>
        SequenceWiseLoss(scores, indices, 1, alpha);

    /// <summary>Tokens routed to each expert: counts [experts] from indices [tokens, k].</summary>
    public static double[] ExpertLoad(Tensor indices, int experts)
    {
        using var counts = bincount(indices.flatten(), minlength: experts);
        return counts.to(ScalarType.Float64).data<double>().ToArray();
    }

    /// <summary>
    /// Auxiliary-loss-free update (DeepSeek-V3 §2.1.2): b_i ← b_i + γ·sign(mean load − load_i), so overloaded experts are
    /// selected less and underloaded ones more. Modifies <paramref name="bias"/> in place (no gradient).
    /// </summary>
    public static void UpdateBias(Tensor bias, IReadOnlyList<double> load, double gamma)
    {
        if (gamma == 0) return;
        double mean = load.Average();
        var delta = load.Select(l => (float)(gamma * Math.Sign(mean - l))).ToArray();
        using var _ = no_grad();
        using var d = tensor(delta, dtype: bias.dtype, device: bias.device);
        bias.add_(d);
    }
}

/// <summary>Linear warmup to the peak, then cosine decay to <c>minRatio</c> × peak at the last step.</summary>
public static class LearningRateSchedule
{
    /// <summary>Learning rate at 0-based <paramref name="step"/> of <paramref name="totalSteps"/>.</summary>
    public static double At(int step, int totalSteps, double peak, int warmup, double minRatio)
    {
        if (warmup > 0 && step < warmup) return peak * (step + 1) / warmup;
        int decaySteps = Math.Max(1, totalSteps - warmup - 1);
        double progress = Math.Clamp((double)(step - warmup) / decaySteps, 0, 1);
        double cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return peak * (minRatio + (1 - minRatio) * cosine);
    }
}
