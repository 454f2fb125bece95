using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Training.Training;
using TorchSharp;

namespace DeepSeekNotebooks.Training.Tests;

/// <summary>
/// Native memory (issue 11): the trainer's AdamW optimizer holds two native state tensors per trainable parameter
/// (exp_avg, exp_avg_sq); they must be released on every way out of <see cref="Trainer.Run"/>, not only at a stage's end.
/// Counted with TorchSharp's per-thread lifetime statistics (tensors created on this thread minus those disposed); the
/// trainer runs on the calling thread, so tests running in parallel do not disturb the count. The expectation is the
/// count left by creating and disposing the run's model alone (TorchSharp counts some of the model's construction
/// temporaries as live, 112 for this config): a run that stops or is cancelled must leave nothing more.
/// </summary>
public partial class TrainerTests
{
    private static long LiveTensors() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    private static long LeftByModelAlone(TrainingOptions o)
    {
        long before = LiveTensors();
        using (DeepSeekModel.Create(o.Model, o.Seed)) { }
        return LiveTensors() - before;
    }

    [Fact]
    public void Run_stopped_mid_stage_releases_every_tensor_it_created()
    {
        var o = Tiny(6);
        Trainer.Run(Run(o, Temp()) with { StopAfterSteps = 1 }); // warm-up: lazily created process-wide tensors
        long expected = LeftByModelAlone(o);
        long before = LiveTensors();

        var result = Trainer.Run(Run(o, Temp()) with { StopAfterSteps = 3 }); // returns from inside stage 1's step loop

        Assert.False(result.Completed);
        Assert.Equal(expected, LiveTensors() - before);
    }

    [Fact]
    public void Run_cancelled_mid_stage_releases_every_tensor_it_created()
    {
        var o = Tiny(6);
        Trainer.Run(Run(o, Temp()) with { StopAfterSteps = 1 });
        long expected = LeftByModelAlone(o);
        long before = LiveTensors();
        using var cts = new CancellationTokenSource();

        Assert.ThrowsAny<OperationCanceledException>(() => Trainer.Run(Run(o, Temp()), new CancelAfter(2, cts), cts.Token));

        Assert.Equal(expected, LiveTensors() - before);
    }

    private sealed class CancelAfter(int steps, CancellationTokenSource cts) : ITrainingObserver
    {
        public void Step(StepRecord record)
        {
            if (record.GlobalStep >= steps) cts.Cancel();
        }
    }
}
