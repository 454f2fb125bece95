#:project ../src/DeepSeekNotebooks.Cli/DeepSeekNotebooks.Cli.csproj
// The notebook series as offline HTML reports (the same as `deepseek-notebooks report`).
//   dotnet run scripts/report.cs -- [--notebooks notebooks] [--out artifacts/reports] [--checkpoint dir]
return await DeepSeekNotebooks.Cli.Program.RunAsync(["report", .. args]);
