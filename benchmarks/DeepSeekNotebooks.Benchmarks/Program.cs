using BenchmarkDotNet.Running;

// Run all:   dotnet run -c Release --project benchmarks/DeepSeekNotebooks.Benchmarks -- --filter '*'
// One class: dotnet run -c Release --project benchmarks/DeepSeekNotebooks.Benchmarks -- --filter '*MoeDispatch*'
try { BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, new DeepSeekNotebooks.Benchmarks.BenchConfig()); }
finally { DeepSeekNotebooks.Benchmarks.V2LiteCheckpointBenchmarks.DeleteWritten(); } // the multi-GB checkpoints the case processes wrote

public partial class Program;
