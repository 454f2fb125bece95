using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>DeepSeekModel.Generate: greedy = repeated argmax of the full forward; seeded sampling; top-k/top-p filtering; EOS; errors.</summary>
public class GenerateTests
{
    private static readonly long[] Prompt = { 3, 17, 42, 8 };

    private static DeepSeekModel NewModel() => DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, seed: 8);

    [Fact]
    public void Greedy_EqualsRepeatedArgmaxOfTheFullForward()
    {
        using var model = NewModel();
        var expected = Prompt.ToList();
        using (no_grad())
            for (int i = 0; i < 12; i++)
            {
                using var scope = NewDisposeScope();
                var logits = model.forward(tensor(expected.ToArray()).unsqueeze(0));
                expected.Add(logits[0, -1].argmax().item<long>());
            }
        var g = model.Generate(Prompt, 12);
        Assert.Equal(Prompt, g.PromptIds);
        Assert.Equal(expected.Skip(Prompt.Length), g.NewIds);
        Assert.Equal(expected, g.Sequence);
        Assert.False(g.StoppedAtEos);
    }

    [Fact]
    public void SeededSampling_IsReproducible_AndDifferentSeedsDiffer()
    {
        using var model = NewModel();
        var o = new GenerationOptions { DoSample = true, Temperature = 1.5, Seed = 11 };
        var a = model.Generate(Prompt, 24, o).NewIds;
        Assert.Equal(a, model.Generate(Prompt, 24, o).NewIds);
        // A random-weight model is close to uniform over 64 tokens: two seeds agreeing on 24 draws is (~1/64)^24-unlikely.
        Assert.NotEqual(a, model.Generate(Prompt, 24, o with { Seed = 12 }).NewIds);
        // top_k = 1 leaves one token: sampling is greedy whatever the seed.
        Assert.Equal(model.Generate(Prompt, 10).NewIds, model.Generate(Prompt, 10, o with { TopK = 1, Seed = 99 }).NewIds);
    }

    [Fact]
    public void Sample_FollowsSoftmaxOverTemperature_AndTopKTopPCutTheTail()
    {
        double[] logits = { Math.Log(0.5), Math.Log(0.3), Math.Log(0.15), Math.Log(0.05) };
        int N = 40000;
        int[] Counts(GenerationOptions o)
        {
            var rng = new Random(1);
            var counts = new int[logits.Length];
            for (int i = 0; i < N; i++) counts[Generation.Sample(logits, o, rng)]++;
            return counts;
        }
        var plain = Counts(new GenerationOptions { DoSample = true });
        double[] p = { 0.5, 0.3, 0.15, 0.05 };
        for (int i = 0; i < 4; i++) Assert.InRange(plain[i] / (double)N, p[i] - 0.01, p[i] + 0.01);
        // Temperature 2: p_i ∝ p_i^(1/2).
        var t2 = Counts(new GenerationOptions { DoSample = true, Temperature = 2 });
        var sq = p.Select(Math.Sqrt).ToArray();
        for (int i = 0; i < 4; i++) Assert.InRange(t2[i] / (double)N, sq[i] / sq.Sum() - 0.01, sq[i] / sq.Sum() + 0.01);
        // top_k = 2: {0.5, 0.3} renormalised to {0.625, 0.375}.
        var k2 = Counts(new GenerationOptions { DoSample = true, TopK = 2 });
        Assert.Equal(0, k2[2] + k2[3]);
        Assert.InRange(k2[0] / (double)N, 0.615, 0.635);
        // top_p = 0.7: 0.5 < 0.7 so the second token stays, 0.8 ≥ 0.7 so the third goes (Holtzman et al.'s smallest set reaching p).
        var p7 = Counts(new GenerationOptions { DoSample = true, TopP = 0.7 });
        Assert.Equal(0, p7[2] + p7[3]);
        Assert.True(p7[1] > 0);
        // top_p below the top probability keeps the top token only.
        Assert.Equal(N, Counts(new GenerationOptions { DoSample = true, TopP = 0.2 })[0]);
    }

    [Fact]
    public void Generation_StopsAtEos_KeepingIt()
    {
        using var model = NewModel();
        var greedy = model.Generate(Prompt, 8).NewIds;
        long eos = greedy[2];
        int first = Array.IndexOf(greedy, eos);
        var g = model.Generate(Prompt, 8, new GenerationOptions { EosTokenId = eos });
        Assert.True(g.StoppedAtEos);
        Assert.Equal(greedy.Take(first + 1), g.NewIds);
        // An EOS in config.json (Hugging Face's eos_token_id) is used when the options give none.
        using var fromConfig = DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured with
        {
            ExtraFields = new System.Text.Json.Nodes.JsonObject { ["eos_token_id"] = eos },
        }, seed: 8);
        Assert.Equal(g.NewIds, fromConfig.Generate(Prompt, 8).NewIds);
    }

    [Fact]
    public void BadArguments_AreErrorsNamingWhatIsWrong()
    {
        using var model = NewModel();
        int maxPos = model.Config.MaxPositionEmbeddings;
        Assert.Contains("the prompt is empty", Assert.Throws<ArgumentException>(() => model.Generate(Array.Empty<long>(), 3)).Message);
        Assert.Contains($"exceeds max_position_embeddings = {maxPos}", Assert.Throws<ArgumentException>(() => model.Generate(Prompt, maxPos)).Message);
        Assert.Contains("out of range", Assert.Throws<ArgumentException>(() => model.Generate(new long[] { 1, 9999 }, 3)).Message);
        Assert.Contains("Temperature must be", Assert.Throws<ArgumentOutOfRangeException>(() => model.Generate(Prompt, 3, new GenerationOptions { DoSample = true, Temperature = 0 })).Message);
        Assert.Contains("TopP must be in (0, 1]", Assert.Throws<ArgumentOutOfRangeException>(() => model.Generate(Prompt, 3, new GenerationOptions { DoSample = true, TopP = 1.5 })).Message);
        Assert.Contains("TopK must be in [1, 64]", Assert.Throws<ArgumentOutOfRangeException>(() => model.Generate(Prompt, 3, new GenerationOptions { DoSample = true, TopK = 0 })).Message);
        Assert.Empty(model.Generate(Prompt, 0).NewIds);
    }
}
