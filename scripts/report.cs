#:project ../src/DeepSeekNotebooks.Reporting/DeepSeekNotebooks.Reporting.csproj
#:property PreserveCompilationContext=true
#:property PublishAot=false
// The notebook series as offline HTML reports, through the report engine as a library (what `deepseek-notebooks report` calls).
//   dotnet run scripts/report.cs -- [notebooks-dir] [out-dir] [checkpoint-dir]
using DeepSeekNotebooks.Reporting;

var options = new ReportOptions
{
    NotebooksDirectory = args.Length > 0 ? args[0] : "notebooks",
    OutputDirectory = args.Length > 1 ? args[1] : Path.Combine("artifacts", "reports"),
    CheckpointPath = args.Length > 2 ? args[2] : null,
};
if (!Directory.Exists(options.NotebooksDirectory))
{
    Console.Error.WriteLine($"notebook folder not found: {Path.GetFullPath(options.NotebooksDirectory)} (run from the repository root or pass the folder)");
    return 2;
}
var summary = await new ReportGenerator(options).RunAsync(
    new Progress<ReportProgress>(p => { if (p.Finished is { } status) Console.WriteLine($"{Path.GetFileName(p.NotebookPath)}: {status}"); }));
foreach (var r in summary.Results.Where(r => r.Run.Status != NotebookStatus.Succeeded))
    Console.WriteLine($"{r.Run.Name}: {r.Run.Status} {r.Run.Message}");
Console.WriteLine($"index: {summary.IndexPath}");
return summary.ExitCode;
