using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>
/// SwiGLU feed-forward network (Shazeer 2020): w2(silu(w1·x) ⊙ w3·x). Used for dense layers, routed and shared experts.
/// With a SwiGLU limit L &gt; 0 (DeepSeek-V4's <c>swiglu_limit</c>, the official <c>Expert</c>): w2(silu(min(w1·x, L)) ⊙ clamp(w3·x, −L, L)).
/// </summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear w1, w2, w3;
    private readonly double _limit;

    internal Mlp(string name, long dim, long interDim, double swigluLimit = 0) : base(name)
    {
        _limit = swigluLimit;
        w1 = nn.Linear(dim, interDim, hasBias: false);
        w2 = nn.Linear(interDim, dim, hasBias: false);
        w3 = nn.Linear(dim, interDim, hasBias: false);
        RegisterComponents();
    }

    /// <summary>Hidden width of this MLP.</summary>
    public long InterDim => w1.weight!.shape[0];
    /// <summary>The SwiGLU clamp L (0 = none).</summary>
    public double SwigluLimit => _limit;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (_limit > 0)
        {
            var gate = w1.forward(x).clamp_max(_limit);
            var up = w3.forward(x).clamp(-_limit, _limit);
            return w2.forward(nn.functional.silu(gate) * up).MoveToOuterDisposeScope();
        }
        return w2.forward(nn.functional.silu(w1.forward(x)) * w3.forward(x)).MoveToOuterDisposeScope();
    }
}
