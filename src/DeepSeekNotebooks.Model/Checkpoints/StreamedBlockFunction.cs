using DeepSeekNotebooks.Model.Tracing;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>What a streamed block needs to run again in the backward pass (everything but its input, which autograd saves).</summary>
internal sealed record StreamedBlockCall(DeepSeekModel Model, int Layer, ForwardContext? Context, Tensor? InputIds);

/// <summary>
/// Activation checkpointing at block granularity for <see cref="Residency.Stream"/> (Chen et al. 2016, "Training deep
/// nets with sublinear memory cost"; PyTorch's <c>torch.utils.checkpoint</c>): the forward runs the block without a graph,
/// keeping only its input (the block-boundary activation); the backward brings the block's weights in again, recomputes
/// the block with autograd from that input and back-propagates the incoming gradient through it, then releases the
/// weights. Built on TorchSharp's custom autograd function (<c>torch.autograd.SingleTensorFunction</c>), so
/// <c>backward()</c> and <c>torch.autograd.grad</c> on anything computed from a streamed model just work, walking the
/// blocks in reverse. Block parameters get no gradient in stream mode; inputs (embeddings) do.
/// </summary>
internal sealed class StreamedBlockFunction : autograd.SingleTensorFunction<StreamedBlockFunction>
{
    public override string Name => "StreamedBlock";

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var call = (StreamedBlockCall)vars[1];
        ctx.save_for_backward(new List<Tensor> { x });
        ctx.save_data("call", call);
        using var scope = NewDisposeScope();
        return call.Model.RunStreamedBlock(call.Layer, x, call.Context, call.InputIds).MoveToOuterDisposeScope();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var call = (StreamedBlockCall)ctx.get_data("call");
        var x = ctx.get_saved_variables()[0];
        Tensor gradInput;
        using (var scope = NewDisposeScope())
        using (call.Model.LoadBlockWeights(call.Layer))   // held until the gradient is computed: the graph saves the weights
        using (enable_grad())
        {
            var input = x.detach().requires_grad_(true);
            var output = call.Model.RunStreamedBlock(call.Layer, input, call.Context?.WithoutRecording(), call.InputIds);
            gradInput = autograd.grad(new[] { output }, new[] { input }, new[] { gradOutput })[0].MoveToOuterDisposeScope();
        }
        // The autograd engine takes its own reference to the returned gradient; no dispose scope of the caller may own it.
        return new List<Tensor> { gradInput.DetachFromDisposeScope(), null! };
    }
}
