using DeepSeekNotebooks.Analysis.Attention;
using DeepSeekNotebooks.Analysis.Experts;
using DeepSeekNotebooks.Visualization.Html;
using static DeepSeekNotebooks.Visualization.Tests.ChartAssert;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>Deterministic synthetic analysis results shaped like the tiny DeepSeek-V3-style model's (with hostile tokens).</summary>
internal static class SampleData
{
    public static readonly string[] Tokens =
        { "<s>", "The", " cat", HostileImg, " sat", "\n", " on", " the", " mat", " &", " \"quoted\"", "." };

    public static ModelArchitecture Architecture =>
        ModelArchitecture.Create(4, i => i >= 1, attentionHeads: 4, routedExperts: 16, sharedExperts: 2, expertsPerToken: 4,
            name: "golden-tiny (synthetic)");

    public static float[][][][] Attention(int layers = 4, int heads = 4)
    {
        var rng = new Random(42);
        int n = Tokens.Length;
        var a = new float[layers][][][];
        for (int l = 0; l < layers; l++)
        {
            a[l] = new float[heads][][];
            for (int h = 0; h < heads; h++)
            {
                a[l][h] = new float[n][];
                for (int q = 0; q < n; q++)
                {
                    var row = new float[n];
                    double sum = 0;
                    for (int k = 0; k <= q; k++)
                    {
                        double logit = 2.5 * rng.NextDouble() + (k == 0 ? 1.5 : 0) + (k == q - h % 2 ? 1.2 : 0);
                        row[k] = (float)Math.Exp(logit); sum += row[k];
                    }
                    for (int k = 0; k <= q; k++) row[k] = (float)(row[k] / sum);
                    a[l][h][q] = row;
                }
            }
        }
        return a;
    }

    /// <summary>Rollout: Π_l (0.5·mean_h A_l + 0.5·I), rows renormalised.</summary>
    public static float[][] Rollout(float[][][][] att)
    {
        int n = Tokens.Length;
        var r = new double[n, n];
        for (int i = 0; i < n; i++) r[i, i] = 1;
        foreach (var layer in att)
        {
            var m = new double[n, n];
            for (int q = 0; q < n; q++)
                for (int k = 0; k < n; k++)
                    m[q, k] = 0.5 * layer.Average(h => h[q][k]) + (q == k ? 0.5 : 0);
            var next = new double[n, n];
            for (int q = 0; q < n; q++)
                for (int k = 0; k < n; k++)
                {
                    double s = 0;
                    for (int j = 0; j < n; j++) s += m[q, j] * r[j, k];
                    next[q, k] = s;
                }
            r = next;
        }
        return Enumerable.Range(0, n).Select(q => Enumerable.Range(0, n).Select(k => (float)r[q, k]).ToArray()).ToArray();
    }

    public static Dictionary<string, double[]> Attributions()
    {
        var rng = new Random(7);
        int n = Tokens.Length;
        return new Dictionary<string, double[]>
        {
            ["Integrated gradients"] = Enumerable.Range(0, n).Select(i => Math.Round(Math.Sin(i * 1.3) * (1 + rng.NextDouble()), 4)).ToArray(),
            ["Gradient × input " + HostileImg] = Enumerable.Range(0, n).Select(i => Math.Round(rng.NextDouble() * 2 - 0.6, 4)).ToArray(),
            ["Occlusion"] = Enumerable.Range(0, n).Select(i => Math.Round(Math.Cos(i * 0.7) * 0.8, 4)).ToArray(),
        };
    }

    public static List<LayerRouting> Routing(ModelArchitecture arch)
    {
        var rng = new Random(3);
        int n = Tokens.Length;
        return arch.MoeLayers.Select(l => new LayerRouting(l, Enumerable.Range(0, n).Select(t =>
        {
            var experts = Enumerable.Range(0, arch.RoutedExperts).OrderBy(_ => rng.Next()).Take(arch.ExpertsPerToken).ToArray();
            var logits = experts.Select(_ => 3 * rng.NextDouble()).ToArray();
            double z = logits.Sum(Math.Exp);
            var w = logits.Select(x => (float)(Math.Exp(x) / z)).OrderByDescending(x => x).ToArray();
            return new RoutingDecision(experts, w);
        }).ToArray())).ToList();
    }

    public static DashboardData Dashboard()
    {
        var arch = Architecture;
        var att = Attention(arch.Layers.Count, arch.AttentionHeads);
        return new DashboardData("Dashboard for " + HostileScript, Tokens, att.Select(l => l.Select(AttentionMatrix.FromRows).ToArray()).ToArray(),
            AttentionMatrix.FromRows(Rollout(att)), Attributions(), Routing(arch), arch.RoutedExperts);
    }
}
