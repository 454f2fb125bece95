using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Attribution;
using DeepSeekNotebooks.Analysis.CaseStudies;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Tracing;
using DeepSeekNotebooks.Training.CaseStudies;
using DeepSeekNotebooks.Training.CaseStudies.Imaging;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.Tests.CaseStudies;

/// <summary>
/// The shipped imaging classifier loads like any checkpoint and the kit's methods find the planted shortcut in it: a
/// regression in a method (IG, the hooks, the classifier read-out) or in the data makes the case study fail. The floors are
/// the ones notebook 08 states (chance level of the marker region: 6 of 64 patches = 9.4 %).
/// </summary>
public class BundledClassifierTests
{
    /// <summary>Notebook 08's floor: IG puts at least this share of attribution mass on the 6 marker patches of marked scans.</summary>
    public const double MarkerShareFloor = 0.25;
    /// <summary>Notebook 08's floor: accuracy with the marker (test_shortcut) minus without (test), same scans.</summary>
    public const double AccuracyDropFloor = 0.05;

    private static string Dir => Path.Combine(TestPaths.RepoRoot, "data", "case-studies", "imaging");

    [Fact]
    public void Classifier_loads_as_a_plain_checkpoint_with_MLA_and_DeepSeekMoE_blocks()
    {
        using var plain = Checkpoint.Load(Path.Combine(Dir, CaseStudyData.ClassifierFolder));
        Assert.Equal(35, plain.Config.VocabSize);
        Assert.All(Enumerable.Range(0, plain.Config.NumHiddenLayers), l => Assert.True(plain.Config.IsMoeLayer(l)));
        Assert.True(plain.Config.NSharedExperts >= 1 && plain.Config.NRoutedExperts >= 2);
        using var classifier = CaseStudyClassifier.Load(Path.Combine(Dir, CaseStudyData.ClassifierFolder));
        Assert.Equal(Path.GetFullPath(Dir), classifier.DataDirectory);
        Assert.Equal(new[] { "benign", "malignant" }, classifier.Vocabulary.ClassNames);
        Assert.True(File.Exists(Path.Combine(Dir, CaseStudyData.ClassifierFolder, ClassifierTrainer.LogFile)));
        Assert.True(new FileInfo(Path.Combine(Dir, CaseStudyData.ClassifierFolder, "model.safetensors")).Length < 5_000_000);
        // Rollout and a traced forward work unchanged on it: every rollout row is a distribution.
        var data = ImagingCaseStudy.Load(Dir);
        using var ids = classifier.InputIds(data.Split(CaseStudySplits.Test)[0]);
        using var trace = classifier.Model.RunWithCache(ids);
        var rollout = AttentionRollout.Compute(trace);
        var m = rollout.Matrix;
        Assert.Equal(65, m.Queries);
        Assert.InRange(Enumerable.Range(0, m.Queries).Max(i => Math.Abs(Enumerable.Range(0, m.Keys).Sum(j => (double)m[i, j]) - 1)), 0, 1e-4);
    }

    [Fact]
    public void The_classifier_learnt_the_task_and_the_marker_shortcut()
    {
        using var classifier = CaseStudyClassifier.Load(Path.Combine(Dir, CaseStudyData.ClassifierFolder));
        var data = ImagingCaseStudy.Load(Dir);
        var test = data.Split(CaseStudySplits.Test);
        var shortcut = data.Split(CaseStudySplits.TestShortcut);
        double majority = Math.Max(test.Average(e => e.Label), 1 - test.Average(e => e.Label));
        double clean = classifier.Accuracy(test), marked = classifier.Accuracy(shortcut);
        Assert.True(marked > majority + 0.1, $"accuracy with the marker {marked:P1} should beat the majority rate {majority:P1} clearly");
        Assert.True(marked - clean >= AccuracyDropFloor, $"accuracy drop without the marker {marked - clean:P1} < {AccuracyDropFloor:P0} (with {marked:P1}, without {clean:P1})");
    }

    [Fact]
    public void Integrated_gradients_put_the_stated_share_of_attribution_on_the_marker()
    {
        using var classifier = CaseStudyClassifier.Load(Path.Combine(Dir, CaseStudyData.ClassifierFolder));
        var data = ImagingCaseStudy.Load(Dir);
        var marked = data.Split(CaseStudySplits.TestShortcut).Where(e => e.Fact("artefact") == 1).Take(24).ToArray();
        var shares = new List<double>();
        foreach (var e in marked)
        {
            using var ids = classifier.InputIds(e);
            var attr = IntegratedGradients.Attribute(classifier.Model, ids, classifier.LogOdds(), classifier.BlankInput(PatchCodebook.BackgroundToken, 64), nSteps: 32);
            shares.Add(AttributionMass.Share(attr, ScanGenerator.ArtefactPatches, 64));
        }
        double mean = shares.Average();
        Assert.True(mean >= MarkerShareFloor, $"IG share on the marker {mean:P1} < {MarkerShareFloor:P0} (chance {6 / 64.0:P1})");
    }
}
