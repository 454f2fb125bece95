using DeepSeekNotebooks.Model.Modules;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model;

/// <summary>
/// A DeepSeek-V2/V3 architecture causal language model in TorchSharp, following the <c>Transformer</c> of DeepSeek-V3's
/// official <c>inference/model.py</c>: token embedding, <c>num_hidden_layers</c> blocks of Multi-head Latent Attention and a
/// dense SwiGLU MLP (first <c>first_k_dense_replace</c> layers) or a DeepSeekMoE layer, a final RMSNorm and the output head.
/// Unlike the reference (which returns the last position only), <see cref="forward"/> returns logits for every position.
/// Parameter names follow the official code (<c>embed.weight</c>, <c>layers.{i}.attn.wq.weight</c>, …, <c>head.weight</c>);
/// <see cref="Checkpoints.Checkpoint"/> maps Hugging Face names onto them.
/// </summary>
public sealed class DeepSeekModel : nn.Module<Tensor, Tensor>
{
    private readonly Embedding embed;
    private readonly ModuleList<Block> layers;
    private readonly RMSNorm norm;
    private readonly Linear head;
    private readonly float[] _inverseFrequencies;
    // DeepSeek-V4 mHC head (official names): collapses the streams before the final norm.
    private readonly Parameter? hc_head_fn, hc_head_base, hc_head_scale;

    private DeepSeekModel(DeepSeekConfig config, ParameterFactory parameters, Action<Block>? blockBuilt = null) : base("DeepSeekModel")
    {
        Config = config.Validate();
        embed = parameters.Embedding(config.VocabSize, config.HiddenSize);
        // Blocks are built one at a time and handed to blockBuilt (the streaming loader releases each block's storage) before
        // the next is made; a loading factory makes them in the compute dtype and device directly, so nothing is converted.
        var blocks = new Block[config.NumHiddenLayers];
        for (int i = 0; i < blocks.Length; i++)
        {
            blocks[i] = new Block($"layers.{i}", config, i, parameters);
            blockBuilt?.Invoke(blocks[i]);
        }
        layers = new ModuleList<Block>(blocks);
        norm = new RMSNorm("norm", config.HiddenSize, config.RmsNormEps, parameters);
        head = parameters.Linear(config.HiddenSize, config.VocabSize);
        if (config.TieWordEmbeddings) head.weight = embed.weight;
        _inverseFrequencies = RotaryEmbedding.InverseFrequencies(config);
        if (config.HyperConnections is { } hc)
        {
            hc_head_fn = parameters.Zeros(new[] { hc.Mult, (long)hc.Mult * config.HiddenSize });
            hc_head_base = parameters.Zeros(new long[] { hc.Mult });
            hc_head_scale = parameters.Ones(1);
        }
        RegisterComponents();
    }

    /// <summary>
    /// Builds a model with freshly initialised weights: N(0, 0.02) for embeddings, projections and router, ones for norm
    /// gains, zeros for the selection bias. <paramref name="seed"/> makes the initialisation reproducible.
    /// </summary>
    public static DeepSeekModel Create(DeepSeekConfig config, long? seed = null)
    {
        TorchRuntime.EnsureLoaded();
        var model = new DeepSeekModel(config, ParameterFactory.Initialised);
        using var _ = no_grad();
        var generator = seed is { } s ? new Generator((ulong)s) : null;
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal) || name.EndsWith("_scale", StringComparison.Ordinal)) p.fill_(1);
            else if (name.EndsWith("gate.tid2eid", StringComparison.Ordinal))
                // Token t → experts (t + j) mod E, j < k: distinct experts per token, every expert used.
                p.copy_((arange(p.shape[0]).unsqueeze(1) + arange(p.shape[1]).unsqueeze(0)).remainder(config.NRoutedExperts).to(p.dtype));
            else if (name.EndsWith("_base", StringComparison.Ordinal) || name.EndsWith("attn_sink", StringComparison.Ordinal) || name.EndsWith(".ape", StringComparison.Ordinal)) p.zero_();
            else if (name.EndsWith("gate.bias", StringComparison.Ordinal) || name.EndsWith("norm.bias", StringComparison.Ordinal)) p.zero_();
            // TorchSharp 0.107's nn.init.normal_ ignores its generator argument, so a seeded init draws from the generator directly.
            else if (generator is not null) p.copy_(randn(p.shape, dtype: p.dtype, generator: generator).mul_(0.02));
            else nn.init.normal_(p, 0, 0.02);
        }
        model.eval();
        return model;
    }

    /// <summary>
    /// Builds a model of the given shape whose weights are loaded next: every parameter is allocated uninitialised
    /// (<see cref="ParameterFactory.ForLoading"/>) in <paramref name="dtype"/> (default float32) on <paramref name="device"/>
    /// (default CPU), with no random initialisation and no float32 copy converted afterwards; each block is passed to
    /// <paramref name="blockBuilt"/> as soon as it is made. Every parameter holds arbitrary values until the caller writes
    /// it: only a loader that has checked that each one has a stored tensor may call this.
    /// </summary>
    internal static DeepSeekModel CreateEmpty(DeepSeekConfig config, ScalarType? dtype = null, Device? device = null, Action<Block>? blockBuilt = null)
    {
        TorchRuntime.EnsureLoaded();
        var model = new DeepSeekModel(config, ParameterFactory.ForLoading(dtype ?? ScalarType.Float32, device), blockBuilt);
        model.eval();
        return model;
    }

    /// <summary>The model's configuration.</summary>
    public DeepSeekConfig Config { get; }
    /// <summary>The blocks, in order.</summary>
    public IReadOnlyList<Block> Layers => layers.ToList();
    /// <summary>
    /// The token embedding table [vocab, dim], in the compute dtype; in stream residency, in the checkpoint's storage dtype
    /// when that is narrower (bf16/fp16 files computed in float32: <see cref="Embed"/> converts the rows it gathers).
    /// </summary>
    public Parameter EmbeddingWeight => embed.weight!;
    /// <summary>
    /// The output head [vocab, dim], in the compute dtype; in stream residency, in the checkpoint's storage dtype when that
    /// is narrower (use <see cref="Unembed"/>, which converts it chunk by chunk, rather than a matmul with this tensor).
    /// </summary>
    public Parameter HeadWeight => head.weight!;
    /// <summary>The final RMSNorm.</summary>
    public RMSNorm FinalNorm => norm;

    /// <summary>
    /// DeepSeek-V4's head collapse (<c>hc_head</c> with this model's <c>hc_head_fn/base/scale</c>) of streams
    /// [batch, seq, hc_mult, dim] → [batch, seq, dim], as the forward applies it before the final norm (for readouts such as the logit lens).
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has a single residual stream.</exception>
    internal Tensor CollapseStreams(Tensor streams)
    {
        var hc = Config.HyperConnections ?? throw new InvalidOperationException("the model has a single residual stream (no hyper-connections): there is nothing to collapse");
        if (streams.dim() != 4 || streams.shape[^2] != hc.Mult || streams.shape[^1] != Config.HiddenSize)
            throw new ArgumentException($"streams must be [batch, seq, {hc.Mult}, {Config.HiddenSize}] (hc_mult streams of hidden_size), got [{string.Join(", ", streams.shape)}]", nameof(streams));
        return HyperConnections.Head(streams, hc_head_fn!, hc_head_scale!, hc_head_base!, hc, Config.RmsNormEps, null);
    }

    /// <summary>
    /// Whether the forward pass simulates the official code's FP8 activation rounding (DeepSeek-V3.2: indexer queries
    /// and keys, MLA key/value latent). <see cref="QuantisationSimulation.Official"/> by default; set
    /// <see cref="QuantisationSimulation.Off"/> for plain-float analysis. No effect on V2/V3 models (their official
    /// code rounds no activations in float/bf16 runs).
    /// </summary>
    public QuantisationSimulation Quantisation
    {
        get => _quantisation;
        set
        {
            if (!Enum.IsDefined(value)) throw new ArgumentOutOfRangeException(nameof(value), value, "must be QuantisationSimulation.Official or .Off");
            _quantisation = value;
            foreach (var layer in layers) layer.SetQuantisation(value);
        }
    }
    private QuantisationSimulation _quantisation = QuantisationSimulation.Official;

    /// <summary>
    /// Token ids [batch, seq] (int64) → logits [batch, seq, vocab] at every position (causal). Ids on another device than
    /// the model's (e.g. made on the CPU for a CUDA model) are moved to it; the logits are on the model's device.
    /// </summary>
    public override Tensor forward(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        inputIds = ToModelDevice(inputIds);
        return Forward(Embed(inputIds), null, Ids(inputIds)).MoveToOuterDisposeScope();
    }

    private static Tensor Ids(Tensor inputIds) => inputIds.dim() == 1 ? inputIds.unsqueeze(0) : inputIds;

    /// <summary>The device the model's weights are on (where its entry points move token ids).</summary>
    public Device Device => head.weight!.device;

    /// <summary>
    /// <paramref name="t"/> on the model's device (<see cref="Device"/>): the same tensor when it is already there (the
    /// usual CPU case: no copy, no new handle), else a copy moved there (<c>t.to(device)</c>), e.g. token ids or a
    /// mask made on the CPU for a model on CUDA.
    /// </summary>
    internal Tensor ToModelDevice(Tensor t) => OnDevice(t, head.weight!);

    /// <summary><paramref name="t"/> on <paramref name="like"/>'s device: the same tensor when already there, else <c>t.to(like.device)</c>.</summary>
    internal static Tensor OnDevice(Tensor t, Tensor like) =>
        t.device_type == like.device_type && t.device_index == like.device_index ? t : t.to(like.device);

    /// <summary>
    /// Looks up token embeddings [batch, seq, dim] after checking the ids (<see cref="CheckInputIds"/>); ids on another
    /// device than the model's are moved to it.
    /// </summary>
    public Tensor Embed(Tensor inputIds)
    {
        CheckInputIds(inputIds);
        var ids = ToModelDevice(inputIds);
        var rows = embed.forward(ids.dim() == 1 ? ids.unsqueeze(0) : ids);
        return rows.dtype == ComputeDType ? rows : rows.to(ComputeDType);
    }

    /// <summary>
    /// The output head on final-norm activations [..., dim] → logits [..., vocab] (TransformerLens' <c>unembed</c>), in
    /// the activations' dtype. When the head is held in a narrower storage dtype (stream residency) it is converted in
    /// chunks of rows per call, forward and backward, so no full-width copy of it is ever made.
    /// </summary>
    public Tensor Unembed(Tensor normed)
    {
        var w = head.weight!;
        if (w.dtype == normed.dtype) return head.forward(normed);
        if (!normed.is_floating_point())
            throw new ArgumentException($"activations must be floating point, got {normed.dtype}", nameof(normed));
        return Checkpoints.ChunkedHeadFunction.apply(normed, new Checkpoints.ChunkedHeadCall(w, Checkpoints.ChunkedHeadFunction.RowsPerChunk(w.shape[1], normed.dtype)));
    }

    /// <summary>The dtype the model computes in (its parameters' dtype, except a head/embedding held narrower in stream residency).</summary>
    internal ScalarType ComputeDType => _computeDType ?? embed.weight!.dtype;
    private ScalarType? _computeDType;

    /// <summary>
    /// Stream residency with narrower stored weights: the embedding table and the head are held in <paramref name="storage"/>
    /// (what the files hold, e.g. bf16) instead of the compute dtype; their parameters are replaced by empty ones the loader
    /// then reads into. <see cref="Embed"/>, <see cref="Unembed"/> and the forward convert per use.
    /// </summary>
    internal void HoldEmbeddingAndHeadIn(ScalarType storage)
    {
        var compute = ComputeDType;
        if (storage == compute) return;
        using (no_grad())
        {
            var oldEmbed = embed.weight!;
            var oldHead = head.weight!;
            embed.weight = new Parameter(empty(oldEmbed.shape, dtype: storage, device: oldEmbed.device), requires_grad: false);
            head.weight = Config.TieWordEmbeddings ? embed.weight : new Parameter(empty(oldHead.shape, dtype: storage, device: oldHead.device), requires_grad: false);
            oldEmbed.Dispose();
            oldHead.Dispose();
        }
        _computeDType = compute;
    }

    /// <summary>
    /// Runs the blocks, final norm and head on given input embeddings [batch, seq, dim] (the function Captum's
    /// attribution methods differentiate when attributing at the embedding layer). Returns logits [batch, seq, vocab].
    /// </summary>
    /// <remarks>
    /// A model with hash-routed layers (DeepSeek-V4) routes those layers by token id, so it needs
    /// <paramref name="inputIds"/> [batch, seq] (the tokens the embeddings stand for); gradients then flow through the
    /// embeddings with the routing of those tokens fixed.
    /// </remarks>
    public Tensor ForwardFromEmbeddings(Tensor embeddings, IReadOnlyDictionary<string, HookFunction>? hooks = null, Tensor? inputIds = null)
    {
        if (embeddings.dim() != 3 || embeddings.shape[2] != Config.HiddenSize)
            throw new ArgumentException($"embeddings must be [batch, seq, {Config.HiddenSize}], got [{string.Join(", ", embeddings.shape)}]", nameof(embeddings));
        CheckLength(embeddings.shape[1]);
        if (Config.NumHashLayers > 0 && inputIds is null)
            throw new ArgumentException($"this model routes its first {Config.NumHashLayers} MoE layer(s) by token id (hash routing, tid2eid): pass inputIds [batch, seq] with the embeddings", nameof(inputIds));
        if (inputIds is not null)
        {
            CheckInputIds(inputIds);
            var ids = Ids(ToModelDevice(inputIds));
            if (ids.shape[0] != embeddings.shape[0] || ids.shape[1] != embeddings.shape[1])
                throw new ArgumentException($"inputIds [{string.Join(", ", ids.shape)}] must match the embeddings' [batch, seq] = [{embeddings.shape[0]}, {embeddings.shape[1]}]", nameof(inputIds));
            inputIds = ids;
        }
        // Embeddings follow the weights' dtype and device: attribution paths (α·(x − baseline)) are built in float32, so a bf16
        // model computes in bf16 and the gradient flows back through the cast to the caller's tensor (a no-op in float32 on CPU).
        var w = embed.weight!;
        if (embeddings.dtype != ComputeDType || embeddings.device_type != w.device_type || embeddings.device_index != w.device_index)
        {
            using var scope = NewDisposeScope();
            return Forward(embeddings.to(ComputeDType, w.device), hooks is null ? null : new ForwardContext(Config, null, hooks, keepGraph: true), inputIds)
                .MoveToOuterDisposeScope();
        }
        return Forward(embeddings, hooks is null ? null : new ForwardContext(Config, null, hooks, keepGraph: true), inputIds);
    }

    /// <summary>
    /// Forward pass that records the tensors at the hook points selected by <paramref name="options"/> (in the spirit of
    /// TransformerLens' <c>run_with_cache</c>) and applies any hooks. The returned trace owns the recorded tensors.
    /// Throws <see cref="ArgumentException"/> listing the valid names when a name to record or hook is not a hook point of
    /// this model (<see cref="HookPoints.All"/>).
    /// </summary>
    public ModelTrace RunWithCache(Tensor inputIds, TraceOptions? options = null)
    {
        options ??= TraceOptions.Default;
        var ctx = new ForwardContext(Config, options.Names, options.Hooks, options.KeepGraph);
        if (_streamer is not null && options.KeepGraph && ctx.RecordsInsideBlocks(Config))
            throw new NotSupportedException(
                "RunWithCache with KeepGraph records tensors inside blocks for differentiation, which stream residency cannot offer: " +
                "streamed blocks run without a graph and are recomputed in the backward pass (gradients reach the embeddings, not " +
                "block-internal hook points such as attn.pattern, so attention×gradient is unavailable). Load the checkpoint with " +
                "Residency.Memory for it, or record only embed / ln_final / logits.");
        using (var scope = NewDisposeScope())
        {
            var ids = Ids(ToModelDevice(inputIds));
            var embeddings = ctx.Point(HookPoints.Embed, Embed(ids));
            Forward(embeddings, ctx, ids);
        }
        return new ModelTrace(Config, ctx.Cache);
    }

    /// <summary>
    /// Forward pass with hooks that may read or replace tensors at hook points; returns logits [batch, seq, vocab].
    /// Throws <see cref="ArgumentException"/> listing the valid names when a hook name is not a hook point of this model.
    /// </summary>
    public Tensor RunWithHooks(Tensor inputIds, IReadOnlyDictionary<string, HookFunction> hooks)
    {
        ArgumentNullException.ThrowIfNull(hooks);
        using var scope = NewDisposeScope();
        var ctx = new ForwardContext(Config, null, hooks, keepGraph: true);
        var ids = Ids(ToModelDevice(inputIds));
        var embeddings = ctx.Point(HookPoints.Embed, Embed(ids));
        return Forward(embeddings, ctx, ids).MoveToOuterDisposeScope();
    }

    internal Tensor Forward(Tensor h, ForwardContext? ctx, Tensor? inputIds = null)
    {
        using var scope = NewDisposeScope();
        long seq = h.shape[1];
        var (cos, sin) = RotaryEmbedding.Tables(_inverseFrequencies, 0, seq, h.device);
        var mask = MultiHeadLatentAttention.CausalMask(seq, h.device);
        var hc = Config.HyperConnections;
        if (hc is not null) h = h.unsqueeze(2).repeat(1, 1, hc.Mult, 1);          // n copies of the embedding: the streams
        if (_streamer is null)
            foreach (var layer in layers)
                h = layer.Forward(h, cos, sin, mask, ctx, inputIds);
        else
        {
            _streamer.ReleasePinned();
            for (int i = 0; i < layers.Count; i++)
                h = is_grad_enabled() && h.requires_grad
                    ? Checkpoints.StreamedBlockFunction.apply(h, new Checkpoints.StreamedBlockCall(this, i, ctx, inputIds))
                    : RunStreamedBlock(i, h, ctx, inputIds, pinIfDifferentiable: true);
        }
        if (hc is not null) h = HyperConnections.Head(h, hc_head_fn!, hc_head_scale!, hc_head_base!, hc, Config.RmsNormEps, ctx);
        h = norm.forward(h);
        if (ctx is not null) h = ctx.Point(HookPoints.FinalNorm, h);
        var logits = Unembed(h);
        if (ctx is not null) logits = ctx.Point(HookPoints.Logits, logits);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>Runs block <paramref name="layer"/> with its weights brought in for the call (stream residency).</summary>
    /// <remarks>
    /// With <paramref name="pinIfDifferentiable"/>, a block whose output requires gradients although its input does not
    /// (a hook made a block-internal tensor a leaf: layer attribution) keeps its weights in until the next forward call,
    /// because the graph from the hook point on saved them.
    /// </remarks>
    internal Tensor RunStreamedBlock(int layer, Tensor h, ForwardContext? ctx, Tensor? inputIds, bool pinIfDifferentiable = false)
    {
        using var scope = NewDisposeScope();
        long seq = h.shape[1];
        var (cos, sin) = RotaryEmbedding.Tables(_inverseFrequencies, 0, seq, h.device);
        var mask = MultiHeadLatentAttention.CausalMask(seq, h.device);
        using (_streamer!.Enter(layer))
        {
            var output = layers[layer].Forward(h, cos, sin, mask, ctx, inputIds);
            if (pinIfDifferentiable && output.requires_grad && !h.requires_grad) _streamer.Pin(layer);
            return output.MoveToOuterDisposeScope();
        }
    }

    private Checkpoints.BlockStreamer? _streamer;

    /// <summary>Stream residency: from now on blocks run with their weights brought in by <paramref name="streamer"/>.</summary>
    internal void AttachStreamer(Checkpoints.BlockStreamer streamer) => _streamer = streamer;

    internal Checkpoints.BlockStreamer? Streamer => _streamer;

    /// <summary>
    /// Whether the blocks' weights are streamed from the checkpoint files (<see cref="Checkpoints.Residency.Stream"/>):
    /// each forward call then reads each block's weights once — the whole batch [batch, seq] goes through block L before
    /// block L+1 is read — and a backward pass reads each block once more, in reverse (block-level recomputation).
    /// Between calls a streamed block's parameters are empty (shape [0]); use <see cref="LoadBlockWeights"/> to inspect them.
    /// </summary>
    public bool IsStreamed => _streamer is not null;

    /// <summary>
    /// Brings block <paramref name="layer"/>'s weights into memory until the returned scope is disposed, for code that
    /// reads parameters directly (e.g. expert weight statistics); a no-op scope in memory residency.
    /// </summary>
    public IDisposable LoadBlockWeights(int layer)
    {
        if (layer < 0 || layer >= layers.Count)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be in [0, {layers.Count - 1}]");
        return _streamer?.Enter(layer) ?? NoScope.Instance;
    }

    private sealed class NoScope : IDisposable
    {
        internal static readonly NoScope Instance = new();
        public void Dispose() { }
    }

    /// <summary>
    /// Continues <paramref name="promptIds"/> by up to <paramref name="maxNewTokens"/> tokens, one causal forward per token:
    /// greedy (argmax of the last position's logits) or sampled with temperature, top-k and top-p from a seeded generator
    /// (<see cref="GenerationOptions"/>, Hugging Face <c>generate</c>'s names). Stops early after the EOS token
    /// (<see cref="GenerationOptions.EosTokenId"/>, else the config's <c>eos_token_id</c>). Deterministic for a given seed.
    /// </summary>
    /// <exception cref="ArgumentException">An empty prompt, ids out of range, more tokens than <c>max_position_embeddings</c>, or invalid sampling options.</exception>
    public GenerationResult Generate(IReadOnlyList<long> promptIds, int maxNewTokens, GenerationOptions? options = null) =>
        Generation.Run(this, promptIds, maxNewTokens, options);

    /// <summary>
    /// Checks token ids: int64 (or int32), shape [seq] or [batch, seq], 1 ≤ seq ≤ <c>max_position_embeddings</c>,
    /// every id in [0, vocab_size). Throws <see cref="ArgumentException"/> naming the problem.
    /// </summary>
    public void CheckInputIds(Tensor inputIds)
    {
        if (inputIds.dtype is not (ScalarType.Int64 or ScalarType.Int32))
            throw new ArgumentException($"token ids must be int64, got {inputIds.dtype}", nameof(inputIds));
        if (inputIds.dim() is not (1 or 2))
            throw new ArgumentException($"token ids must be [seq] or [batch, seq], got shape [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        long seq = inputIds.shape[^1];
        if (seq == 0 || inputIds.numel() == 0)
            throw new ArgumentException("the token sequence is empty; give at least one token id", nameof(inputIds));
        CheckLength(seq);
        long min, max;
        // item<long> needs an int64 tensor (ids may be int32); .cpu() makes the host read explicit for ids on a device (no-op on the CPU).
        using (var lo = inputIds.min().to(ScalarType.Int64).cpu()) min = lo.item<long>();
        using (var hi = inputIds.max().to(ScalarType.Int64).cpu()) max = hi.item<long>();
        if (min < 0 || max >= Config.VocabSize)
            throw new ArgumentException(
                $"token id {(min < 0 ? min : max)} is out of range: ids must be in [0, {Config.VocabSize - 1}] (vocab_size {Config.VocabSize})", nameof(inputIds));
    }

    private void CheckLength(long seq)
    {
        if (seq > Config.MaxPositionEmbeddings)
            throw new ArgumentException(
                $"the sequence has {seq} tokens but the model supports at most max_position_embeddings = {Config.MaxPositionEmbeddings}");
    }

    /// <summary>Total parameter count and the count active for one token (embedding row excluded: shared experts + top-k routed).</summary>
    public (long Total, long ActivePerToken) ParameterCounts()
    {
        long total = 0, inactive = 0;
        // A streamed block's parameters are empty between calls: count the shapes they take when brought in.
        var shapes = _streamer?.BlockShapes.ToDictionary(s => s.Name, s => s.Shape);
        long Numel(string name, Tensor p) => shapes is not null && shapes.TryGetValue(name, out var s) ? s.Aggregate(1L, (a, b) => a * b) : p.numel();
        foreach (var (name, p) in named_parameters()) total += Numel(name, p);
        var c = Config;
        foreach (var block in layers)
            if (block.Moe is { } moe)
                inactive += (c.NRoutedExperts - c.NumExpertsPerTok) * moe.Experts[0].named_parameters().Sum(p => Numel($"layers.{block.Layer}.ffn.experts.0.{p.name}", p.parameter));
        long embeddingTable = EmbeddingWeight.numel() - c.HiddenSize; // one row is used per token
        return (total, total - inactive - embeddingTable);
    }
}
