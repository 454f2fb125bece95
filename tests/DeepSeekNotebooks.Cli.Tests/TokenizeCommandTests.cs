using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekNotebooks.Cli.Commands;
using DeepSeekNotebooks.Model.Tokenization;

namespace DeepSeekNotebooks.Cli.Tests;

/// <summary><c>tokenize</c>: ids from the bundled tokenizer.json, checked against DeepSeekTokenizer, the file's own vocabulary and decode∘encode.</summary>
[Collection(ConsoleCaptureCollection.Name)]   // swaps Console.Error: not in parallel with the other classes that do
public class TokenizeCommandTests : IDisposable
{
    private static readonly string Checkpoint = Path.Combine(ReportTestSupport.RepoRoot, "data", "checkpoints", "deepseek-tiny-moe");
    private static string TokenizerJson => Path.Combine(Checkpoint, "tokenizer.json");
    private readonly string _tmp = Directory.CreateTempSubdirectory("tokenize-tests").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_tmp, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Out, string Err) Tokenize(string? checkpoint = null, string? tokenizer = null, string? text = null,
        string? jsonl = null, bool decode = false, bool special = false)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var saved = Console.Error;
        Console.SetError(e);
        try { return (CliSupport.Run(() => TokenizeCommand.Run(checkpoint, tokenizer, text, jsonl, decode, special, o)), o.ToString(), e.ToString()); }
        finally { Console.SetError(saved); }
    }

    private static long[] Ids(string line) => JsonSerializer.Deserialize<long[]>(line)!;

    private static string[] Lines(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void Text_PrintsTheTokenizersIds_AndAKnownVocabularyId()
    {
        const string s = "Hello world, the cat sat on the mat.";
        var (code, output, err) = Tokenize(checkpoint: Checkpoint, text: s);
        Assert.True(code == 0, err);
        using var tok = DeepSeekTokenizer.FromFile(TokenizerJson);
        Assert.Equal(tok.Encode(s), Ids(Lines(output).Single()));

        // Independent: the byte-level BPE vocabulary entry "Ġthe" (" the") read from the file is one token.
        var vocab = JsonNode.Parse(File.ReadAllText(TokenizerJson))!["model"]!["vocab"]!.AsObject();
        long the = (long)vocab["Ġthe"]!;
        Assert.Equal(new[] { the }, Ids(Lines(Tokenize(tokenizer: TokenizerJson, text: " the").Out).Single()));
        Assert.Contains(the, Ids(output));
    }

    [Fact]
    public void Jsonl_OneArrayPerLine_InOrder_AndDecodeReverses()
    {
        string[] texts = { "the cat sat", "Hello, world!", "a", "numbers 1234 and symbols #$%", "  two  spaces" };
        var input = Path.Combine(_tmp, "in.jsonl");
        File.WriteAllLines(input, texts.Select(t => JsonSerializer.Serialize(t)));
        var (code, output, err) = Tokenize(checkpoint: Checkpoint, jsonl: input);
        Assert.True(code == 0, err);
        var lines = Lines(output);
        Assert.Equal(texts.Length, lines.Length);
        using var tok = DeepSeekTokenizer.FromFile(TokenizerJson);
        for (int i = 0; i < texts.Length; i++) Assert.Equal(tok.Encode(texts[i]), Ids(lines[i]));

        var ids = Path.Combine(_tmp, "ids.jsonl");
        File.WriteAllLines(ids, lines);
        (code, output, err) = Tokenize(tokenizer: TokenizerJson, jsonl: ids, decode: true);
        Assert.True(code == 0, err);
        Assert.Equal(texts, Lines(output).Select(l => JsonSerializer.Deserialize<string>(l)!)); // decode(encode(s)) == s for ASCII text

        (code, output, _) = Tokenize(checkpoint: Checkpoint, text: lines[1], decode: true);
        Assert.Equal(0, code);
        Assert.Equal(texts[1], JsonSerializer.Deserialize<string>(output.Trim()));
    }

    [Fact]
    public void SpecialTokens_OnlyWithAddSpecialTokens_FromThePostProcessorTemplate()
    {
        // The bundled tokenizer.json with the post-processor DeepSeek's files carry: a BOS template (here its <|bos|>).
        var root = JsonNode.Parse(File.ReadAllText(TokenizerJson))!.AsObject();
        long bos = root["added_tokens"]!.AsArray().Single(t => (string)t!["content"]! == "<|bos|>")!["id"]!.GetValue<long>();
        JsonObject Special() => new() { ["SpecialToken"] = new JsonObject { ["id"] = "<|bos|>", ["type_id"] = 0 } };
        JsonObject Seq(string id, int type) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = type } };
        root["post_processor"] = new JsonObject
        {
            ["type"] = "TemplateProcessing",
            ["single"] = new JsonArray(Special(), Seq("A", 0)),
            ["pair"] = new JsonArray(Special(), Seq("A", 0), Seq("B", 1)),
            ["special_tokens"] = new JsonObject
            {
                ["<|bos|>"] = new JsonObject { ["id"] = "<|bos|>", ["ids"] = new JsonArray(bos), ["tokens"] = new JsonArray("<|bos|>") },
            },
        };
        var file = Path.Combine(_tmp, "tokenizer.json");
        File.WriteAllText(file, root.ToJsonString());
        using var plain = DeepSeekTokenizer.FromFile(TokenizerJson);
        var expected = plain.Encode("the cat");

        var without = Ids(Tokenize(tokenizer: file, text: "the cat").Out.Trim());
        var with = Ids(Tokenize(tokenizer: file, text: "the cat", special: true).Out.Trim());
        Assert.Equal(expected, without);
        Assert.Equal(new[] { bos }.Concat(expected), with);
    }

    [Fact]
    public void BadInput_FailsNamingIt()
    {
        var (code, _, err) = Tokenize(tokenizer: Path.Combine(_tmp, "nope.json"), text: "x");
        Assert.Equal(1, code);
        Assert.Contains("nope.json", err);

        (code, _, err) = Tokenize(checkpoint: _tmp, text: "x");
        Assert.Equal(1, code);
        Assert.Contains("has no tokenizer.json", err);

        var bad = Path.Combine(_tmp, "bad.jsonl");
        File.WriteAllLines(bad, new[] { "\"fine\"", "\"also fine\"", "{not json" });
        (code, _, err) = Tokenize(checkpoint: Checkpoint, jsonl: bad);
        Assert.Equal(1, code);
        Assert.Contains("bad.jsonl line 3 is not valid JSON", err);

        File.WriteAllLines(bad, new[] { "[1, 2]", "42" });
        (code, _, err) = Tokenize(checkpoint: Checkpoint, jsonl: bad, decode: true);
        Assert.Equal(1, code);
        Assert.Contains("bad.jsonl line 2 is a JSON number; expected a JSON array of token ids", err);

        (code, _, err) = Tokenize(checkpoint: Checkpoint, text: "[5, 100000]", decode: true);
        Assert.Equal(1, code);
        Assert.Contains("entry 1 is id 100000, outside the tokenizer's ids 0..511", err);

        (code, _, err) = Tokenize(checkpoint: Checkpoint, tokenizer: TokenizerJson, text: "x");
        Assert.Equal(2, code);
        Assert.Contains("exactly one of --checkpoint", err);

        (code, _, err) = Tokenize(checkpoint: Checkpoint);
        Assert.Equal(2, code);
        Assert.Contains("exactly one of --text", err);
    }

    [Fact]
    public void RootCommand_HasTokenize() => Assert.Contains(Program.BuildRootCommand().Subcommands, c => c.Name == "tokenize");
}
