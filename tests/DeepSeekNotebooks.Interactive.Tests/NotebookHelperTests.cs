using System.Text.Json;
using DeepSeekNotebooks.Interactive;

namespace DeepSeekNotebooks.Interactive.Tests;

public class NotebookHelperTests
{
    [Theory]
    [InlineData(15_000_000L, 8, 1)]       // the bundled tiny model
    [InlineData(49_999_999L, 2, 1)]
    [InlineData(50_000_000L, 8, 8)]       // from 50 M parameters on, every core
    [InlineData(15_700_000_000L, 16, 16)] // DeepSeek-V2-Lite
    [InlineData(15_700_000_000L, 0, 1)]   // never zero threads
    public void One_thread_only_for_small_models(long parameters, int cores, int expected) =>
        Assert.Equal(expected, Notebook.ThreadsFor(parameters, cores));

    [Fact]
    public void Without_a_tokenizer_the_prompt_is_the_fixed_ids_reduced_into_the_vocabulary()
    {
        var (ids, tokens) = Notebook.Prompt(null, 100, "ignored without a tokenizer");
        // 303, 211, 294, 53, 204, 372, 152, 505, 143, 177, 279, 233 modulo 100
        Assert.Equal(new long[] { 3, 11, 94, 53, 4, 72, 52, 5, 43, 77, 79, 33 }, ids);
        Assert.Equal("#3", tokens[0]);
        var (big, _) = Notebook.Prompt(null, 512, "x");
        Assert.Equal(new long[] { 303, 211, 294, 53, 204, 372, 152, 505, 143, 177, 279, 233 }, big);
    }

    [Fact]
    public void Values_are_one_parsable_line_with_non_finite_numbers_kept()
    {
        var line = Notebook.Values(("nmi", 0.25), ("delta", double.NaN), ("ratio", double.PositiveInfinity));
        Assert.StartsWith("notebook values: {", line);
        using var json = JsonDocument.Parse(line["notebook values: ".Length..]);
        Assert.Equal(0.25, json.RootElement.GetProperty("nmi").GetDouble());
        Assert.Equal("NaN", json.RootElement.GetProperty("delta").GetString());
        Assert.Equal("Infinity", json.RootElement.GetProperty("ratio").GetString());
    }

    [Fact]
    public void Values_refuse_a_repeated_or_empty_name()
    {
        Assert.Contains("'x' is given twice", Assert.Throws<ArgumentException>(() => Notebook.Values(("x", 1), ("x", 2))).Message);
        Assert.Contains("non-empty name", Assert.Throws<ArgumentException>(() => Notebook.Values((" ", 1))).Message);
    }
}
