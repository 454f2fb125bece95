using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Model.Modules;

/// <summary>SwiGLU feed-forward network (Shazeer 2020): w2(silu(w1·x) ⊙ w3·x). Used for dense layers, routed and shared experts.</summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear w1, w2, w3;

    internal Mlp(string name, long dim, long interDim) : base(name)
    {
        w1 = nn.Linear(dim, interDim, hasBias: false);
        w2 = nn.Linear(interDim, dim, hasBias: false);
        w3 = nn.Linear(dim, interDim, hasBias: false);
        RegisterComponents();
    }

    /// <summary>Hidden width of this MLP.</summary>
    public long InterDim => w1.weight!.shape[0];

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return w2.forward(nn.functional.silu(w1.forward(x)) * w3.forward(x)).MoveToOuterDisposeScope();
    }
}
