using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>Root-mean-square layer norm (Zhang &amp; Sennrich 2019): x · rsqrt(mean(x²) + ε) · w, computed in float32, as DeepSeek's <c>RMSNorm</c>.</summary>
public sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly double _eps;
    private readonly Parameter weight;

    internal RMSNorm(string name, long dim, double eps, ParameterFactory? parameters = null) : base(name)
    {
        _eps = eps;
        weight = (parameters ?? ParameterFactory.Initialised).Ones(dim);
        RegisterComponents();
    }

    /// <summary>The learned gain w.</summary>
    public Parameter Weight => weight;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var xf = x.to(float32);
        var y = xf * rsqrt(xf.pow(2).mean(new long[] { -1 }, keepdim: true) + _eps) * weight;
        return y.to(x.dtype).MoveToOuterDisposeScope();
    }
}
