using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>
/// <see cref="Residency.Stream"/>: owns the checkpoint's open files and brings one block's parameters in when the
/// forward reaches the block, releasing them when the block is done. Generic over block kinds: a block's parameters are
/// whatever <c>named_parameters()</c> lists under <c>layers.{L}.</c> (MLA, lightning indexer, V4 compressed attention
/// with its compressor and indexer, hyper-connection mixing, dense MLP, MoE with softmax/sigmoid/hash gates), read with
/// the same name mapping and conversion as memory residency (<see cref="CheckpointWeights"/>).
/// <para>
/// A released parameter keeps its <see cref="Parameter"/> object (modules hold it in fields) but its storage is swapped
/// for an empty one (<c>set_</c>), so its shape reads [0] until the block is brought in again; the shapes the model
/// needs are kept here. Block parameters do not require gradients in stream mode: gradients flow to the inputs
/// (embeddings), block by block, through <see cref="StreamedBlockFunction"/>.
/// </para>
/// </summary>
internal sealed class BlockStreamer : IDisposable
{
    private readonly CheckpointWeights _weights;
    private readonly List<SafetensorsFile> _files;
    private readonly (string Name, Parameter Parameter, long[] Shape)[][] _blocks;
    private readonly int[] _depth;      // nesting count per block (a block brought in twice is released once, at the end)
    private readonly ScalarType _dtype;
    private readonly Device _device;
    private readonly object _lock = new();

    /// <param name="shapes">Every parameter's shape (the released block parameters' shapes were recorded before release).</param>
    internal BlockStreamer(DeepSeekModel model, CheckpointWeights weights, List<SafetensorsFile> files, IReadOnlyDictionary<string, long[]> shapes, ScalarType dtype, Device device)
    {
        _weights = weights;
        _files = files;
        _dtype = dtype;
        _device = device;
        int layers = model.Config.NumHiddenLayers;
        var perBlock = Enumerable.Range(0, layers).Select(_ => new List<(string, Parameter, long[])>()).ToArray();
        foreach (var (name, p) in model.named_parameters())
        {
            if (!TryLayer(name, out int layer)) continue;
            perBlock[layer].Add((name, p, shapes[name]));
        }
        _blocks = perBlock.Select(l => l.ToArray()).ToArray();
        _depth = new int[layers];
    }

    /// <summary>The layer index of a block parameter name (<c>layers.{L}.…</c>).</summary>
    internal static bool TryLayer(string name, out int layer)
    {
        layer = -1;
        if (!name.StartsWith("layers.", StringComparison.Ordinal)) return false;
        int dot = name.IndexOf('.', "layers.".Length);
        return dot > 0 && int.TryParse(name.AsSpan("layers.".Length, dot - "layers.".Length), out layer);
    }

    /// <summary>The shapes of every block parameter (what the released parameters would hold).</summary>
    internal IEnumerable<(string Name, long[] Shape)> BlockShapes => _blocks.SelectMany(b => b.Select(p => (p.Name, p.Shape)));

    /// <summary>Bytes of block parameters currently in use (0 between blocks; the reused buffer is <see cref="ArenaBytes"/>).</summary>
    internal long LiveBytes { get; private set; }

    /// <summary>Bytes of the one buffer blocks are read into in turn (0 before the first block is read).</summary>
    internal long ArenaBytes => _arena is null ? 0 : _arena.numel() * CheckpointWeights.ElementSize(_dtype);

    /// <summary>The most block-parameter bytes held at once since load (or since <see cref="ResetPeak"/>).</summary>
    internal long PeakLiveBytes { get; private set; }

    /// <summary>How many times block weights were read from the files (one per block per forward; one more per block per backward).</summary>
    internal int Reads { get; private set; }

    /// <summary>Test hook: called after a block's weights are in, with (layer, <see cref="LiveBytes"/>).</summary>
    internal Action<int, long>? BlockLoaded { get; set; }

    internal void ResetPeak() { lock (_lock) { PeakLiveBytes = LiveBytes; Reads = 0; } }

    /// <summary>The bytes block <paramref name="layer"/> takes in the compute dtype.</summary>
    internal long BlockBytes(int layer) => CheckpointWeights.Bytes(_blocks[layer].Select(p => p.Shape), _dtype);

    /// <summary>Brings block <paramref name="layer"/>'s weights in (read, converted, checked) until the returned scope is disposed.</summary>
    internal IDisposable Enter(int layer)
    {
        lock (_lock)
        {
            if (_depth[layer]++ == 0)
            {
                bool arena = _arenaLayer < 0;
                try
                {
                    if (arena) _arenaLayer = layer;
                    long offset = 0;
                    using (no_grad())
                        foreach (var (name, p, shape) in _blocks[layer])
                        {
                            using var t = arena && p.dtype == _dtype ? ArenaView(ref offset, shape) : empty(shape, dtype: p.dtype, device: _device);
                            _weights.ReadInto(name, t);
                            p.set_(t);
                        }
                }
                catch
                {
                    foreach (var (_, p, _) in _blocks[layer]) Release(p);
                    _depth[layer] = 0;
                    if (arena) _arenaLayer = -1;
                    throw;
                }
                LiveBytes += BlockBytes(layer);
                PeakLiveBytes = Math.Max(PeakLiveBytes, LiveBytes);
                Reads++;
                BlockLoaded?.Invoke(layer, LiveBytes);
            }
        }
        return new Scope(this, layer);
    }

    private readonly List<IDisposable> _pinned = new();

    /// <summary>
    /// Keeps block <paramref name="layer"/>'s weights in until <see cref="ReleasePinned"/>: a hook made a tensor inside
    /// the block require gradients (layer attribution at a block-internal hook point), so the graph from there on saved
    /// the block's weights; they stay valid until the model's next forward call (at most one extra block per call).
    /// </summary>
    internal void Pin(int layer)
    {
        lock (_lock) _pinned.Add(Enter(layer));
    }

    /// <summary>Releases the blocks <see cref="Pin"/> kept (called at the start of every streamed forward).</summary>
    internal void ReleasePinned()
    {
        lock (_lock)
        {
            foreach (var scope in _pinned) scope.Dispose();
            _pinned.Clear();
        }
    }

    private void Exit(int layer)
    {
        lock (_lock)
        {
            if (--_depth[layer] > 0) return;
            foreach (var (_, p, _) in _blocks[layer]) Release(p);
            LiveBytes -= BlockBytes(layer);
            if (_arenaLayer == layer) _arenaLayer = -1;
        }
    }

    // One buffer of the largest block's size, reused by every block in turn: reading a block then writes into memory
    // already mapped (no page faults on every block of every forward), and the process keeps one block's worth of
    // weights allocated between calls. A block brought in while another holds the arena (LoadBlockWeights during a
    // forward) gets fresh memory instead. Parameters point into it with set_, which bumps their version counters, so a
    // graph that saved a block's weights fails loudly ("modified by an inplace operation") instead of reading stale data.
    private Tensor? _arena;
    private int _arenaLayer = -1;
    private const long ArenaAlignment = 64;   // elements; keeps every parameter 64-element aligned

    private Tensor ArenaView(ref long offset, long[] shape)
    {
        if (_arena is null)
        {
            long largest = _blocks.Max(b => b.Sum(p => Aligned(p.Shape.Aggregate(1L, (x, y) => x * y))));
            _arena = empty(largest, dtype: _dtype, device: _device).DetachFromDisposeScope();   // outlives the forward that first needs it
        }
        long count = shape.Aggregate(1L, (x, y) => x * y);
        var view = _arena.narrow(0, offset, count).view(shape);
        offset += Aligned(count);
        return view;
    }

    private static long Aligned(long n) => (n + ArenaAlignment - 1) / ArenaAlignment * ArenaAlignment;

    private void Release(Parameter p)
    {
        using (no_grad())
        using (var nothing = empty(0, dtype: _dtype, device: _device))
            p.set_(nothing);
    }

    private sealed class Scope(BlockStreamer owner, int layer) : IDisposable
    {
        private bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            owner.Exit(layer);
        }
    }

    /// <summary>Closes the checkpoint files.</summary>
    public void Dispose()
    {
        _arena?.Dispose();
        foreach (var f in _files) f.Dispose();
    }
}
