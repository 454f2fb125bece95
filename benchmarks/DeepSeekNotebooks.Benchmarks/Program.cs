using BenchmarkDotNet.Running;

// Run all:   dotnet run -c Release --project benchmarks/DeepSeekNotebooks.Benchmarks -- --filter '*'
// One class: dotnet run -c Release --project benchmarks/DeepSeekNotebooks.Benchmarks -- --filter '*MoeDispatch*'
if (args.Length > 0 && args[0] == "interleaved-moe") return DeepSeekNotebooks.Benchmarks.InterleavedMoe.Run(args[1..]); // MoE vs GEMM in one process (InterleavedMoe.cs)
if (args.Length > 0 && args[0] == "expert-gemms") return DeepSeekNotebooks.Benchmarks.ExpertGemms.Run(args[1..]); // one expert's GEMMs on one thread (ExpertGemms.cs)
try { BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, new DeepSeekNotebooks.Benchmarks.BenchConfig()); }
finally { DeepSeekNotebooks.Benchmarks.V2LiteCheckpointBenchmarks.DeleteWritten(); } // the multi-GB checkpoints the case processes wrote
return 0;

public partial class Program;
