namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>Integration rules of Integrated Gradients, as Captum's <c>approximation_methods.py</c>.</summary>
public enum IntegrationMethod
{
    /// <summary>Gauss–Legendre (Captum <c>gausslegendre</c>, its default): α_k = (1+x_k)/2, w_k = v_k/2.</summary>
    GaussLegendre,
    /// <summary>Captum <c>riemann_left</c>: α = linspace(0, 1 − 1/n, n), w = 1/n.</summary>
    RiemannLeft,
    /// <summary>Captum <c>riemann_right</c>: α = linspace(1/n, 1, n), w = 1/n.</summary>
    RiemannRight,
    /// <summary>Captum <c>riemann_middle</c>: α = linspace(1/(2n), 1 − 1/(2n), n), w = 1/n.</summary>
    RiemannMiddle,
    /// <summary>Captum <c>riemann_trapezoid</c>: α = linspace(0, 1, n), w = 1/n with the first and last halved.</summary>
    RiemannTrapezoid,
}

/// <summary>
/// Step positions α_k ∈ [0, 1] and weights w_k of the path integral ∫₀¹ g(α) dα ≈ Σ w_k g(α_k), reproducing Captum's
/// <c>captum/attr/_utils/approximation_methods.py</c> (<c>riemann_builders</c>, <c>gauss_legendre_builders</c>).
/// </summary>
public static class ApproximationMethods
{
    /// <summary>Captum's name of a rule.</summary>
    public static string CaptumName(IntegrationMethod method) => method switch
    {
        IntegrationMethod.GaussLegendre => "gausslegendre",
        IntegrationMethod.RiemannLeft => "riemann_left",
        IntegrationMethod.RiemannRight => "riemann_right",
        IntegrationMethod.RiemannMiddle => "riemann_middle",
        IntegrationMethod.RiemannTrapezoid => "riemann_trapezoid",
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    /// <summary>
    /// The α_k and weights w_k of <paramref name="method"/> with <paramref name="nSteps"/> points. Riemann rules need
    /// n ≥ 2 (Captum asserts n &gt; 1); Gauss–Legendre needs n ≥ 1. Riemann α follow <c>torch.linspace</c> in float32.
    /// </summary>
    /// <exception cref="ArgumentException">Too few steps.</exception>
    public static (double[] Alphas, double[] Weights) Get(IntegrationMethod method, int nSteps)
    {
        if (nSteps < 1) throw new ArgumentException($"nSteps must be at least 1, got {nSteps}", nameof(nSteps));
        if (method == IntegrationMethod.GaussLegendre)
        {
            var (x, v) = GaussLegendre(nSteps);
            return (x.Select(xi => 0.5 * (1 + xi)).ToArray(), v.Select(vi => 0.5 * vi).ToArray());
        }
        if (nSteps < 2) throw new ArgumentException($"Riemann rules need nSteps ≥ 2 (as Captum), got {nSteps}", nameof(nSteps));
        int n = nSteps;
        var w = Enumerable.Repeat(1.0 / n, n).ToArray();
        double[] a;
        switch (method)
        {
            case IntegrationMethod.RiemannTrapezoid:
                w[0] /= 2; w[^1] /= 2;
                a = LinspaceF32(0, 1, n); break;
            case IntegrationMethod.RiemannLeft: a = LinspaceF32(0, 1 - 1.0 / n, n); break;
            case IntegrationMethod.RiemannRight: a = LinspaceF32(1.0 / n, 1, n); break;
            case IntegrationMethod.RiemannMiddle: a = LinspaceF32(1.0 / (2 * n), 1 - 1.0 / (2 * n), n); break;
            default: throw new ArgumentOutOfRangeException(nameof(method));
        }
        return (a, w);
    }

    /// <summary>torch.linspace(start, end, n) in float32 (first half from the start, second half from the end).</summary>
    private static double[] LinspaceF32(double start, double end, int n)
    {
        float s = (float)start, e = (float)end, step = (e - s) / (n - 1);
        int half = n / 2;
        var r = new double[n];
        for (int i = 0; i < n; i++) r[i] = i < half ? s + step * i : e - step * (n - 1 - i);
        return r;
    }

    /// <summary>
    /// Gauss–Legendre nodes x_k (ascending, as numpy's <c>leggauss</c>) and weights v_k on [−1, 1] for n points:
    /// Newton's method on the Legendre polynomial P_n (three-term recurrence) in double precision, from the initial
    /// guesses cos(π(k + 3/4)/(n + 1/2)), weights v = 2/((1 − x²) P_n'(x)²).
    /// </summary>
    public static (double[] Nodes, double[] Weights) GaussLegendre(int n)
    {
        if (n < 1) throw new ArgumentException($"n must be at least 1, got {n}", nameof(n));
        var x = new double[n];
        var w = new double[n];
        for (int k = 0; k < (n + 1) / 2; k++)
        {
            double z = Math.Cos(Math.PI * (k + 0.75) / (n + 0.5)), dp = 0;
            for (int iter = 0; iter < 100; iter++)
            {
                (double p, double d) = Legendre(n, z);
                dp = d;
                double dz = p / d;
                z -= dz;
                if (Math.Abs(dz) < 1e-16) break;
            }
            dp = Legendre(n, z).Derivative;
            double wk = 2 / ((1 - z * z) * dp * dp);
            x[k] = -z; x[n - 1 - k] = z;
            w[k] = wk; w[n - 1 - k] = wk;
        }
        if (n % 2 == 1) x[n / 2] = 0;
        return (x, w);
    }

    private static (double Value, double Derivative) Legendre(int n, double z)
    {
        double p0 = 1, p1 = z;
        if (n == 0) return (1, 0);
        for (int j = 2; j <= n; j++)
        {
            double p2 = ((2 * j - 1) * z * p1 - (j - 1) * p0) / j;
            p0 = p1; p1 = p2;
        }
        double d = n * (z * p1 - p0) / (z * z - 1);
        return (p1, d);
    }
}
