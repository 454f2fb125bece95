using DeepSeekNotebooks.Model;
using DeepSeekNotebooks.Model.Checkpoints;
using DeepSeekNotebooks.Model.Modules;

namespace DeepSeekNotebooks.Analysis.Tests.Generations;

/// <summary>The golden tiny DeepSeek-V3.2 and DeepSeek-V4 models (tests/fixtures/golden/v32, v4: official weights and configs).</summary>
internal static class GenerationModels
{
    public static string V32Dir => Path.Combine(GoldenFixture.GoldenDir, "v32");
    public static string V4Dir => Path.Combine(GoldenFixture.GoldenDir, "v4");

    public static DeepSeekConfig V4Config => DeepSeekConfig.Load(Path.Combine(V4Dir, "public.hf_config.json"));
    public static DeepSeekConfig V32Config => DeepSeekConfig.Load(Path.Combine(V32Dir, "public.hf_config.json"));

    /// <summary>The golden V4 model (official layout), plain float (QAT simulation off, as the main reference).</summary>
    public static Checkpoint LoadV4() => Load(V4Dir, "config_public_v4.json");
    /// <summary>The golden V3.2 model (official layout), plain float.</summary>
    public static Checkpoint LoadV32() => Load(V32Dir, "config_public_v3.2.json");

    private static Checkpoint Load(string fixture, string configName)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"gen-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(fixture, "public.model_args.json"), Path.Combine(dir, configName));
            File.Copy(Path.Combine(fixture, "public.weights.safetensors"), Path.Combine(dir, "model0-mp1.safetensors"));
            var ckpt = Checkpoint.Load(dir);
            ckpt.Model.Quantisation = QuantisationSimulation.Off;
            return ckpt;
        }
        finally { try { Directory.Delete(dir, true); } catch (IOException) { } }
    }

    /// <summary>24 distinct token ids (CSA entries 0..5, HCA entries 0..2 in the V4 fixture).</summary>
    public static long[] Ids24 => Enumerable.Range(40, 24).Select(i => (long)i).ToArray();
}
