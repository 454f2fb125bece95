using DeepSeekNotebooks.Training.Corpus;
using DeepSeekNotebooks.Training.Tokenization;

namespace DeepSeekNotebooks.Training;

/// <summary>Builds the data the bundled model is trained on: the seeded corpus and the BPE tokenizer trained on its train split.</summary>
public static class TrainingData
{
    /// <summary>Default vocabulary size of the trained tokenizer (256 bytes + merges + 3 special tokens).</summary>
    public const int DefaultVocabSize = 512;

    /// <summary>
    /// Generates the corpus into <paramref name="corpusDirectory"/> (corpus.jsonl + manifest.json) and trains the tokenizer on
    /// the training split, written as tokenizer.json next to it. Returns the documents and the tokenizer path.
    /// </summary>
    public static (IReadOnlyList<CorpusDocument> Documents, string TokenizerPath) Prepare(string corpusDirectory, CorpusGeneratorOptions? options = null, int vocabSize = DefaultVocabSize)
    {
        options ??= new CorpusGeneratorOptions();
        var docs = CorpusGenerator.Generate(options);
        CorpusFile.Validate(docs);
        CorpusFile.Write(corpusDirectory, docs, options);
        var vocab = ByteLevelBpeTrainer.Train(docs.Where(d => d.Split == Splits.Train).Select(d => d.Text), vocabSize);
        var tokenizerPath = Path.Combine(corpusDirectory, "tokenizer.json");
        DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(tokenizerPath, ByteLevelBpeTrainer.ToTokenizerJson(vocab));
        return (docs, tokenizerPath);
    }
}
