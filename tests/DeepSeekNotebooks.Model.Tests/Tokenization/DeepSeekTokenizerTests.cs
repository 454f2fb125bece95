using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tests.Checkpoints;
using DeepSeekNotebooks.Model.Tokenization;

namespace DeepSeekNotebooks.Model.Tests.Tokenization;

public class DeepSeekTokenizerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tok-tests").FullName;

    // A minimal Hugging Face tokenizer.json (WordLevel model, whitespace pre-tokenizer).
    private static string TokenizerJson(int words) =>
        "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[{\"id\":0,\"content\":\"[UNK]\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]," +
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"post_processor\":null,\"decoder\":null," +
        "\"model\":{\"type\":\"WordLevel\",\"unk_token\":\"[UNK]\",\"vocab\":{\"[UNK]\":0" +
        string.Concat(Enumerable.Range(1, words).Select(i => $",\"w{i}\":{i}")) + ",\"<b>\":" + (words + 1) + "}}}";

    [Fact]
    public void Encodes_Decodes_AndNamesTokens()
    {
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, TokenizerJson(5));
        using var tok = DeepSeekTokenizer.FromFile(path);
        Assert.Equal(new long[] { 3, 1, 0 }, tok.Encode("w3 w1 zzz"));
        Assert.Equal(7, tok.VocabularySize);
        Assert.Equal(new[] { "w2", "<b>" }, tok.TokenStrings(new long[] { 2, 6 }));
        Assert.Contains("w3", tok.Decode(new long[] { 3 }));
    }

    [Fact]
    public void CorruptTokenizer_NamesTheFile()
    {
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, "{ not json");
        var e = Assert.Throws<InvalidDataException>(() => DeepSeekTokenizer.FromFile(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void CheckpointWithTokenizer_LoadsIt_AndRejectsAVocabularyLargerThanTheModel()
    {
        var golden = Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf");
        foreach (var f in Directory.GetFiles(golden)) File.Copy(f, Path.Combine(_dir, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), TokenizerJson(20));
        using (var ckpt = Checkpoint.Load(_dir))
        {
            Assert.NotNull(ckpt.Tokenizer);
            Assert.Equal(new long[] { 20 }, ckpt.Tokenizer!.Encode("w20"));
        }
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), TokenizerJson(600)); // model vocab is 512
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir));
        Assert.Contains("602 tokens", e.Message);
        Assert.Contains("512", e.Message);
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
