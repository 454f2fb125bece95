using System.Text.Json;
using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tokenization;
using DeepSeekNotebooks.Training.Corpus;

namespace DeepSeekNotebooks.Training.Tests;

/// <summary>
/// The notebooks' one corpus loader, checked against the bundled corpus read independently (plain JSON, the tokenizer
/// called directly) rather than against its own code path.
/// </summary>
public class CorpusSampleTests
{
    private static string CorpusDir => Path.Combine(TestPaths.RepoRoot, "data", "corpus");
    private static DeepSeekConfig WithVocab(int vocab) => DeepSeekConfig.TinyFullFeatured with { VocabSize = vocab };

    /// <summary>(domain, text, prompt, answer) of the test split, straight from corpus.jsonl.</summary>
    private static List<(string Domain, string Text, string? Prompt, string? Answer)> TestSplit() =>
        File.ReadLines(Path.Combine(CorpusDir, "corpus.jsonl"))
            .Where(l => l.Length > 0)
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("split").GetString() == "test")
            .Select(e => (e.GetProperty("domain").GetString()!, e.GetProperty("text").GetString()!,
                e.TryGetProperty("prompt", out var p) ? p.GetString() : null, e.TryGetProperty("answer", out var a) ? a.GetString() : null))
            .ToList();

    [Fact]
    public void Without_a_checkpoint_tokenizer_it_uses_the_corpus_tokenizer_and_takes_the_first_documents_of_each_domain()
    {
        using var sample = CorpusSample.Load(WithVocab(512), null, new CorpusSampleOptions { DocumentsPerDomain = 3, MaxTokens = 10, CorpusPath = CorpusDir });
        Assert.True(sample.IsAvailable, sample.Unavailable);
        using var tokenizer = DeepSeekTokenizer.FromFile(Path.Combine(CorpusDir, "tokenizer.json"));
        var expected = TestSplit().GroupBy(d => d.Domain).OrderBy(g => g.Key, StringComparer.Ordinal)
            .SelectMany(g => g.Take(3)).Select(d => (d.Domain, d.Text, Ids: tokenizer.Encode(d.Text).Take(10).ToArray()))
            .Where(d => d.Ids.Length >= 2).ToList();
        Assert.Equal(new[] { "arithmetic", "code", "instruct", "prose", "records" }, sample.Domains);
        Assert.Equal(expected.Count, sample.Documents.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Domain, sample.Documents[i].Domain);
            Assert.Equal(expected[i].Text, sample.Documents[i].Text);
            Assert.Equal(expected[i].Ids, sample.Documents[i].Ids);
        }
        Assert.EndsWith("tokenizer.json", sample.TokenizerSource);
        Assert.Equal(tokenizer.TokenStrings(new long[] { expected[0].Ids[0] })[0], sample.TokenText(expected[0].Ids[0]));
    }

    [Fact]
    public void Ids_outside_the_models_vocabulary_are_dropped_before_truncation()
    {
        using var tokenizer = DeepSeekTokenizer.FromFile(Path.Combine(CorpusDir, "tokenizer.json"));
        using var sample = CorpusSample.Load(WithVocab(256), tokenizer, new CorpusSampleOptions { DocumentsPerDomain = 2, MaxTokens = 12, CorpusPath = CorpusDir });
        var expected = TestSplit().GroupBy(d => d.Domain).OrderBy(g => g.Key, StringComparer.Ordinal).SelectMany(g => g.Take(2))
            .Select(d => (All: tokenizer.Encode(d.Text), d.Text)).ToList();
        Assert.Contains(expected, d => d.All.Any(i => i >= 256)); // only meaningful if some id is dropped (byte-level merges are ≥ 256)
        var kept = expected.Select(d => d.All.Where(i => i < 256).Take(12).ToArray()).Where(ids => ids.Length >= 2).ToList();
        Assert.Equal(kept, sample.Documents.Select(d => d.Ids));
        Assert.Equal("checkpoint", sample.TokenizerSource);
        Assert.Equal(expected[0].All.Where(i => i < 256).ToArray(), sample.Encode(expected[0].Text));
    }

    [Fact]
    public void A_corpus_tokenizer_larger_than_the_vocabulary_makes_the_sample_unavailable_and_says_why()
    {
        using var sample = CorpusSample.Load(WithVocab(300), null, new CorpusSampleOptions { CorpusPath = CorpusDir });
        Assert.False(sample.IsAvailable);
        Assert.Empty(sample.Documents);
        Assert.Empty(sample.Domains);
        Assert.Null(sample.Tokenizer);
        // The tokenizer file's largest id + 1, counted here from the JSON itself.
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(CorpusDir, "tokenizer.json")));
        int size = 1 + Math.Max(json.RootElement.GetProperty("model").GetProperty("vocab").EnumerateObject().Max(p => p.Value.GetInt32()),
            json.RootElement.GetProperty("added_tokens").EnumerateArray().Select(t => t.GetProperty("id").GetInt32()).DefaultIfEmpty(0).Max());
        Assert.Contains($"{size} tokens do not fit the model's vocabulary of 300", sample.Unavailable);
        Assert.StartsWith("No corpus sample: the checkpoint has no tokenizer", sample.ToString());
        Assert.Throws<InvalidOperationException>(() => sample.Encode("x"));
    }

    [Fact]
    public void Instruction_pairs_are_the_splits_question_answer_documents()
    {
        using var sample = CorpusSample.Load(WithVocab(512), null, new CorpusSampleOptions { DocumentsPerDomain = 1, CorpusPath = CorpusDir });
        var expected = TestSplit().Where(d => d.Prompt is not null).ToList();
        Assert.NotEmpty(expected);
        Assert.Equal(expected.Select(d => (d.Prompt!, d.Answer!)), sample.InstructionPairs.Select(p => (p.Prompt, p.Answer)));
        Assert.All(sample.InstructionPairs.Zip(expected), x => Assert.Equal(x.Second.Text, x.First.Prompt + x.First.Answer));
    }

    [Theory]
    [InlineData(0, 48, 2, "DocumentsPerDomain")]
    [InlineData(4, 0, 1, "MaxTokens")]
    [InlineData(4, 8, 9, "MinTokens")]
    public void Bad_sizes_are_refused_naming_the_option(int perDomain, int maxTokens, int minTokens, string option)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CorpusSample.Load(WithVocab(512), null,
            new CorpusSampleOptions { DocumentsPerDomain = perDomain, MaxTokens = maxTokens, MinTokens = minTokens, CorpusPath = CorpusDir }));
        Assert.Contains(option, e.Message);
    }

    [Fact]
    public void An_unknown_split_or_a_missing_corpus_is_a_clear_error()
    {
        var e = Assert.Throws<ArgumentException>(() => CorpusSample.Load(WithVocab(512), null, new CorpusSampleOptions { Split = "dev", CorpusPath = CorpusDir }));
        Assert.Contains("'dev' is not one of train, validation, test", e.Message);
        var missing = Path.Combine(Path.GetTempPath(), "no-corpus-" + Guid.NewGuid().ToString("N"));
        var c = Assert.Throws<CorpusException>(() => CorpusSample.Load(WithVocab(512), null, new CorpusSampleOptions { CorpusPath = missing }));
        Assert.Contains("corpus file not found", c.Message);
    }
}
