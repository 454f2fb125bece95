using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.IO;

namespace DeepSeekNotebooks.Training.CaseStudies;

/// <summary>A case-study data set or classifier is malformed or missing (the message names the file and what is wrong).</summary>
public sealed class CaseStudyException(string message) : Exception(message);

/// <summary>Split names of a case study. <see cref="Test"/> is always free of every planted shortcut.</summary>
public static class CaseStudySplits
{
    public const string Train = "train";
    public const string Validation = "validation";
    /// <summary>Held-out examples from the same causal process, with every planted shortcut removed.</summary>
    public const string Test = "test";
    /// <summary>The same examples as <see cref="Test"/>, with the shortcut planted as in training (paired comparison).</summary>
    public const string TestShortcut = "test_shortcut";
    public static readonly string[] All = { Train, Validation, Test, TestShortcut };
}

/// <summary>
/// The token layout of a case-study classifier: input tokens <c>0..n−1</c>, then one query token <c>[CLS]</c> appended to
/// every input, then one token per class. The classifier is an ordinary causal <c>DeepSeekModel</c> whose prediction at
/// the <c>[CLS]</c> position is read only over the class tokens (so attribution targets a class token, and rollout,
/// head and expert diagnostics work as on the language model).
/// </summary>
public sealed record CaseStudyVocabulary(IReadOnlyList<string> InputTokens, IReadOnlyList<string> ClassNames)
{
    /// <summary>Id of the <c>[CLS]</c> query token appended to every input.</summary>
    public int ClsToken => InputTokens.Count;
    /// <summary>Token id of class <paramref name="c"/>.</summary>
    public int ClassToken(int c) =>
        c >= 0 && c < ClassNames.Count ? InputTokens.Count + 1 + c
        : throw new ArgumentOutOfRangeException(nameof(c), c, $"class index must be in [0, {ClassNames.Count - 1}] ({string.Join(", ", ClassNames)})");
    /// <summary>Token ids of every class, in class order.</summary>
    public long[] ClassTokens => Enumerable.Range(0, ClassNames.Count).Select(c => (long)ClassToken(c)).ToArray();
    /// <summary>The model's vocab_size: inputs + [CLS] + classes.</summary>
    public int VocabSize => InputTokens.Count + 1 + ClassNames.Count;

    /// <summary>The model input for <paramref name="tokens"/>: the tokens followed by <c>[CLS]</c>.</summary>
    public long[] Sequence(IReadOnlyList<int> tokens)
    {
        var ids = new long[tokens.Count + 1];
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i] < 0 || tokens[i] >= InputTokens.Count)
                throw new CaseStudyException($"input token {tokens[i]} at position {i} is outside the input vocabulary [0, {InputTokens.Count - 1}]");
            ids[i] = tokens[i];
        }
        ids[^1] = ClsToken;
        return ids;
    }

    /// <summary>Readable name of a token id (an input token, <c>[CLS]</c> or a class).</summary>
    public string TokenName(long id) =>
        id >= 0 && id < InputTokens.Count ? InputTokens[(int)id]
        : id == ClsToken ? "[CLS]"
        : id > ClsToken && id < VocabSize ? $"[{ClassNames[(int)id - ClsToken - 1]}]"
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"token ids must be in [0, {VocabSize - 1}]");

    public JsonObject ToJson() => new()
    {
        ["input_tokens"] = new JsonArray(InputTokens.Select(t => (JsonNode)t).ToArray()),
        ["cls_token"] = ClsToken,
        ["classes"] = new JsonArray(ClassNames.Select(t => (JsonNode)t).ToArray()),
        ["class_tokens"] = new JsonArray(ClassTokens.Select(t => (JsonNode)t).ToArray()),
        ["vocab_size"] = VocabSize,
    };

    public static CaseStudyVocabulary FromJson(JsonNode? node, string source)
    {
        if (node is not JsonObject o || o["input_tokens"] is not JsonArray inputs || o["classes"] is not JsonArray classes)
            throw new CaseStudyException($"{source}: 'vocabulary' must be an object with 'input_tokens' and 'classes' arrays");
        var v = new CaseStudyVocabulary(inputs.Select(x => x!.GetValue<string>()).ToArray(), classes.Select(x => x!.GetValue<string>()).ToArray());
        if (v.ClassNames.Count < 2) throw new CaseStudyException($"{source}: a classifier needs at least 2 classes, got {v.ClassNames.Count}");
        if (o["vocab_size"] is { } vs && vs.GetValue<int>() != v.VocabSize)
            throw new CaseStudyException($"{source}: vocab_size {vs.GetValue<int>()} does not match {v.InputTokens.Count} inputs + [CLS] + {v.ClassNames.Count} classes = {v.VocabSize}");
        return v;
    }
}

/// <summary>One labelled example: its input tokens (without <c>[CLS]</c>), its class, and the generator's ground truth
/// (<paramref name="Facts"/>: the planted causes and shortcuts as numbers, e.g. <c>nodule_radius</c>, <c>artefact</c>).</summary>
public sealed record CaseStudyExample(string Id, string Split, int Label, int[] Tokens, IReadOnlyDictionary<string, double> Facts)
{
    /// <summary>A ground-truth fact by name; the message lists the facts the example has.</summary>
    public double Fact(string name) => Facts.TryGetValue(name, out var v) ? v
        : throw new KeyNotFoundException($"example {Id} has no fact '{name}' (it has: {string.Join(", ", Facts.Keys)})");
}

/// <summary>A cause planted in the data, with how strongly (the data card lists them; the notebooks test them).</summary>
public sealed record PlantedCause(string Name, string Description, string Strength, bool IsShortcut);

/// <summary>What was generated and why: the data card written next to the data (DATACARD.md) and into the manifest.</summary>
public sealed record DataCard
{
    public required string Title { get; init; }
    public required string Summary { get; init; }
    public required string Labels { get; init; }
    public required string Tokens { get; init; }
    public required IReadOnlyList<PlantedCause> Causes { get; init; }
    public string Privacy { get; init; } = "Entirely synthetic: every example is drawn from the seeded generator named in the manifest. No real patient, customer or personal data was used or can be recovered.";
    public string IntendedUse { get; init; } = "Testing interpretability methods against a known ground truth. Not for training or evaluating any real-world decision system.";

    public JsonObject ToJson() => new()
    {
        ["title"] = Title, ["summary"] = Summary, ["labels"] = Labels, ["tokens"] = Tokens, ["privacy"] = Privacy, ["intended_use"] = IntendedUse,
        ["planted"] = new JsonArray(Causes.Select(c => (JsonNode)new JsonObject
        {
            ["name"] = c.Name, ["description"] = c.Description, ["strength"] = c.Strength, ["shortcut"] = c.IsShortcut,
        }).ToArray()),
    };

    public static DataCard FromJson(JsonNode? node, string source)
    {
        if (node is not JsonObject o) throw new CaseStudyException($"{source}: 'data_card' must be an object");
        string S(string k) => o[k]?.GetValue<string>() ?? throw new CaseStudyException($"{source}: data_card.{k} is missing");
        return new DataCard
        {
            Title = S("title"), Summary = S("summary"), Labels = S("labels"), Tokens = S("tokens"), Privacy = S("privacy"), IntendedUse = S("intended_use"),
            Causes = (o["planted"] as JsonArray ?? throw new CaseStudyException($"{source}: data_card.planted is missing"))
                .Select(c => new PlantedCause(c!["name"]!.GetValue<string>(), c["description"]!.GetValue<string>(), c["strength"]!.GetValue<string>(), c["shortcut"]!.GetValue<bool>()))
                .ToArray(),
        };
    }

    /// <summary>The card as Markdown (DATACARD.md); <paramref name="counts"/> are the per-split, per-class counts.</summary>
    public string ToMarkdown(string generator, string version, long seed, IReadOnlyList<string> classes, IReadOnlyDictionary<string, int[]> counts)
    {
        var sb = new StringBuilder();
        sb.Append("# Data card: ").Append(Title).Append("\n\n").Append(Summary).Append("\n\n");
        sb.Append("- Generator: `").Append(generator).Append("` version ").Append(version).Append(", seed ").Append(seed.ToString(CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("- Labels: ").Append(Labels).Append('\n');
        sb.Append("- Tokens: ").Append(Tokens).Append("\n\n");
        sb.Append("| split | ").Append(string.Join(" | ", classes)).Append(" |\n|---|").Append(string.Concat(classes.Select(_ => "---|"))).Append('\n');
        foreach (var (split, c) in counts) sb.Append("| ").Append(split).Append(" | ").Append(string.Join(" | ", c)).Append(" |\n");
        sb.Append("\n## Planted causes\n\n| cause | kind | strength | description |\n|---|---|---|---|\n");
        foreach (var c in Causes)
            sb.Append("| ").Append(Cell(c.Name)).Append(" | ").Append(c.IsShortcut ? "shortcut (spurious)" : "cause").Append(" | ").Append(Cell(c.Strength)).Append(" | ").Append(Cell(c.Description)).Append(" |\n");
        sb.Append("\n## Privacy\n\n").Append(Privacy).Append("\n\n## Intended use\n\n").Append(IntendedUse).Append('\n');
        return sb.ToString();
    }

    /// <summary>Text safe inside a Markdown table cell (a literal | would end the cell).</summary>
    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal);
}

/// <summary>
/// A generated case-study data set: examples in four splits (<see cref="CaseStudySplits"/>), the token vocabulary, the
/// data card and the generator's identity. Saved as <c>examples.jsonl</c> (one example per line), <c>manifest.json</c>
/// (generator, version, seed, counts, SHA-256 of every data file, vocabulary, data card) and <c>DATACARD.md</c>, like the
/// training corpus (<c>data/corpus</c>). Generators may add their own files (e.g. the scans' pixels) through
/// <see cref="Write"/>'s <c>extraFiles</c>; the manifest hashes them too and <see cref="Read"/> verifies every hash.
/// </summary>
public sealed record CaseStudyDataset
{
    public const string ExamplesFile = "examples.jsonl";
    public const string ManifestFile = "manifest.json";
    public const string DataCardFile = "DATACARD.md";

    public required string Name { get; init; }
    public required string Generator { get; init; }
    public required string Version { get; init; }
    public required long Seed { get; init; }
    public required CaseStudyVocabulary Vocabulary { get; init; }
    public required DataCard Card { get; init; }
    public required IReadOnlyList<CaseStudyExample> Examples { get; init; }
    /// <summary>Generator settings recorded in the manifest (numbers and strings).</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();

    /// <summary>The examples of one split, in order.</summary>
    public IReadOnlyList<CaseStudyExample> Split(string split) =>
        Array.IndexOf(CaseStudySplits.All, split) >= 0 ? Examples.Where(e => e.Split == split).ToArray()
        : throw new ArgumentException($"unknown split '{split}': use one of {string.Join(", ", CaseStudySplits.All)}", nameof(split));

    /// <summary>Counts per split and class.</summary>
    public IReadOnlyDictionary<string, int[]> Counts() => CaseStudySplits.All.ToDictionary(s => s,
        s => Enumerable.Range(0, Vocabulary.ClassNames.Count).Select(c => Examples.Count(e => e.Split == s && e.Label == c)).ToArray());

    /// <summary>Checks ids are unique, labels and tokens in range, every split present and (for train) every class present.</summary>
    public void Validate()
    {
        var dup = Examples.GroupBy(e => e.Id).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new CaseStudyException($"{Name}: example id '{dup.Key}' appears {dup.Count()} times");
        foreach (var e in Examples)
        {
            if (Array.IndexOf(CaseStudySplits.All, e.Split) < 0) throw new CaseStudyException($"{Name}: example {e.Id} has split '{e.Split}', not one of {string.Join(", ", CaseStudySplits.All)}");
            if (e.Label < 0 || e.Label >= Vocabulary.ClassNames.Count) throw new CaseStudyException($"{Name}: example {e.Id} has label {e.Label}, outside [0, {Vocabulary.ClassNames.Count - 1}]");
            if (e.Tokens.Length == 0) throw new CaseStudyException($"{Name}: example {e.Id} has no tokens");
            int bad = Array.FindIndex(e.Tokens, t => t < 0 || t >= Vocabulary.InputTokens.Count);
            if (bad >= 0) throw new CaseStudyException($"{Name}: example {e.Id} token {e.Tokens[bad]} at position {bad} is outside the input vocabulary [0, {Vocabulary.InputTokens.Count - 1}]");
        }
        foreach (var s in CaseStudySplits.All)
            if (!Examples.Any(e => e.Split == s)) throw new CaseStudyException($"{Name}: split '{s}' is empty");
        for (int c = 0; c < Vocabulary.ClassNames.Count; c++)
            if (!Examples.Any(e => e.Split == CaseStudySplits.Train && e.Label == c))
                throw new CaseStudyException($"{Name}: the train split has no example of class '{Vocabulary.ClassNames[c]}'");
    }

    /// <summary>Writes examples.jsonl, the extra files, manifest.json and DATACARD.md into <paramref name="directory"/>
    /// (each atomically). <paramref name="extraFiles"/>: file name → bytes.</summary>
    public void Write(string directory, IReadOnlyDictionary<string, byte[]>? extraFiles = null)
    {
        Validate();
        Directory.CreateDirectory(directory);
        var sb = new StringBuilder();
        foreach (var e in Examples)
        {
            var facts = new JsonObject();
            foreach (var (k, v) in e.Facts) facts[k] = v;
            sb.Append(new JsonObject
            {
                ["id"] = e.Id, ["split"] = e.Split, ["label"] = e.Label,
                ["tokens"] = new JsonArray(e.Tokens.Select(t => (JsonNode)t).ToArray()), ["facts"] = facts,
            }.ToJsonString()).Append('\n');
        }
        var examples = Encoding.UTF8.GetBytes(sb.ToString());
        var hashes = new JsonObject { [ExamplesFile] = Sha256(examples) };
        AtomicFile.WriteAllText(Path.Combine(directory, ExamplesFile), sb.ToString());
        foreach (var (name, bytes) in extraFiles ?? new Dictionary<string, byte[]>())
        {
            WriteBytes(Path.Combine(directory, name), bytes);
            hashes[name] = Sha256(bytes);
        }
        var counts = new JsonObject();
        foreach (var (s, c) in Counts())
        {
            var o = new JsonObject();
            for (int k = 0; k < c.Length; k++) o[Vocabulary.ClassNames[k]] = c[k];
            counts[s] = o;
        }
        var settings = new JsonObject();
        foreach (var (k, v) in Settings) settings[k] = v;
        var manifest = new JsonObject
        {
            ["name"] = Name, ["generator"] = Generator, ["version"] = Version, ["seed"] = Seed,
            ["examples"] = Examples.Count, ["counts"] = counts, ["settings"] = settings, ["sha256"] = hashes,
            ["vocabulary"] = Vocabulary.ToJson(), ["data_card"] = Card.ToJson(),
            ["columns"] = "id: unique example id; split: train|validation|test|test_shortcut; label: class index (vocabulary.classes); tokens: input token ids (the model input appends vocabulary.cls_token); facts: the generator's ground truth per example",
        };
        AtomicFile.WriteAllText(Path.Combine(directory, ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(directory, DataCardFile), Card.ToMarkdown(Generator, Version, Seed, Vocabulary.ClassNames, Counts()));
    }

    /// <summary>Reads a data set written by <see cref="Write"/>, verifying every file's SHA-256 against the manifest.</summary>
    public static CaseStudyDataset Read(string directory)
    {
        var manifestPath = Path.Combine(directory, ManifestFile);
        if (!File.Exists(manifestPath)) throw new CaseStudyException($"no case-study manifest at {manifestPath} (regenerate with `deepseek-notebooks case-study <name> --out {directory}`)");
        JsonObject m;
        try { m = JsonNode.Parse(File.ReadAllText(manifestPath))!.AsObject(); }
        catch (JsonException e) { throw new CaseStudyException($"{manifestPath}: not valid JSON ({e.Message})"); }
        VerifyHashes(directory, m, manifestPath);
        var vocabulary = CaseStudyVocabulary.FromJson(m["vocabulary"], manifestPath);
        var examplesPath = Path.Combine(directory, ExamplesFile);
        var examples = new List<CaseStudyExample>();
        int line = 0;
        foreach (var text in File.ReadLines(examplesPath))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            try
            {
                var o = JsonNode.Parse(text)!.AsObject();
                var facts = o["facts"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>());
                examples.Add(new CaseStudyExample(o["id"]!.GetValue<string>(), o["split"]!.GetValue<string>(), o["label"]!.GetValue<int>(),
                    o["tokens"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray(), facts));
            }
            catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new CaseStudyException($"{examplesPath}:{line}: expected {{\"id\", \"split\", \"label\", \"tokens\": [ints], \"facts\": {{name: number}}}} ({e.Message})");
            }
        }
        var ds = new CaseStudyDataset
        {
            Name = m["name"]!.GetValue<string>(), Generator = m["generator"]!.GetValue<string>(), Version = m["version"]!.GetValue<string>(),
            Seed = m["seed"]!.GetValue<long>(), Vocabulary = vocabulary, Card = DataCard.FromJson(m["data_card"], manifestPath), Examples = examples,
            Settings = (m["settings"] as JsonObject)?.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>()) ?? new Dictionary<string, string>(),
        };
        ds.Validate();
        return ds;
    }

    /// <summary>The manifest's SHA-256 of <see cref="ExamplesFile"/> (identifies the data a classifier was trained on).</summary>
    public static string ExamplesHash(string directory) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(directory, ManifestFile)))!["sha256"]![ExamplesFile]!.GetValue<string>();

    private static void VerifyHashes(string directory, JsonObject manifest, string manifestPath)
    {
        if (manifest["sha256"] is not JsonObject hashes || hashes[ExamplesFile] is null)
            throw new CaseStudyException($"{manifestPath}: 'sha256' must map each data file (at least {ExamplesFile}) to its hash");
        foreach (var (name, node) in hashes)
        {
            var path = Path.Combine(directory, name);
            if (!File.Exists(path)) throw new CaseStudyException($"{path} is listed in the manifest but missing");
            var actual = Sha256(File.ReadAllBytes(path));
            var expected = node!.GetValue<string>();
            if (actual != expected) throw new CaseStudyException($"{path}: SHA-256 {actual} does not match the manifest's {expected} (the file was changed; regenerate the case study)");
        }
    }

    /// <summary>Binary twin of <see cref="AtomicFile.WriteAllText"/>: a temporary file beside the target, then a rename.</summary>
    private static void WriteBytes(string path, byte[] bytes)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllBytes(tmp, bytes);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    internal static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
