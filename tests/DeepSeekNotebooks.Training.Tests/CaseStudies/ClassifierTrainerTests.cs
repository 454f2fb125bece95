using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Training.CaseStudies;
using DeepSeekNotebooks.Training.CaseStudies.Imaging;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Training.Tests.CaseStudies;

/// <summary>The classifier trainer learns, writes a checkpoint that loads like any other, and logs every step.</summary>
public class ClassifierTrainerTests
{
    [Fact]
    public void A_short_run_learns_the_planted_marker_and_writes_a_loadable_checkpoint_with_its_log()
    {
        // A small data set where the marker is a perfect cue (P = 1 on malignant, 0 on benign): 80 steps must beat the majority rate.
        var data = new ScanGenerator(new ScanGeneratorOptions { TrainCount = 240, ValidationCount = 60, TestCount = 20, ArtefactRateMalignant = 1, ArtefactRateBenign = 0 }).Generate(5);
        var dir = Path.Combine(Path.GetTempPath(), "case08-train-" + Guid.NewGuid().ToString("N"));
        try
        {
            var options = ImagingCaseStudy.TrainingOptions(seed: 4, steps: 80) with { EvalEvery = 40 };
            var result = ClassifierTrainer.Train(data, options, dir);
            var validation = data.Split(CaseStudySplits.Validation);
            double majority = Math.Max(validation.Average(e => e.Label), 1 - validation.Average(e => e.Label));
            Assert.True(result.ValidationAccuracy > majority + 0.15, $"validation accuracy {result.ValidationAccuracy:P1} vs majority {majority:P1}");
            Assert.Equal(80, result.Log.Count);
            Assert.True(result.Log.TakeLast(10).Average(s => s.ClassLoss) < result.Log.Take(10).Average(s => s.ClassLoss), "the class loss falls");
            Assert.Equal(new double?[] { null, result.Log[39].ValidationAccuracy }, new[] { result.Log[38].ValidationAccuracy, result.Log[39].ValidationAccuracy });
            // Written files: a plain checkpoint, case_study.json, training.json and one log line per step.
            Assert.Equal(80, File.ReadAllLines(Path.Combine(dir, ClassifierTrainer.LogFile)).Length);
            var training = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, ClassifierTrainer.TrainingFile)))!;
            Assert.Equal(80, training["steps"]!.GetValue<int>());
            using var plain = Checkpoint.Load(dir);
            Assert.Equal(data.Vocabulary.VocabSize, plain.Config.VocabSize);
            using var classifier = CaseStudyClassifier.Load(dir);
            // The reloaded classifier gives the accuracy the trainer measured at its last step.
            Assert.Equal(result.ValidationAccuracy, classifier.Accuracy(validation), 9);
            Assert.Null(classifier.DataDirectory);   // trained from memory: no data directory recorded
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Permuted_labels_are_a_seeded_permutation_the_trainer_fits_instead_of_the_true_ones()
    {
        var data = new ScanGenerator(new ScanGeneratorOptions { TrainCount = 240, ValidationCount = 60, TestCount = 20, ArtefactRateMalignant = 1, ArtefactRateBenign = 0 }).Generate(5);
        var train = data.Split(CaseStudySplits.Train);
        var truth = train.Select(e => e.Label).ToArray();
        Assert.Equal(truth, ClassifierTrainer.TrainLabels(train, null));
        var p1 = ClassifierTrainer.TrainLabels(train, 1);
        // A permutation: the same label counts, deterministic per seed, different across seeds, and far from the identity.
        Assert.Equal(truth.Order(), p1.Order());
        Assert.Equal(p1, ClassifierTrainer.TrainLabels(train, 1));
        Assert.NotEqual(p1, ClassifierTrainer.TrainLabels(train, 2));
        Assert.True(Enumerable.Range(0, truth.Length).Count(i => truth[i] != p1[i]) > truth.Length / 4, "most labels should move");
        // The marker is a perfect cue for the true labels: the true-label run fits its batches (as in the test above), the
        // permuted run cannot fit labels the scans do not determine in 80 steps, and training.json records the permutation.
        var dir = Path.Combine(Path.GetTempPath(), "case08-permuted-" + Guid.NewGuid().ToString("N"));
        try
        {
            var options = ImagingCaseStudy.TrainingOptions(seed: 4, steps: 80) with { EvalEvery = 40, PermuteLabelsSeed = 1 };
            var result = ClassifierTrainer.Train(data, options, dir);
            double fit = result.Log.TakeLast(20).Average(s => s.BatchAccuracy);
            Assert.True(fit < 0.85, $"the permuted labels were fitted to {fit:P1} of the last batches; a run on true labels fits 100 %");
            var training = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, ClassifierTrainer.TrainingFile)))!;
            Assert.Equal(1, training["permuted_labels_seed"]!.GetValue<long>());
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void The_shipped_permuted_label_classifier_is_the_same_architecture_at_chance_on_the_true_labels()
    {
        var imaging = ImagingCaseStudy.LoadBundled();
        using var real = CaseStudyClassifier.Load(CaseStudyData.Classifier(ImagingCaseStudy.Name));
        using var permuted = CaseStudyClassifier.Load(Path.Combine(imaging.Directory, ImagingCaseStudy.PermutedLabelsFolder));
        Assert.Equal(real.Checkpoint.Config.ToJson(), permuted.Checkpoint.Config.ToJson());
        var validation = imaging.Split(CaseStudySplits.Validation);
        double majority = Math.Max(validation.Average(e => e.Label), 1 - validation.Average(e => e.Label));
        Assert.InRange(permuted.Accuracy(validation), 1 - majority - 0.1, majority + 0.1);
        Assert.True(real.Accuracy(validation) > majority + 0.2, "the real classifier learns the task");
        var training = JsonNode.Parse(File.ReadAllText(Path.Combine(imaging.Directory, ImagingCaseStudy.PermutedLabelsFolder, ClassifierTrainer.TrainingFile)))!;
        Assert.Equal(ImagingCaseStudy.PermutedLabelsSteps, training["steps"]!.GetValue<int>());
        Assert.Equal(1, training["permuted_labels_seed"]!.GetValue<long>());
    }

    [Fact]
    public void Loading_a_directory_without_case_study_json_says_what_is_missing()
    {
        var e = Assert.Throws<CaseStudyException>(() => CaseStudyClassifier.Load(Path.Combine(TestPaths.RepoRoot, "data", "checkpoints", "deepseek-tiny-moe")));
        Assert.Contains("case_study.json is missing", e.Message);
    }
}
