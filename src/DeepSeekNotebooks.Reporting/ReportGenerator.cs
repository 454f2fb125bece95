namespace DeepSeekNotebooks.Reporting;

/// <summary>
/// Runs every notebook of a folder and writes, per notebook, an executed <c>.ipynb</c> and an offline HTML report,
/// then an <c>index.html</c>. One notebook failing (error, timeout, malformed file) never stops the others.
/// </summary>
public sealed class ReportGenerator(ReportOptions options)
{
    /// <summary>Notebooks the run will execute, in order (top-level <c>*.ipynb</c> of the folder, ordinal name order).</summary>
    public static IReadOnlyList<string> FindNotebooks(string directory) =>
        Directory.EnumerateFiles(directory, "*.ipynb", SearchOption.TopDirectoryOnly)
            .Where(p => !Path.GetFileName(p).StartsWith('.') && !Path.GetFileName(p).StartsWith('_')) // _name: test/scratch notebooks
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>
    /// Runs every notebook (each in a fresh in-process kernel, one at a time) and writes the artefacts. Throws
    /// <see cref="ArgumentException"/> when the output folder is the notebook folder or a load option is not one notebooks
    /// take (before any notebook runs); a failing notebook is recorded, not thrown.
    /// </summary>
    public async Task<ReportSummary> RunAsync(IProgress<ReportProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        // Load options are checked before any notebook runs (a bad one would otherwise fail every notebook's second cell).
        var residency = options.Residency switch
        {
            null => null,
            { } r when Enum.IsDefined(r) => r.ToString().ToLowerInvariant(),
            var r => throw new ArgumentException($"Residency must be Auto, Memory or Stream, got {(int)r.Value}", nameof(options)),
        };
        var dtype = options.DType switch
        {
            null => null,
            TorchSharp.torch.ScalarType.Float32 => "f32",
            TorchSharp.torch.ScalarType.BFloat16 => "bf16",
            var d => throw new ArgumentException($"DType must be Float32 or BFloat16 (the compute dtypes notebooks load with), got {d}", nameof(options)),
        };
        var notebooksDir = Path.GetFullPath(options.NotebooksDirectory);
        var outDir = Path.GetFullPath(options.OutputDirectory);
        if (string.Equals(notebooksDir.TrimEnd(Path.DirectorySeparatorChar), outDir.TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal))
            throw new ArgumentException("--out must differ from --notebooks: executed notebooks would overwrite the sources.");
        Directory.CreateDirectory(outDir);

        var environment = new Dictionary<string, string?> { [ReportOptions.HeadlessVariable] = "1" };
        if (options.CheckpointPath is { } checkpoint)
            environment[ReportOptions.CheckpointVariable] = Path.GetFullPath(checkpoint);
        if (residency is not null) environment[DeepSeekNotebooks.Interactive.Notebook.ResidencyVariable] = residency;
        if (dtype is not null) environment[DeepSeekNotebooks.Interactive.Notebook.DTypeVariable] = dtype;
        var runner = new NotebookRunner(options.CellTimeout, environment);

        var reports = new List<NotebookReport>();
        foreach (var path in FindNotebooks(notebooksDir))
        {
            cancellationToken.ThrowIfCancellationRequested();
            NotebookRunResult run;
            try
            {
                run = await runner.RunAsync(path, progress, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                run = new NotebookRunResult(path, NotebookStatus.Failed, null, [], TimeSpan.Zero, $"Runner error: {ex.GetType().Name}: {ex.Message}");
                progress?.Report(new ReportProgress(path, 0, 0, run.Status));
            }

            string? executedPath = null;
            if (run.Document is not null)
            {
                try
                {
                    var json = NotebookRunner.ToJupyterJson(run.Document);
                    executedPath = Path.Combine(outDir, run.Name + ".ipynb");
                    DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(executedPath, json);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    run = run with
                    {
                        Status = NotebookStatus.Failed,
                        Message = (run.Message is null ? "" : run.Message + "; ") + $"could not write executed notebook: {ex}",
                    };
                }
            }
            var htmlPath = Path.Combine(outDir, run.Name + ".html");
            DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(htmlPath, HtmlReportWriter.Render(run, options.RedactInputs, executedPath is null ? null : Path.GetFileName(executedPath)));
            reports.Add(new NotebookReport(run, htmlPath, executedPath));
        }

        var indexPath = Path.Combine(outDir, "index.html");
        DeepSeekNotebooks.Model.IO.AtomicFile.WriteAllText(indexPath, IndexWriter.Render(reports, outDir));
        return new ReportSummary(outDir, indexPath, reports);
    }
}
