using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>The head weight [vocab, dim] held in a narrower dtype than the activations (stream residency), and how many of its rows to widen at a time.</summary>
internal sealed record ChunkedHeadCall(Tensor Weight, long RowsPerChunk);

/// <summary>
/// logits = h · Wᵀ with W [vocab, dim] stored narrower than h (bf16 files, float32 compute, <see cref="Residency.Stream"/>):
/// W is converted to h's dtype in chunks of rows (≤ 64 MiB each) for the forward, and again for the backward
/// (∂L/∂h = ∂L/∂logits · W, summed over the chunks), so neither pass holds a full-width copy of the head and the graph
/// saves nothing of it. The weight gets no gradient (stream mode differentiates with respect to the inputs). A custom
/// autograd function (<c>torch.autograd.SingleTensorFunction</c>) as <see cref="StreamedBlockFunction"/>; the values are
/// those of <c>nn.functional.linear</c> with the converted weight (bf16 → f32 is exact), up to the GEMM's summation order.
/// </summary>
internal sealed class ChunkedHeadFunction : autograd.SingleTensorFunction<ChunkedHeadFunction>
{
    private const long ChunkBytes = 1L << 26;

    public override string Name => "ChunkedHead";

    /// <summary>Rows of width <paramref name="dim"/> in <paramref name="dtype"/> that fit in one 64 MiB chunk.</summary>
    internal static long RowsPerChunk(long dim, ScalarType dtype) =>
        Math.Max(1, ChunkBytes / (dim * CheckpointWeights.ElementSize(dtype)));

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var h = (Tensor)vars[0];
        var call = (ChunkedHeadCall)vars[1];
        var w = call.Weight;
        ctx.save_data("call", call);
        long vocab = w.shape[0], rows = call.RowsPerChunk;
        var shape = h.shape.ToArray();
        shape[^1] = vocab;
        var logits = empty(shape, dtype: h.dtype, device: h.device);
        using (no_grad())
            for (long start = 0; start < vocab; start += rows)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(rows, vocab - start);
                var chunk = w.narrow(0, start, n).to(h.dtype);
                logits.narrow(-1, start, n).copy_(nn.functional.linear(h, chunk));
            }
        return logits;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var call = (ChunkedHeadCall)ctx.get_data("call");
        var w = call.Weight;
        long vocab = w.shape[0], rows = call.RowsPerChunk;
        var shape = gradOutput.shape.ToArray();
        shape[^1] = w.shape[1];
        var gradInput = zeros(shape, dtype: gradOutput.dtype, device: gradOutput.device);
        using (no_grad())
            for (long start = 0; start < vocab; start += rows)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(rows, vocab - start);
                var chunk = w.narrow(0, start, n).to(gradOutput.dtype);
                gradInput.add_(gradOutput.narrow(-1, start, n).matmul(chunk));
            }
        // The autograd engine takes its own reference to the returned gradient; no dispose scope of the caller may own it.
        return new List<Tensor> { gradInput.DetachFromDisposeScope(), null! };
    }
}
