using System.Diagnostics;
using System.Text;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Documents;
using Microsoft.DotNet.Interactive.Documents.Jupyter;
using Microsoft.DotNet.Interactive.Events;
using Microsoft.DotNet.Interactive.Formatting;

namespace DeepSeekNotebooks.Reporting;

/// <summary>
/// Executes one .ipynb top to bottom in a fresh in-process C# kernel and records the outputs into the document.
/// Execution stops at the first failing or timed-out cell; later cells are reported as not run.
/// The notebook's folder is the working directory while it runs (relative <c>#r</c> paths resolve against it),
/// and <see cref="ReportOptions.CheckpointVariable"/> carries the checkpoint path.
/// Runs are serialized process-wide because the working directory, environment and formatters are global.
/// </summary>
internal sealed class NotebookRunner
{
    private static readonly SemaphoreSlim ProcessWideGate = new(1, 1);

    /// <summary>At least this long for the kernel's first (trivial) submission; longer when the cell budget is (see <see cref="RunAsync"/>).</summary>
    private static readonly TimeSpan MinWarmUpTimeout = TimeSpan.FromMinutes(2);

    private readonly TimeSpan _cellTimeout;
    private readonly IReadOnlyDictionary<string, string?> _environment;

    /// <param name="cellTimeout">Wall-clock limit for one cell.</param>
    /// <param name="environment">Environment variables set while a notebook runs (restored afterwards).</param>
    public NotebookRunner(TimeSpan cellTimeout, IReadOnlyDictionary<string, string?>? environment = null)
    {
        if (cellTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(cellTimeout));
        _cellTimeout = cellTimeout;
        _environment = environment ?? new Dictionary<string, string?>();
    }

    /// <summary>Parses an .ipynb file; returns null and an error message if it is not a readable notebook.</summary>
    public static InteractiveDocument? TryParse(string path, out string? error)
    {
        try
        {
            var json = File.ReadAllText(path);
            var kernels = new KernelInfoCollection
            {
                new Microsoft.DotNet.Interactive.Documents.KernelInfo(KernelFactory.CSharpKernelName, "C#", new[] { "c#", "C#", "cs" }),
                new Microsoft.DotNet.Interactive.Documents.KernelInfo("fsharp", "F#", new[] { "f#", "F#" }),
                new Microsoft.DotNet.Interactive.Documents.KernelInfo("pwsh", "PowerShell", new[] { "powershell" }),
            };
            kernels.DefaultKernelName = KernelFactory.CSharpKernelName;
            var doc = Notebook.Parse(json, kernels);
            error = null;
            return doc;
        }
        catch (Exception ex)
        {
            error = $"{ex.GetType().Name}: {ex.Message}";
            return null;
        }
    }

    /// <summary>
    /// Serializes an executed document as .ipynb. Works around Documents 1.0.0-beta.26120.1 failing on documents it
    /// parsed itself (metadata "polyglot_notebook" is read back as plain dictionaries, but the writer casts
    /// "kernelInfo" to KernelInfoCollection): that entry is dropped and the writer regenerates it.
    /// </summary>
    public static string ToJupyterJson(InteractiveDocument document)
    {
        document.Metadata.Remove("polyglot_notebook");
        var json = System.Text.Json.Nodes.JsonNode.Parse(Notebook.ToJupyterJson(document, "C#"))!;
        // The writer emits metadata.polyglot_notebook = {defaultKernelName, items}; VS Code Polyglot Notebooks
        // reads metadata.polyglot_notebook.kernelInfo = {defaultKernelName, items}.
        if (json["metadata"]?["polyglot_notebook"] is System.Text.Json.Nodes.JsonObject polyglot && polyglot["kernelInfo"] is null)
        {
            var kernelInfo = new System.Text.Json.Nodes.JsonObject();
            foreach (var key in polyglot.Select(p => p.Key).ToList())
            {
                var value = polyglot[key];
                polyglot.Remove(key);
                kernelInfo[key] = value;
            }
            polyglot["kernelInfo"] = kernelInfo;
        }
        return json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
    }

    /// <summary>Runs the notebook at <paramref name="notebookPath"/>.</summary>
    public async Task<NotebookRunResult> RunAsync(string notebookPath, IProgress<ReportProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        notebookPath = Path.GetFullPath(notebookPath);
        var clock = Stopwatch.StartNew();
        var document = TryParse(notebookPath, out var parseError);
        if (document is null)
        {
            progress?.Report(new ReportProgress(notebookPath, 0, 0, NotebookStatus.Malformed));
            return new NotebookRunResult(notebookPath, NotebookStatus.Malformed, null, [], clock.Elapsed, parseError);
        }

        var codeCells = document.Elements.Select((e, i) => (e, i)).Where(x => IsCode(x.e)).ToList();
        progress?.Report(new ReportProgress(notebookPath, 0, codeCells.Count));

        await ProcessWideGate.WaitAsync(cancellationToken);
        var savedCwd = Directory.GetCurrentDirectory();
        var savedEnv = _environment.Keys.ToDictionary(k => k, Environment.GetEnvironmentVariable);
        var results = new List<CellRunResult>();
        var status = NotebookStatus.Succeeded;
        string? message = null;
        CompositeKernel? kernel = null;
        var abandonKernel = false;
        try
        {
            Directory.SetCurrentDirectory(Path.GetDirectoryName(notebookPath)!);
            foreach (var (k, v) in _environment) Environment.SetEnvironmentVariable(k, v);

            kernel = KernelFactory.Create();
            var sink = new OutputSink();
            using var subscription = kernel.KernelEvents.Subscribe(sink);

            // Warm up the compiler outside the cell budget: the first submission of a process pays Roslyn's start-up
            // (seconds on a busy machine), which must not make a short --cell-timeout fire on a trivial first cell.
            // The budget is the larger of 2 min and --cell-timeout: on a saturated machine (load ~30 on 2 cores) 2 min was not enough.
            var warmUp = _cellTimeout > MinWarmUpTimeout ? _cellTimeout : MinWarmUpTimeout;
            try
            {
                await Task.Run(() => kernel.SendAsync(new SubmitCode("System.Threading.Thread.Yield();", KernelFactory.CSharpKernelName), cancellationToken), cancellationToken)
                    .WaitAsync(warmUp, cancellationToken);
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException($"the C# kernel did not start within {warmUp.TotalSeconds:0} s (its first, trivial submission: compiler warm-up; the machine may be overloaded, or raise --cell-timeout)", e);
            }

            var executionCount = 0;
            var done = 0;
            foreach (var (element, index) in codeCells)
            {
                element.Outputs.Clear();
                if (status != NotebookStatus.Succeeded)
                {
                    results.Add(new CellRunResult(index, CellStatus.NotRun, TimeSpan.Zero));
                    continue;
                }
                if (!IsCSharp(element))
                {
                    results.Add(new CellRunResult(index, CellStatus.Skipped, TimeSpan.Zero, $"Kernel '{element.KernelName}' is not available in the report runner."));
                    element.Outputs.Add(Error("KernelNotAvailable", $"Kernel '{element.KernelName}' is not available in the report runner; cell skipped."));
                    status = NotebookStatus.Failed;
                    message = $"Cell {index + 1}: kernel '{element.KernelName}' not available.";
                    continue;
                }

                element.ExecutionOrder = ++executionCount;
                sink.Begin(element);
                var cellClock = Stopwatch.StartNew();
                var command = new SubmitCode(element.Contents, KernelFactory.CSharpKernelName);
                var send = Task.Run(() => kernel.SendAsync(command, cancellationToken), cancellationToken);
                var finished = await Task.WhenAny(send, Task.Delay(_cellTimeout, cancellationToken));
                if (finished != send)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    // Ask the kernel to cancel; code that never checks cancellation keeps running, so the kernel is abandoned.
                    try { await kernel.SendAsync(new Cancel()).WaitAsync(TimeSpan.FromSeconds(2)); } catch { /* best effort */ }
                    abandonKernel = !send.IsCompleted;
                    var timeoutMessage = $"Cell did not finish within {_cellTimeout.TotalSeconds:0.###} s (--cell-timeout) and was cancelled.";
                    sink.End(Error("CellTimeout", timeoutMessage));
                    results.Add(new CellRunResult(index, CellStatus.TimedOut, cellClock.Elapsed, timeoutMessage));
                    status = NotebookStatus.TimedOut;
                    message = $"Cell {index + 1}: {timeoutMessage}";
                }
                else
                {
                    var result = await send;
                    var failed = result.Events.OfType<CommandFailed>().FirstOrDefault();
                    if (failed is not null)
                    {
                        var ex = failed.Exception;
                        sink.End(Error(ex?.GetType().Name ?? "Error", failed.Message,
                            ex?.StackTrace?.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
                        results.Add(new CellRunResult(index, CellStatus.Failed, cellClock.Elapsed, failed.Message));
                        status = NotebookStatus.Failed;
                        message = $"Cell {index + 1}: {failed.Message}";
                    }
                    else
                    {
                        sink.End(null);
                        results.Add(new CellRunResult(index, CellStatus.Succeeded, cellClock.Elapsed));
                    }
                }
                progress?.Report(new ReportProgress(notebookPath, ++done, codeCells.Count));
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            status = NotebookStatus.Failed;
            message = $"Runner error: {ex.GetType().Name}: {ex.Message}";
        }
        finally
        {
            if (kernel is not null)
            {
                if (abandonKernel)
                    _ = Task.Run(() => { try { kernel.Dispose(); } catch { } });
                else
                    try { kernel.Dispose(); } catch { /* ignore */ }
            }
            foreach (var (k, v) in savedEnv) Environment.SetEnvironmentVariable(k, v);
            Directory.SetCurrentDirectory(savedCwd);
            ProcessWideGate.Release();
        }

        progress?.Report(new ReportProgress(notebookPath, codeCells.Count, codeCells.Count, status));
        return new NotebookRunResult(notebookPath, status, document, results, clock.Elapsed, message);
    }

    /// <summary>Creates an ipynb error output (note: the Documents API takes the value before the name).</summary>
    internal static ErrorElement Error(string name, string value, string[]? stackTrace = null) =>
        new(value, name, stackTrace ?? []);

    internal static bool IsCode(InteractiveDocumentElement e) =>
        !string.Equals(e.KernelName, "markdown", StringComparison.OrdinalIgnoreCase) &&
        !string.Equals(e.KernelName, "md", StringComparison.OrdinalIgnoreCase);

    private static bool IsCSharp(InteractiveDocumentElement e) =>
        e.KernelName is null or "" or KernelFactory.CSharpKernelName or "c#" or "C#" or "cs";

    /// <summary>Collects kernel events of the running cell into ipynb output elements.</summary>
    private sealed class OutputSink : IObserver<KernelEvent>
    {
        private readonly object _gate = new();
        private InteractiveDocumentElement? _cell;
        private readonly Dictionary<string, int> _displayIds = new();

        public void Begin(InteractiveDocumentElement cell)
        {
            lock (_gate) { _cell = cell; _displayIds.Clear(); }
        }

        public void End(InteractiveDocumentOutputElement? final)
        {
            lock (_gate)
            {
                if (final is not null) _cell?.Outputs.Add(final);
                _cell = null;
            }
        }

        public void OnNext(KernelEvent e)
        {
            lock (_gate)
            {
                if (_cell is null) return;
                switch (e)
                {
                    case DisplayedValueUpdated u when u.ValueId is not null && _displayIds.TryGetValue(u.ValueId, out var at):
                        _cell.Outputs[at] = new DisplayElement(ToData(u.FormattedValues));
                        break;
                    case ReturnValueProduced r:
                        if (r.FormattedValues.Any())
                        {
                            var result = new ReturnValueElement { ExecutionOrder = _cell.ExecutionOrder };
                            foreach (var (mime, value) in ToData(r.FormattedValues)) result.Data[mime] = value;
                            _cell.Outputs.Add(result);
                        }
                        break;
                    case DisplayedValueProduced d:
                        if (d.ValueId is not null) _displayIds[d.ValueId] = _cell.Outputs.Count;
                        _cell.Outputs.Add(new DisplayElement(ToData(d.FormattedValues)));
                        break;
                    case StandardOutputValueProduced o:
                        AppendStream("stdout", Text(o.FormattedValues));
                        break;
                    case StandardErrorValueProduced o:
                        AppendStream("stderr", Text(o.FormattedValues));
                        break;
                    case ErrorProduced err:
                        _cell.Outputs.Add(Error("Error", err.Message));
                        break;
                }
            }
        }

        private void AppendStream(string name, string text)
        {
            var outputs = _cell!.Outputs;
            if (outputs.Count > 0 && outputs[^1] is TextElement last && last.Name == name)
                outputs[^1] = new TextElement(last.Text + text, name);
            else
                outputs.Add(new TextElement(text, name));
        }

        private static string Text(IReadOnlyCollection<FormattedValue> values) =>
            values.FirstOrDefault(v => v.MimeType == "text/plain")?.Value ?? values.FirstOrDefault()?.Value ?? "";

        private static Dictionary<string, object> ToData(IReadOnlyCollection<FormattedValue> values)
        {
            var data = new Dictionary<string, object>();
            foreach (var v in values)
                if (v.MimeType is not null && !data.ContainsKey(v.MimeType)) data[v.MimeType] = v.Value;
            return data;
        }

        public void OnError(Exception error) { }
        public void OnCompleted() { }
    }
}
