using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Model;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>
/// The data-randomisation check (Adebayo et al. 2018 §4.2) on the golden model: the comparison machinery against two
/// independent expectations — a model compared with itself gives identical maps (ρ = 1, flagged), and a model whose
/// blocks and head are re-drawn gives exactly the similarity the model-randomisation check reports for that model.
/// </summary>
public class DataRandomisationTests : IClassFixture<GoldenFixture>
{
    private readonly GoldenFixture _g;
    public DataRandomisationTests(GoldenFixture g) => _g = g;

    private static long[] Ids => GoldenFixture.ReadI64("captum2/public.captum2.safetensors", "input_ids").Data;
    private static AttributionTarget Target => AttributionTarget.Logit(-1, 311);
    private static readonly AttributionOptions Fast = new() { NSteps = 16 };
    private static readonly AttributionMethod[] Methods = { AttributionMethod.IntegratedGradients, AttributionMethod.Saliency, AttributionMethod.InputXGradient };

    [Fact]
    public void AModelComparedWithItself_HasIdenticalMaps_AndEveryMethodIsFlagged()
    {
        var r = DataRandomisation.Run(_g.Model, _g.Model, new[] { Ids, Ids.Reverse().ToArray() }, Target, Methods, Fast);
        Assert.Equal(Methods, r.Methods);
        Assert.Equal(12, r.SequenceLength);
        foreach (var row in r.PerInput)
            foreach (var s in row) { Assert.Equal(1.0, s.Spearman, 12); Assert.Equal(1.0, s.TopKOverlap, 12); }
        Assert.Equal(Methods, r.Flagged);
        Assert.InRange(r.Threshold, 0.48, 0.53);   // one-sided 5 % critical ρ for n = 12 (tables: 0.503)
        var back = DataRandomisationReport.FromJson(r.ToJson());
        Assert.Equal(r.MeanSpearman, back.MeanSpearman);
        Assert.Equal(r.Flagged, back.Flagged);
        Assert.Contains("FLAGGED", DataRandomisation.Summary(r));
    }

    [Fact]
    public void AgainstARedrawnModel_GivesTheSimilarityTheModelRandomisationCheckReports()
    {
        var c = _g.Model.Config;
        var prefixes = new[] { "head.", "norm." }.Concat(Enumerable.Range(0, c.NumHiddenLayers).Select(b => $"layers.{b}.")).ToArray();
        using var other = SanityChecks.Randomised(_g.Model, prefixes, seed: 3);
        var r = DataRandomisation.Run(_g.Model, other, new[] { Ids }, Target, Methods, Fast);
        var sanity = SanityChecks.Run(_g.Model, Ids, Target, Methods, Fast, seed: 3, randomTargets: 0);
        var last = sanity.Cascading[^1];
        Assert.Equal(prefixes.Order(), last.Modules.Order());
        for (int j = 0; j < Methods.Length; j++)
        {
            Assert.Equal(last.Similarity[j].Spearman, r.PerInput[j][0].Spearman, 12);
            Assert.Equal(last.Similarity[j].SpearmanAbs, r.MeanSpearmanAbs[j], 12);
            Assert.Equal(r.MeanSpearman[j] >= r.Threshold, r.Flagged.Contains(Methods[j]));
        }
        Assert.DoesNotContain(AttributionMethod.IntegratedGradients, r.Flagged);
    }

    [Fact]
    public void BadArguments_SayWhatIsExpected()
    {
        Assert.Contains("at least one input", Assert.Throws<ArgumentException>(() => DataRandomisation.Run(_g.Model, _g.Model, Array.Empty<long[]>(), Target)).Message);
        Assert.Contains("input 1 has 3", Assert.Throws<ArgumentException>(() => DataRandomisation.Run(_g.Model, _g.Model, new[] { Ids, new long[] { 1, 2, 3 } }, Target)).Message);
        using var wider = DeepSeekModel.Create(_g.Model.Config with { NumHiddenLayers = 2 }, 1);
        Assert.Contains("one architecture", Assert.Throws<ArgumentException>(() => DataRandomisation.Run(_g.Model, wider, new[] { Ids }, Target)).Message);
        Assert.Contains("at least one attribution method", Assert.Throws<ArgumentException>(() => DataRandomisation.Run(_g.Model, _g.Model, new[] { Ids }, Target, Array.Empty<AttributionMethod>())).Message);
    }
}
