using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tokenization;

namespace DeepSeekNotebooks.Training.Corpus;

/// <summary>One document of a <see cref="CorpusSample"/>: its domain, text and token ids (truncated, within the model's vocabulary).</summary>
public sealed record CorpusSampleDocument(string Domain, string Text, long[] Ids);

/// <summary>An instruction (question/answer) pair of the corpus, as trained: <c>text = prompt + answer</c>.</summary>
public sealed record InstructionPair(string Prompt, string Answer);

/// <summary>Which documents a <see cref="CorpusSample"/> takes.</summary>
public sealed record CorpusSampleOptions
{
    /// <summary>The corpus split to read (<see cref="Splits.Test"/> by default: text the trained model never saw).</summary>
    public string Split { get; init; } = Splits.Test;

    /// <summary>At most this many documents per domain, in file order.</summary>
    public int DocumentsPerDomain { get; init; } = 24;

    /// <summary>Each document is truncated to this many tokens.</summary>
    public int MaxTokens { get; init; } = 48;

    /// <summary>Documents with fewer tokens (after truncation and clipping) are left out.</summary>
    public int MinTokens { get; init; } = 2;

    /// <summary>The corpus directory or <c>corpus.jsonl</c>; null = the bundled <c>data/corpus</c> (<see cref="BundledModel.CorpusDirectory"/>).</summary>
    public string? CorpusPath { get; init; }
}

/// <summary>
/// A labelled sample of the bundled multi-domain corpus, tokenized for one model: the notebooks' dataset. The text is
/// tokenized with the checkpoint's own tokenizer, else with the corpus's <c>tokenizer.json</c> — but only if that
/// tokenizer's vocabulary fits the model (ids below <c>vocab_size</c>); ids at or above the model's vocabulary are dropped.
/// When no tokenizer fits, the sample is empty and <see cref="Unavailable"/> says why, so a notebook prints one line and
/// skips the sections that need text.
/// </summary>
public sealed class CorpusSample : IDisposable
{
    private readonly bool _ownsTokenizer;

    private CorpusSample(string? unavailable, DeepSeekTokenizer? tokenizer, bool ownsTokenizer, string tokenizerSource,
        IReadOnlyList<CorpusSampleDocument> documents, IReadOnlyList<InstructionPair> pairs, long vocabSize)
    {
        Unavailable = unavailable;
        Tokenizer = tokenizer;
        _ownsTokenizer = ownsTokenizer;
        TokenizerSource = tokenizerSource;
        Documents = documents;
        InstructionPairs = pairs;
        VocabSize = vocabSize;
        Domains = documents.Select(d => d.Domain).Distinct().ToArray();
    }

    /// <summary>Null when the sample holds documents; otherwise one sentence saying why not (no tokenizer fits, no documents…).</summary>
    public string? Unavailable { get; }

    /// <summary>True when <see cref="Documents"/> can be analysed.</summary>
    public bool IsAvailable => Unavailable is null;

    /// <summary>The tokenizer the documents were encoded with (null when none fits the model).</summary>
    public DeepSeekTokenizer? Tokenizer { get; }

    /// <summary>"checkpoint" or the path of the corpus tokenizer used; empty when none.</summary>
    public string TokenizerSource { get; }

    /// <summary>The documents, domains in ordinal order, each domain's documents in file order.</summary>
    public IReadOnlyList<CorpusSampleDocument> Documents { get; }

    /// <summary>The domains present in <see cref="Documents"/>, in ordinal order.</summary>
    public IReadOnlyList<string> Domains { get; }

    /// <summary>The instruction pairs of the chosen split (all of them, in file order), e.g. for the logit lens and patching.</summary>
    public IReadOnlyList<InstructionPair> InstructionPairs { get; }

    /// <summary>The model's vocabulary size the ids were clipped to.</summary>
    public long VocabSize { get; }

    /// <summary>
    /// Reads the corpus and tokenizes a sample for a model with <paramref name="config"/>. <paramref name="checkpointTokenizer"/>
    /// is the checkpoint's own tokenizer (<c>Checkpoint.Tokenizer</c>), preferred when present. Throws
    /// <see cref="CorpusException"/> when the corpus file is missing or malformed, <see cref="ArgumentOutOfRangeException"/>
    /// for non-positive sizes.
    /// </summary>
    public static CorpusSample Load(DeepSeekConfig config, DeepSeekTokenizer? checkpointTokenizer, CorpusSampleOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        options ??= new CorpusSampleOptions();
        if (options.DocumentsPerDomain <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.DocumentsPerDomain, "DocumentsPerDomain must be at least 1");
        if (options.MaxTokens <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.MaxTokens, "MaxTokens must be at least 1");
        if (options.MinTokens < 1 || options.MinTokens > options.MaxTokens)
            throw new ArgumentOutOfRangeException(nameof(options), options.MinTokens, $"MinTokens must be between 1 and MaxTokens ({options.MaxTokens})");
        if (Array.IndexOf(Splits.All, options.Split) < 0)
            throw new ArgumentException($"split '{options.Split}' is not one of {string.Join(", ", Splits.All)}", nameof(options));

        var corpusPath = options.CorpusPath ?? BundledModel.CorpusDirectory();
        var docs = CorpusFile.Read(corpusPath);
        var corpusDir = Directory.Exists(corpusPath) ? corpusPath : Path.GetDirectoryName(Path.GetFullPath(corpusPath))!;

        DeepSeekTokenizer? tokenizer = checkpointTokenizer;
        bool owns = false;
        string source = "checkpoint";
        if (tokenizer is null)
        {
            var file = Path.Combine(corpusDir, "tokenizer.json");
            if (!File.Exists(file))
                return Empty($"the checkpoint has no tokenizer and the corpus has none at {file}", config);
            var corpusTokenizer = DeepSeekTokenizer.FromFile(file);
            if (corpusTokenizer.VocabularySize > config.VocabSize)
            {
                int size = corpusTokenizer.VocabularySize;
                corpusTokenizer.Dispose();
                return Empty($"the checkpoint has no tokenizer, and the corpus tokenizer's {size} tokens do not fit the model's vocabulary of {config.VocabSize}", config);
            }
            tokenizer = corpusTokenizer;
            owns = true;
            source = file;
        }

        var selected = docs.Where(d => d.Split == options.Split)
            .GroupBy(d => d.Domain).OrderBy(g => g.Key, StringComparer.Ordinal)
            .SelectMany(g => g.Take(options.DocumentsPerDomain))
            .Select(d => new CorpusSampleDocument(d.Domain, d.Text, Clip(tokenizer.Encode(d.Text), config.VocabSize).Take(options.MaxTokens).ToArray()))
            .Where(d => d.Ids.Length >= options.MinTokens)
            .ToList();
        var pairs = docs.Where(d => d.Split == options.Split && d.Prompt is not null && d.Answer is not null)
            .Select(d => new InstructionPair(d.Prompt!, d.Answer!)).ToList();
        var reason = selected.Count == 0 ? $"no document of the '{options.Split}' split has {options.MinTokens} or more tokens within the model's vocabulary" : null;
        return new CorpusSample(reason, tokenizer, owns, source, selected, pairs, config.VocabSize);
    }

    private static CorpusSample Empty(string reason, DeepSeekConfig config) =>
        new(reason, null, false, "", Array.Empty<CorpusSampleDocument>(), Array.Empty<InstructionPair>(), config.VocabSize);

    private static IEnumerable<long> Clip(IEnumerable<long> ids, long vocabSize) => ids.Where(i => i >= 0 && i < vocabSize);

    /// <summary>Token ids of <paramref name="text"/> with the sample's tokenizer, clipped to the model's vocabulary.</summary>
    public long[] Encode(string text) => Clip(RequireTokenizer().Encode(text), VocabSize).ToArray();

    /// <summary>The tokenizer's string for one id (byte-level BPE markers kept, e.g. <c>Ġ</c> for a leading space).</summary>
    public string TokenText(long id) => RequireTokenizer().TokenStrings(new[] { id })[0];

    /// <summary>The tokenizer's strings for <paramref name="ids"/>.</summary>
    public string[] TokenStrings(IEnumerable<long> ids) => RequireTokenizer().TokenStrings(ids);

    /// <summary>One line: documents and tokens per domain and the tokenizer used, or why the sample is empty.</summary>
    public override string ToString() => Unavailable is { } why
        ? $"No corpus sample: {why}."
        : string.Join("; ", Domains.Select(d => $"{d}: {Documents.Count(c => c.Domain == d)} documents, {Documents.Where(c => c.Domain == d).Sum(c => c.Ids.Length)} tokens"))
          + $" (tokenizer: {(TokenizerSource == "checkpoint" ? "the checkpoint's" : "the corpus's")})";

    private DeepSeekTokenizer RequireTokenizer() =>
        Tokenizer ?? throw new InvalidOperationException($"the corpus sample has no tokenizer: {Unavailable}");

    /// <summary>Disposes the corpus tokenizer when the sample loaded it (never the checkpoint's).</summary>
    public void Dispose()
    {
        if (_ownsTokenizer) Tokenizer?.Dispose();
    }
}
