using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Model.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>How to load a checkpoint.</summary>
public sealed record CheckpointLoadOptions
{
    /// <summary>Compute dtype of the loaded model; weights stored as bf16/fp16/FP8 are converted (default float32).</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;
    /// <summary>
    /// Allow loading PyTorch pickle files (<c>.bin</c>/<c>.pt</c>). Off by default: unpickling can run arbitrary code
    /// from the file; only enable it for files you trust, or convert them to safetensors.
    /// </summary>
    public bool AllowPickle { get; init; }
    /// <summary>Reports (tensors loaded, total) while weights are read.</summary>
    public IProgress<(int Done, int Total)>? Progress { get; init; }
    /// <summary>
    /// The activation rounding the loaded model simulates (<see cref="DeepSeekModel.Quantisation"/>): the official code's
    /// FP8/FP4 rounding for DeepSeek-V3.2/V4 (default) or plain float; no effect on V2/V3.
    /// </summary>
    public Modules.QuantisationSimulation Quantisation { get; init; } = Modules.QuantisationSimulation.Official;
    /// <summary>Where the weights live while the model computes (<see cref="Checkpoints.Residency"/>; default <see cref="Residency.Auto"/>).</summary>
    public Residency Residency { get; init; } = Residency.Auto;
    /// <summary>The device the model computes on (default CPU); inputs are moved to it by the kit's entry points.</summary>
    public Device? Device { get; init; }
}

/// <summary>A problem with a checkpoint directory's contents (missing/unexpected tensors, wrong shapes, non-finite values, layout).</summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// A loaded checkpoint: the model, its layout and (if <c>tokenizer.json</c> is present) its tokenizer.
/// Loads the Hugging Face DeepSeek layout (<c>config.json</c> + <c>model.safetensors</c> or shards listed in
/// <c>model.safetensors.index.json</c>) and the official inference code's layout (<c>model0-mp1.safetensors</c> + a
/// <c>ModelArgs</c> JSON), detected from the files. bf16/fp16 weights are converted to the compute dtype; FP8 (E4M3)
/// weights with <c>weight_scale_inv</c> per 128×128 block are dequantised on load as DeepSeek's <c>fp8_cast_bf16.py</c>
/// does. Loading is all-or-nothing: every problem is found before the model is returned.
/// <para>
/// Residency (<see cref="CheckpointLoadOptions.Residency"/>): in memory every weight is read once, here; streamed, only
/// the embedding, final norm, head (and V4's mHC head) are read here, every block's names and shapes are validated from
/// the file headers, and each block's weights are read (and checked for NaN/Inf) when a forward reaches the block and
/// released after it. A streamed checkpoint keeps its files open until it is disposed.
/// </para>
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private Checkpoint(string directory, CheckpointLayout layout, DeepSeekModel model, DeepSeekTokenizer? tokenizer,
        Residency residency, string residencyReason)
    {
        Residency = residency;
        ResidencyReason = residencyReason;
        Directory = directory;
        Layout = layout;
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>The directory loaded.</summary>
    public string Directory { get; }
    /// <summary>The detected layout.</summary>
    public CheckpointLayout Layout { get; }
    /// <summary>The model, in eval mode.</summary>
    public DeepSeekModel Model { get; }
    /// <summary>The tokenizer, or null when the directory has no <c>tokenizer.json</c> (work on token ids then).</summary>
    public DeepSeekTokenizer? Tokenizer { get; }
    /// <summary>The model's configuration.</summary>
    public DeepSeekConfig Config => Model.Config;
    /// <summary>The residency the model was loaded with (<see cref="Residency.Auto"/> resolved to Memory or Stream).</summary>
    public Residency Residency { get; }
    /// <summary>One line saying which residency was chosen and why (what <see cref="Residency.Auto"/> printed).</summary>
    public string ResidencyReason { get; }

    /// <summary>Detects the layout of a checkpoint directory from its files.</summary>
    public static CheckpointLayout DetectLayout(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new CheckpointException($"checkpoint directory not found: {directory}");
        bool Has(string pattern) => System.IO.Directory.EnumerateFiles(directory, pattern).Any();
        if (Has("model*-mp*.safetensors")) return CheckpointLayout.Official;
        if (File.Exists(Path.Combine(directory, "model.safetensors")) || File.Exists(Path.Combine(directory, "model.safetensors.index.json")) || Has("*.safetensors"))
            return CheckpointLayout.HuggingFace;
        if (Has("*.bin") || Has("*.pt") || Has("*.pth"))
            return CheckpointLayout.HuggingFace;
        throw new CheckpointException(
            $"{directory} holds no checkpoint: expected config.json + model.safetensors (Hugging Face layout) or model0-mp1.safetensors + a ModelArgs JSON (official layout)");
    }

    /// <summary>Loads a checkpoint directory (layout detected from its files).</summary>
    /// <exception cref="CheckpointException">Missing/unexpected tensors, wrong shapes, NaN/Inf values, pickle files without opt-in.</exception>
    /// <exception cref="CheckpointFormatException">A safetensors file is truncated or corrupt.</exception>
    /// <exception cref="ConfigException">The configuration is missing or invalid.</exception>
    public static Checkpoint Load(string directory, CheckpointLoadOptions? options = null)
    {
        options ??= new CheckpointLoadOptions();
        TorchRuntime.EnsureLoaded();
        directory = Path.GetFullPath(directory);
        var layout = DetectLayout(directory);
        var (config, files) = layout == CheckpointLayout.Official ? ReadOfficial(directory) : ReadHuggingFace(directory, options);
        if (!Enum.IsDefined(options.Residency))
        {
            foreach (var f in files) f.Dispose();
            throw new ArgumentOutOfRangeException(nameof(options), options.Residency, "Residency must be Auto, Memory or Stream");
        }
        bool filesOwnedByModel = false;
        try
        {
            var (model, residency, residencyReason) = LoadWeights(config, files, layout, options);
            filesOwnedByModel = residency == Residency.Stream;
            DeepSeekTokenizer? tokenizer = null;
            var tokenizerPath = Path.Combine(directory, "tokenizer.json");
            if (File.Exists(tokenizerPath))
            {
                try { tokenizer = DeepSeekTokenizer.FromFile(tokenizerPath); }
                catch { model.Dispose(); filesOwnedByModel = false; throw; }
                if (tokenizer.VocabularySize > config.VocabSize)
                {
                    tokenizer.Dispose();
                    model.Dispose();
                    filesOwnedByModel = false;
                    throw new CheckpointException($"tokenizer.json has {tokenizer.VocabularySize} tokens but the model's vocab_size is {config.VocabSize}");
                }
            }
            return new Checkpoint(directory, layout, model, tokenizer, residency, residencyReason);
        }
        finally
        {
            foreach (var f in files)
            {
                // A streamed model reads its blocks from the files until the checkpoint is disposed; Linux keeps an unlinked
                // pickle conversion readable through the open handle.
                if (!filesOwnedByModel) f.Dispose();
                if (Path.GetFileName(f.Path).StartsWith(PickleTempPrefix, StringComparison.Ordinal)) File.Delete(f.Path);
            }
        }
    }

    /// <summary>
    /// The <see cref="Residency.Auto"/> rule: stream when the model's parameters in the compute dtype would take more than
    /// half of the memory available, otherwise keep them in memory. Returns the choice and the one line saying why.
    /// </summary>
    internal static (Residency Residency, string Reason) ChooseResidency(Residency requested, long parameterBytes, long? availableBytes, ScalarType dtype)
    {
        string Gb(long b) => $"{b / 1e9:F2} GB";
        string dt = dtype == ScalarType.BFloat16 ? "bf16" : dtype == ScalarType.Float32 ? "f32" : dtype.ToString();
        switch (requested)
        {
            case Residency.Memory: return (Residency.Memory, $"residency: memory (as requested; the weights take {Gb(parameterBytes)} in {dt})");
            case Residency.Stream: return (Residency.Stream, $"residency: stream (as requested; the weights take {Gb(parameterBytes)} in {dt})");
        }
        if (availableBytes is not { } available)
            return (Residency.Memory, $"residency: memory (auto: available memory unknown; the weights take {Gb(parameterBytes)} in {dt})");
        return parameterBytes > available / 2
            ? (Residency.Stream, $"residency: stream (auto: the weights take {Gb(parameterBytes)} in {dt}, more than half of the {Gb(available)} available)")
            : (Residency.Memory, $"residency: memory (auto: the weights take {Gb(parameterBytes)} in {dt}, at most half of the {Gb(available)} available)");
    }

    /// <summary>MemAvailable from /proc/meminfo (Linux), else what the .NET runtime reports as available; null if neither is known.</summary>
    internal static long? AvailableMemoryBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2 && long.TryParse(parts[1], out long kb)) return kb * 1024;
                }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return total > 0 ? total : null;
    }

    /// <summary>
    /// Returns free native heap pages to the OS (glibc <c>malloc_trim</c>): a block's parameters are allocated between
    /// other allocations, so once released their pages stay in the process unless trimmed. No-op where libc has no such call.
    /// </summary>
    internal static void TrimNativeHeap()
    {
        if (!OperatingSystem.IsLinux()) return;
        try { malloc_trim(0); }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    private const string PickleTempPrefix = "deepseek-notebooks-pickle-";

    private static (DeepSeekConfig, List<SafetensorsFile>) ReadOfficial(string directory)
    {
        var shards = System.IO.Directory.GetFiles(directory, "model*-mp*.safetensors").Order().ToList();
        var mp = Regex.Match(Path.GetFileName(shards[0]), @"-mp(\d+)\.safetensors$");
        if (shards.Count != 1 || !mp.Success || mp.Groups[1].Value != "1")
            throw new CheckpointException(
                $"{directory} holds model-parallel shards ({string.Join(", ", shards.Select(Path.GetFileName))}); only model0-mp1.safetensors is supported: re-run DeepSeek's convert.py with --model-parallel 1");
        var file = SafetensorsFile.Open(shards[0]);
        try
        {
            var argsFile = System.IO.Directory.GetFiles(directory, "*.json")
                .FirstOrDefault(f => JsonNode.Parse(File.ReadAllText(f)) is JsonObject o && o.ContainsKey("dim") && o.ContainsKey("n_layers"))
                ?? throw new CheckpointException($"{directory} has {Path.GetFileName(shards[0])} but no ModelArgs JSON (a .json file with \"dim\" and \"n_layers\", as inference/configs/*.json)");
            bool hasBias = file.Tensors.Any(t => t.Name.EndsWith(".ffn.gate.bias", StringComparison.Ordinal));
            DeepSeekConfig config;
            try { config = DeepSeekConfig.FromModelArgsJson(File.ReadAllText(argsFile), hasBias); }
            catch (ConfigException e) { throw new ConfigException(e.Field, e.Problem, argsFile); }
            return (config, new List<SafetensorsFile> { file });
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static (DeepSeekConfig, List<SafetensorsFile>) ReadHuggingFace(string directory, CheckpointLoadOptions options)
    {
        var config = DeepSeekConfig.Load(Path.Combine(directory, "config.json"));
        var index = Path.Combine(directory, "model.safetensors.index.json");
        List<string> paths;
        if (File.Exists(index))
        {
            JsonObject map;
            try { map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject ?? throw new CheckpointException($"{index} has no \"weight_map\" object"); }
            catch (JsonException e) { throw new CheckpointException($"{index} is not valid JSON: {e.Message}"); }
            paths = map.Select(kv => kv.Value?.GetValue<string>() ?? "").Distinct().Order()
                .Select(f => Path.Combine(directory, f)).ToList();
            foreach (var p in paths.Where(p => !File.Exists(p)))
                throw new CheckpointException($"{index} lists shard {Path.GetFileName(p)}, which is not in {directory}");
        }
        else
        {
            paths = System.IO.Directory.GetFiles(directory, "*.safetensors").Order().ToList();
        }
        if (paths.Count == 0)
        {
            var pickles = System.IO.Directory.GetFiles(directory).Where(f => f.EndsWith(".bin") || f.EndsWith(".pt") || f.EndsWith(".pth")).ToList();
            if (pickles.Count > 0 && !options.AllowPickle)
                throw new CheckpointException(
                    $"{directory} holds only PyTorch pickle weights ({string.Join(", ", pickles.Select(Path.GetFileName))}). Unpickling can execute arbitrary code " +
                    "stored in the file, so it is refused by default: convert the weights to safetensors, or pass AllowPickle = true (CLI: --allow-pickle) if you trust the file.");
            if (pickles.Count > 0)
                paths = new List<string> { ConvertPickles(pickles) };
            else throw new CheckpointException($"{directory} has config.json but no model.safetensors");
        }
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (var p in paths) files.Add(SafetensorsFile.Open(p));
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
        return (config, files);
    }

    /// <summary>
    /// Opt-in only: reads PyTorch pickle state dicts with TorchSharp.PyBridge's restricted unpickler and writes them to one
    /// temporary float32 safetensors file, which then goes through the same validation as any other checkpoint.
    /// </summary>
    private static string ConvertPickles(IReadOnlyList<string> pickles)
    {
        var tmp = Path.Combine(Path.GetTempPath(), $"{PickleTempPrefix}{Guid.NewGuid():N}.safetensors");
        var writer = new SafetensorsWriter();
        var keep = new List<Tensor>();
        try
        {
            foreach (var file in pickles)
            {
                System.Collections.Hashtable dict;
                try { dict = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(file); }
                catch (Exception e) { throw new CheckpointException($"{file} could not be read as a PyTorch state dict: {e.Message}", e); }
                foreach (System.Collections.DictionaryEntry entry in dict)
                {
                    if (entry.Value is not Tensor t) continue;
                    var f = t.detach().to(float32).contiguous();
                    keep.Add(f);
                    writer.AddFloat32((string)entry.Key, f.shape, f.data<float>().ToArray());
                }
            }
            writer.WriteTo(tmp);
            return tmp;
        }
        finally
        {
            foreach (var t in keep) t.Dispose();
        }
    }

    private static (DeepSeekModel Model, Residency Residency, string Reason) LoadWeights(DeepSeekConfig config, List<SafetensorsFile> files, CheckpointLayout layout, CheckpointLoadOptions options)
    {
        // 1. Map every stored tensor to a model parameter name (or an FP8 scale) before allocating anything big.
        var weights = CheckpointWeights.Map(config, files, layout, out var unexpected);
        long parameterBytes = CheckpointWeights.Bytes(weights.StoredParameterShapes(), options.DType);
        var (residency, reason) = ChooseResidency(options.Residency, parameterBytes,
            options.Residency == Residency.Auto ? AvailableMemoryBytes() : null, options.DType);
        var device = options.Device ?? CPU;
        bool stream = residency == Residency.Stream;

        // 2. Build the model with uninitialised parameters made directly in the compute dtype and device (no random
        //    initialisation, no float32 copy converted afterwards: DeepSeekModel.CreateEmpty), block by block; every one is
        //    written in step 4 or, streamed, when its block is brought in, and step 3 refuses a checkpoint that lacks any.
        //    A streamed block's storage is released as soon as the block is built (its shapes are kept); its memory was
        //    never written, so it never became resident.
        var shapes = new Dictionary<string, long[]>();
        DeepSeekModel model = DeepSeekModel.CreateEmpty(config, options.DType, options.Device, block =>
        {
            if (!stream) return;
            using (no_grad())
                foreach (var (name, p) in block.named_parameters())
                {
                    shapes[$"{block.GetName()}.{name}"] = p.shape;
                    using var nothing = empty(0, dtype: p.dtype, device: p.device);
                    p.set_(nothing);
                    p.requires_grad_(false);
                }
            TrimNativeHeap();
        });
        try
        {
            var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in parameters) shapes.TryAdd(name, p.shape);
            // 3. Validate names and shapes of every parameter (streamed blocks too) without reading data.
            weights.Validate(shapes, unexpected);
            // Streamed, the embedding and head stay in the files' dtype when it is narrower than the compute dtype (bf16
            // files, float32 compute: half the resident bytes); the model converts the rows and head chunks it uses.
            if (stream && weights.StoredFloatDType("embed.weight") is { } stored
                && CheckpointWeights.ElementSize(stored) < CheckpointWeights.ElementSize(options.DType)
                && (config.TieWordEmbeddings || weights.StoredFloatDType("head.weight") == stored))
            {
                model.HoldEmbeddingAndHeadIn(stored);
                parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            }

            // 4. Memory: read each tensor into its parameter. Stream: only the non-block parameters; blocks come in per forward.
            using (no_grad())
            using (weights.ReuseStaging())
            {
                int done = 0, total = stream ? parameters.Keys.Count(n => !BlockStreamer.TryLayer(n, out _)) : parameters.Count;
                foreach (var (name, p) in parameters)
                {
                    if (stream && BlockStreamer.TryLayer(name, out _)) continue;
                    weights.ReadInto(name, p);
                    options.Progress?.Report((++done, total));
                }
            }
            if (stream) model.AttachStreamer(new BlockStreamer(model, weights, files, shapes, options.DType, device));
            model.Quantisation = options.Quantisation;
            return (model, residency, reason);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Saves a model as a checkpoint directory in the given layout (float32 safetensors + config), writing each file to a
    /// temporary name first and moving it into place, so a failure leaves no partial checkpoint. Copies
    /// <paramref name="tokenizerJson"/> (a path) into the directory when given.
    /// </summary>
    public static void Save(DeepSeekModel model, string directory, CheckpointLayout layout = CheckpointLayout.HuggingFace,
        string? tokenizerJson = null, IReadOnlyDictionary<string, string>? metadata = null)
    {
        System.IO.Directory.CreateDirectory(directory);
        var writer = new SafetensorsWriter();
        writer.SetMetadata("format", "pt");
        if (metadata is not null)
            foreach (var (k, v) in metadata) writer.SetMetadata(k, v);
        var tensors = new List<Tensor>();
        try
        {
            foreach (var (name, p) in model.named_parameters())
            {
                var t = p.detach().to(float32).contiguous();
                tensors.Add(t);
                var fileName = layout == CheckpointLayout.HuggingFace ? WeightNames.ToHuggingFace(name, model.Config.CompressedAttention is not null || model.Config.HyperConnections is not null) : name;
                writer.Add(fileName, SafetensorsDType.F32, t.shape, t.numel() * 4, stream =>
                {
                    long rows = t.dim() == 0 ? 1 : t.shape[0];
                    var flat = t.dim() == 0 ? t.view(1) : t;
                    long perChunk = Math.Max(1, (1L << 24) / Math.Max(1, t.numel() / Math.Max(1, rows) * 4));
                    for (long r = 0; r < rows; r += perChunk)
                    {
                        using var chunk = flat.narrow(0, r, Math.Min(perChunk, rows - r));
                        stream.Write(chunk.bytes);
                    }
                });
            }
            var weightsFile = layout == CheckpointLayout.HuggingFace ? "model.safetensors" : "model0-mp1.safetensors";
            writer.WriteTo(Path.Combine(directory, weightsFile));
            DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(Path.Combine(directory, "config.json"),
                layout == CheckpointLayout.HuggingFace ? model.Config.ToJson() : model.Config.ToModelArgsJson());
            if (tokenizerJson is not null && Path.GetFullPath(tokenizerJson) != Path.GetFullPath(Path.Combine(directory, "tokenizer.json")))
                DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(Path.Combine(directory, "tokenizer.json"), File.ReadAllText(tokenizerJson));
        }
        finally
        {
            foreach (var t in tensors) t.Dispose();
        }
    }

    /// <summary>Releases the model's native tensors and the native tokenizer.</summary>
    public void Dispose()
    {
        try { Tokenizer?.Dispose(); }
        finally
        {
            try { Model.Dispose(); }
            finally { Model.Streamer?.Dispose(); }
        }
    }
}
