using System.Text.Json.Nodes;
using DeepSeekNotebooks.Model.Checkpoints;

namespace DeepSeekNotebooks.Model.Tests.Checkpoints;

/// <summary>
/// A checkpoint with multi-token-prediction modules (DeepSeek-V3 stores one as <c>model.layers.{num_hidden_layers}</c>)
/// loads when config.json declares them in <c>num_nextn_predict_layers</c>; the kit skips their tensors, and
/// <see cref="ArchitectureCost"/> counts them apart.
/// </summary>
public class MtpSkipTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mtp-skip").FullName;

    /// <summary>The golden checkpoint plus one MTP module's tensors (layer 3: eh_proj [64, 128], enorm [64]) in a second shard.</summary>
    private void WriteCheckpoint(int declaredMtpLayers)
    {
        var golden = Path.Combine(Raw.RepoRoot(), "data", "checkpoints", "golden-tiny-hf");
        File.Copy(Path.Combine(golden, "model.safetensors"), Path.Combine(_dir, "model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(golden, "config.json")))!.AsObject();
        config["num_nextn_predict_layers"] = declaredMtpLayers;
        File.WriteAllText(Path.Combine(_dir, "config.json"), config.ToJsonString());
        new SafetensorsWriter()
            .AddFloat32("model.layers.3.eh_proj.weight", new long[] { 64, 128 }, new float[64 * 128])
            .AddFloat32("model.layers.3.enorm.weight", new long[] { 64 }, Enumerable.Repeat(1f, 64).ToArray())
            .WriteTo(Path.Combine(_dir, "model-mtp.safetensors"));
    }

    [Fact]
    public void DeclaredMtpModule_IsSkippedByTheLoader()
    {
        WriteCheckpoint(declaredMtpLayers: 1);
        using var ckpt = Checkpoint.Load(_dir);
        Assert.Equal(1, ckpt.Config.NumNextnPredictLayers);
        Assert.Equal(3, ckpt.Config.NumHiddenLayers);
        // Not loaded, so not in the inspect counts either: stored (main model only) = architecture total.
        var cost = ArchitectureCost.FromCheckpoint(_dir);
        Assert.Equal(cost.TotalParameters, cost.StoredParameters);
        Assert.True(cost.MtpParameters > 64 * 128);
    }

    [Fact]
    public void UndeclaredMtpTensors_AreRejected_NamingThem()
    {
        WriteCheckpoint(declaredMtpLayers: 0);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir));
        Assert.Contains("model.layers.3.", e.Message);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
