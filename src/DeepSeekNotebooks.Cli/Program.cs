using System.CommandLine;
using DeepSeekNotebooks.Cli.Commands;

namespace DeepSeekNotebooks.Cli;

/// <summary>Entry point: a root command to which each verb (one file under Commands/) adds itself.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => BuildRootCommand().Parse(args).InvokeAsync();

    /// <summary>Builds the root command with every verb. Add new verbs here, one line each.</summary>
    public static RootCommand BuildRootCommand()
    {
        var root = new RootCommand("DeepSeekNotebooks: interpretability tooling for DeepSeek-V3-style MoE models.");
        root.Subcommands.Add(TraceCommand.Create());
        root.Subcommands.Add(ReportCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        return root;
    }
}
