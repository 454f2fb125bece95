using System.Globalization;
using System.IO.Compression;

namespace DeepSeekNotebooks.Training.CaseStudies.Imaging;

/// <summary>Settings of <see cref="ScanGenerator"/> (recorded in the manifest).</summary>
public sealed record ScanGeneratorOptions
{
    public int TrainCount { get; init; } = 800;
    public int ValidationCount { get; init; } = 200;
    /// <summary>Scans in <c>test</c> (no artefact) and, the same scans with the artefact planted, in <c>test_shortcut</c>.</summary>
    public int TestCount { get; init; } = 300;
    /// <summary>P(artefact | malignant) in train, validation and test_shortcut.</summary>
    public double ArtefactRateMalignant { get; init; } = 0.9;
    /// <summary>P(artefact | benign) in train, validation and test_shortcut.</summary>
    public double ArtefactRateBenign { get; init; } = 0.1;
    /// <summary>Standard deviation of the noise added to the malignancy score (label noise: even the true rule is not 100 % certain).</summary>
    public double ScoreNoise { get; init; } = 0.5;

    public void Validate()
    {
        if (TrainCount < 10 || ValidationCount < 10 || TestCount < 10)
            throw new ArgumentException($"each split needs at least 10 scans (train {TrainCount}, validation {ValidationCount}, test {TestCount})");
        if (!(ArtefactRateMalignant is >= 0 and <= 1) || !(ArtefactRateBenign is >= 0 and <= 1))
            throw new ArgumentException($"artefact rates must be probabilities in [0, 1], got {ArtefactRateMalignant} (malignant) and {ArtefactRateBenign} (benign)");
        if (!(ScoreNoise >= 0)) throw new ArgumentException($"score noise must be >= 0, got {ScoreNoise}");
    }
}

/// <summary>One generated scan: 32×32 pixels in [0, 1] (row-major), which of the 8×8 patches overlap a nodule, its ground truth.</summary>
public sealed record Scan(float[] Pixels, bool[] LesionPatches, int Label, IReadOnlyDictionary<string, double> Facts);

/// <summary>
/// Synthetic chest-CT-like scans with planted ground truth (case study 08). A 32×32 grayscale image: smooth lung-field
/// background with noise, 0–2 nodules (20 % / 55 % / 25 %). Each nodule has a radius r ~ U(1.5, 6) px, a margin
/// irregularity u ~ U(0, 1) (the boundary radius is r·(1 + 0.4·u·sin(kθ + φ)), k ∈ {3, 4, 5}) and a texture t ~ U(0, 1)
/// (speckle of amplitude 0.3·t inside). Its malignancy score is z = 0.9·(r − 3.75)/1.3 + 0.9·(u − 0.5)/0.29 +
/// 0.6·(t − 0.5)/0.29 + N(0, σ²); the scan is <b>malignant</b> when the largest z over its nodules exceeds 0, else
/// benign (no nodule: benign). Nodules lie in columns x ≥ 8, away from the border.
/// The planted <b>shortcut</b>: a bright 2-px marker line on the left border (x = 0–1, rows 4–27, the 6 patches of
/// <see cref="ArtefactPatches"/>), present with P = 0.9 on malignant and 0.1 on benign scans of the train and validation
/// splits, absent from <c>test</c>; <c>test_shortcut</c> holds the same scans as <c>test</c> with the marker planted at
/// the training rates (a paired comparison). Tokens: <see cref="PatchCodebook"/>.
/// </summary>
public sealed class ScanGenerator : CaseStudyGenerator
{
    public const int Size = 32;
    public const string ScansFile = "scans.u8.gz";
    public override string Name => "imaging";
    public override string Version => "1.0";
    public ScanGeneratorOptions Options { get; }

    public ScanGenerator(ScanGeneratorOptions? options = null)
    {
        Options = options ?? new ScanGeneratorOptions();
        Options.Validate();
    }

    /// <summary>Patch indices (row-major over the 8×8 grid) covered by the border marker: column 0, patch rows 1–6.</summary>
    public static readonly int[] ArtefactPatches = Enumerable.Range(1, 6).Select(r => r * PatchCodebook.Grid).ToArray();

    public static readonly string[] Classes = { "benign", "malignant" };

    /// <summary>Renders the scan of (<paramref name="seed"/>, <paramref name="index"/>); <paramref name="artefact"/>: null =
    /// draw it at the training rates, true/false = force it.</summary>
    public Scan Render(long seed, long index, bool? artefact)
    {
        var rng = ExampleRandom(seed, index);
        var px = new float[Size * Size];
        // Background: lung field 0.25 with three slow sinusoids (±0.06) and pixel noise (σ 0.03).
        var waves = Enumerable.Range(0, 3).Select(_ => (fx: Uniform(rng, 0.05, 0.25), fy: Uniform(rng, 0.05, 0.25), ph: Uniform(rng, 0, 2 * Math.PI))).ToArray();
        for (int y = 0; y < Size; y++)
            for (int x = 0; x < Size; x++)
            {
                double v = 0.25 + waves.Sum(w => 0.02 * Math.Sin(w.fx * x + w.fy * y + w.ph)) + 0.03 * Normal(rng);
                px[y * Size + x] = (float)v;
            }
        double u = rng.NextDouble();
        int count = u < 0.2 ? 0 : u < 0.75 ? 1 : 2;
        var lesion = new bool[PatchCodebook.Grid * PatchCodebook.Grid];
        double bestZ = double.NegativeInfinity, rMax = 0, bestR = 0, bestIrr = 0, bestTex = 0;
        int lesionPixels = 0;
        for (int n = 0; n < count; n++)
        {
            double r = Uniform(rng, 1.5, 6.0), irr = rng.NextDouble(), tex = rng.NextDouble();
            int k = 3 + rng.Next(3);
            double phase = Uniform(rng, 0, 2 * Math.PI);
            double cx = Uniform(rng, 8 + r, Size - 2 - r), cy = Uniform(rng, 2 + r, Size - 2 - r);
            double z = 0.9 * (r - 3.75) / 1.3 + 0.9 * (irr - 0.5) / 0.29 + 0.6 * (tex - 0.5) / 0.29 + Options.ScoreNoise * Normal(rng);
            for (int y = 0; y < Size; y++)
                for (int x = 0; x < Size; x++)
                {
                    double dx = x + 0.5 - cx, dy = y + 0.5 - cy, d = Math.Sqrt(dx * dx + dy * dy);
                    double boundary = r * (1 + 0.4 * irr * Math.Sin(k * Math.Atan2(dy, dx) + phase));
                    double inside = Math.Clamp(boundary + 0.5 - d, 0, 1);   // anti-aliased edge
                    if (inside <= 0) continue;
                    double speckle = 0.3 * tex * Normal(rng);
                    double value = 0.78 + speckle;
                    px[y * Size + x] = (float)(px[y * Size + x] * (1 - inside) + value * inside);
                    if (inside >= 0.5) { lesion[(y / PatchCodebook.Patch) * PatchCodebook.Grid + x / PatchCodebook.Patch] = true; lesionPixels++; }
                }
            rMax = Math.Max(rMax, r);
            if (z > bestZ) { bestZ = z; bestR = r; bestIrr = irr; bestTex = tex; }
        }
        int label = count > 0 && bestZ > 0 ? 1 : 0;
        // The planted shortcut, drawn from its own stream so forcing it does not change the scan.
        var artefactRng = ExampleRandom(seed, index, 1);
        bool hasArtefact = artefact ?? artefactRng.NextDouble() < (label == 1 ? Options.ArtefactRateMalignant : Options.ArtefactRateBenign);
        if (hasArtefact)
            for (int y = 4; y < 28; y++)
                for (int x = 0; x < 2; x++)
                    px[y * Size + x] = (float)(0.95 + 0.02 * Normal(artefactRng));
        for (int i = 0; i < px.Length; i++) px[i] = Math.Clamp(px[i], 0f, 1f);
        var facts = new Dictionary<string, double>
        {
            ["nodules"] = count, ["radius_max"] = rMax, ["radius"] = bestR, ["irregularity"] = bestIrr, ["texture"] = bestTex,
            ["malignancy_score"] = count > 0 ? bestZ : -10, ["artefact"] = hasArtefact ? 1 : 0,
            ["lesion_patches"] = lesion.Count(b => b), ["lesion_pixels"] = lesionPixels, ["scan_index"] = index,
        };
        return new Scan(px, lesion, label, facts);
    }

    /// <summary>The data set: train and validation with the shortcut, test without it, test_shortcut = test's scans with it.</summary>
    public override CaseStudyDataset Generate(long seed) => GenerateWithScans(seed).Dataset;

    /// <summary><see cref="Generate"/> plus the scans (same order as the examples).</summary>
    public (CaseStudyDataset Dataset, IReadOnlyList<Scan> Scans) GenerateWithScans(long seed)
    {
        var examples = new List<CaseStudyExample>();
        var scans = new List<Scan>();
        void Add(string split, long index, bool? artefact, string id)
        {
            var scan = Render(seed, index, artefact);
            scans.Add(scan);
            examples.Add(new CaseStudyExample(id, split, scan.Label, PatchCodebook.Tokenize(scan.Pixels), scan.Facts));
        }
        long next = 0;
        for (int i = 0; i < Options.TrainCount; i++, next++) Add(CaseStudySplits.Train, next, null, $"train-{i:D4}");
        for (int i = 0; i < Options.ValidationCount; i++, next++) Add(CaseStudySplits.Validation, next, null, $"validation-{i:D4}");
        long testStart = next;
        for (int i = 0; i < Options.TestCount; i++) Add(CaseStudySplits.Test, testStart + i, false, $"test-{i:D4}");
        for (int i = 0; i < Options.TestCount; i++) Add(CaseStudySplits.TestShortcut, testStart + i, null, $"test_shortcut-{i:D4}");
        var ds = new CaseStudyDataset
        {
            Name = Name, Generator = typeof(ScanGenerator).FullName!, Version = Version, Seed = seed,
            Vocabulary = new CaseStudyVocabulary(PatchCodebook.TokenNames, Classes), Card = Card(Options), Examples = examples,
            Settings = new Dictionary<string, string>
            {
                ["train_count"] = Options.TrainCount.ToString(CultureInfo.InvariantCulture),
                ["validation_count"] = Options.ValidationCount.ToString(CultureInfo.InvariantCulture),
                ["test_count"] = Options.TestCount.ToString(CultureInfo.InvariantCulture),
                ["artefact_rate_malignant"] = Options.ArtefactRateMalignant.ToString(CultureInfo.InvariantCulture),
                ["artefact_rate_benign"] = Options.ArtefactRateBenign.ToString(CultureInfo.InvariantCulture),
                ["score_noise"] = Options.ScoreNoise.ToString(CultureInfo.InvariantCulture),
                ["image_size"] = "32", ["patch_size"] = "4",
            },
        };
        return (ds, scans);
    }

    /// <summary>Generates and writes the data set (examples.jsonl, scans.u8.gz, manifest.json, DATACARD.md).</summary>
    public CaseStudyDataset Write(long seed, string directory)
    {
        var (ds, scans) = GenerateWithScans(seed);
        ds.Write(directory, new Dictionary<string, byte[]> { [ScansFile] = ScanFile.Encode(scans) });
        return ds;
    }

    private static DataCard Card(ScanGeneratorOptions o) => new()
    {
        Title = "Synthetic lung-nodule scans (case study 08)",
        Summary = "32×32 grayscale images resembling a CT slice of a lung field with 0–2 round nodules, rendered from random shapes; "
            + "labels follow a known rule over the nodules, and one spurious border marker is planted in the training data only.",
        Labels = "malignant (1) when the largest malignancy score z of the scan's nodules exceeds 0, else benign (0); "
            + "z = 0.9·(radius − 3.75)/1.3 + 0.9·(irregularity − 0.5)/0.29 + 0.6·(texture − 0.5)/0.29 + N(0, " + o.ScoreNoise.ToString(CultureInfo.InvariantCulture) + "²); no nodule: benign.",
        Tokens = "64 patch tokens (4×4 patches, row-major) from a 32-entry codebook: 8 intensity levels × 4 patterns (flat, textured, vertical edge, horizontal edge); position is the token's place in the sequence; [CLS] appended.",
        Causes = new[]
        {
            new PlantedCause("nodule size", "radius U(1.5, 6) px; weight 0.9 per standard deviation in the score", "largest weight, with irregularity", false),
            new PlantedCause("margin irregularity", "boundary radius r·(1 + 0.4·u·sin(kθ + φ)), u ~ U(0, 1)", "0.9 per standard deviation", false),
            new PlantedCause("texture", "speckle of standard deviation 0.3·t inside the nodule, t ~ U(0, 1)", "0.6 per standard deviation", false),
            new PlantedCause("border marker (shortcut)", "bright line x = 0–1, rows 4–27 (patches 8, 16, 24, 32, 40, 48); absent from the test split",
                $"P(marker | malignant) = {o.ArtefactRateMalignant.ToString(CultureInfo.InvariantCulture)}, P(marker | benign) = {o.ArtefactRateBenign.ToString(CultureInfo.InvariantCulture)} in train, validation and test_shortcut; 0 in test", true),
        },
        Privacy = "Entirely synthetic: every scan is drawn from ScanGenerator with the manifest's seed. No real patient data, image or metadata was used or can be recovered.",
    };
}

/// <summary>
/// The patch tokeniser of the imaging case study: each 4×4 patch becomes one of 32 tokens, intensity level × pattern.
/// Level = ⌊8·mean⌋ (clamped to 0–7). Pattern: with Δx = mean(left 2 columns) − mean(right 2 columns) and Δy the same for
/// top/bottom rows, a <c>vedge</c> when |Δx| ≥ 0.15 and |Δx| ≥ |Δy|, an <c>hedge</c> when |Δy| ≥ 0.15, else
/// <c>textured</c> when the pixel standard deviation is ≥ 0.06, else <c>flat</c>. Token id = 4·level + pattern.
/// The border marker gives a bright vertical-edge patch (level ≈ 4, vedge) in column 0 — representable, but also the
/// token of a nodule's left or right margin elsewhere, so only its position singles it out.
/// </summary>
public static class PatchCodebook
{
    public const int Patch = 4;
    public const int Grid = ScanGenerator.Size / Patch;
    public const int Levels = 8;
    public static readonly string[] Patterns = { "flat", "textured", "vedge", "hedge" };
    public const double EdgeThreshold = 0.15;
    public const double TextureThreshold = 0.06;

    /// <summary>The token of an empty lung field (a flat patch at the background intensity 0.25: level 2, flat) — the
    /// "blank scan" baseline of attribution.</summary>
    public static int BackgroundToken => 2 * Patterns.Length;

    /// <summary>Token names <c>L{level}:{pattern}</c>, id = 4·level + pattern.</summary>
    public static readonly string[] TokenNames =
        Enumerable.Range(0, Levels).SelectMany(l => Patterns.Select(p => $"L{l}:{p}")).ToArray();

    /// <summary>The 64 tokens of a 32×32 image (row-major patches).</summary>
    public static int[] Tokenize(IReadOnlyList<float> pixels)
    {
        if (pixels.Count != ScanGenerator.Size * ScanGenerator.Size)
            throw new ArgumentException($"a scan has {ScanGenerator.Size * ScanGenerator.Size} pixels (32×32), got {pixels.Count}", nameof(pixels));
        var tokens = new int[Grid * Grid];
        for (int py = 0; py < Grid; py++)
            for (int pxi = 0; pxi < Grid; pxi++)
            {
                double sum = 0, sq = 0, left = 0, right = 0, top = 0, bottom = 0;
                for (int y = 0; y < Patch; y++)
                    for (int x = 0; x < Patch; x++)
                    {
                        double v = pixels[(py * Patch + y) * ScanGenerator.Size + pxi * Patch + x];
                        sum += v; sq += v * v;
                        if (x < Patch / 2) left += v; else right += v;
                        if (y < Patch / 2) top += v; else bottom += v;
                    }
                int n = Patch * Patch;
                double mean = sum / n, sd = Math.Sqrt(Math.Max(0, sq / n - mean * mean));
                double dx = (left - right) / (n / 2), dy = (top - bottom) / (n / 2);
                int level = Math.Clamp((int)Math.Floor(mean * Levels), 0, Levels - 1);
                int pattern = Math.Abs(dx) >= EdgeThreshold && Math.Abs(dx) >= Math.Abs(dy) ? 2
                    : Math.Abs(dy) >= EdgeThreshold ? 3
                    : sd >= TextureThreshold ? 1 : 0;
                tokens[py * Grid + pxi] = level * Patterns.Length + pattern;
            }
        return tokens;
    }
}

/// <summary>The scans' pixels and lesion masks as one gzip file: per scan 1024 pixel bytes (round(255·v)) then 64 mask bytes.</summary>
public static class ScanFile
{
    private const int PixelCount = ScanGenerator.Size * ScanGenerator.Size, MaskCount = PatchCodebook.Grid * PatchCodebook.Grid;

    public static byte[] Encode(IReadOnlyList<Scan> scans)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            foreach (var s in scans)
            {
                gz.Write(s.Pixels.Select(v => (byte)Math.Round(Math.Clamp(v, 0f, 1f) * 255)).ToArray());
                gz.Write(s.LesionPatches.Select(b => b ? (byte)1 : (byte)0).ToArray());
            }
        }
        return ms.ToArray();
    }

    /// <summary>Pixels (in [0, 1]) and lesion masks of every scan, in the order of the data set's examples.</summary>
    public static (float[][] Pixels, bool[][] Lesions) Read(string directory, int expected)
    {
        var path = Path.Combine(directory, ScanGenerator.ScansFile);
        if (!File.Exists(path)) throw new CaseStudyException($"{path} is missing (regenerate with `deepseek-notebooks case-study imaging --out {directory}`)");
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        var bytes = ms.ToArray();
        int per = PixelCount + MaskCount;
        if (bytes.Length != expected * per)
            throw new CaseStudyException($"{path} holds {bytes.Length} bytes; {expected} scans need {expected * per} ({per} each)");
        var pixels = new float[expected][];
        var lesions = new bool[expected][];
        for (int i = 0; i < expected; i++)
        {
            pixels[i] = bytes.AsSpan(i * per, PixelCount).ToArray().Select(b => b / 255f).ToArray();
            lesions[i] = bytes.AsSpan(i * per + PixelCount, MaskCount).ToArray().Select(b => b != 0).ToArray();
        }
        return (pixels, lesions);
    }
}
