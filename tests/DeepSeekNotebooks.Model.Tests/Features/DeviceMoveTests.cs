using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>
/// Issue 12 §1, device: the model's entry points take token ids made on the CPU for a model on another device (CUDA)
/// by moving them to the weights' device, and leave ids already there untouched. No CUDA runtime is served here, so the
/// move itself is exercised with libtorch's meta device (shapes and dtypes, no data) as the other device.
/// </summary>
public sealed class DeviceMoveTests
{
    private static DeepSeekModel NewModel() => DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, seed: 3);

    [Fact]
    public void Ids_already_on_the_models_device_are_the_same_tensor_not_a_copy()
    {
        using var model = NewModel();
        using var ids = tensor(new long[] { 1, 2, 3 });
        Assert.Equal(DeviceType.CPU, model.Device.type);
        Assert.Same(ids, model.ToModelDevice(ids));
    }

    [Fact]
    public void Ids_on_another_device_are_moved_to_the_weights_device()
    {
        using var onMeta = empty(new long[] { 4, 4 }, device: new Device(DeviceType.META));
        using var ids = tensor(new long[] { 1, 2, 3, 4 });
        using var moved = DeepSeekModel.OnDevice(ids, onMeta);
        Assert.NotSame(ids, moved);
        Assert.Equal(DeviceType.META, moved.device_type);
        Assert.Equal(ids.shape, moved.shape);
        Assert.Equal(ScalarType.Int64, moved.dtype);
        Assert.Equal(DeviceType.CPU, ids.device_type);   // the caller's tensor is left where it was
    }

    [Fact]
    public void Every_entry_point_takes_CPU_ids_and_computes_the_same_logits()
    {
        using var model = NewModel();
        long[] prompt = { 5, 17, 3, 50, 9 };
        using var ids = tensor(prompt).unsqueeze(0);
        using var logits = model.forward(ids);
        Assert.Equal(DeviceType.CPU, logits.device_type);
        using (var trace = model.RunWithCache(ids))
            Assert.True(trace.Logits.eq(logits).all().item<bool>());
        using (var hooked = model.RunWithHooks(ids, new Dictionary<string, Tracing.HookFunction>()))
            Assert.True(hooked.eq(logits).all().item<bool>());
        using (var embeddings = model.Embed(ids))
        using (var fromEmbeddings = model.ForwardFromEmbeddings(embeddings, inputIds: ids))
            Assert.True(fromEmbeddings.eq(logits).all().item<bool>());
        // Greedy generation's first token is the argmax of the last position's logits.
        var generated = model.Generate(prompt, 1);
        using var lastArgmax = logits[0, -1].argmax();
        Assert.Equal(lastArgmax.item<long>(), generated.NewIds[0]);
    }
}
