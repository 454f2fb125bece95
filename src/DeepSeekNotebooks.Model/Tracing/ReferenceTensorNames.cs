namespace DeepSeekNotebooks.Model.Tracing;

/// <summary>
/// The names under which the golden reference dumps of DeepSeek's official code store the internals this model's hook
/// points record (tests/fixtures/golden/v4/README.md: <c>layer.{i}.streams_out</c>, <c>layer.{i}.attn.probs</c>,
/// <c>layer.{i}.indexer.topk</c>, …), so a trace can be written — and compared — under the reference's names.
/// </summary>
public static class ReferenceTensorNames
{
    /// <summary>
    /// For a DeepSeek-V4 configuration (hyper-connections and V4 attention), every (hook point, reference name) pair the
    /// model offers, in forward order: per block <c>layer.{i}.hc_{attn,ffn}.{pre,post,comb,collapsed}</c>,
    /// <c>attn.kv</c>, <c>compressed_kv</c>, <c>indexer.{compressed_k,scores,topk}</c>, <c>attn.{topk_idxs,probs,
    /// sink_prob,probs_dense}</c>, <c>attn_out</c>, <c>moe.{scores,indices,weights}</c>, <c>ffn_out</c>,
    /// <c>streams_out</c>; then <c>final.collapsed</c>, <c>final.normed</c>, <c>logits</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The configuration is not a DeepSeek-V4 one.</exception>
    public static IReadOnlyList<(string HookPoint, string Reference)> ForV4(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.CompressedAttention is null || config.HyperConnections is null)
            throw new ArgumentException("the V4 reference names need a DeepSeek-V4 configuration (compress_ratios and hc_mult)", nameof(config));
        var names = new List<(string, string)>();
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            string L(string s) => $"layer.{i}.{s}";
            names.Add((HookPoints.HcAttnPre(i), L("hc_attn.pre")));
            names.Add((HookPoints.HcAttnPost(i), L("hc_attn.post")));
            names.Add((HookPoints.HcAttnComb(i), L("hc_attn.comb")));
            names.Add((HookPoints.HcAttnCollapsed(i), L("hc_attn.collapsed")));
            var kind = config.AttentionKindOf(i);
            names.Add((HookPoints.AttnKv(i), L("attn.kv")));
            if (kind != AttentionKind.SlidingWindow) names.Add((HookPoints.AttnCompressedKv(i), L("compressed_kv")));
            if (kind == AttentionKind.CompressedSparse)
            {
                names.Add((HookPoints.IndexerCompressedK(i), L("indexer.compressed_k")));
                names.Add((HookPoints.IndexerScores(i), L("indexer.scores")));
                names.Add((HookPoints.IndexerTopk(i), L("indexer.topk")));
            }
            names.Add((HookPoints.AttnTopkIdxs(i), L("attn.topk_idxs")));
            names.Add((HookPoints.AttnSlotProbs(i), L("attn.probs")));
            names.Add((HookPoints.AttnSinkShare(i), L("attn.sink_prob")));
            names.Add((HookPoints.AttnPattern(i), L("attn.probs_dense")));
            names.Add((HookPoints.AttnOut(i), L("attn_out")));
            names.Add((HookPoints.HcFfnPre(i), L("hc_ffn.pre")));
            names.Add((HookPoints.HcFfnPost(i), L("hc_ffn.post")));
            names.Add((HookPoints.HcFfnComb(i), L("hc_ffn.comb")));
            names.Add((HookPoints.HcFfnCollapsed(i), L("hc_ffn.collapsed")));
            if (config.IsMoeLayer(i))
            {
                names.Add((HookPoints.RouterScores(i), L("moe.scores")));
                names.Add((HookPoints.ExpertIndices(i), L("moe.indices")));
                names.Add((HookPoints.ExpertWeights(i), L("moe.weights")));
            }
            names.Add((HookPoints.MlpOut(i), L("ffn_out")));
            names.Add((HookPoints.ResidPost(i), L("streams_out")));
        }
        names.Add((HookPoints.HcHeadCollapsed, "final.collapsed"));
        names.Add((HookPoints.FinalNorm, "final.normed"));
        names.Add((HookPoints.Logits, "logits"));
        return names;
    }

    /// <summary>
    /// For a DeepSeek-V3.2 configuration (lightning indexer), the extra (hook point, reference name) pairs of the official
    /// V3.2-Exp dumps (tests/fixtures/golden/v32/README.md): per block <c>index_scores.{i}</c> (the indexer scores
    /// [B, S, S] before top-k, −∞ at future keys) and <c>index_topk.{i}</c> (the selected keys; written by
    /// <see cref="IndexTopkPositions"/> as positions [B, S, k]), and <c>moe.{i}.scores</c> on MoE blocks.
    /// </summary>
    /// <exception cref="ArgumentException">The configuration has no lightning indexer.</exception>
    public static IReadOnlyList<(string HookPoint, string Reference)> ForV32(DeepSeekConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Indexer is null)
            throw new ArgumentException("the V3.2 reference names need a configuration with a lightning indexer (index_n_heads, index_head_dim, index_topk)", nameof(config));
        var names = new List<(string, string)>();
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            names.Add((HookPoints.IndexerScores(i), $"index_scores.{i}"));
            names.Add((HookPoints.IndexerTopk(i), $"index_topk.{i}"));
            if (config.IsMoeLayer(i)) names.Add((HookPoints.RouterScores(i), $"moe.{i}.scores"));
        }
        return names;
    }

    /// <summary>
    /// The keys a V3.2 indexer selected, in the official dumps' <c>index_topk</c> format: per query the selected key
    /// positions in ascending order, padded with −1 to k (rows s &lt; k − 1 select fewer than k keys) — [B, S, k] int64,
    /// row-major. <paramref name="selected"/> is the <c>blocks.{L}.attn.indexer.topk</c> mask [B, S, S].
    /// </summary>
    /// <exception cref="ArgumentException">The mask is not 3-D, or a row selects more than k keys.</exception>
    public static long[] IndexTopkPositions(TorchSharp.torch.Tensor selected, int k)
    {
        ArgumentNullException.ThrowIfNull(selected);
        if (selected.dim() != 3) throw new ArgumentException($"the indexer selection must be [batch, query, key], got {selected.dim()} dimensions", nameof(selected));
        long rows = selected.shape[0] * selected.shape[1], t = selected.shape[2];
        var flags = selected.to(TorchSharp.torch.ScalarType.Bool).cpu().contiguous().data<bool>().ToArray();
        var result = new long[rows * k];
        for (long r = 0; r < rows; r++)
        {
            int n = 0;
            for (long j = 0; j < t; j++)
            {
                if (!flags[r * t + j]) continue;
                if (n == k) throw new ArgumentException($"query row {r} selects more than index_topk = {k} keys", nameof(selected));
                result[r * k + n++] = j;
            }
            for (; n < k; n++) result[r * k + n] = -1;
        }
        return result;
    }
}
