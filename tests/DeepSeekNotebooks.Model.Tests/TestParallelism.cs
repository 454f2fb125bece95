using Xunit;

// Test classes run one after another, not side by side. TorchSharp 0.107 frees the Scalars it makes from .NET numbers
// (`t * 2f`, `t + eps`, and inside its optimizers) only from their finalizers, and passes a Scalar's handle to native
// code without keeping the Scalar alive: a garbage collection that another test thread triggers during that native call
// can free it, which shows up as libtorch's "Expected false to be true ... toFloat at c10/core/Scalar.h" or "Unknown
// scalar type", or as a silently different number (two same-seed V4 training runs differed in CI this way; reproduced
// with a thread that only allocates and collects). The kit runs torch on one thread per call (its MoE expert threads
// use no implicit Scalars), so only a host that runs kit calls concurrently is exposed; docs/reliability.md says so.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
