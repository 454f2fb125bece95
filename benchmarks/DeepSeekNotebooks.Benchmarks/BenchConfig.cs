using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace DeepSeekNotebooks.Benchmarks;

/// <summary>Few, long iterations (each op is milliseconds to seconds), managed-allocation and native-peak columns, GFLOP/s where FLOPs are known.</summary>
public sealed class BenchConfig : ManualConfig
{
    public BenchConfig()
    {
        AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default);
        AddExporter(BenchmarkDotNet.Exporters.MarkdownExporter.GitHub);
        var job = Job.Default.WithLaunchCount(1).WithWarmupCount(2).WithIterationCount(7).WithInvocationCount(1).WithUnrollFactor(1);
        // DSN_BENCH_INPROCESS=1: run the cases in this process (no generated project to build: on a loaded machine that
        // build can exceed any timeout); cases then share the process, so peak RSS is the maximum so far.
        if (Environment.GetEnvironmentVariable("DSN_BENCH_INPROCESS") == "1")
            job = job.WithToolchain(BenchmarkDotNet.Toolchains.InProcess.Emit.InProcessEmitToolchain.Instance);
        AddJob(job);
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(StatisticColumn.Median, new FlopsColumn(), new PeakRssColumn());
        AddColumnProvider(DefaultColumnProviders.Instance);
        WithOptions(ConfigOptions.JoinSummary);
    }
}

/// <summary>Achieved GFLOP/s = FLOPs declared by the benchmark (<see cref="Flops"/>) / median time.</summary>
public sealed class FlopsColumn : IColumn
{
    public string Id => "GFLOPs";
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "FLOPs of the operation / median time (routed + shared expert GEMMs, or the matmul)";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        var flops = Measure.FlopsOf(benchmarkCase);
        if (report?.ResultStatistics is null || flops is null) return "-";
        return (flops.Value / (report.ResultStatistics.Median * 1e-9) / 1e9).ToString("F1");
    }
}

/// <summary>Peak resident set of the benchmark process (VmHWM), a proxy for peak native memory.</summary>
public sealed class PeakRssColumn : IColumn
{
    public string Id => "PeakRss";
    public string ColumnName => "Peak RSS";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 1;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Size;
    public string Legend => "Peak resident memory of the benchmark process (VmHWM), reported by the benchmark itself";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) =>
        Measure.PeakRssOf(benchmarkCase) is { } mb ? $"{mb} MB" : "-";
}
