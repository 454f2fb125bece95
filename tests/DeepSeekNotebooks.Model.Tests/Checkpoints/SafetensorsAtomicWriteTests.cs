using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

public class SafetensorsAtomicWriteTests
{
    private static SafetensorsWriter Failing(Action<Stream> second) =>
        new SafetensorsWriter()
            .AddFloat32("ok", [1000], new float[1000])
            .Add("bad", SafetensorsDType.U8, [64], 64, second);

    [Fact]
    public void Callback_throwing_midway_leaves_no_file_and_no_temp_file()
    {
        using var dir = new TempDir();
        string path = dir.File("out.safetensors");
        var ex = Assert.Throws<InvalidDataException>(() => Failing(s => { s.Write(new byte[10]); throw new InvalidDataException("boom"); }).WriteTo(path));
        Assert.Equal("boom", ex.Message);
        Assert.Empty(dir.Entries());
    }

    [Fact]
    public void Callback_throwing_midway_leaves_an_existing_target_unchanged()
    {
        using var dir = new TempDir();
        string path = dir.File("out.safetensors");
        new SafetensorsWriter().AddFloat32("old", [2], new[] { 1f, 2f }).WriteTo(path);
        byte[] before = File.ReadAllBytes(path);
        Assert.Throws<InvalidDataException>(() => Failing(_ => throw new InvalidDataException("boom")).WriteTo(path));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["out.safetensors"], dir.Entries());
    }

    [Fact]
    public void Short_write_fails_and_leaves_nothing()
    {
        using var dir = new TempDir();
        string path = dir.File("out.safetensors");
        var ex = Assert.Throws<InvalidOperationException>(() => Failing(s => s.Write(new byte[63])).WriteTo(path));
        Assert.Contains("'bad'", ex.Message);
        Assert.Contains("63", ex.Message);
        Assert.Empty(dir.Entries());
    }

    [Fact]
    public void Over_long_write_fails_and_leaves_nothing()
    {
        using var dir = new TempDir();
        string path = dir.File("out.safetensors");
        var ex = Assert.Throws<InvalidOperationException>(() => Failing(s => { s.Write(new byte[60]); s.Write(new byte[5]); }).WriteTo(path));
        Assert.Contains("'bad'", ex.Message);
        Assert.Empty(dir.Entries());
    }

    [Fact]
    public void Successful_write_replaces_the_target_and_leaves_no_temp_file()
    {
        using var dir = new TempDir();
        string path = dir.File("out.safetensors");
        new SafetensorsWriter().AddFloat32("old", [1], new[] { 1f }).WriteTo(path);
        new SafetensorsWriter().AddFloat32("new", [1], new[] { 2f }).WriteTo(path);
        Assert.Equal(["out.safetensors"], dir.Entries());
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(["new"], f.Tensors.Select(t => t.Name));
    }
}
