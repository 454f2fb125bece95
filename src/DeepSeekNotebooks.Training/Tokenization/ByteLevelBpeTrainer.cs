using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace DeepSeekNotebooks.Training.Tokenization;

/// <summary>Result of training: merges in rank order and the vocabulary (token string → id).</summary>
public sealed record BpeVocabulary(IReadOnlyList<(string Left, string Right)> Merges, IReadOnlyDictionary<string, int> Vocab, IReadOnlyList<string> SpecialTokens)
{
    /// <summary>Total number of ids (byte tokens + merges + special tokens).</summary>
    public int Size => Vocab.Count + SpecialTokens.Count;
    /// <summary>Id of a special token (they follow the BPE vocabulary).</summary>
    public int SpecialId(string token) => Vocab.Count + IndexOf(token);
    private int IndexOf(string token) => SpecialTokens.ToList().IndexOf(token) is var i and >= 0 ? i : throw new KeyNotFoundException(token);
}

/// <summary>
/// A small byte-level BPE trainer (GPT-2 style, as Hugging Face's <c>ByteLevelBPETokenizer</c>): text is split with the GPT-2
/// pre-tokenisation regex, each piece's UTF-8 bytes are mapped to printable characters (<c>bytes_to_unicode</c>), and the most
/// frequent adjacent pair is merged repeatedly. The 256 byte tokens are always in the vocabulary, so any text round-trips.
/// Pairs containing a decimal digit are never merged, so numbers are tokenised digit by digit (which helps arithmetic).
/// The result is written as a Hugging Face <c>tokenizer.json</c> (ByteLevel pre-tokenizer and decoder, BPE model).
/// </summary>
public static class ByteLevelBpeTrainer
{
    /// <summary>Special tokens appended after the BPE vocabulary: beginning of sequence, end of document, padding.</summary>
    public const string Bos = "<|bos|>", Eos = "<|eos|>", Pad = "<|pad|>";

    /// <summary>GPT-2's pre-tokenisation pattern (the one the tokenizers library's ByteLevel pre-tokenizer uses).</summary>
    internal static readonly Regex PreTokenizer = new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled);

    /// <summary>GPT-2's reversible byte → printable character map.</summary>
    public static readonly char[] ByteToChar = BuildByteMap();

    private static char[] BuildByteMap()
    {
        var bs = new List<int>();
        for (int b = '!'; b <= '~'; b++) bs.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        var map = new char[256];
        foreach (var b in bs) map[b] = (char)b;
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b)) map[b] = (char)(256 + n++);
        return map;
    }

    /// <summary>Trains merges until the vocabulary (bytes + merges + 3 special tokens) reaches <paramref name="vocabSize"/> or no pair repeats.</summary>
    public static BpeVocabulary Train(IEnumerable<string> texts, int vocabSize)
    {
        const int specials = 3;
        if (vocabSize < 256 + specials) throw new ArgumentOutOfRangeException(nameof(vocabSize), $"vocab size must be at least {256 + specials} (bytes + special tokens), got {vocabSize}");
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in texts)
            foreach (Match m in PreTokenizer.Matches(text))
            {
                var mapped = new string(Encoding.UTF8.GetBytes(m.Value).Select(b => ByteToChar[b]).ToArray());
                wordCounts[mapped] = wordCounts.GetValueOrDefault(mapped) + 1;
            }
        var words = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value)).ToList();

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in ByteToChar.OrderBy(c => c)) vocab[c.ToString()] = vocab.Count;
        var merges = new List<(string, string)>();
        while (vocab.Count + specials < vocabSize)
        {
            var pairs = new Dictionary<(string, string), long>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var p = (symbols[i], symbols[i + 1]);
                    if (HasDigit(p.Item1) || HasDigit(p.Item2)) continue;
                    pairs[p] = pairs.GetValueOrDefault(p) + count;
                }
            if (pairs.Count == 0) break;
            var best = pairs.OrderByDescending(kv => kv.Value)
                .ThenBy(kv => kv.Key.Item1, StringComparer.Ordinal).ThenBy(kv => kv.Key.Item2, StringComparer.Ordinal).First();
            if (best.Value < 2) break;
            var (l, r) = best.Key;
            var merged = l + r;
            if (vocab.ContainsKey(merged)) { /* same string from a different split: still record the merge */ }
            else vocab[merged] = vocab.Count;
            merges.Add((l, r));
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == l && symbols[i + 1] == r)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
        }
        return new BpeVocabulary(merges, vocab, new[] { Bos, Eos, Pad });
    }

    private static bool HasDigit(string s) => s.Any(char.IsAsciiDigit);

    /// <summary>The Hugging Face <c>tokenizer.json</c> text for a trained vocabulary.</summary>
    public static string ToTokenizerJson(BpeVocabulary v)
    {
        var added = new JsonArray();
        foreach (var s in v.SpecialTokens)
            added.Add(new JsonObject
            {
                ["id"] = v.SpecialId(s), ["content"] = s, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            });
        var vocab = new JsonObject();
        foreach (var (token, id) in v.Vocab.OrderBy(kv => kv.Value)) vocab[token] = id;
        var merges = new JsonArray();
        foreach (var (l, r) in v.Merges) merges.Add($"{l} {r}");
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false,
                ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }
}
