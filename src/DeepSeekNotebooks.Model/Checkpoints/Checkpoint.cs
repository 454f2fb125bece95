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
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private const int FpBlock = 128;

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
            throw new ArgumentOutOfRangeException(nameof(options), options.Residency, "Residency must be Auto, Memory or Stream");
        if (options.Residency == Residency.Stream)
        {
            foreach (var f in files) f.Dispose();
            throw new NotSupportedException("Residency.Stream is not built yet (issue 12 §1); use Residency.Memory");
        }
        var residency = Residency.Memory;
        var residencyReason = options.Residency == Residency.Memory ? "residency: memory (as requested)" : "residency: memory (auto; streaming is not built yet)";
        try
        {
            var model = LoadWeights(config, files, layout, options);
            DeepSeekTokenizer? tokenizer = null;
            var tokenizerPath = Path.Combine(directory, "tokenizer.json");
            if (File.Exists(tokenizerPath))
            {
                try { tokenizer = DeepSeekTokenizer.FromFile(tokenizerPath); }
                catch { model.Dispose(); throw; }
                if (tokenizer.VocabularySize > config.VocabSize)
                {
                    tokenizer.Dispose();
                    model.Dispose();
                    throw new CheckpointException($"tokenizer.json has {tokenizer.VocabularySize} tokens but the model's vocab_size is {config.VocabSize}");
                }
            }
            return new Checkpoint(directory, layout, model, tokenizer, residency, residencyReason);
        }
        finally
        {
            foreach (var f in files)
            {
                f.Dispose();
                if (Path.GetFileName(f.Path).StartsWith(PickleTempPrefix, StringComparison.Ordinal)) File.Delete(f.Path);
            }
        }
    }

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

    private static DeepSeekModel LoadWeights(DeepSeekConfig config, List<SafetensorsFile> files, CheckpointLayout layout, CheckpointLoadOptions options)
    {
        int mtpLayers = config.NumNextnPredictLayers;
        // 1. Map every stored tensor to a model parameter name (or an FP8 scale) before allocating anything big.
        var sources = new Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Info)>();
        // transformers' packed experts (DeepSeek-V4): one stored tensor holds many parameters, each a contiguous slice.
        var slices = new Dictionary<string, (long ElementOffset, long[] Shape)>();
        var unexpected = new List<string>();
        foreach (var file in files)
        foreach (var info in file.Tensors)
        {
            string? name;
            int layer = -1;
            if (layout == CheckpointLayout.HuggingFace && WeightNames.PackedExperts.Match(info.Name) is { Success: true } packed)
            {
                layer = int.Parse(packed.Groups[1].Value);
                if (layer >= config.NumHiddenLayers && layer < config.NumHiddenLayers + mtpLayers) continue;
                if (info.Rank != 3 || (packed.Groups[2].Value == "gate_up_proj" && info.Shape[1] % 2 != 0))
                    throw new CheckpointException($"packed expert tensor {info.Name} has shape [{string.Join(", ", info.Shape)}]; expected [experts, 2·moe_intermediate_size, hidden_size] (gate_up_proj) or [experts, hidden_size, moe_intermediate_size] (down_proj)");
                long experts = info.Shape[0], rows = info.Shape[1], cols = info.Shape[2];
                for (long e = 0; e < experts; e++)
                {
                    var parts = packed.Groups[2].Value == "gate_up_proj"
                        ? new[] { ("w1", e * rows * cols, new[] { rows / 2, cols }), ("w3", e * rows * cols + rows / 2 * cols, new[] { rows / 2, cols }) }
                        : new[] { ("w2", e * rows * cols, new[] { rows, cols }) };
                    foreach (var (w, offset, shape) in parts)
                    {
                        var pname = $"layers.{layer}.ffn.experts.{e}.{w}.weight";
                        if (!sources.TryAdd(pname, (file, info)))
                            throw new CheckpointException($"expert weight {pname} is stored twice ({info.Name} and {sources[pname].Info.Name})");
                        slices[pname] = (offset, shape);
                    }
                }
                continue;
            }
            if (layout == CheckpointLayout.HuggingFace) name = WeightNames.FromHuggingFace(info.Name, out layer);
            else
            {
                name = info.Name;
                var m = Regex.Match(name, @"^layers\.(\d+)\.");
                if (m.Success) layer = int.Parse(m.Groups[1].Value);
                // DeepSeek-V4's official names keep the MTP layers apart: mtp.{i}.* (not run by the kit).
                var mtp = Regex.Match(name, @"^mtp\.(\d+)\.");
                if (mtp.Success && int.Parse(mtp.Groups[1].Value) < mtpLayers) continue;
            }
            if (layer >= config.NumHiddenLayers && layer < config.NumHiddenLayers + mtpLayers) continue; // multi-token-prediction module: not used for inference
            if (name is null) { unexpected.Add(info.Name); continue; }
            if (!sources.TryAdd(name, (file, info)))
                throw new CheckpointException($"tensor {info.Name} is stored twice ({sources[name].File.Path} and {file.Path})");
        }

        var model = DeepSeekModel.CreateEmpty(config);
        try
        {
            var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            unexpected.AddRange(sources.Keys.Where(k => !parameters.ContainsKey(k) && !IsScaleOf(k, parameters)).Select(k => DisplayName(k, layout)));
            if (unexpected.Count > 0)
                throw new CheckpointException(
                    $"the checkpoint has {unexpected.Count} tensor(s) this configuration does not use: {string.Join(", ", unexpected.Take(8))}{(unexpected.Count > 8 ? ", …" : "")} (check that config.json matches the weights)");
            var missing = parameters.Keys.Where(k => !sources.ContainsKey(k)).Select(k => DisplayName(k, layout)).ToList();
            if (missing.Count > 0)
                throw new CheckpointException(
                    $"the checkpoint is missing {missing.Count} tensor(s): {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", …" : "")}");
            foreach (var (name, p) in parameters)
            {
                var info = sources[name].Info;
                if (slices.TryGetValue(name, out var slice))
                {
                    if (!slice.Shape.SequenceEqual(p.shape))
                        throw new CheckpointException(
                            $"packed expert tensor {info.Name} holds [{string.Join(", ", slice.Shape)}] per expert but this configuration needs [{string.Join(", ", p.shape)}] for {name}");
                    continue;
                }
                if (IsPackedFp4(info, p)) continue;   // checked with its scale when read
                if (!info.Shape.SequenceEqual(p.shape))
                    throw new CheckpointException(
                        $"tensor {info.Name} has shape [{string.Join(", ", info.Shape)}] but this configuration needs [{string.Join(", ", p.shape)}]");
            }

            // 2. Read each tensor straight into the parameter's native memory.
            using (no_grad())
            {
                int done = 0;
                foreach (var (name, p) in parameters)
                {
                    var (file, info) = sources[name];
                    if (IsPackedFp4(info, p))
                    {
                        var scaleName = name[..^".weight".Length] + ".scale";
                        if (!sources.TryGetValue(scaleName, out var scale))
                            throw new CheckpointException($"packed FP4 tensor {info.Name} (int8, two e2m1 values per byte) has no scale ({DisplayName(scaleName, layout)}, one ue8m0 per 32 inputs)");
                        DequantizeFp4(p, file, info, scale.File, scale.Info);
                    }
                    else if (info.DType is SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2)
                    {
                        var scaleName = name[..^".weight".Length] + ".scale";
                        if (!sources.TryGetValue(scaleName, out var scale))
                            throw new CheckpointException($"FP8 tensor {info.Name} has no block scale ({DisplayName(scaleName, layout)})");
                        ReadInto(p, file, info);
                        Dequantize(p, scale.File, scale.Info);
                    }
                    else
                    {
                        ReadInto(p, file, info, slices.TryGetValue(name, out var slice) ? slice.ElementOffset : 0);
                    }
                    using (var finite = p.isfinite().all())
                        if (!finite.item<bool>())
                            throw new CheckpointException($"tensor {info.Name} contains NaN or infinite values");
                    if (name.EndsWith(".gate.tid2eid", StringComparison.Ordinal))
                        using (var bad = p.ne(p.round()).logical_or(p.lt(0)).logical_or(p.ge(config.NRoutedExperts)).any())
                            if (bad.item<bool>())
                                throw new CheckpointException($"hash table {info.Name} holds a value that is not an expert id in [0, {config.NRoutedExperts - 1}] (n_routed_experts {config.NRoutedExperts})");
                    options.Progress?.Report((++done, parameters.Count));
                }
            }
            if (options.DType != ScalarType.Float32) model.to(options.DType);
            if (options.Device is { } device && device.type != DeviceType.CPU) model.to(device);
            model.Quantisation = options.Quantisation;
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static bool IsScaleOf(string name, Dictionary<string, TorchSharp.Modules.Parameter> parameters) =>
        name.EndsWith(".scale", StringComparison.Ordinal) && parameters.ContainsKey(name[..^".scale".Length] + ".weight");

    private static string DisplayName(string name, CheckpointLayout layout)
    {
        if (layout == CheckpointLayout.Official) return name;
        if (name.EndsWith(".scale", StringComparison.Ordinal))
            return WeightNames.ToHuggingFace(name[..^".scale".Length] + ".weight") + "_scale_inv";
        return WeightNames.ToHuggingFace(name);
    }

    /// <summary>Streams a stored tensor into a float32 parameter: F32 bytes go straight to native memory; other dtypes convert chunk by chunk.</summary>
    private static void ReadInto(Tensor destination, SafetensorsFile file, SafetensorsTensorInfo info, long elementOffset = 0)
    {
        long rows = destination.dim() == 0 ? 1 : destination.shape[0];
        long rowElements = rows == 0 ? 0 : destination.numel() / rows;
        int elementSize = info.DType.ElementSize();
        long maxRows = Math.Max(1, (1L << 24) / Math.Max(1, rowElements * 4)); // ≤ 16 MiB of float32 per chunk
        var flat = destination.dim() == 0 ? destination.view(1) : destination;
        for (long r = 0; r < rows; r += maxRows)
        {
            long count = Math.Min(maxRows, rows - r);
            using var chunk = flat.narrow(0, r, count);
            var target = MemoryMarshal.Cast<byte, float>(chunk.bytes);
            long byteOffset = (elementOffset + r * rowElements) * elementSize;
            if (info.DType == SafetensorsDType.F32)
            {
                file.ReadBytes(info, byteOffset, MemoryMarshal.AsBytes(target));
                continue;
            }
            var raw = ArrayPool<byte>.Shared.Rent(target.Length * elementSize);
            try
            {
                var span = raw.AsSpan(0, target.Length * elementSize);
                file.ReadBytes(info, byteOffset, span);
                SafetensorsDTypes.ConvertToFloat32(info.DType, span, target);
            }
            finally { ArrayPool<byte>.Shared.Return(raw); }
        }
    }

    /// <summary>DeepSeek-V4's FP4 expert weights: int8 [out, in/2], two e2m1 codes per byte (low nibble first).</summary>
    private static bool IsPackedFp4(SafetensorsTensorInfo info, Tensor p) =>
        info.DType == SafetensorsDType.I8 && info.Rank == 2 && p.dim() == 2 && info.Shape[0] == p.shape[0] && info.Shape[1] * 2 == p.shape[1];

    /// <summary>
    /// weight[o, i] = FP4_TABLE[nibble i of row o] · scale[o, i / 32] (DeepSeek-V4 <c>inference/convert.py</c>: the low
    /// nibble of byte j is input 2j, the high nibble input 2j + 1; scales are ue8m0, one per 32 inputs).
    /// </summary>
    private static void DequantizeFp4(Tensor weight, SafetensorsFile file, SafetensorsTensorInfo info, SafetensorsFile scaleFile, SafetensorsTensorInfo scaleInfo)
    {
        const int Block = 32;
        long rows = weight.shape[0], cols = weight.shape[1];
        if (cols % Block != 0 || !scaleInfo.Shape.SequenceEqual(new[] { rows, cols / Block }))
            throw new CheckpointException($"FP4 scale {scaleInfo.Name} has shape [{string.Join(", ", scaleInfo.Shape)}] but a [{rows}, {cols}] FP4 weight needs [{rows}, {cols / Block}] (one scale per {Block} inputs)");
        using var scope = NewDisposeScope();
        var scale = empty(rows, cols / Block, dtype: float32);
        ReadInto(scale, scaleFile, scaleInfo);
        var packed = new byte[rows * cols / 2];
        file.ReadBytes(info, 0, packed);
        var values = new float[rows * cols];
        var table = Fp8.E2M1Table;
        for (long j = 0; j < packed.Length; j++)
        {
            values[2 * j] = table[packed[j] & 0xF];
            values[2 * j + 1] = table[packed[j] >> 4];
        }
        var w = tensor(values, rows, cols) * scale.repeat_interleave(Block, 1);
        weight.copy_(w);
    }

    /// <summary>weight ← weight · scale_inv expanded over 128×128 blocks (DeepSeek's <c>weight_dequant</c>).</summary>
    private static void Dequantize(Tensor weight, SafetensorsFile file, SafetensorsTensorInfo scaleInfo)
    {
        long m = weight.shape[0], n = weight.shape[1];
        long[] expected = { (m + FpBlock - 1) / FpBlock, (n + FpBlock - 1) / FpBlock };
        if (!scaleInfo.Shape.SequenceEqual(expected))
            throw new CheckpointException($"block scale {scaleInfo.Name} has shape [{string.Join(", ", scaleInfo.Shape)}] but a [{m}, {n}] FP8 weight needs [{expected[0]}, {expected[1]}]");
        using var scope = NewDisposeScope();
        var scale = empty(expected, dtype: float32);
        ReadInto(scale, file, scaleInfo);
        var full = scale.repeat_interleave(FpBlock, 0).narrow(0, 0, m).repeat_interleave(FpBlock, 1).narrow(1, 0, n);
        weight.mul_(full);
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
        finally { Model.Dispose(); }
    }
}
