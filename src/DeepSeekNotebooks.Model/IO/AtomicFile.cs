using System.Text;

namespace DeepSeekNotebooks.Model.IO;

/// <summary>
/// Writes text files atomically: a temporary file beside the target, then a rename over it, so a reader or a crash never
/// sees a half-written file and a failure leaves the previous file untouched. Used for every text output of the kit
/// (configs, reports, dashboards); binary checkpoints go through <see cref="Checkpoints.SafetensorsWriter"/>, which does
/// the same.
/// </summary>
public static class AtomicFile
{
    private static readonly UTF8Encoding Utf8NoBom = new(false);

    /// <summary>Writes <paramref name="contents"/> (UTF-8, no BOM) to <paramref name="path"/>, creating its directory; returns the full path.</summary>
    public static string WriteAllText(string path, string contents)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllText(tmp, contents, Utf8NoBom);
            File.Move(tmp, path, overwrite: true);
            return Path.GetFullPath(path);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
