using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Tests.Features;

/// <summary>Token id validation on every entry point.</summary>
public class TokenIdTests
{
    private static DeepSeekModel NewModel() => DeepSeekModel.Create(DeepSeekConfig.TinyFullFeatured, seed: 3);

    public static TheoryData<string> EntryPoints => new() { "forward", "RunWithCache", "RunWithHooks", "Embed" };

    private static void Run(DeepSeekModel m, string entry, Tensor ids)
    {
        switch (entry)
        {
            case "forward": m.forward(ids).Dispose(); break;
            case "RunWithCache": m.RunWithCache(ids).Dispose(); break;
            case "RunWithHooks": m.RunWithHooks(ids, new Dictionary<string, Tracing.HookFunction>()).Dispose(); break;
            default: m.Embed(ids).Dispose(); break;
        }
    }

    [Theory]
    [MemberData(nameof(EntryPoints))]
    public void OutOfRangeIds_AreRejected(string entry)
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => Run(model, entry, tensor(new long[] { 1, 64, 2 })));
        Assert.Contains("out of range", e.Message);
        Assert.Contains("64", e.Message);
        e = Assert.Throws<ArgumentException>(() => Run(model, entry, tensor(new long[] { 1, -1 })));
        Assert.Contains("-1", e.Message);
    }

    [Theory]
    [MemberData(nameof(EntryPoints))]
    public void EmptySequence_IsRejected(string entry)
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => Run(model, entry, tensor(Array.Empty<long>())));
        Assert.Contains("empty", e.Message);
        e = Assert.Throws<ArgumentException>(() => Run(model, entry, zeros(new long[] { 2, 0 }, dtype: int64)));
        Assert.Contains("empty", e.Message);
    }

    [Theory]
    [MemberData(nameof(EntryPoints))]
    public void LongerThanMaxPositionEmbeddings_IsRejected(string entry)
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => Run(model, entry, zeros(65, dtype: int64)));
        Assert.Contains("max_position_embeddings", e.Message);
        Run(model, entry, zeros(64, dtype: int64)); // exactly the limit is fine
    }

    [Fact]
    public void WrongDtypeOrRank_IsRejected()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        Assert.Contains("int64", Assert.Throws<ArgumentException>(() => model.forward(tensor(new float[] { 1, 2 }))).Message);
        Assert.Throws<ArgumentException>(() => model.forward(zeros(new long[] { 1, 1, 3 }, dtype: int64)));
    }

    [Fact]
    public void Int32Ids_GiveTheSameLogitsAsInt64()
    {
        using var model = NewModel();
        using var scope = NewDisposeScope();
        var a = model.forward(tensor(new long[] { 4, 9, 63, 0 }));
        var b = model.forward(tensor(new int[] { 4, 9, 63, 0 }));
        Assert.Equal(0f, (a - b).abs().max().item<float>());
        Assert.Throws<ArgumentException>(() => model.forward(tensor(new int[] { 4, 64 })));
    }
}
