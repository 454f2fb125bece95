using System.Globalization;
using System.Text;

namespace DeepSeekNotebooks.Training.Corpus;

/// <summary>The corpus domains. Every document carries exactly one.</summary>
public static class Domains
{
    public const string Prose = "prose";
    public const string Arithmetic = "arithmetic";
    public const string Code = "code";
    public const string Records = "records";
    /// <summary>Instruction-formatted prompt/answer pairs ("Q: 12+7=? A: 19").</summary>
    public const string Instruct = "instruct";

    /// <summary>The four pre-training domains (stages 1 and 2).</summary>
    public static readonly string[] PreTraining = { Prose, Arithmetic, Code, Records };
    /// <summary>All domains, in table order.</summary>
    public static readonly string[] All = { Prose, Arithmetic, Code, Records, Instruct };
}

/// <summary>Split names.</summary>
public static class Splits
{
    public const string Train = "train";
    public const string Validation = "validation";
    public const string Test = "test";
    public static readonly string[] All = { Train, Validation, Test };
}

/// <summary>One labelled document. <see cref="Prompt"/>/<see cref="Answer"/> are set for instruction pairs (Text = Prompt + Answer).</summary>
public sealed record CorpusDocument(string Id, string Domain, string Split, string Text, string? Prompt = null, string? Answer = null);

/// <summary>Sizes of a generated corpus.</summary>
public sealed record CorpusGeneratorOptions
{
    public int Seed { get; init; } = 1234;
    /// <summary>Documents per pre-training domain.</summary>
    public int DocumentsPerDomain { get; init; } = 320;
    /// <summary>Instruction pairs (a + b or a − b with 0 ≤ a, b &lt; <see cref="MaxOperand"/>).</summary>
    public int InstructionPairs { get; init; } = 2400;
    public int MaxOperand { get; init; } = 50;
    /// <summary>Fractions of documents in validation and test (the rest is train).</summary>
    public double ValidationFraction { get; init; } = 0.1;
    public double TestFraction { get; init; } = 0.1;
}

/// <summary>
/// Deterministic (seeded) generator of the training corpus: template English prose, arithmetic equation sheets, small
/// Python-like source files, JSON/CSV records, and arithmetic instruction pairs. Texts are unique across the corpus, and the
/// (a, op, b) problems of held-out instruction pairs never appear in any training arithmetic sheet.
/// </summary>
public static class CorpusGenerator
{
    /// <summary>Bumped whenever the generated text changes for a given seed.</summary>
    public const string Version = "1.0";

    private static readonly string[] Adjectives = { "quiet", "old", "bright", "small", "green", "careful", "heavy", "distant", "warm", "curious", "tired", "gentle", "broken", "silver", "narrow", "busy" };
    private static readonly string[] Nouns = { "river", "teacher", "garden", "village", "machine", "letter", "window", "farmer", "mountain", "library", "child", "market", "ship", "forest", "doctor", "bridge", "kitchen", "painter" };
    private static readonly string[] Verbs = { "watched", "crossed", "found", "carried", "remembered", "opened", "followed", "painted", "visited", "described", "repaired", "admired" };
    private static readonly string[] Places = { "the harbour", "the old town", "the hills", "the station", "the lake", "the square", "the school", "the valley" };
    private static readonly string[] Times = { "In the morning", "Later that day", "At night", "Every spring", "After the storm", "Long ago", "On Sunday", "By evening" };
    private static readonly string[] Connectives = { "because", "although", "while", "so", "and then", "until" };
    private static readonly string[] Names = { "Alice", "Bruno", "Chen", "Dara", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kemal", "Lina", "Mateo", "Nora", "Omar", "Priya" };
    private static readonly string[] Cities = { "Paris", "Lisbon", "Oslo", "Cairo", "Lima", "Seoul", "Dublin", "Quito", "Hanoi", "Nairobi", "Austin", "Krakow" };
    private static readonly string[] Products = { "lamp", "chair", "kettle", "bicycle", "notebook", "radio", "backpack", "camera" };
    private static readonly string[] Identifiers = { "total", "count", "value", "items", "result", "index", "price", "score", "buffer", "name", "limit", "offset" };
    private static readonly string[] FunctionVerbs = { "compute", "update", "parse", "load", "merge", "filter", "count", "scale", "check", "build" };

    /// <summary>Generates the corpus. The same options give the same documents, in the same order.</summary>
    public static IReadOnlyList<CorpusDocument> Generate(CorpusGeneratorOptions? options = null)
    {
        options ??= new CorpusGeneratorOptions();
        if (options.DocumentsPerDomain < 3) throw new ArgumentOutOfRangeException(nameof(options), "DocumentsPerDomain must be >= 3 (one per split)");
        if (options.ValidationFraction <= 0 || options.TestFraction <= 0 || options.ValidationFraction + options.TestFraction >= 1)
            throw new ArgumentOutOfRangeException(nameof(options), "validation and test fractions must be positive and sum to less than 1");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var docs = new List<CorpusDocument>();

        // Instruction pairs first: their split decides which problems arithmetic sheets must avoid.
        var rng = new Random(Mix(options.Seed, 5));
        var problems = new List<(int A, char Op, int B)>();
        for (int a = 0; a < options.MaxOperand; a++)
            for (int b = 0; b < options.MaxOperand; b++)
            {
                problems.Add((a, '+', b));
                if (a >= b) problems.Add((a, '-', b));
            }
        Shuffle(problems, rng);
        int pairs = Math.Min(options.InstructionPairs, problems.Count);
        var heldOut = new HashSet<(int, char, int)>();
        for (int i = 0; i < pairs; i++)
        {
            var (a, op, b) = problems[i];
            var split = SplitOf(i, pairs, options);
            if (split != Splits.Train) heldOut.Add((a, op, b));
            var prompt = $"Q: {a}{op}{b}=? A:";
            var answer = $" {(op == '+' ? a + b : a - b)}\n";
            seen.Add(prompt + answer);
            docs.Add(new CorpusDocument($"{Domains.Instruct}-{i:D5}", Domains.Instruct, split, prompt + answer, prompt, answer));
        }

        var generators = new (string Domain, Func<Random, string> Make)[]
        {
            (Domains.Prose, Prose),
            (Domains.Arithmetic, r => ArithmeticSheet(r, options.MaxOperand, heldOut)),
            (Domains.Code, Code),
            (Domains.Records, Records),
        };
        for (int g = 0; g < generators.Length; g++)
        {
            var (domain, make) = generators[g];
            var r = new Random(Mix(options.Seed, g + 1));
            for (int i = 0; i < options.DocumentsPerDomain; i++)
            {
                string text;
                int attempts = 0;
                do
                {
                    text = make(r);
                    if (++attempts > 100) throw new InvalidOperationException($"could not generate a unique {domain} document");
                } while (!seen.Add(text));
                docs.Add(new CorpusDocument($"{domain}-{i:D5}", domain, SplitOf(i, options.DocumentsPerDomain, options), text));
            }
        }
        return docs;
    }

    /// <summary>Deterministic split by position: the last fractions of each domain's (already random) documents are validation and test.</summary>
    private static string SplitOf(int index, int count, CorpusGeneratorOptions o)
    {
        int test = Math.Max(1, (int)Math.Round(count * o.TestFraction));
        int validation = Math.Max(1, (int)Math.Round(count * o.ValidationFraction));
        if (index >= count - test) return Splits.Test;
        if (index >= count - test - validation) return Splits.Validation;
        return Splits.Train;
    }

    private static string Prose(Random r)
    {
        var sb = new StringBuilder();
        int sentences = r.Next(4, 8);
        for (int s = 0; s < sentences; s++)
        {
            switch (r.Next(4))
            {
                case 0:
                    sb.Append($"The {Pick(r, Adjectives)} {Pick(r, Nouns)} {Pick(r, Verbs)} the {Pick(r, Adjectives)} {Pick(r, Nouns)} near {Pick(r, Places)}.");
                    break;
                case 1:
                    sb.Append($"{Pick(r, Times)}, {Pick(r, Names)} {Pick(r, Verbs)} a {Pick(r, Nouns)} {Pick(r, Connectives)} the {Pick(r, Nouns)} was {Pick(r, Adjectives)}.");
                    break;
                case 2:
                    sb.Append($"{Pick(r, Names)} and {Pick(r, Names)} {Pick(r, Verbs)} {Pick(r, Places)}, where a {Pick(r, Adjectives)} {Pick(r, Nouns)} waited.");
                    break;
                default:
                    sb.Append($"Nobody {Pick(r, Verbs)} the {Pick(r, Nouns)} {Pick(r, Connectives)} it was too {Pick(r, Adjectives)}.");
                    break;
            }
            sb.Append(s == sentences - 1 ? "\n" : " ");
        }
        return sb.ToString();
    }

    private static string ArithmeticSheet(Random r, int maxOperand, HashSet<(int, char, int)> heldOut)
    {
        var sb = new StringBuilder();
        int lines = r.Next(8, 16);
        for (int l = 0; l < lines; l++)
        {
            int a, b;
            char op;
            do
            {
                a = r.Next(maxOperand);
                b = r.Next(maxOperand);
                op = r.Next(3) switch { 0 => '+', 1 => '-', _ => '*' };
                if (op == '-' && b > a) (a, b) = (b, a);
                if (op == '*') { a %= 13; b %= 13; }
            } while (heldOut.Contains((a, op, b)));
            long v = op switch { '+' => a + b, '-' => a - b, _ => a * b };
            sb.Append(CultureInfo.InvariantCulture, $"{a} {op} {b} = {v}\n");
        }
        return sb.ToString();
    }

    private static string Code(Random r)
    {
        var sb = new StringBuilder();
        int functions = r.Next(1, 3);
        for (int f = 0; f < functions; f++)
        {
            var name = $"{Pick(r, FunctionVerbs)}_{Pick(r, Identifiers)}";
            var p1 = Pick(r, Identifiers);
            var p2 = Pick(r, Identifiers.Where(x => x != p1).ToArray());
            sb.Append($"def {name}({p1}, {p2}):\n");
            var local = Pick(r, Identifiers.Where(x => x != p1 && x != p2).ToArray());
            sb.Append($"    {local} = {p1} {Pick(r, new[] { "+", "-", "*" })} {r.Next(1, 10)}\n");
            switch (r.Next(3))
            {
                case 0:
                    sb.Append($"    for i in range(len({p2})):\n        {local} += {p2}[i]\n");
                    break;
                case 1:
                    sb.Append($"    if {local} > {p2}:\n        return {p2}\n");
                    break;
                default:
                    sb.Append($"    while {local} < {r.Next(10, 100)}:\n        {local} = {local} * 2\n");
                    break;
            }
            sb.Append($"    return {local}\n\n");
        }
        return sb.ToString();
    }

    private static string Records(Random r)
    {
        var sb = new StringBuilder();
        if (r.Next(2) == 0)
        {
            int n = r.Next(3, 6);
            for (int i = 0; i < n; i++)
                sb.Append(CultureInfo.InvariantCulture,
                    $"{{\"id\": {r.Next(100, 1000)}, \"name\": \"{Pick(r, Names)}\", \"city\": \"{Pick(r, Cities)}\", \"age\": {r.Next(18, 90)}, \"active\": {(r.Next(2) == 0 ? "true" : "false")}}}\n");
        }
        else
        {
            sb.Append("id,product,city,quantity,price\n");
            int n = r.Next(4, 8);
            for (int i = 0; i < n; i++)
                sb.Append(CultureInfo.InvariantCulture, $"{r.Next(1000, 10000)},{Pick(r, Products)},{Pick(r, Cities)},{r.Next(1, 50)},{r.Next(1, 500)}.{r.Next(0, 100):D2}\n");
        }
        return sb.ToString();
    }

    private static T Pick<T>(Random r, T[] items) => items[r.Next(items.Length)];

    private static void Shuffle<T>(IList<T> list, Random r)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = r.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }

    /// <summary>Derives a sub-seed (stable across .NET versions; <see cref="HashCode"/> is randomised per process).</summary>
    internal static int Mix(long seed, long salt)
    {
        ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)salt * 0xBF58476D1CE4E5B9UL + 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }
}
