using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using DeepSeekNotebooks.Model.Tokenization;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>tokenize</c>: text → token ids (one JSON array per input) or, with <c>--decode</c>, ids → text (one JSON string per
/// input), with a checkpoint's <c>tokenizer.json</c> through the kit's <see cref="DeepSeekTokenizer"/>.
/// </summary>
public static class TokenizeCommand
{
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var checkpoint = new Option<DirectoryInfo?>("--checkpoint") { Description = "Checkpoint directory whose tokenizer.json to use (the weights are not read)." };
        var tokenizer = new Option<FileInfo?>("--tokenizer") { Description = "A Hugging Face tokenizer.json." };
        var text = new Option<string?>("--text") { Description = "One input: text to encode, or with --decode a JSON array of ids (e.g. [303,211])." };
        var jsonl = new Option<FileInfo?>("--jsonl") { Description = "One input per line: a JSON string (or {\"text\": …}) to encode, or with --decode a JSON array of ids; one output line per input line, in order." };
        var decode = new Option<bool>("--decode") { Description = "Ids → text: print each decoded text as a JSON string." };
        var special = new Option<bool>("--add-special-tokens") { Description = "Add the special tokens of the tokenizer's post-processor template (e.g. DeepSeek's BOS); off by default." };
        var command = new Command("tokenize", "Text to token ids (JSON arrays), or ids to text with --decode, with a checkpoint's tokenizer.json.")
        {
            checkpoint, tokenizer, text, jsonl, decode, special,
        };
        command.SetAction(parse => CliSupport.Run(() => Run(parse.GetValue(checkpoint)?.FullName, parse.GetValue(tokenizer)?.FullName,
            parse.GetValue(text), parse.GetValue(jsonl)?.FullName, parse.GetValue(decode), parse.GetValue(special), Console.Out)));
        return command;
    }

    internal static int Run(string? checkpointDir, string? tokenizerFile, string? text, string? jsonlFile, bool decode, bool addSpecialTokens, TextWriter output)
    {
        if ((checkpointDir is null) == (tokenizerFile is null))
            throw new UsageException("give exactly one of --checkpoint DIR (a checkpoint directory with tokenizer.json) or --tokenizer FILE (a tokenizer.json)");
        if ((text is null) == (jsonlFile is null))
            throw new UsageException("give exactly one of --text T (one input) or --jsonl FILE (one input per line)");
        if (decode && addSpecialTokens)
            throw new UsageException("--add-special-tokens applies to encoding; it cannot be combined with --decode");
        string path;
        if (checkpointDir is not null)
        {
            if (!Directory.Exists(checkpointDir)) throw new IOException($"checkpoint directory not found: {checkpointDir}");
            path = Path.Combine(checkpointDir, "tokenizer.json");
            if (!File.Exists(path)) throw new IOException($"{checkpointDir} has no tokenizer.json; give --tokenizer FILE");
        }
        else
        {
            path = tokenizerFile!;
            if (!File.Exists(path)) throw new IOException($"tokenizer file not found: {path} (give a Hugging Face tokenizer.json)");
        }
        if (jsonlFile is not null && !File.Exists(jsonlFile)) throw new IOException($"--jsonl file not found: {jsonlFile}");

        using var tok = DeepSeekTokenizer.FromFile(path);
        if (text is not null)
        {
            output.WriteLine(decode ? Decode(tok, text, "--text") : Encode(tok, text, addSpecialTokens));
            return 0;
        }
        int line = 0;
        foreach (var raw in File.ReadLines(jsonlFile!))
        {
            line++;
            var where = $"{jsonlFile} line {line}";
            output.WriteLine(decode ? Decode(tok, raw, where) : Encode(tok, ParseText(raw, where), addSpecialTokens));
        }
        return 0;
    }

    private static string Encode(DeepSeekTokenizer tok, string text, bool addSpecialTokens) =>
        JsonSerializer.Serialize(tok.Encode(text, addSpecialTokens), Json);

    private static string ParseText(string raw, string where)
    {
        JsonElement e;
        try { e = JsonDocument.Parse(raw).RootElement; }
        catch (JsonException ex) { throw new InvalidDataException($"{where} is not valid JSON ({ex.Message}); expected a JSON string, e.g. \"Hello world\""); }
        if (e.ValueKind == JsonValueKind.String) return e.GetString()!;
        if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String) return t.GetString()!;
        throw new InvalidDataException($"{where} is a JSON {e.ValueKind.ToString().ToLowerInvariant()}; expected a JSON string (or an object with a \"text\" string)");
    }

    private static string Decode(DeepSeekTokenizer tok, string raw, string where)
    {
        JsonElement e;
        try { e = JsonDocument.Parse(raw).RootElement; }
        catch (JsonException ex) { throw new InvalidDataException($"{where} is not valid JSON ({ex.Message}); expected a JSON array of token ids, e.g. [303,211]"); }
        if (e.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{where} is a JSON {e.ValueKind.ToString().ToLowerInvariant()}; expected a JSON array of token ids, e.g. [303,211]");
        var ids = new List<long>();
        int i = 0;
        foreach (var v in e.EnumerateArray())
        {
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var id))
                throw new InvalidDataException($"{where}: entry {i} ({v.GetRawText()}) is not an integer token id");
            if (id < 0 || id >= tok.VocabularySize)
                throw new InvalidDataException($"{where}: entry {i} is id {id}, outside the tokenizer's ids 0..{tok.VocabularySize - 1}");
            ids.Add(id);
            i++;
        }
        return JsonSerializer.Serialize(tok.Decode(ids), Json);
    }
}
