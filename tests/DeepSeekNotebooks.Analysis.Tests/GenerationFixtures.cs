using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>The golden tiny DeepSeek-V3.2 and V4 models (tests/fixtures/golden/v32, v4: official-code fixtures) as loaded checkpoints.</summary>
internal static class GenerationFixtures
{
    /// <summary>Loads golden/<paramref name="dir"/> in the Hugging Face layout (config + weights copied to a temporary directory).</summary>
    internal static Checkpoint Load(string dir)
    {
        var src = Path.Combine(GoldenFixture.GoldenDir, dir);
        var tmp = Path.Combine(Path.GetTempPath(), $"diag-{dir}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            File.Copy(Path.Combine(src, "public.hf_config.json"), Path.Combine(tmp, "config.json"));
            File.Copy(Path.Combine(src, "public.weights_hf.safetensors"), Path.Combine(tmp, "model.safetensors"));
            return Checkpoint.Load(tmp);
        }
        finally { try { Directory.Delete(tmp, true); } catch (IOException) { } }
    }

    internal static Checkpoint V32() => Load("v32");
    internal static Checkpoint V4() => Load("v4");

    /// <summary>Deterministic token ids in [1, vocab).</summary>
    internal static long[] Prompt(int length, int seed, int vocab = 512)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (long)r.Next(1, vocab)).ToArray();
    }

    /// <summary>
    /// A copy of <paramref name="model"/> (same weights and quantisation) whose indexers keep every visible key: the dense
    /// reference, built independently of the hooks the diagnostics use.
    /// </summary>
    internal static DeepSeekModel WithTopk(DeepSeekModel model, int topk)
    {
        var c = model.Config;
        var wide = DeepSeekModel.Create(c with { Indexer = c.Indexer! with { Topk = topk } });
        wide.load_state_dict(model.state_dict());
        wide.Quantisation = model.Quantisation;
        wide.eval();
        return wide;
    }
}
