using DeepSeekNotebooks.Analysis.Statistics;
using DeepSeekNotebooks.Model.Tracing;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Tests;

/// <summary>DatasetRunner records the union of its accumulators' requirements: every field of TraceOptions survives.</summary>
public class TraceOptionsUnionTests
{
    private static readonly TraceOptions Nothing = new() { Names = NamesFilter.None };

    private static readonly HookFunction Doubling = (v, _) => v * 2;

    private static readonly string[] FieldNames =
    {
        nameof(TraceOptions.Names), nameof(TraceOptions.AttentionPatterns), nameof(TraceOptions.Routing), nameof(TraceOptions.HiddenStates),
        nameof(TraceOptions.Logits), nameof(TraceOptions.Everything), nameof(TraceOptions.Extra), nameof(TraceOptions.KeepGraph),
        nameof(TraceOptions.Hooks),
    };

    public static TheoryData<string> Fields => new(FieldNames);

    /// <summary>Options that differ from <see cref="Nothing"/> in one field only.</summary>
    private static TraceOptions With(string field) => field switch
    {
        nameof(TraceOptions.Names) => Nothing with { Names = "blocks.*.attn.out" },
        nameof(TraceOptions.AttentionPatterns) => Nothing with { AttentionPatterns = true },
        nameof(TraceOptions.Routing) => Nothing with { Routing = true },
        nameof(TraceOptions.HiddenStates) => Nothing with { HiddenStates = true },
        nameof(TraceOptions.Logits) => Nothing with { Logits = true },
        nameof(TraceOptions.Everything) => Nothing with { Everything = true },
        nameof(TraceOptions.Extra) => Nothing with { Extra = new[] { "blocks.1.resid_mid" } },
        nameof(TraceOptions.KeepGraph) => Nothing with { KeepGraph = true },
        nameof(TraceOptions.Hooks) => Nothing with { Hooks = new Dictionary<string, HookFunction> { ["blocks.0.attn.out"] = Doubling } },
        _ => throw new ArgumentOutOfRangeException(nameof(field), field, "add a case for the new TraceOptions field"),
    };

    [Fact]
    public void TheCases_CoverEveryPublicPropertyOfTraceOptions()
    {
        var properties = typeof(TraceOptions).GetProperties().Where(p => p.SetMethod is not null).Select(p => p.Name).Order();
        Assert.Equal(properties, FieldNames.Order());
    }

    [Theory]
    [MemberData(nameof(Fields))]
    public void Union_KeepsTheField_WhicheverSideSetsIt(string field)
    {
        var one = With(field);
        var property = typeof(TraceOptions).GetProperty(field)!;
        Assert.NotEqual(Describe(property.GetValue(Nothing)), Describe(property.GetValue(one)));
        foreach (var union in new[] { DatasetRunner.Union(new[] { Nothing, one }), DatasetRunner.Union(new[] { one, Nothing }) })
        {
            Assert.Equal(Describe(property.GetValue(one)), Describe(property.GetValue(union)));
            Assert.Equal(one, union with { Hooks = one.Hooks }); // and nothing else changed (Hooks compared by reference: checked above)
        }
    }

    private static string Describe(object? v) => v switch
    {
        null => "null",
        IReadOnlyDictionary<string, HookFunction> d => string.Join(",", d.Keys.Order()),
        IEnumerable<string> names => string.Join(",", names.Order()),
        _ => v.ToString()!,
    };

    [Fact]
    public void Union_OfAllCases_RecordsWhatEachAsks_KeepsTheGraph_AndRunsEveryHook()
    {
        using var golden = new GoldenModel();
        var model = golden.Model;
        using var scope = NewDisposeScope();
        var ids = tensor(GoldenModel.Seq0).unsqueeze(0);
        var halving = new TraceOptions { Names = NamesFilter.None, Hooks = new Dictionary<string, HookFunction> { ["blocks.0.attn.out"] = (v, _) => v / 4 } };
        var union = DatasetRunner.Union(FieldNames.Select(With).Append(halving));
        Assert.True(union.KeepGraph);
        using var trace = model.RunWithCache(ids, union);
        Assert.Equal(HookPoints.All(model.Config).Order(), trace.Names.Order());
        Assert.True(trace[HookPoints.Logits].requires_grad, "KeepGraph was lost: the recorded logits are detached");
        // Both hooks at blocks.0.attn.out ran, in order: ×2 then ÷4 = ÷2 of the plain value.
        using var plain = model.RunWithCache(ids, new TraceOptions { Names = NamesFilter.Exact(HookPoints.AttnOut(0)) });
        var expected = plain[HookPoints.AttnOut(0)] / 2;
        Assert.True((trace[HookPoints.AttnOut(0)] - expected).abs().max().item<float>() < 1e-6);
    }
}
