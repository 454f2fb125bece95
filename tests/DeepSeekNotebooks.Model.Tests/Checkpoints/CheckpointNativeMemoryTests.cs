using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tokenization;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>Counts process-wide native handles, so its tests never run in parallel with other test classes.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeHandleCountCollection
{
    public const string Name = "native handle counts";
}

/// <summary>
/// Native memory (issue 11): a checkpoint's tokenizer wraps a native (Rust) tokenizer; disposing the checkpoint, and the
/// vocabulary-mismatch error of <see cref="Checkpoint.Load"/>, must release it. Counted with the number of live native
/// tokenizers (<see cref="DeepSeekTokenizer.LiveCount"/>) before and after.
/// </summary>
[Collection(NativeHandleCountCollection.Name)]
public sealed class CheckpointNativeMemoryTests
{
    private static string GoldenHf => Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf");

    /// <summary>The golden checkpoint (vocab_size 512) plus a WordLevel tokenizer.json with <paramref name="tokens"/> ids.</summary>
    private static TempDir WithTokenizer(int tokens)
    {
        var t = new TempDir();
        foreach (var f in Directory.GetFiles(GoldenHf)) File.Copy(f, t.File(Path.GetFileName(f)));
        var vocab = new JsonObject { ["[UNK]"] = 0 };
        for (int i = 1; i < tokens; i++) vocab[$"w{i}"] = i;
        var json = new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null, ["added_tokens"] = new JsonArray(), ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" }, ["post_processor"] = null, ["decoder"] = null,
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["unk_token"] = "[UNK]", ["vocab"] = vocab },
        };
        File.WriteAllText(t.File("tokenizer.json"), json.ToJsonString());
        return t;
    }

    [Fact]
    public void Dispose_releases_the_checkpoints_native_tokenizer()
    {
        using var dir = WithTokenizer(100);
        int before = DeepSeekTokenizer.LiveCount;
        var ckpt = Checkpoint.Load(dir.Path);
        Assert.NotNull(ckpt.Tokenizer);
        Assert.Equal(new long[] { 3, 0 }, ckpt.Tokenizer!.Encode("w3 nope"));
        Assert.Equal(before + 1, DeepSeekTokenizer.LiveCount);

        ckpt.Dispose();

        Assert.Equal(before, DeepSeekTokenizer.LiveCount);
    }

    [Fact]
    public void Vocabulary_mismatch_error_releases_the_native_tokenizer()
    {
        using var dir = WithTokenizer(600); // 600 ids > the model's vocab_size 512
        int before = DeepSeekTokenizer.LiveCount;

        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir.Path));

        Assert.Contains("tokenizer.json has 600 tokens but the model's vocab_size is 512", e.Message);
        Assert.Equal(before, DeepSeekTokenizer.LiveCount);
    }
}
