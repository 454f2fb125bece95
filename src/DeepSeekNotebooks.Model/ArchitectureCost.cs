using System.Text.RegularExpressions;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Model;

/// <summary>One transformer block of an <see cref="ArchitectureCost"/>.</summary>
/// <param name="Index">Block index (0-based).</param>
/// <param name="Attention"><c>"mla_q_lora"</c> (multi-head latent attention with a low-rank query, V2/V3), <c>"mla"</c> (full-rank <c>q_proj</c>, V2-Lite),
/// <c>"mla_q_lora_indexer"</c> (V3.2: with a lightning indexer), or DeepSeek-V4's <c>"sliding_window"</c>, <c>"compressed_sparse"</c> (CSA) and <c>"heavily_compressed"</c> (HCA).</param>
/// <param name="Mlp"><c>"dense"</c> (SwiGLU MLP) or <c>"moe"</c> (routed + shared experts).</param>
/// <param name="Parameters">Parameters of the block (norms, attention, MLP or all experts and the router).</param>
/// <param name="ActiveParameters">Parameters one token uses: the MoE layer's <c>num_experts_per_tok</c> routed experts, not all of them.</param>
public sealed record LayerCost(int Index, string Attention, string Mlp, long Parameters, long ActiveParameters);

/// <summary>
/// The size of a DeepSeek-V2/V3 architecture computed from its configuration alone (no weights are loaded or allocated):
/// exact parameter counts, per-token active parameters, the multi-token-prediction modules the kit does not run, and the
/// bytes the weights take in each storage dtype.
/// </summary>
/// <remarks>
/// The counts come from one table of every parameter the kit's <see cref="DeepSeekModel"/> creates for a configuration
/// (official names and shapes, the names <see cref="Checkpoint.Load"/> matches checkpoint tensors against); a test checks
/// the table against the model's <c>named_parameters()</c>. <see cref="TotalParameters"/> is what the kit loads: MTP
/// modules are excluded and counted in <see cref="MtpParameters"/>; tied embeddings count once.
/// </remarks>
public sealed class ArchitectureCost
{
    /// <summary>The configuration the cost is computed for.</summary>
    public DeepSeekConfig Config { get; }
    /// <summary>Every parameter the kit loads (embedding, blocks, final norm, head), MTP modules excluded.</summary>
    public long TotalParameters { get; }
    /// <summary>
    /// Parameters used for one token, as DeepSeek counts them (V3's 36.6B "including 0.9B for the output head"):
    /// <see cref="TotalParameters"/> minus, in every MoE layer, the routed experts the token is not sent to
    /// (n_routed_experts − num_experts_per_tok of them), minus the embedding table (a lookup reads one row of it) unless
    /// it is tied to the head.
    /// </summary>
    public long ActiveParametersPerToken { get; }
    /// <summary>
    /// Unique parameters of the <c>num_nextn_predict_layers</c> multi-token-prediction modules (one block each, plus
    /// <c>enorm</c>, <c>hnorm</c>, <c>eh_proj</c> and <c>shared_head.norm</c>; their embedding and head are shared with the
    /// main model and not counted again). Not part of <see cref="TotalParameters"/>.
    /// </summary>
    public long MtpParameters { get; }
    /// <summary>The blocks in order.</summary>
    public IReadOnlyList<LayerCost> Layers { get; }
    /// <summary>
    /// Bytes of the weights the kit loads, by storage dtype (<c>"f32"</c>, <c>"bf16"</c>, <c>"f16"</c>, <c>"fp8"</c>; the first
    /// three and <c>"fp8"</c> always present). From a checkpoint directory these are the stored tensors' bytes (FP8 block
    /// scales included, MTP tensors excluded); from a configuration they are what a checkpoint of it stores (see
    /// <see cref="FromConfig"/>).
    /// </summary>
    public IReadOnlyDictionary<string, long> BytesByDType { get; }
    /// <summary>
    /// From a checkpoint directory: the element count of its stored parameter tensors (FP8 scales and MTP modules excluded),
    /// which equals <see cref="TotalParameters"/> for a checkpoint the loader accepts; null when computed from a configuration.
    /// </summary>
    public long? StoredParameters { get; }

    private ArchitectureCost(DeepSeekConfig config, long total, long active, long mtp, IReadOnlyList<LayerCost> layers,
        IReadOnlyDictionary<string, long> bytes, long? stored)
    {
        Config = config;
        TotalParameters = total;
        ActiveParametersPerToken = active;
        MtpParameters = mtp;
        Layers = layers;
        BytesByDType = bytes;
        StoredParameters = stored;
    }

    /// <summary>
    /// The cost of <paramref name="config"/>. Bytes follow the storage the configuration declares: with an FP8
    /// <c>quantization_config</c>, every projection weight is FP8 (1 byte) plus one float32 scale per weight block, while
    /// the embedding, head, norms and router weights are in <c>torch_dtype</c> (as DeepSeek-V3's release stores them);
    /// without it every tensor is in <c>torch_dtype</c> (absent: float32, the kit's compute dtype). The router's selection
    /// bias (<c>e_score_correction_bias</c>) is float32 in both cases.
    /// </summary>
    public static ArchitectureCost FromConfig(DeepSeekConfig config) => Compute(config.Validate(), null, null);

    /// <summary>
    /// The cost of a checkpoint directory without loading its weights: the configuration from its <c>config.json</c>
    /// (Hugging Face layout) or <c>ModelArgs</c> JSON (official layout), the bytes by dtype and the stored parameter count
    /// from its safetensors headers.
    /// </summary>
    /// <exception cref="CheckpointException">The directory holds no checkpoint.</exception>
    /// <exception cref="ConfigException">The configuration is missing or invalid.</exception>
    public static ArchitectureCost FromCheckpoint(string directory)
    {
        directory = Path.GetFullPath(directory);
        var layout = Checkpoint.DetectLayout(directory);
        var safetensors = System.IO.Directory.GetFiles(directory, "*.safetensors").Order(StringComparer.Ordinal).ToList();
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (var p in safetensors) files.Add(SafetensorsFile.Open(p));
            DeepSeekConfig config;
            if (layout == CheckpointLayout.HuggingFace)
            {
                config = DeepSeekConfig.Load(Path.Combine(directory, "config.json"));
            }
            else
            {
                var argsFile = System.IO.Directory.GetFiles(directory, "*.json").Order(StringComparer.Ordinal)
                    .FirstOrDefault(f => System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(f)) is System.Text.Json.Nodes.JsonObject o && o.ContainsKey("dim") && o.ContainsKey("n_layers"))
                    ?? throw new CheckpointException($"{directory} has official-layout weights but no ModelArgs JSON (a .json file with \"dim\" and \"n_layers\", as inference/configs/*.json)");
                bool hasBias = files.SelectMany(f => f.Tensors).Any(t => t.Name.EndsWith(".ffn.gate.bias", StringComparison.Ordinal));
                try { config = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(argsFile), hasBias); }
                catch (ConfigException e) { throw new ConfigException(e.Field, e.Problem, argsFile); }
            }
            if (files.Count == 0) return Compute(config, null, null); // pickle weights: headers unreadable without unpickling

            var bytes = NewBytes();
            long stored = 0;
            foreach (var file in files)
            foreach (var t in file.Tensors)
            {
                int layer = LayerOf(t.Name, layout);
                if (layer >= config.NumHiddenLayers) continue; // MTP module (or beyond): not loaded
                bytes[DTypeKey(t.DType)] = bytes.GetValueOrDefault(DTypeKey(t.DType)) + t.ByteLength;
                // FP8/FP4 scales; not DeepSeek-V4's hyper-connection gains (transformers' model.layers.{i}.attn_hc.scale / ffn_hc.scale).
                bool isScale = t.Name.EndsWith("_scale_inv", StringComparison.Ordinal)
                    || (t.Name.EndsWith(".scale", StringComparison.Ordinal) && !t.Name.EndsWith("_hc.scale", StringComparison.Ordinal));
                // int8 tensors in a DeepSeek checkpoint are DeepSeek-V4's packed FP4 experts: two parameters per byte.
                if (!isScale) stored += t.DType == SafetensorsDType.I8 ? 2 * t.ElementCount : t.ElementCount;
            }
            return Compute(config, bytes, stored);
        }
        finally
        {
            foreach (var f in files) f.Dispose();
        }
    }

    private static readonly Regex HfLayer = new(@"^model\.layers\.(\d+)\.", RegexOptions.Compiled);
    private static readonly Regex OfficialLayer = new(@"^layers\.(\d+)\.", RegexOptions.Compiled);

    private static int LayerOf(string name, CheckpointLayout layout)
    {
        var m = (layout == CheckpointLayout.HuggingFace ? HfLayer : OfficialLayer).Match(name);
        return m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : -1;
    }

    private static Dictionary<string, long> NewBytes() => new() { ["f32"] = 0, ["bf16"] = 0, ["fp8"] = 0 };

    private static string DTypeKey(SafetensorsDType d) => d switch
    {
        SafetensorsDType.F32 => "f32",
        SafetensorsDType.BF16 => "bf16",
        SafetensorsDType.F16 => "f16",
        SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 => "fp8",
        _ => d.ToFileString().ToLowerInvariant(),
    };

    private static ArchitectureCost Compute(DeepSeekConfig c, Dictionary<string, long>? storedBytes, long? stored)
    {
        var shapes = ParameterShapes(c);
        long total = 0;
        var perLayer = new long[c.NumHiddenLayers];
        foreach (var (name, shape, layer) in shapes)
        {
            long n = Elements(shape);
            total += n;
            if (layer >= 0) perLayer[layer] += n;
        }
        long expert = ExpertParameters(c);
        var layers = new List<LayerCost>(c.NumHiddenLayers);
        long inactive = 0;
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            bool moe = c.IsMoeLayer(i);
            long skipped = moe ? (long)(c.NRoutedExperts - c.NumExpertsPerTok) * expert : 0;
            inactive += skipped;
            string attention = c.AttentionKindOf(i) switch
            {
                AttentionKind.SlidingWindow => "sliding_window",
                AttentionKind.CompressedSparse => "compressed_sparse",
                AttentionKind.HeavilyCompressed => "heavily_compressed",
                AttentionKind.MlaWithIndexer => "mla_q_lora_indexer",
                _ => c.QLoraRank is null ? "mla" : "mla_q_lora",
            };
            layers.Add(new LayerCost(i, attention, moe ? "moe" : "dense", perLayer[i], perLayer[i] - skipped));
        }
        long mtp = CountMtpParameters(c);
        var bytes = storedBytes ?? EstimateBytes(c, shapes);
        if (!c.TieWordEmbeddings) inactive += (long)c.VocabSize * c.HiddenSize;
        return new ArchitectureCost(c, total, total - inactive, mtp, layers, bytes, stored);
    }

    private static long Elements(long[] shape)
    {
        long n = 1;
        foreach (var d in shape) n = checked(n * d);
        return n;
    }

    /// <summary>One routed expert: w1 and w3 [moe_inter, hidden], w2 [hidden, moe_inter].</summary>
    private static long ExpertParameters(DeepSeekConfig c) => 3L * c.HiddenSize * c.MoeIntermediateSize;

    /// <summary>
    /// Every parameter <see cref="DeepSeekModel"/> creates for <paramref name="c"/>: official name, shape and block index
    /// (−1 outside the blocks). A tied head is listed once (as <c>embed.weight</c>).
    /// </summary>
    internal static List<(string Name, long[] Shape, int Layer)> ParameterShapes(DeepSeekConfig c)
    {
        var list = new List<(string, long[], int)>();
        list.Add(("embed.weight", new long[] { c.VocabSize, c.HiddenSize }, -1));
        for (int i = 0; i < c.NumHiddenLayers; i++) AddBlock(list, c, i, $"layers.{i}.");
        list.Add(("norm.weight", new long[] { c.HiddenSize }, -1));
        if (!c.TieWordEmbeddings) list.Add(("head.weight", new long[] { c.VocabSize, c.HiddenSize }, -1));
        if (c.HyperConnections is { } hc)
        {
            list.Add(("hc_head_fn", new long[] { hc.Mult, (long)hc.Mult * c.HiddenSize }, -1));
            list.Add(("hc_head_base", new long[] { hc.Mult }, -1));
            list.Add(("hc_head_scale", new long[] { 1 }, -1));
        }
        return list;
    }

    private static void AddBlock(List<(string, long[], int)> list, DeepSeekConfig c, int layer, string p)
    {
        long h = c.HiddenSize, heads = c.NumAttentionHeads;
        void Add(string name, params long[] shape) => list.Add((p + name, shape, layer));
        Add("attn_norm.weight", h);
        if (c.HyperConnections is { } hc)
        {
            long mix = (2 + hc.Mult) * hc.Mult, dim = hc.Mult * h;
            foreach (var site in new[] { "attn", "ffn" })
            {
                Add($"hc_{site}_fn", mix, dim);
                Add($"hc_{site}_base", mix);
                Add($"hc_{site}_scale", 3);
            }
        }
        if (c.CompressedAttention is { } a)
        {
            long rank = c.QLoraRank!.Value, hd = a.HeadDim;
            Add("attn.attn_sink", heads);
            Add("attn.wq_a.weight", rank, h);
            Add("attn.q_norm.weight", rank);
            Add("attn.wq_b.weight", heads * hd, rank);
            Add("attn.wkv.weight", hd, h);
            Add("attn.kv_norm.weight", hd);
            Add("attn.wo_a.weight", (long)a.OGroups * a.OLoraRank, heads * hd / a.OGroups);
            Add("attn.wo_b.weight", h, (long)a.OGroups * a.OLoraRank);
            int ratio = c.CompressRatio(layer);
            void Compressor(string at, long width, long m)
            {
                long coff = m == 4 ? 2 : 1;
                Add($"{at}.ape", m, coff * width);
                Add($"{at}.wkv.weight", coff * width, h);
                Add($"{at}.wgate.weight", coff * width, h);
                Add($"{at}.norm.weight", width);
            }
            if (ratio > 0) Compressor("attn.compressor", hd, ratio);
            if (ratio == 4)
            {
                var ix = c.Indexer!;
                Add("attn.indexer.wq_b.weight", (long)ix.NHeads * ix.HeadDim, rank);
                Add("attn.indexer.weights_proj.weight", ix.NHeads, h);
                Compressor("attn.indexer.compressor", ix.HeadDim, ratio);
            }
        }
        else if (c.QLoraRank is { } rank)
        {
            Add("attn.wq_a.weight", rank, h);
            Add("attn.q_norm.weight", rank);
            Add("attn.wq_b.weight", heads * c.QkHeadDim, rank);
        }
        else
        {
            Add("attn.wq.weight", heads * c.QkHeadDim, h);
        }
        if (c.CompressedAttention is null)
        {
            Add("attn.wkv_a.weight", c.KvLoraRank + c.QkRopeHeadDim, h);
            Add("attn.kv_norm.weight", c.KvLoraRank);
            Add("attn.wkv_b.weight", heads * (c.QkNopeHeadDim + c.VHeadDim), c.KvLoraRank);
            Add("attn.wo.weight", h, heads * c.VHeadDim);
            if (c.Indexer is { } ix)
            {
                // DeepSeek-V3.2's lightning indexer (LightningIndexer: wq_b, wk, LayerNorm k_norm, weights_proj).
                Add("attn.indexer.wq_b.weight", (long)ix.NHeads * ix.HeadDim, c.QLoraRank!.Value);
                Add("attn.indexer.wk.weight", ix.HeadDim, h);
                Add("attn.indexer.k_norm.weight", ix.HeadDim);
                Add("attn.indexer.k_norm.bias", ix.HeadDim);
                Add("attn.indexer.weights_proj.weight", ix.NHeads, h);
            }
        }
        Add("ffn_norm.weight", h);
        if (c.IsMoeLayer(layer))
        {
            Add("ffn.gate.weight", c.NRoutedExperts, h);
            if (c.IsHashLayer(layer)) Add("ffn.gate.tid2eid", c.VocabSize, c.NumExpertsPerTok);
            else if (c.HasGateBias) Add("ffn.gate.bias", c.NRoutedExperts);
            for (int e = 0; e < c.NRoutedExperts; e++)
            {
                Add($"ffn.experts.{e}.w1.weight", c.MoeIntermediateSize, h);
                Add($"ffn.experts.{e}.w2.weight", h, c.MoeIntermediateSize);
                Add($"ffn.experts.{e}.w3.weight", c.MoeIntermediateSize, h);
            }
            if (c.NSharedExperts > 0)
            {
                long shared = (long)c.NSharedExperts * c.MoeIntermediateSize;
                Add("ffn.shared_experts.w1.weight", shared, h);
                Add("ffn.shared_experts.w2.weight", h, shared);
                Add("ffn.shared_experts.w3.weight", shared, h);
            }
        }
        else
        {
            Add("ffn.w1.weight", c.IntermediateSize, h);
            Add("ffn.w2.weight", h, c.IntermediateSize);
            Add("ffn.w3.weight", c.IntermediateSize, h);
        }
    }

    /// <summary>
    /// The MTP modules' own parameters (Hugging Face <c>modeling_deepseek.py</c> / DeepSeek-V3 README_WEIGHTS.md): block
    /// <c>num_hidden_layers + i</c> (an MoE block when the schedule makes it one) plus <c>enorm</c> and <c>hnorm</c> [hidden],
    /// <c>eh_proj</c> [hidden, 2·hidden] and <c>shared_head.norm</c> [hidden].
    /// </summary>
    private static long CountMtpParameters(DeepSeekConfig c)
    {
        if (c.NumNextnPredictLayers == 0) return 0;
        long h = c.HiddenSize, total = 0;
        for (int i = 0; i < c.NumNextnPredictLayers; i++)
        {
            var block = new List<(string, long[], int)>();
            AddBlock(block, c, c.NumHiddenLayers + i, "");
            total += block.Sum(b => Elements(b.Item2));
            if (c.HyperConnections is { } hc)
                // DeepSeek-V4's MTPBlock: e_proj and h_proj [hidden, hidden], enorm, hnorm and norm [hidden], its own hc_head.
                total += 2 * h * h + 3 * h + (long)hc.Mult * hc.Mult * h + hc.Mult + 1;
            else total += 3 * h + h * 2 * h;
        }
        return total;
    }

    private static readonly Regex RoutedExpertWeight = new(@"\.ffn\.experts\.\d+\.(w1|w2|w3)\.weight$", RegexOptions.Compiled);
    private static readonly Regex ProjectionWeight = new(@"\.(wq|wq_a|wq_b|wkv_a|wkv_b|wkv|wo|wo_a|wo_b|w1|w2|w3)\.weight$", RegexOptions.Compiled);

    /// <summary>Whether an official parameter name is a projection weight, the tensors an FP8 checkpoint stores in FP8 with block scales.</summary>
    internal static bool IsProjectionWeight(string officialName) => ProjectionWeight.IsMatch(officialName);

    private static Dictionary<string, long> EstimateBytes(DeepSeekConfig c, List<(string Name, long[] Shape, int Layer)> shapes)
    {
        var (plainKey, plainSize) = c.TorchDtype switch
        {
            "bfloat16" => ("bf16", 2),
            "float16" => ("f16", 2),
            null or "float32" => ("f32", 4),
            var other => throw new ConfigException("torch_dtype", $"must be \"bfloat16\", \"float16\" or \"float32\" to size the weights, got \"{other}\""),
        };
        var bytes = NewBytes();
        void Add(string key, long n) => bytes[key] = bytes.GetValueOrDefault(key) + n;
        foreach (var (name, shape, _) in shapes)
        {
            long n = Elements(shape);
            bool v4 = c.CompressedAttention is not null;
            if (name.EndsWith(".gate.bias", StringComparison.Ordinal)) Add("f32", 4 * n);
            else if (v4 && c.ExpertDtype == "fp4" && RoutedExpertWeight.IsMatch(name))
            {
                // DeepSeek-V4: packed FP4 e2m1 pairs (int8) with one ue8m0 scale per 32 inputs.
                Add("fp4", n / 2);
                Add("e8m0", n / 32);
            }
            else if (c.Quantization is { } q && ProjectionWeight.IsMatch(name))
            {
                Add("fp8", n);
                long blocks = CeilDiv(shape[0], q.WeightBlockRows) * CeilDiv(shape[1], q.WeightBlockColumns);
                if (v4 && c.ScaleFmt == ScaleFormat.Ue8m0) Add("e8m0", blocks);   // V4 ships its block scales as float8_e8m0fnu
                else Add("f32", 4 * blocks);
            }
            else if (v4 && (name.Contains("hc_", StringComparison.Ordinal) || name.EndsWith("attn_sink", StringComparison.Ordinal)
                            || name.EndsWith(".ape", StringComparison.Ordinal) || name.EndsWith("tid2eid", StringComparison.Ordinal)))
                Add(name.EndsWith("tid2eid", StringComparison.Ordinal) ? "i32" : "f32", 4 * n);   // float32 in the official code
            else Add(plainKey, plainSize * n);
        }
        return bytes;
    }

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;
}
