using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Statistics;

/// <summary>One traced sequence handed to accumulators: its ids, optional domain label, position in the dataset and trace.</summary>
/// <param name="Index">0-based index of the sequence in the dataset.</param>
/// <param name="Ids">Token ids of the sequence.</param>
/// <param name="Domain">Domain label (null when the dataset is unlabelled).</param>
/// <param name="Trace">The traced forward of the sequence (batch 1); owned by the runner, disposed after all accumulators ran.</param>
public sealed record SequenceObservation(int Index, long[] Ids, string? Domain, ModelTrace Trace);

/// <summary>
/// A dataset-scale statistic fed one traced sequence at a time: memory independent of the number of sequences, and
/// mergeable (<see cref="IMergeable{T}"/>) so shards can be processed independently and combined.
/// </summary>
public interface IDatasetAccumulator
{
    /// <summary>What the accumulator needs recorded (the runner records the union over all accumulators).</summary>
    TraceOptions Requirements { get; }
    /// <summary>Folds one sequence's observations in.</summary>
    void Observe(SequenceObservation observation);
}

/// <summary>An accumulator that can fold another of its kind into itself so that merged == one pass over both inputs.</summary>
public interface IMergeable<in T>
{
    /// <summary>Folds <paramref name="other"/> into this accumulator (the other is unchanged).</summary>
    void Merge(T other);
}

/// <summary>Progress of a <see cref="DatasetRunner"/> run.</summary>
/// <param name="SequencesDone">Sequences traced and accumulated so far.</param>
/// <param name="TokensDone">Tokens in those sequences.</param>
/// <param name="TotalSequences">Total when the input is a collection with a known count, else null.</param>
public readonly record struct DatasetProgress(int SequencesDone, long TokensDone, int? TotalSequences);

/// <summary>
/// Traces each sequence of a dataset with <see cref="DeepSeekModel.RunWithCache"/> (batch 1, no gradients) and feeds the
/// trace to every accumulator, so expert-load (DeepSeek-V3 arXiv:2412.19437 Fig. 9), routing (Mixtral arXiv:2401.04088
/// Table 5) and attention statistics can be gathered over datasets of any size in constant memory.
/// </summary>
public static class DatasetRunner
{
    /// <summary>
    /// Runs an unlabelled dataset. Reports progress after every sequence and checks <paramref name="ct"/> between sequences
    /// (throws <see cref="OperationCanceledException"/>; accumulators then hold the sequences completed so far).
    /// Returns the number of sequences processed.
    /// </summary>
    /// <exception cref="ArgumentException">Empty dataset, no accumulators, or a sequence is empty / has out-of-range ids.</exception>
    public static int Run(DeepSeekModel model, IEnumerable<long[]> sequences, IReadOnlyList<IDatasetAccumulator> accumulators,
        IProgress<DatasetProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        return Run(model, sequences.Select(s => (s, (string?)null)), accumulators, progress, ct);
    }

    /// <summary>
    /// Runs a dataset of (ids, domain label) pairs; the label reaches accumulators that split by domain
    /// (e.g. <see cref="Experts.ExpertRoutingAccumulator"/>'s domain × expert load, DeepSeek-V3 Fig. 9).
    /// </summary>
    /// <exception cref="ArgumentException">Empty dataset, no accumulators, or a sequence is empty / has out-of-range ids.</exception>
    public static int Run(DeepSeekModel model, IEnumerable<(long[] Ids, string? Domain)> sequences, IReadOnlyList<IDatasetAccumulator> accumulators,
        IProgress<DatasetProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        ArgumentNullException.ThrowIfNull(accumulators);
        if (accumulators.Count == 0) throw new ArgumentException("give at least one accumulator", nameof(accumulators));
        var options = Union(accumulators.Select(a => a.Requirements));
        int? total = sequences.TryGetNonEnumeratedCount(out var c) ? c : null;
        int done = 0;
        long tokens = 0;
        using var _ = no_grad();
        foreach (var (ids, domain) in sequences)
        {
            ct.ThrowIfCancellationRequested();
            if (ids is null || ids.Length == 0)
                throw new ArgumentException($"sequence {done} is empty; every sequence needs at least one token", nameof(sequences));
            using (var scope = NewDisposeScope())
            {
                using var input = tensor(ids, dtype: ScalarType.Int64).unsqueeze(0);
                using var trace = model.RunWithCache(input, options);
                var obs = new SequenceObservation(done, ids, domain, trace);
                foreach (var a in accumulators) a.Observe(obs);
            }
            done++;
            tokens += ids.Length;
            progress?.Report(new DatasetProgress(done, tokens, total));
        }
        if (done == 0) throw new ArgumentException("the dataset is empty: give at least one sequence", nameof(sequences));
        return done;
    }

    /// <summary>What the runner records: every accumulator's requirements, all fields kept (<see cref="TraceOptions.Union"/>).</summary>
    internal static TraceOptions Union(IEnumerable<TraceOptions> all) => TraceOptions.Union(all);
}
