using System.Text.Json.Nodes;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Analysis.CaseStudies;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Native;
using DeepSeekNotebooks.Model.Tracing;
using DeepSeekNotebooks.Training.CaseStudies;
using DeepSeekNotebooks.Training.CaseStudies.Imaging;
using DeepSeekNotebooks.Training.Training;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.Tests.CaseStudies;

/// <summary>The patch tokeniser on hand-built patches (expected tokens computed by hand from the documented rule).</summary>
public class PatchCodebookTests
{
    private static float[] Image(Func<int, int, float> f)
    {
        var px = new float[32 * 32];
        for (int y = 0; y < 32; y++) for (int x = 0; x < 32; x++) px[y * 32 + x] = f(x, y);
        return px;
    }

    private static int Token(int level, string pattern) => level * 4 + Array.IndexOf(PatchCodebook.Patterns, pattern);

    [Fact]
    public void Flat_edge_and_textured_patches_get_the_documented_tokens()
    {
        // Patch (0,0): flat 0.30 → level ⌊2.4⌋ = 2, flat. Patch (0,1): left half 0.95, right half 0.25 → mean 0.6 → level 4,
        // Δx = 0.7 ≥ 0.15 → vedge. Patch (0,2): top half 0.9, bottom 0.1 → mean 0.5 → level 4, Δy = 0.8 → hedge.
        // Patch (0,3): checkerboard 0.2/0.6 → mean 0.4 → level 3, Δx = Δy = 0, sd 0.2 ≥ 0.06 → textured.
        var px = Image((x, y) => (x / 4) switch
        {
            0 => 0.30f,
            1 => x % 4 < 2 ? 0.95f : 0.25f,
            2 => y % 4 < 2 ? 0.92f : 0.12f,
            3 => (x + y) % 2 == 0 ? 0.2f : 0.6f,
            _ => 0.0f,
        });
        var tokens = PatchCodebook.Tokenize(px);
        Assert.Equal(64, tokens.Length);
        Assert.Equal(Token(2, "flat"), tokens[0]);
        Assert.Equal(Token(4, "vedge"), tokens[1]);
        Assert.Equal(Token(4, "hedge"), tokens[2]);
        Assert.Equal(Token(3, "textured"), tokens[3]);
        Assert.Equal(Token(0, "flat"), tokens[4]);
        Assert.Equal("L4:vedge", PatchCodebook.TokenNames[tokens[1]]);
        Assert.Equal(Token(7, "flat"), PatchCodebook.Tokenize(Image((_, _) => 1f))[63]);   // mean 1.0 clamps to level 7
    }

    [Fact]
    public void Wrong_image_size_is_named()
    {
        var e = Assert.Throws<ArgumentException>(() => PatchCodebook.Tokenize(new float[100]));
        Assert.Contains("1024 pixels (32×32), got 100", e.Message);
    }
}

/// <summary>The generator plants what the data card says, deterministically.</summary>
public class ScanGeneratorTests
{
    private static readonly Lazy<(CaseStudyDataset Data, IReadOnlyList<Scan> Scans)> Bundled =
        new(() => new ScanGenerator().GenerateWithScans(ImagingCaseStudy.DefaultDataSeed));

    private static string BundledDir => Path.Combine(TestPaths.RepoRoot, "data", "case-studies", "imaging");

    [Fact]
    public void Regenerating_with_the_manifest_seed_reproduces_the_shipped_files_byte_for_byte()
    {
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(BundledDir, CaseStudyDataset.ManifestFile)))!;
        Assert.Equal(ImagingCaseStudy.DefaultDataSeed, manifest["seed"]!.GetValue<long>());
        var dir = Path.Combine(Path.GetTempPath(), "case08-regen-" + Guid.NewGuid().ToString("N"));
        try
        {
            new ScanGenerator().Write(manifest["seed"]!.GetValue<long>(), dir);
            var again = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, CaseStudyDataset.ManifestFile)))!;
            Assert.Equal(manifest["sha256"]!.ToJsonString(), again["sha256"]!.ToJsonString());
            Assert.Equal(manifest["generator"]!.GetValue<string>(), again["generator"]!.GetValue<string>());
            Assert.Equal(manifest["version"]!.GetValue<string>(), again["version"]!.GetValue<string>());
            // And the shipped data reads back with its hashes verified.
            var read = ImagingCaseStudy.Load(BundledDir);
            Assert.Equal(Bundled.Value.Data.Examples.Count, read.Dataset.Examples.Count);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Labels_follow_the_stated_rule_and_the_marker_follows_the_stated_rates()
    {
        var (data, scans) = Bundled.Value;
        foreach (var e in data.Examples)
        {
            bool malignant = e.Fact("nodules") > 0 && e.Fact("malignancy_score") > 0;
            Assert.Equal(malignant ? 1 : 0, e.Label);
            Assert.InRange(e.Fact("nodules"), 0, 2);
        }
        foreach (var split in new[] { CaseStudySplits.Train, CaseStudySplits.Validation })
        {
            var ex = data.Split(split);
            double pm = ex.Where(e => e.Label == 1).Average(e => e.Fact("artefact")), pb = ex.Where(e => e.Label == 0).Average(e => e.Fact("artefact"));
            // Binomial standard errors at these sizes are ≤ 0.03 (train) and ≤ 0.05 (validation): 3 SE bands around 0.9 and 0.1.
            double tol = split == CaseStudySplits.Train ? 0.09 : 0.15;
            Assert.InRange(pm, 0.9 - tol, 0.9 + tol);
            Assert.InRange(pb, 0.1 - tol, 0.1 + tol);
        }
        Assert.All(data.Split(CaseStudySplits.Test), e => Assert.Equal(0, e.Fact("artefact")));
        // Classes are not degenerate: malignant share in (0.3, 0.6) (the rule gives ≈ 0.46 by its normal approximation).
        Assert.InRange(data.Split(CaseStudySplits.Train).Average(e => e.Label), 0.3, 0.6);
    }

    [Fact]
    public void Test_and_test_shortcut_are_the_same_scans_differing_only_on_the_marker_patches()
    {
        var data = Bundled.Value.Data;
        var test = data.Split(CaseStudySplits.Test);
        var shortcut = data.Split(CaseStudySplits.TestShortcut);
        Assert.Equal(test.Count, shortcut.Count);
        var marker = ScanGenerator.ArtefactPatches.ToHashSet();
        int withMarker = 0;
        for (int i = 0; i < test.Count; i++)
        {
            Assert.Equal(test[i].Label, shortcut[i].Label);
            Assert.Equal(test[i].Fact("scan_index"), shortcut[i].Fact("scan_index"));
            for (int p = 0; p < 64; p++)
                if (!marker.Contains(p)) Assert.Equal(test[i].Tokens[p], shortcut[i].Tokens[p]);
            if (shortcut[i].Fact("artefact") == 1)
            {
                withMarker++;
                // The marker is representable by patch tokens: every marker patch is a bright vertical edge.
                Assert.All(ScanGenerator.ArtefactPatches, p => Assert.EndsWith(":vedge", PatchCodebook.TokenNames[shortcut[i].Tokens[p]]));
            }
        }
        Assert.InRange(withMarker, test.Count / 4, 3 * test.Count / 4);
    }

    [Fact]
    public void Nodules_are_visible_in_the_pixels_where_the_lesion_mask_says()
    {
        var (data, scans) = Bundled.Value;
        for (int i = 0; i < 200; i++)
        {
            var s = scans[i];
            Assert.Equal((int)data.Examples[i].Fact("lesion_patches"), s.LesionPatches.Count(b => b));
            if (s.Facts["nodules"] == 0) { Assert.DoesNotContain(true, s.LesionPatches); continue; }
            // Lesion patches are brighter than the rest of the lung field (nodules 0.78 vs background 0.25; a 1.5-px nodule
            // covers a few pixels of a patch, hence the modest margin).
            double inside = 0, outside = 0; int ni = 0, no = 0;
            for (int p = 0; p < 64; p++)
            {
                if (ScanGenerator.ArtefactPatches.Contains(p)) continue;
                int r = p / 8, c = p % 8;
                double m = 0;
                for (int y = 0; y < 4; y++) for (int x = 0; x < 4; x++) m += s.Pixels[(r * 4 + y) * 32 + c * 4 + x] / 16;
                if (s.LesionPatches[p]) { inside += m; ni++; } else { outside += m; no++; }
            }
            Assert.True(inside / ni > outside / no + 0.05, $"scan {i}: lesion patches {inside / ni:F2} vs others {outside / no:F2}");
        }
    }

    [Fact]
    public void Tampered_data_fails_naming_the_file()
    {
        var dir = Path.Combine(Path.GetTempPath(), "case08-tamper-" + Guid.NewGuid().ToString("N"));
        try
        {
            new ScanGenerator(new ScanGeneratorOptions { TrainCount = 20, ValidationCount = 10, TestCount = 10 }).Write(3, dir);
            Assert.Equal(20 + 10 + 10 + 10, ImagingCaseStudy.Load(dir).Dataset.Examples.Count);
            var path = Path.Combine(dir, CaseStudyDataset.ExamplesFile);
            File.WriteAllText(path, File.ReadAllText(path).Replace("\"label\":1", "\"label\":0"));
            var e = Assert.Throws<CaseStudyException>(() => ImagingCaseStudy.Load(dir));
            Assert.Contains(CaseStudyDataset.ExamplesFile, e.Message);
            Assert.Contains("does not match the manifest", e.Message);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Bad_options_are_named() =>
        Assert.Contains("probabilities in [0, 1], got 1.5", Assert.Throws<ArgumentException>(() => new ScanGenerator(new ScanGeneratorOptions { ArtefactRateMalignant = 1.5 })).Message);
}

/// <summary>The classification objective on a hand-computed case.</summary>
public class ClassificationObjectiveTests
{
    [Fact]
    public void Class_logits_are_the_CLS_row_over_the_class_tokens_and_the_loss_is_their_cross_entropy()
    {
        TorchRuntime.EnsureLoaded();
        var vocab = new CaseStudyVocabulary(new[] { "a", "b", "c" }, new[] { "no", "yes" });   // ids: a b c [CLS]=3 no=4 yes=5
        Assert.Equal(6, vocab.VocabSize);
        Assert.Equal(new long[] { 4, 5 }, vocab.ClassTokens);
        Assert.Equal(new long[] { 2, 0, 3 }, vocab.Sequence(new[] { 2, 0 }));
        // logits [batch 1, seq 2, vocab 6]: the CLS row (last) has 1.0 at "no" and 3.0 at "yes"; the first row is a decoy.
        using var logits = tensor(new float[] { 9, 9, 9, 9, 9, 9, 0, 0, 0, 5, 1, 3 }, new long[] { 1, 2, 6 });
        using var cls = ClassificationObjective.ClassLogits(logits, vocab);
        Assert.Equal(new float[] { 1, 3 }, cls.data<float>().ToArray());
        using var label = tensor(new long[] { 0 });
        using var loss = ClassificationObjective.Loss(logits, label, vocab);
        // −log softmax([1, 3])[0] = log(1 + e²) = 2.126928.
        Assert.Equal(Math.Log(1 + Math.Exp(2)), loss.item<float>(), 5);
    }

    [Fact]
    public void A_vocabulary_mismatch_or_an_out_of_range_token_is_named()
    {
        var vocab = new CaseStudyVocabulary(new[] { "a", "b" }, new[] { "no", "yes" });
        Assert.Contains("outside the input vocabulary [0, 1]", Assert.Throws<CaseStudyException>(() => vocab.Sequence(new[] { 0, 2 })).Message);
        var data = new ScanGenerator(new ScanGeneratorOptions { TrainCount = 20, ValidationCount = 10, TestCount = 10 }).Generate(1);
        var options = ImagingCaseStudy.TrainingOptions(1, steps: 1) with { Model = ImagingCaseStudy.ClassifierConfig(40) };
        var e = Assert.Throws<TrainingOptionsException>(() => ClassifierTrainer.Train(data, options));
        Assert.Contains("vocab_size is 40 but the case study needs 35", e.Message);
    }
}
