using System.Diagnostics;
using System.Globalization;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>Captum's convergence delta Σ attr − (F(input) − F(baseline)) and the kit's warning when it is large.</summary>
internal static class ConvergenceDelta
{
    /// <summary>
    /// Adds a warning to <paramref name="warnings"/> (and traces it) when |<paramref name="delta"/>| exceeds
    /// <see cref="IntegratedGradients.DeltaWarningFraction"/> of |F(input) − F(baseline)|, as <see cref="IntegratedGradients"/> does.
    /// </summary>
    internal static void Check(string what, double delta, double fInput, double fBaseline, Baseline baseline, List<string> warnings)
    {
        double scale = Math.Abs(fInput - fBaseline);
        if (!(Math.Abs(delta) > IntegratedGradients.DeltaWarningFraction * scale)) return;
        var msg = string.Create(CultureInfo.InvariantCulture,
            $"{what} convergence delta {delta:G4} exceeds {IntegratedGradients.DeltaWarningFraction:P0} of |F(input) - F(baseline)| = {scale:G4}: increase nSteps or use a better-behaved baseline");
        if (baseline == Baseline.Zeros) msg += " (a zero baseline is degenerate for RMSNorm models: try a token baseline)";
        warnings.Add(msg);
        Trace.TraceWarning(msg);
    }
}
