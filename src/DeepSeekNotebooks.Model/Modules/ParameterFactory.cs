using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// How the module constructors create their parameters.
/// <list type="bullet">
/// <item><see cref="Initialised"/> (the default: <see cref="DeepSeekModel.Create"/>, training, random checkpoints):
/// float32 on the CPU with TorchSharp's own initialisation (<c>nn.Linear</c>'s kaiming-uniform, ones and zeros), exactly
/// the calls the constructors always made, so seeded and unseeded models stay bitwise as they were.</item>
/// <item><see cref="ForLoading"/>: uninitialised storage (<c>torch.empty</c>) directly in the compute dtype and on the
/// compute device, for a loader that then writes every parameter in place: no random initialisation and no float32
/// copy converted afterwards. PyTorch reaches the same with <c>torch.device("meta")</c> + <c>Module.to_empty</c>
/// (Hugging Face's <c>init_empty_weights</c> / <c>low_cpu_mem_usage</c>); TorchSharp 0.107 has no <c>to_empty</c> and
/// libtorch's <c>set_</c> refuses to move a meta parameter to a CPU storage, so parameters are made uninitialised on
/// their final device instead (memory the loader has not written yet is not resident: the kernel maps pages on first write).</item>
/// </list>
/// A parameter made <see cref="ForLoading"/> holds arbitrary bytes until written: only a loader that has validated that
/// every parameter has a stored tensor (<c>CheckpointWeights.Validate</c>) may use it.
/// </summary>
internal sealed class ParameterFactory
{
    private readonly ScalarType _dtype;
    private readonly Device? _device;

    private ParameterFactory(bool initialise, ScalarType dtype, Device? device)
    {
        Initialises = initialise;
        _dtype = dtype;
        _device = device;
    }

    /// <summary>TorchSharp's initialisation in float32 on the CPU (what the constructors did before this type existed).</summary>
    internal static ParameterFactory Initialised { get; } = new(true, ScalarType.Float32, null);

    /// <summary>Uninitialised parameters in <paramref name="dtype"/> on <paramref name="device"/> (null: the CPU), to be overwritten by a loader.</summary>
    internal static ParameterFactory ForLoading(ScalarType dtype, Device? device) => new(false, dtype, device);

    /// <summary>Whether parameters get initial values (false: uninitialised, <see cref="ForLoading"/>).</summary>
    internal bool Initialises { get; }

    /// <summary>A bias-free <c>nn.Linear(inputSize, outputSize)</c>: weight [outputSize, inputSize].</summary>
    internal Linear Linear(long inputSize, long outputSize) =>
        Initialises ? nn.Linear(inputSize, outputSize, hasBias: false) : nn.Linear(Empty(outputSize, inputSize));

    /// <summary>A bias-free <c>nn.Linear</c> whose weight is <paramref name="weight"/> (a loading factory's <see cref="Uninitialised"/> storage, or a view of it).</summary>
    internal static Linear Linear(Tensor weight) => nn.Linear(new Parameter(weight));

    /// <summary>An <c>nn.Embedding(count, dim)</c> (weight N(0, 1) when initialising).</summary>
    /// <remarks>
    /// For loading, TorchSharp's <c>nn.Embedding(count, dim)</c> and <c>nn.Embedding_from_pretrained</c> both run libtorch's
    /// <c>EmbeddingImpl</c> constructor, which allocates and N(0, 1)-initialises a float32 [count, dim] table (840 MB at
    /// DeepSeek-V2's 102400 × 2048) before any weight can be given. So the module is made at [0, dim] (an empty table:
    /// nothing allocated, no number drawn from the default generator) and its weight replaced by the uninitialised
    /// [count, dim] table: libtorch's embedding forward reads only the weight (this kit sets no padding_idx or max_norm),
    /// never the num_embeddings option the module was made with.
    /// </remarks>
    internal Embedding Embedding(long count, long dim)
    {
        if (Initialises) return nn.Embedding(count, dim);
        var embedding = nn.Embedding(0, dim);
        embedding.weight = Empty(count, dim);
        return embedding;
    }

    /// <summary>An <c>nn.LayerNorm(dim, eps)</c> (weight ones, bias zeros: two vectors, so it is initialised either way).</summary>
    internal LayerNorm LayerNorm(long dim, double eps) =>
        Initialises ? nn.LayerNorm(dim, eps: eps) : nn.LayerNorm(dim, eps: eps, device: _device, dtype: _dtype);

    /// <summary>A parameter of zeros in <paramref name="dtype"/> (null: the default dtype) when initialising, else uninitialised in the loading dtype.</summary>
    internal Parameter Zeros(long[] shape, ScalarType? dtype = null, bool requiresGrad = true)
    {
        if (!Initialises) return Empty(shape, requiresGrad);
        return new Parameter(dtype is { } dt ? zeros(shape, dtype: dt) : zeros(shape), requiresGrad);
    }

    /// <summary>A parameter of ones (float32) when initialising, else uninitialised in the loading dtype.</summary>
    internal Parameter Ones(params long[] shape) => Initialises ? new Parameter(ones(shape)) : Empty(shape);

    /// <summary>A parameter of uninitialised values in either mode (float32 on the CPU when initialising: its owner writes it).</summary>
    internal Parameter Empty(params long[] shape) => Empty(shape, requiresGrad: true);

    private Parameter Empty(long[] shape, bool requiresGrad)
    {
        using var t = Uninitialised(shape);
        return new Parameter(t, requiresGrad);
    }

    /// <summary>An uninitialised tensor (not a parameter) in this factory's dtype and device, e.g. one storage that several parameters view.</summary>
    internal Tensor Uninitialised(params long[] shape) =>
        Initialises ? empty(shape) : empty(shape, dtype: _dtype, device: _device);
}
