using System.CommandLine;
using DeepSeekNotebooks.Cli.Commands;

namespace DeepSeekNotebooks.Cli;

/// <summary>Entry point: a root command to which each verb (one file under Commands/) adds itself.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => RunAsync(args);

    /// <summary>
    /// Parses and runs a command line. Exit codes: 0 success, 1 the work failed (bad checkpoint, ids out of range, a
    /// notebook failed …), 2 the command line itself is malformed (unknown verb/option/value).
    /// </summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var parse = BuildRootCommand().Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("run with --help for usage");
            return 2;
        }
        return await parse.InvokeAsync();
    }

    /// <summary>Synchronous <see cref="RunAsync"/>.</summary>
    public static int Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    /// <summary>Builds the root command with every verb. Add new verbs here, one line each.</summary>
    public static RootCommand BuildRootCommand()
    {
        var root = new RootCommand("DeepSeekNotebooks: interpretability tooling for DeepSeek-V3-style MoE models.");
        root.Subcommands.Add(TraceCommand.Create());
        root.Subcommands.Add(AttributeCommand.Create());
        root.Subcommands.Add(RolloutCommand.Create());
        root.Subcommands.Add(DashboardCommand.Create());
        root.Subcommands.Add(ReportCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(SoakCommand.Create());
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(CollectCommand.Create());
        root.Subcommands.Add(MergeCommand.Create());
        root.Subcommands.Add(SummarizeCommand.Create());
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(SanityCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(CaseStudyCommand.Create());
        root.Subcommands.Add(DiagnoseCommand.Create());
        return root;
    }
}
