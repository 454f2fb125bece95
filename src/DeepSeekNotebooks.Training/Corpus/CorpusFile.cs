using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DeepSeekNotebooks.Training.Corpus;

/// <summary>A corpus is malformed (empty, unparsable, missing a domain or split, overlapping splits, …).</summary>
public sealed class CorpusException(string message) : Exception(message);

/// <summary>
/// Reads and writes the corpus as <c>corpus.jsonl</c> (one document per line: <c>id, domain, split, text</c>, plus
/// <c>prompt</c>/<c>answer</c> for instruction pairs) with a <c>manifest.json</c> (generator, version, seed, counts, SHA-256).
/// </summary>
public static class CorpusFile
{
    public const string FileName = "corpus.jsonl";
    public const string ManifestName = "manifest.json";

    /// <summary>Writes corpus.jsonl and manifest.json into <paramref name="directory"/> (each through a temporary file).</summary>
    public static void Write(string directory, IReadOnlyList<CorpusDocument> docs, CorpusGeneratorOptions options)
    {
        Directory.CreateDirectory(directory);
        var sb = new StringBuilder();
        foreach (var d in docs)
        {
            var o = new JsonObject { ["id"] = d.Id, ["domain"] = d.Domain, ["split"] = d.Split, ["text"] = d.Text };
            if (d.Prompt is not null) { o["prompt"] = d.Prompt; o["answer"] = d.Answer; }
            sb.Append(o.ToJsonString()).Append('\n');
        }
        var text = sb.ToString();
        DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(Path.Combine(directory, FileName), text);
        var counts = new JsonObject();
        foreach (var g in docs.GroupBy(d => d.Domain))
        {
            var bySplit = new JsonObject();
            foreach (var s in Splits.All) bySplit[s] = g.Count(d => d.Split == s);
            counts[g.Key] = bySplit;
        }
        var manifest = new JsonObject
        {
            ["generator"] = "DeepSeekNotebooks.Training.Corpus.CorpusGenerator",
            ["version"] = CorpusGenerator.Version,
            ["seed"] = options.Seed,
            ["documents_per_domain"] = options.DocumentsPerDomain,
            ["instruction_pairs"] = options.InstructionPairs,
            ["max_operand"] = options.MaxOperand,
            ["validation_fraction"] = options.ValidationFraction,
            ["test_fraction"] = options.TestFraction,
            ["documents"] = docs.Count,
            ["characters"] = docs.Sum(d => (long)d.Text.Length),
            ["counts"] = counts,
            ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text))),
            ["columns"] = "id: unique document id; domain: prose|arithmetic|code|records|instruct; split: train|validation|test; text: the document; prompt/answer: instruction pairs only (text = prompt + answer)",
        };
        DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(Path.Combine(directory, ManifestName), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// Reads corpus.jsonl (a directory or the file itself) and validates it: at least one document, every line a JSON object
    /// with a non-empty id/domain/split/text, known split names, unique ids, texts never shared between splits, and a train and
    /// validation document for every domain. Errors name the file and line.
    /// </summary>
    public static IReadOnlyList<CorpusDocument> Read(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file)) throw new CorpusException($"corpus file not found: {file} (generate it with `train --generate-corpus` or give --corpus)");
        var docs = new List<CorpusDocument>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(file))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonObject o;
            try { o = JsonNode.Parse(line) as JsonObject ?? throw new CorpusException($"{file}:{lineNo}: expected a JSON object per line"); }
            catch (JsonException e) { throw new CorpusException($"{file}:{lineNo}: not valid JSON ({e.Message})"); }
            string Field(string name) =>
                o[name] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0
                    ? s : throw new CorpusException($"{file}:{lineNo}: field '{name}' must be a non-empty string");
            var doc = new CorpusDocument(Field("id"), Field("domain"), Field("split"), Field("text"),
                o["prompt"]?.GetValue<string>(), o["answer"]?.GetValue<string>());
            if (Array.IndexOf(Splits.All, doc.Split) < 0)
                throw new CorpusException($"{file}:{lineNo}: split '{doc.Split}' is not one of {string.Join(", ", Splits.All)}");
            if (doc.Prompt is not null && doc.Prompt + doc.Answer != doc.Text)
                throw new CorpusException($"{file}:{lineNo}: text must equal prompt + answer");
            docs.Add(doc);
        }
        if (docs.Count == 0) throw new CorpusException($"{file} holds no documents");
        Validate(docs, file);
        return docs;
    }

    /// <summary>Checks ids are unique, no text appears in two splits, and each domain has train and validation documents.</summary>
    public static void Validate(IReadOnlyList<CorpusDocument> docs, string source = "corpus")
    {
        var dupId = docs.GroupBy(d => d.Id).FirstOrDefault(g => g.Count() > 1);
        if (dupId is not null) throw new CorpusException($"{source}: document id '{dupId.Key}' appears {dupId.Count()} times");
        var leak = docs.GroupBy(d => d.Text).FirstOrDefault(g => g.Select(d => d.Split).Distinct().Count() > 1);
        if (leak is not null) throw new CorpusException($"{source}: the same text appears in splits {string.Join(" and ", leak.Select(d => d.Split).Distinct())} (ids {string.Join(", ", leak.Select(d => d.Id))})");
        foreach (var domain in docs.Select(d => d.Domain).Distinct())
            foreach (var split in new[] { Splits.Train, Splits.Validation })
                if (!docs.Any(d => d.Domain == domain && d.Split == split))
                    throw new CorpusException($"{source}: domain '{domain}' has no {split} documents");
    }
}
