using System.Text.Json;
using System.Text.Json.Nodes;

namespace DeepSeekNotebooks.Model.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> (the format DeepSeek ships) loaded through the Rust <c>tokenizers</c> library
/// (via Tokenizers.DotNet): text ↔ token ids, and the display string of each id.
/// </summary>
public sealed class DeepSeekTokenizer : IDisposable
{
    private static int s_live;
    private readonly Tokenizers.DotNet.Tokenizer _tokenizer;
    private readonly Dictionary<int, string> _idToToken;
    private readonly long[] _specialPrefix, _specialSuffix;
    private readonly bool _libraryAddsSpecial;
    private int _disposed;

    private DeepSeekTokenizer(string path, Tokenizers.DotNet.Tokenizer tokenizer, Dictionary<int, string> idToToken, long[] prefix, long[] suffix, long? padTokenId = null)
    {
        Path = path;
        PadTokenId = padTokenId;
        _tokenizer = tokenizer;
        _idToToken = idToToken;
        _specialPrefix = prefix;
        _specialSuffix = suffix;
        Interlocked.Increment(ref s_live);
        // Whether the native binding runs the post-processor with add_special_tokens: the empty text encodes to exactly the
        // template's special tokens if it does, to nothing if it does not.
        _libraryAddsSpecial = prefix.Length + suffix.Length > 0 && Encode("").SequenceEqual(prefix.Concat(suffix));
    }

    /// <summary>Native tokenizers created by this class and not yet disposed, process-wide (for the native-memory tests).</summary>
    internal static int LiveCount => Volatile.Read(ref s_live);

    /// <summary>The file loaded.</summary>
    public string Path { get; }
    /// <summary>Number of ids the tokenizer can produce (largest id + 1).</summary>
    public int VocabularySize => _idToToken.Count == 0 ? 0 : _idToToken.Keys.Max() + 1;

    /// <summary>
    /// The padding token's id, or null when the tokenizer has none. Found, in order: <c>pad_token</c> of a
    /// <c>tokenizer_config.json</c> next to the file (Hugging Face's <c>PreTrainedTokenizer.pad_token_id</c>; DeepSeek-V3
    /// names <c>&lt;｜end▁of▁sentence｜&gt;</c> there), <c>padding.pad_id</c> of the tokenizer.json, or a special added token
    /// spelled pad (<c>&lt;|pad|&gt;</c>, <c>&lt;pad&gt;</c>, <c>[PAD]</c>, …).
    /// </summary>
    public long? PadTokenId { get; }

    /// <summary>Loads a <c>tokenizer.json</c>; throws <see cref="InvalidDataException"/> naming the file if it is not a valid one.</summary>
    public static DeepSeekTokenizer FromFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file not found: {path}", path);
        var idToToken = new Dictionary<int, string>();
        long[] prefix, suffix;
        long? pad;
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                       ?? throw new InvalidDataException($"{path} is not a tokenizer.json object");
            if (root["model"]?["vocab"] is JsonObject vocab)
                foreach (var (token, id) in vocab) idToToken[id!.GetValue<int>()] = token;
            if (root["added_tokens"] is JsonArray added)
                foreach (var t in added.OfType<JsonObject>()) idToToken[t["id"]!.GetValue<int>()] = t["content"]!.GetValue<string>();
            (prefix, suffix) = SpecialTemplate(root["post_processor"]);
            pad = PadToken(path, root, idToToken);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path} is not a valid tokenizer.json: {e.Message}", e);
        }
        Tokenizers.DotNet.Tokenizer tokenizer;
        try { tokenizer = new Tokenizers.DotNet.Tokenizer(path); }
        catch (Exception e) { throw new InvalidDataException($"{path} could not be loaded by the tokenizers library: {e.Message}", e); }
        return new DeepSeekTokenizer(path, tokenizer, idToToken, prefix, suffix, pad);
    }

    private static long? PadToken(string path, JsonObject root, Dictionary<int, string> idToToken)
    {
        long? IdOf(string content) => idToToken.FirstOrDefault(kv => kv.Value == content) is { Value: not null } kv ? kv.Key : null;
        var configPath = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, "tokenizer_config.json");
        if (File.Exists(configPath) && JsonNode.Parse(File.ReadAllText(configPath)) is JsonObject config)
        {
            var named = config["pad_token"] switch
            {
                JsonValue v when v.TryGetValue<string>(out var text) => text,
                JsonObject o => (string?)o["content"],
                _ => null,
            };
            if (named is not null && IdOf(named) is { } fromConfig) return fromConfig;
        }
        if (root["padding"] is JsonObject padding && padding["pad_id"] is JsonValue padId && padId.TryGetValue<int>(out var id)) return id;
        if (root["added_tokens"] is JsonArray added)
            foreach (var t in added.OfType<JsonObject>())
            {
                bool special = t["special"] is JsonValue sv && sv.TryGetValue<bool>(out var b) && b;
                var letters = new string(((string?)t["content"] ?? "").Where(char.IsLetter).ToArray());
                if (special && letters.Equals("pad", StringComparison.OrdinalIgnoreCase)) return t["id"]!.GetValue<int>();
            }
        return null;
    }

    /// <summary>Encodes text to token ids.</summary>
    public long[] Encode(string text) => _tokenizer.Encode(text).Select(i => (long)i).ToArray();

    /// <summary>
    /// Encodes text to token ids, with or without the special tokens of the tokenizer's post-processor template
    /// (<c>post_processor</c> <c>TemplateProcessing</c>, e.g. DeepSeek's <c>&lt;｜begin▁of▁sentence｜&gt;</c>), as the
    /// reference library's <c>encode(text, add_special_tokens)</c>.
    /// </summary>
    public long[] Encode(string text, bool addSpecialTokens)
    {
        var ids = Encode(text);
        if (addSpecialTokens == _libraryAddsSpecial) return ids;
        if (addSpecialTokens) return [.. _specialPrefix, .. ids, .. _specialSuffix];
        return ids[_specialPrefix.Length..^_specialSuffix.Length];
    }

    /// <summary>The special-token ids before and after the sequence in the post-processor's single-sequence template.</summary>
    private static (long[] Prefix, long[] Suffix) SpecialTemplate(JsonNode? processor)
    {
        if (processor is not JsonObject p) return ([], []);
        if ((string?)p["type"] == "Sequence" && p["processors"] is JsonArray list)
        {
            foreach (var inner in list)
            {
                var t = SpecialTemplate(inner);
                if (t.Prefix.Length + t.Suffix.Length > 0) return t;
            }
            return ([], []);
        }
        if ((string?)p["type"] != "TemplateProcessing" || p["single"] is not JsonArray single) return ([], []);
        var specials = p["special_tokens"] as JsonObject;
        List<long> prefix = new(), suffix = new();
        bool seenSequence = false;
        foreach (var piece in single.OfType<JsonObject>())
        {
            if (piece.ContainsKey("Sequence")) { seenSequence = true; continue; }
            var id = (string?)piece["SpecialToken"]?["id"];
            if (id is null) continue;
            var ids = specials?[id]?["ids"] as JsonArray
                      ?? throw new InvalidDataException($"post_processor template names special token '{id}' but special_tokens has no ids for it");
            (seenSequence ? suffix : prefix).AddRange(ids.Select(i => (long)i!.GetValue<int>()));
        }
        return (prefix.ToArray(), suffix.ToArray());
    }

    /// <summary>Decodes token ids to text.</summary>
    public string Decode(IEnumerable<long> ids) => _tokenizer.Decode(ids.Select(i => checked((uint)i)).ToArray());

    /// <summary>Human-readable form of each id (its decoded text; the raw vocabulary entry when decoding gives nothing).</summary>
    public string[] TokenStrings(IEnumerable<long> ids) =>
        ids.Select(id =>
        {
            var s = _tokenizer.Decode(new[] { checked((uint)id) });
            return s.Length > 0 ? s : _idToToken.GetValueOrDefault((int)id, $"<{id}>");
        }).ToArray();

    /// <summary>Releases the native tokenizer (idempotent).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _tokenizer.Dispose();
        Interlocked.Decrement(ref s_live);
    }
}
