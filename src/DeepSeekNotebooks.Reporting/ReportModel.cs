using Microsoft.DotNet.Interactive.Documents;

namespace DeepSeekNotebooks.Reporting;

/// <summary>Options of one <c>report</c> run.</summary>
public sealed record ReportOptions
{
    /// <summary>Environment variable through which notebooks receive the checkpoint folder.</summary>
    public const string CheckpointVariable = "DEEPSEEK_CHECKPOINT";

    /// <summary>Environment variable set to "1" while a notebook runs headlessly under the report runner.</summary>
    public const string HeadlessVariable = "DEEPSEEK_NOTEBOOK_HEADLESS";

    /// <summary>Folder whose top-level <c>*.ipynb</c> run (names starting with <c>_</c> or <c>.</c> are skipped).</summary>
    public required string NotebooksDirectory { get; init; }
    /// <summary>Folder receiving the executed notebooks, HTML reports and <c>index.html</c>; must differ from <see cref="NotebooksDirectory"/>.</summary>
    public required string OutputDirectory { get; init; }
    /// <summary>Checkpoint every notebook analyses (handed over as <see cref="CheckpointVariable"/>); null leaves the variable as it is.</summary>
    public string? CheckpointPath { get; init; }
    /// <summary>
    /// Residency every notebook loads its checkpoint with (handed over as <c>$DEEPSEEK_RESIDENCY</c>, read by
    /// <c>Notebook.LoadOptions()</c> in the notebooks' second cell); null leaves the variable as it is.
    /// </summary>
    public DeepSeekNotebooks.Model.Checkpoints.Residency? Residency { get; init; }
    /// <summary>
    /// Compute dtype every notebook loads its checkpoint with, float32 or bfloat16 (handed over as <c>$DEEPSEEK_DTYPE</c>);
    /// null leaves the variable as it is.
    /// </summary>
    public TorchSharp.torch.ScalarType? DType { get; init; }
    /// <summary>Wall-clock budget of one cell.</summary>
    public TimeSpan CellTimeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Replace code-cell source with a placeholder in the HTML reports (the executed .ipynb keeps it).</summary>
    public bool RedactInputs { get; init; }
}

/// <summary>Outcome of one notebook.</summary>
public enum NotebookStatus { Succeeded, Failed, TimedOut, Malformed }

/// <summary>Outcome of one cell.</summary>
public enum CellStatus { NotRun, Succeeded, Failed, TimedOut, Skipped }

/// <summary>Per-cell result; <see cref="Index"/> is the element index in the document.</summary>
public sealed record CellRunResult(int Index, CellStatus Status, TimeSpan Duration, string? Message = null);

/// <summary>Result of executing one notebook; <see cref="Document"/> carries the outputs (null if the file was malformed).</summary>
public sealed record NotebookRunResult(
    string NotebookPath,
    NotebookStatus Status,
    InteractiveDocument? Document,
    IReadOnlyList<CellRunResult> Cells,
    TimeSpan Duration,
    string? Message = null)
{
    /// <summary>The notebook's file name without extension.</summary>
    public string Name => Path.GetFileNameWithoutExtension(NotebookPath);
}

/// <summary>Progress notification: one per started notebook, per finished cell and per finished notebook.</summary>
public sealed record ReportProgress(string NotebookPath, int CompletedCells, int TotalCells, NotebookStatus? Finished = null);

/// <summary>Where one notebook's artefacts were written.</summary>
public sealed record NotebookReport(NotebookRunResult Run, string HtmlPath, string? ExecutedNotebookPath);

/// <summary>Everything a <c>report</c> run produced.</summary>
public sealed record ReportSummary(string OutputDirectory, string IndexPath, IReadOnlyList<NotebookReport> Results)
{
    /// <summary>0 when every notebook succeeded (or there were none), 1 otherwise.</summary>
    public int ExitCode => Results.All(r => r.Run.Status == NotebookStatus.Succeeded) ? 0 : 1;
}
