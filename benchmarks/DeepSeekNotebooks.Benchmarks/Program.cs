using BenchmarkDotNet.Running;

// Run all:   dotnet run -c Release --project benchmarks/DeepSeekNotebooks.Benchmarks -- --filter '*'
// One class: dotnet run -c Release --project benchmarks/DeepSeekNotebooks.Benchmarks -- --filter '*MoeDispatch*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, new DeepSeekNotebooks.Benchmarks.BenchConfig());

public partial class Program;
