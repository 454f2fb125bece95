using DeepSeekNotebooks.Visualization.Html;
using Microsoft.FSharp.Collections;
using Plotly.NET;

namespace DeepSeekNotebooks.Visualization.Charts;

/// <summary>
/// Small internal builder over Plotly.NET's dynamic objects (Trace/Layout are DynamicObj), so the chart classes can
/// set exactly the plotly.js attributes they need. Every string passed to <see cref="T"/> is HTML-escaped; all
/// input-derived text must go through it.
/// </summary>
internal static class Fig
{
    /// <summary>Diverging scale used everywhere for signed values: blue (−) → white (0) → red (+).</summary>
    public static readonly object[][] Diverging =
    {
        new object[] { 0.0, "rgb(31,119,180)" },
        new object[] { 0.5, "rgb(255,255,255)" },
        new object[] { 1.0, "rgb(214,39,40)" },
    };

    /// <summary>Escapes input text for plotly labels (plotly.js decodes the entities when drawing).</summary>
    public static string T(string? s) => HtmlText.Escape(s);

    /// <summary>Escapes a token for plotly labels, making whitespace visible.</summary>
    public static string Tok(string? s) => HtmlText.Token(s);

    public static DynamicObj.DynamicObj Obj(params (string Key, object? Value)[] props)
    {
        var o = new DynamicObj.DynamicObj();
        Set(o, props);
        return o;
    }

    public static TTrace Set<TTrace>(TTrace o, params (string Key, object? Value)[] props) where TTrace : DynamicObj.DynamicObj
    {
        foreach (var (k, v) in props)
            if (v is not null) o.SetProperty(k, v);
        return o;
    }

    public static Trace Trace2D(string type, params (string Key, object? Value)[] props) => Set(new Plotly.NET.Trace2D(type), props);
    public static Trace Trace3D(string type, params (string Key, object? Value)[] props) => Set(new Plotly.NET.Trace3D(type), props);
    public static Trace TraceDomain(string type, params (string Key, object? Value)[] props) => Set(new Plotly.NET.TraceDomain(type), props);

    /// <summary>Title object; <paramref name="text"/> is escaped here.</summary>
    public static DynamicObj.DynamicObj Title(string text) => Obj(("text", T(text)));

    /// <summary>A colour bar whose title states what the colour means.</summary>
    public static DynamicObj.DynamicObj ColorBar(string title) => Obj(("title", Obj(("text", T(title)), ("side", "right"))));

    /// <summary>A linear axis with a title.</summary>
    public static DynamicObj.DynamicObj Axis(string title, params (string Key, object? Value)[] more)
    {
        var o = Obj(("title", Title(title)), ("automargin", true));
        return Set(o, more);
    }

    /// <summary>An axis at integer positions 0..n-1 labelled by (escaped) <paramref name="labels"/>; duplicates stay distinct.</summary>
    public static DynamicObj.DynamicObj LabelledAxis(string title, IReadOnlyList<string> labels, bool tokens, params (string Key, object? Value)[] more)
    {
        var o = Axis(title,
            ("tickmode", "array"),
            ("tickvals", Enumerable.Range(0, labels.Count).ToArray()),
            ("ticktext", labels.Select(l => tokens ? Tok(l) : T(l)).ToArray()),
            ("showgrid", false));
        return Set(o, more);
    }

    public static GenericChart Chart(IEnumerable<Trace> traces, string title, params (string Key, object? Value)[] layoutProps)
    {
        var chart = GenericChart.ofTraceObjects(false, ListModule.OfSeq(traces));
        var layout = new Layout();
        Set(layout, ("title", Title(title)));
        Set(layout, layoutProps);
        return GenericChart.setLayout(layout, chart);
    }

    public static double? Num(double v) => double.IsFinite(v) ? v : null;

    public static double?[][] Rows(float[,] m, Func<int, int, bool>? blank = null)
    {
        int r = m.GetLength(0), c = m.GetLength(1);
        var z = new double?[r][];
        for (int i = 0; i < r; i++)
        {
            z[i] = new double?[c];
            for (int j = 0; j < c; j++) z[i][j] = blank?.Invoke(i, j) == true ? null : Num(m[i, j]);
        }
        return z;
    }

    public static double?[][] Rows(double[,] m)
    {
        int r = m.GetLength(0), c = m.GetLength(1);
        var z = new double?[r][];
        for (int i = 0; i < r; i++)
        {
            z[i] = new double?[c];
            for (int j = 0; j < c; j++) z[i][j] = Num(m[i, j]);
        }
        return z;
    }

    public static void RequireLength(int expected, int actual, string what)
    {
        if (expected != actual) throw new ArgumentException($"{what}: expected length {expected}, got {actual}.");
    }
}
