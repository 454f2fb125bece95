using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DeepSeekNotebooks.Visualization.Tests;

/// <summary>What a page did while it was open in headless Chromium.</summary>
internal sealed record PageRun(
    JsonElement Result,
    IReadOnlyList<string> Errors,            // uncaught exceptions, console.error/assert, Log errors (CSP, failed loads)
    IReadOnlyList<string> NetworkRequests,   // every request to something other than file:, data:, blob:, about:
    IReadOnlyList<string> Dialogs,           // alert()/confirm()/prompt() opened
    TimeSpan Ready,                          // navigation start → ready expression true
    TimeSpan Elapsed,
    double BrowserCpuSeconds);               // CPU used by Chromium's process tree for this page

/// <summary>
/// Debian's Chromium, headless, driven over the DevTools protocol (System.Net.WebSockets): one browser process per
/// test class fixture, one tab per page. The network is disabled: every host name resolves to NOTFOUND and QUIC,
/// background networking, component updates and sync are off; the pages' CSP forbids any load anyway.
/// </summary>
internal sealed class HeadlessChromium : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _userDataDir;
    private readonly ClientWebSocket _ws = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<JsonElement>> _pending = new();
    private readonly List<(string Method, string? Session, JsonElement Params)> _events = new();
    private readonly CancellationTokenSource _cts = new();
    private Task? _receive;
    private int _nextId;

    private HeadlessChromium(Process process, string userDataDir) { _process = process; _userDataDir = userDataDir; }

    public string Executable { get; private init; } = "";

    /// <summary>
    /// CPU seconds (user + system, including reaped children) used so far by the browser's process tree, read from
    /// /proc (Linux; 0 elsewhere). Load-independent, unlike wall time on a shared machine.
    /// </summary>
    public double CpuSeconds()
    {
        if (!Directory.Exists("/proc")) return 0;
        var stats = new Dictionary<int, (int PPid, long Ticks)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                string st = File.ReadAllText(Path.Combine(dir, "stat"));
                var f = st[(st.LastIndexOf(')') + 2)..].Split(' ');   // fields from 3 (state) on
                stats[pid] = (int.Parse(f[1]), long.Parse(f[11]) + long.Parse(f[12]) + long.Parse(f[13]) + long.Parse(f[14]));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { }
        }
        long total = 0;
        foreach (var (pid, (_, ticks)) in stats)
            for (int p = pid, depth = 0; p > 1 && depth < 16 && stats.ContainsKey(p); p = stats[p].PPid, depth++)
                if (p == _process.Id) { total += ticks; break; }
        return total / 100.0; // USER_HZ
    }
    public string Version { get; private set; } = "";

    /// <summary>chromium on PATH (Debian: /usr/bin/chromium), or $CHROMIUM.</summary>
    public static string? FindExecutable()
    {
        string? env = Environment.GetEnvironmentVariable("CHROMIUM");
        if (!string.IsNullOrEmpty(env) && File.Exists(env)) return env;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
            foreach (var name in new[] { "chromium", "chromium-browser", "google-chrome" })
            {
                string p = Path.Combine(dir, name);
                if (File.Exists(p)) return p;
            }
        return null;
    }

    public static async Task<HeadlessChromium> LaunchAsync(string exe)
    {
        string udd = Path.Combine(Path.GetTempPath(), $"dsn-chromium-{Guid.NewGuid():N}");
        Directory.CreateDirectory(udd);
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
            // WebGL (plotly's 3D scenes) on the CPU rasteriser; all content here is our own local page.
            "--enable-unsafe-swiftshader",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            $"--user-data-dir={udd}", "--remote-debugging-port=0", "about:blank",
        }) psi.ArgumentList.Add(a);
        var proc = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {exe}.");
        var c = new HeadlessChromium(proc, udd) { Executable = exe };
        var wsUrl = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new StringBuilder();
        proc.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.AppendLine(e.Data);
            const string marker = "DevTools listening on ";
            int i = e.Data.IndexOf(marker, StringComparison.Ordinal);
            if (i >= 0) wsUrl.TrySetResult(e.Data[(i + marker.Length)..].Trim());
        };
        proc.OutputDataReceived += (_, _) => { };
        proc.BeginErrorReadLine();
        proc.BeginOutputReadLine();
        var done = await Task.WhenAny(wsUrl.Task, Task.Delay(TimeSpan.FromSeconds(30)), proc.WaitForExitAsync());
        if (done != wsUrl.Task)
        {
            await c.DisposeAsync();
            string stderr; lock (log) stderr = log.ToString();
            throw new InvalidOperationException($"Chromium ({exe}) did not start its DevTools endpoint within 30 s. stderr:\n{stderr}");
        }
        await c._ws.ConnectAsync(new Uri(wsUrl.Task.Result), CancellationToken.None);
        c._receive = Task.Run(c.ReceiveLoop);
        var v = await c.SendAsync("Browser.getVersion", new JsonObject());
        c.Version = v.GetProperty("product").GetString() ?? "";
        return c;
    }

    private async Task ReceiveLoop()
    {
        var buf = new byte[1 << 20];
        var ms = new MemoryStream();
        try
        {
            while (_ws.State == WebSocketState.Open && !_cts.IsCancellationRequested)
            {
                ms.SetLength(0);
                WebSocketReceiveResult r;
                do
                {
                    r = await _ws.ReceiveAsync(buf, _cts.Token);
                    if (r.MessageType == WebSocketMessageType.Close) return;
                    ms.Write(buf, 0, r.Count);
                } while (!r.EndOfMessage);
                using var doc = JsonDocument.Parse(ms.ToArray());
                var root = doc.RootElement;
                if (root.TryGetProperty("id", out var idEl) && _pending.TryRemove(idEl.GetInt32(), out var tcs))
                {
                    if (root.TryGetProperty("error", out var err)) tcs.TrySetException(new InvalidOperationException("CDP error: " + err));
                    else tcs.TrySetResult(root.GetProperty("result").Clone());
                }
                else if (root.TryGetProperty("method", out var m))
                {
                    string? session = root.TryGetProperty("sessionId", out var s) ? s.GetString() : null;
                    var p = root.TryGetProperty("params", out var pe) ? pe.Clone() : default;
                    lock (_events) _events.Add((m.GetString()!, session, p));
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException) { }
        finally
        {
            foreach (var t in _pending.Values) t.TrySetException(new InvalidOperationException("DevTools connection closed."));
        }
    }

    private async Task<JsonElement> SendAsync(string method, JsonObject parameters, string? session = null, int timeoutSeconds = 30)
    {
        int id = Interlocked.Increment(ref _nextId);
        var tcs = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = tcs;
        var msg = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters };
        if (session is not null) msg["sessionId"] = session;
        byte[] bytes = Encoding.UTF8.GetBytes(msg.ToJsonString());
        lock (_ws) _ws.SendAsync(bytes, WebSocketMessageType.Text, true, CancellationToken.None).GetAwaiter().GetResult();
        var done = await Task.WhenAny(tcs.Task, Task.Delay(TimeSpan.FromSeconds(timeoutSeconds)));
        if (done != tcs.Task) { _pending.TryRemove(id, out _); throw new TimeoutException($"CDP {method} timed out."); }
        return await tcs.Task;
    }

    private async Task<JsonElement> EvaluateAsync(string session, string expression)
    {
        var r = await SendAsync("Runtime.evaluate", new JsonObject
        {
            ["expression"] = expression, ["returnByValue"] = true, ["awaitPromise"] = true,
        }, session);
        if (r.TryGetProperty("exceptionDetails", out var ex)) throw new InvalidOperationException("Evaluation failed: " + ex);
        return r.GetProperty("result").TryGetProperty("value", out var v) ? v.Clone() : default;
    }

    /// <summary>
    /// Opens <paramref name="file"/> in a new tab, waits until <paramref name="readyExpression"/> is true (or
    /// <paramref name="timeout"/>), lets rendering settle, evaluates <paramref name="resultExpression"/> (returned by
    /// value), optionally saves a PNG screenshot, and reports errors, network requests and dialogs.
    /// </summary>
    public async Task<PageRun> RunPageAsync(string file, string readyExpression, string resultExpression, TimeSpan timeout,
        int width = 1400, int height = 1000, string? screenshotPath = null)
    {
        var sw = Stopwatch.StartNew();
        double cpu0 = CpuSeconds();
        var target = await SendAsync("Target.createTarget", new JsonObject { ["url"] = "about:blank" });
        string targetId = target.GetProperty("targetId").GetString()!;
        var attach = await SendAsync("Target.attachToTarget", new JsonObject { ["targetId"] = targetId, ["flatten"] = true });
        string session = attach.GetProperty("sessionId").GetString()!;
        try
        {
            foreach (var domain in new[] { "Runtime", "Log", "Network", "Page" })
                await SendAsync(domain + ".enable", new JsonObject(), session);
            await SendAsync("Emulation.setDeviceMetricsOverride", new JsonObject
            {
                ["width"] = width, ["height"] = height, ["deviceScaleFactor"] = 1, ["mobile"] = false,
            }, session);
            // CSP violations also as console errors (in addition to Chromium's own Log entries).
            await SendAsync("Page.addScriptToEvaluateOnNewDocument", new JsonObject
            {
                ["source"] = "document.addEventListener('securitypolicyviolation',function(e){console.error('CSP violation: '+e.violatedDirective+' '+e.blockedURI);});",
            }, session);
            await SendAsync("Page.navigate", new JsonObject { ["url"] = new Uri(Path.GetFullPath(file)).AbsoluteUri }, session);
            var navigated = Stopwatch.StartNew();
            bool ready = false;
            while (sw.Elapsed < timeout)
            {
                // false until the document exists and the expression holds; exceptions (page still loading) count as false
                var v = await EvaluateAsync(session, "(function(){try{return document.readyState==='complete'&&!!(" + readyExpression + ");}catch(e){return false;}})()");
                if (v.ValueKind == JsonValueKind.True) { ready = true; break; }

                await Task.Delay(100);
            }
            var readyAfter = navigated.Elapsed;
            await Task.Delay(300); // let WebGL scenes and transitions finish a frame
            var result = await EvaluateAsync(session, resultExpression);
            if (screenshotPath is not null)
            {
                var shot = await SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png", ["captureBeyondViewport"] = false }, session);
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(screenshotPath))!);
                await File.WriteAllBytesAsync(screenshotPath, Convert.FromBase64String(shot.GetProperty("data").GetString()!));
            }
            var errors = new List<string>(); var requests = new List<string>(); var dialogs = new List<string>();
            if (!ready) errors.Add($"page not ready after {timeout.TotalSeconds:0} s: {readyExpression}");
            lock (_events)
                foreach (var (method, s, p) in _events)
                {
                    if (s != session) continue;
                    switch (method)
                    {
                        case "Runtime.exceptionThrown":
                            errors.Add("exception: " + p.GetProperty("exceptionDetails")); break;
                        case "Runtime.consoleAPICalled" when p.GetProperty("type").GetString() is "error" or "assert":
                            errors.Add("console." + p.GetProperty("type").GetString() + ": " + p.GetProperty("args")); break;
                        case "Log.entryAdded" when p.GetProperty("entry").GetProperty("level").GetString() == "error":
                            errors.Add("log: " + p.GetProperty("entry")); break;
                        case "Network.requestWillBeSent":
                            string url = p.GetProperty("request").GetProperty("url").GetString() ?? "";
                            if (!(url.StartsWith("file:") || url.StartsWith("data:") || url.StartsWith("blob:") || url.StartsWith("about:")))
                                requests.Add(url);
                            break;
                        case "Network.loadingFailed":
                            errors.Add("loading failed: " + p); break;
                        case "Page.javascriptDialogOpening":
                            dialogs.Add(p.GetProperty("message").GetString() ?? ""); break;
                    }
                }
            return new PageRun(result, errors, requests, dialogs, readyAfter, sw.Elapsed, CpuSeconds() - cpu0);
        }
        finally
        {
            try { await SendAsync("Target.closeTarget", new JsonObject { ["targetId"] = targetId }, timeoutSeconds: 5); } catch { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_ws.State == WebSocketState.Open)
            {
                try { await SendAsync("Browser.close", new JsonObject(), timeoutSeconds: 5); } catch { }
            }
            _cts.Cancel();
            if (!_process.WaitForExit(5000)) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { }
        _ws.Dispose();
        _process.Dispose();
        try { Directory.Delete(_userDataDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>
/// One Chromium for all browser tests. When Chromium is missing it runs <c>environment/install-chromium.sh</c>
/// (Debian apt) once; if that is impossible the tests fail with the reason — they never pass silently.
/// </summary>
public sealed class ChromiumFixture : IAsyncLifetime
{
    internal HeadlessChromium? Browser { get; private set; }
    internal string? Problem { get; private set; }
    internal TimeSpan StartTime { get; private set; }

    public async Task InitializeAsync()
    {
        var sw = Stopwatch.StartNew();
        string? exe = HeadlessChromium.FindExecutable();
        if (exe is null)
        {
            string? script = FindRepoFile("environment/install-chromium.sh");
            bool apt = File.Exists("/usr/bin/apt-get");
            if (script is not null && apt)
            {
                string outcome;
                try
                {
                    using var p = Process.Start(new ProcessStartInfo("bash", new[] { script }) { RedirectStandardError = true, RedirectStandardOutput = true })!;
                    var stdout = p.StandardOutput.ReadToEndAsync();
                    string err = await p.StandardError.ReadToEndAsync();
                    await p.WaitForExitAsync();
                    await stdout;
                    outcome = $"exit {p.ExitCode}: {err}";
                }
                catch (Exception e) { outcome = e.Message; }
                exe = HeadlessChromium.FindExecutable();
                if (exe is null)
                {
                    Problem = $"Chromium not found on PATH and installing it with `bash {script}` failed ({outcome}). "
                            + "Install Debian's chromium (sudo apt-get install chromium chromium-driver) or set CHROMIUM=<path>.";
                    return;
                }
            }
            else
            {
                Problem = "Chromium not found (looked for $CHROMIUM, chromium, chromium-browser, google-chrome on PATH) and it cannot be "
                        + "installed here (" + (apt ? "install script not found" : "no apt-get") + "). Install Debian's `chromium` "
                        + "(bash environment/install-chromium.sh) to run the browser tests.";
                return;
            }
        }
        try { Browser = await HeadlessChromium.LaunchAsync(exe); }
        catch (Exception e) { Problem = e.Message; }
        StartTime = sw.Elapsed;
    }

    internal HeadlessChromium Require()
    {
        Assert.True(Browser is not null, "Browser tests need headless Chromium: " + Problem);
        return Browser!;
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
    }

    internal static string? FindRepoFile(string relative)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "DeepSeekNotebooks.sln")))
            {
                string p = Path.Combine(d.FullName, relative);
                return File.Exists(p) || Directory.Exists(p) ? p : null;
            }
        }
        return null;
    }
}
