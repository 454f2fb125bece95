namespace DeepSeekNotebooks.Cli.Tests;

/// <summary>
/// <c>--quantisation official|off</c> is on every verb that runs a model (issue 13): a bad value is a usage error naming
/// the option and the accepted values, before any work is done.
/// </summary>
[Collection(ConsoleCaptureCollection.Name)]
public class QuantisationOptionTests
{
    public static TheoryData<string[]> Verbs => new()
    {
        new[] { "trace", "--input-ids", "1,2,3", "--out", "{out}" },
        new[] { "attribute", "--input-ids", "1,2,3", "--method", "ig", "--target-position", "-1", "--out", "{out}" },
        new[] { "rollout", "--input-ids", "1,2,3", "--out", "{out}" },
        new[] { "dashboard", "--input-ids", "1,2,3", "--out", "{out}" },
        new[] { "generate", "--input-ids", "1,2,3", "--max-new-tokens", "2" },
        new[] { "sanity", "--input-ids", "1,2,3", "--out", "{out}" },
        new[] { "collect", "--dataset", "{out}", "--out", "{out}" },
        new[] { "soak", "--iterations", "60" },
    };

    [Theory]
    [MemberData(nameof(Verbs))]
    public void EveryModelVerb_RefusesABadQuantisation_NamingTheValues(string[] args)
    {
        var dir = Directory.CreateTempSubdirectory("quant-opt").FullName;
        try
        {
            var output = Path.Combine(dir, "out.bin");
            var full = args.Select(a => a == "{out}" ? output : a).Concat(new[] { "--quantisation", "fp4" }).ToArray();
            var err = new StringWriter();
            var saved = Console.Error;
            Console.SetError(err);
            int rc;
            try { rc = Program.Run(full); }
            finally { Console.SetError(saved); }
            Assert.Equal(2, rc);
            Assert.Contains("--quantisation must be official or off, got 'fp4'", err.ToString());
            Assert.False(File.Exists(output));
        }
        finally { Directory.Delete(dir, true); }
    }
}
