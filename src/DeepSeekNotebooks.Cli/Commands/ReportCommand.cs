using System.CommandLine;
using DeepSeekNotebooks.Reporting;
using Spectre.Console;

namespace DeepSeekNotebooks.Cli.Commands;

/// <summary>
/// <c>report</c>: executes every notebook headlessly and writes executed .ipynb files, offline HTML reports and an index.
/// </summary>
public static class ReportCommand
{
    public static Command Create(IAnsiConsole? console = null)
    {
        var notebooks = new Option<DirectoryInfo>("--notebooks")
        {
            Description = "Folder holding the *.ipynb notebooks to run.",
            DefaultValueFactory = _ => new DirectoryInfo("notebooks"),
        };
        var output = new Option<DirectoryInfo>("--out")
        {
            Description = "Folder receiving executed notebooks, HTML reports and index.html.",
            DefaultValueFactory = _ => new DirectoryInfo(Path.Combine("artifacts", "reports")),
        };
        var checkpoint = new Option<DirectoryInfo?>("--checkpoint")
        {
            Description = $"Checkpoint folder handed to notebooks through the {ReportOptions.CheckpointVariable} environment variable.",
        };
        var residency = new Option<string?>("--residency")
        {
            Description = "Residency every notebook loads its checkpoint with: auto (the loader's default), memory or stream; handed over through $DEEPSEEK_RESIDENCY (Notebook.LoadOptions() in each notebook's second cell).",
        };
        var dtype = new Option<string?>("--dtype")
        {
            Description = "Compute dtype every notebook loads its checkpoint with: f32 (default) or bf16 (half the memory; much slower on CPUs without native bf16, docs/benchmarks.md); handed over through $DEEPSEEK_DTYPE.",
        };
        var cellTimeout = new Option<double>("--cell-timeout")
        {
            Description = "Seconds a single cell may run before it is reported as timed out.",
            DefaultValueFactory = _ => 600,
        };
        cellTimeout.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() <= 0) r.AddError("--cell-timeout must be a positive number of seconds.");
        });
        var redact = new Option<bool>("--redact-inputs")
        {
            Description = "Replace code-cell source with a placeholder in the HTML reports.",
        };

        var command = new Command("report", "Execute notebooks headlessly and write offline HTML reports.")
        {
            notebooks, output, checkpoint, residency, dtype, cellTimeout, redact,
        };
        command.SetAction(async (parse, ct) =>
        {
            var target = console ?? AnsiConsole.Console;
            DeepSeekNotebooks.Model.Checkpoints.Residency? residencyValue = null;
            TorchSharp.torch.ScalarType? dtypeValue = null;
            try
            {
                // Refused here, before any notebook runs, naming the value and the accepted ones.
                if (parse.GetValue(residency) is { } r) residencyValue = CliSupport.ParseResidency(r);
                if (parse.GetValue(dtype) is { } d) dtypeValue = CliSupport.ParseDType(d);
            }
            catch (UsageException e)
            {
                target.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return 2;
            }
            var options = new ReportOptions
            {
                NotebooksDirectory = parse.GetValue(notebooks)!.FullName,
                OutputDirectory = parse.GetValue(output)!.FullName,
                CheckpointPath = parse.GetValue(checkpoint)?.FullName,
                Residency = residencyValue,
                DType = dtypeValue,
                CellTimeout = TimeSpan.FromSeconds(parse.GetValue(cellTimeout)),
                RedactInputs = parse.GetValue(redact),
            };
            return await RunAsync(options, target, ct);
        });
        return command;
    }

    private static bool SameDirectory(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(b)),
            OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);

    /// <summary>Runs the report with Spectre.Console progress; returns the process exit code.</summary>
    public static async Task<int> RunAsync(ReportOptions options, IAnsiConsole console, CancellationToken ct)
    {
        if (!Directory.Exists(options.NotebooksDirectory))
        {
            console.MarkupLineInterpolated($"[red]Notebook folder not found:[/] {options.NotebooksDirectory}");
            return 2;
        }
        if (SameDirectory(options.NotebooksDirectory, options.OutputDirectory))
        {
            // The executed notebooks are written as <out>/<name>.ipynb: with --out = --notebooks they would overwrite the inputs.
            console.MarkupLineInterpolated($"[red]--out must differ from --notebooks:[/] the executed notebooks would overwrite the originals in {options.NotebooksDirectory}");
            return 2;
        }

        ReportSummary? summary = null;
        await console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                var progress = new SyncProgress<ReportProgress>(p =>
                {
                    if (!tasks.TryGetValue(p.NotebookPath, out var task))
                    {
                        task = ctx.AddTask(Markup.Escape(Path.GetFileName(p.NotebookPath)), maxValue: Math.Max(1, p.TotalCells));
                        tasks[p.NotebookPath] = task;
                    }
                    task.MaxValue = Math.Max(1, p.TotalCells);
                    task.Value = p.CompletedCells;
                    if (p.Finished is { } status)
                    {
                        task.Value = task.MaxValue;
                        task.Description = $"{Markup.Escape(Path.GetFileName(p.NotebookPath))} {StatusMarkup(status)}";
                        task.StopTask();
                    }
                });
                summary = await new ReportGenerator(options).RunAsync(progress, ct);
            });

        var table = new Table().AddColumns("Notebook", "Status", "Time", "Report");
        foreach (var r in summary!.Results)
        {
            table.AddRow(
                Markup.Escape(r.Run.Name),
                StatusMarkup(r.Run.Status) + (r.Run.Message is { } m ? " " + Markup.Escape(Truncate(m, 80)) : ""),
                $"{r.Run.Duration.TotalSeconds:F1}s",
                Markup.Escape(r.HtmlPath));
        }
        console.Write(table);
        console.MarkupLineInterpolated($"Reports written to [bold]{summary.OutputDirectory}[/] (index: {summary.IndexPath})");
        var failed = summary.Results.Count(r => r.Run.Status != NotebookStatus.Succeeded);
        if (failed > 0)
            console.MarkupLineInterpolated($"[red]{failed} of {summary.Results.Count} notebook(s) did not succeed.[/]");
        return summary.ExitCode;
    }

    private static string Truncate(string s, int n)
    {
        s = s.ReplaceLineEndings(" ");
        return s.Length <= n ? s : s[..n] + "…";
    }

    private static string StatusMarkup(NotebookStatus status) => status switch
    {
        NotebookStatus.Succeeded => "[green]succeeded[/]",
        NotebookStatus.Failed => "[red]failed[/]",
        NotebookStatus.TimedOut => "[red]timed out[/]",
        NotebookStatus.Malformed => "[red]malformed[/]",
        _ => status.ToString(),
    };

    /// <summary>IProgress that reports synchronously on the caller's thread (Spectre progress is thread-safe).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
