using DeepSeekNotebooks.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekNotebooks.Analysis.Attribution;

/// <summary>What the attributed scalar F is computed from (saved in JSON and the safetensors <c>target_kind</c> key by its name, e.g. <c>Logit</c>).</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<TargetKind>))]
public enum TargetKind
{
    /// <summary>The raw logit of token T at position P (Captum's <c>target=T</c> on a logits-returning forward).</summary>
    Logit,
    /// <summary>softmax(logits[P])[T].</summary>
    Probability,
    /// <summary>log_softmax(logits[P])[T].</summary>
    LogProbability,
    /// <summary>A user function of the full logits.</summary>
    Custom,
    /// <summary>
    /// logits[P][T] − logits[P][T2]: "why T rather than T2" (a contrastive target). Equal to
    /// log_softmax(logits[P])[T] − log_softmax(logits[P])[T2], since both log-probabilities subtract the same log-sum-exp.
    /// </summary>
    LogitDifference,
}

/// <summary>
/// The scalar output an attribution method explains, the analogue of Captum's <c>target</c> argument: the logit,
/// probability or log-probability of token T at position P, or a custom function of the logits. P may be negative
/// (counted from the end, −1 = last token); when T is omitted it is the argmax of the logits at P for the input.
/// </summary>
public sealed class AttributionTarget
{
    private AttributionTarget(TargetKind kind, int position, long? token, Func<Tensor, Tensor>? custom, string? name, long? contrastToken = null)
    {
        Kind = kind;
        ContrastToken = contrastToken;
        Position = position;
        Token = token;
        CustomFunction = custom;
        Name = name ?? kind.ToString();
    }

    /// <summary>The kind of scalar.</summary>
    public TargetKind Kind { get; }
    /// <summary>The position P as given (negative counts from the end).</summary>
    public int Position { get; }
    /// <summary>The token T, or null for the argmax at P.</summary>
    public long? Token { get; }
    /// <summary>For <see cref="TargetKind.LogitDifference"/>: the token T2 whose logit is subtracted.</summary>
    public long? ContrastToken { get; }
    /// <summary>For <see cref="TargetKind.Custom"/>: logits [batch, seq, vocab] → one scalar per batch row [batch].</summary>
    public Func<Tensor, Tensor>? CustomFunction { get; }
    /// <summary>A short label (used in results).</summary>
    public string Name { get; }

    /// <summary>The default: the logit of the argmax token at the last position.</summary>
    public static AttributionTarget Default { get; } = Logit();

    /// <summary>Logit of token <paramref name="token"/> (default: argmax) at <paramref name="position"/> (default: last).</summary>
    public static AttributionTarget Logit(int position = -1, long? token = null) => new(TargetKind.Logit, position, token, null, null);

    /// <summary>Softmax probability of token <paramref name="token"/> (default: argmax) at <paramref name="position"/>.</summary>
    public static AttributionTarget Probability(int position = -1, long? token = null) => new(TargetKind.Probability, position, token, null, null);

    /// <summary>Log-softmax of token <paramref name="token"/> (default: argmax) at <paramref name="position"/>.</summary>
    public static AttributionTarget LogProbability(int position = -1, long? token = null) => new(TargetKind.LogProbability, position, token, null, null);

    /// <summary>
    /// A contrastive target, "why <paramref name="token"/> rather than <paramref name="contrastToken"/>":
    /// F = logits[P][T] − logits[P][T2] (= log p(T) − log p(T2)), as Captum with
    /// <c>forward_func = lambda X: f(X)[:, T] - f(X)[:, T2]</c> and <c>target=None</c>. T defaults to the argmax at P.
    /// </summary>
    /// <exception cref="ArgumentException">T2 equals T (the difference would be identically 0).</exception>
    public static AttributionTarget Contrast(long contrastToken, int position = -1, long? token = null)
    {
        if (token == contrastToken)
            throw new ArgumentException($"the contrast token {contrastToken} equals the target token: the logit difference would be identically 0; choose another token to contrast with", nameof(contrastToken));
        return new(TargetKind.LogitDifference, position, token, null, null, contrastToken);
    }

    /// <summary>
    /// A custom scalar: <paramref name="function"/> maps logits [batch, seq, vocab] to one value per batch row [batch]
    /// (it must be differentiable for gradient methods). <paramref name="position"/> is the query row used by
    /// attention×gradient and recorded in results.
    /// </summary>
    public static AttributionTarget Custom(Func<Tensor, Tensor> function, int position = -1, string name = "custom")
    {
        ArgumentNullException.ThrowIfNull(function);
        return new(TargetKind.Custom, position, null, function, name);
    }

    /// <summary>
    /// Resolves P to an absolute index and T (argmax at P of <paramref name="inputLogits"/> when not given) for a
    /// sequence of <paramref name="sequenceLength"/> tokens and a vocabulary of <paramref name="vocabSize"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Position or token out of range.</exception>
    public ResolvedTarget Resolve(long sequenceLength, long vocabSize, Tensor? inputLogits)
    {
        if (sequenceLength < 1) throw new ArgumentException("the token sequence is empty; give at least one token id");
        long p = Position < 0 ? sequenceLength + Position : Position;
        if (p < 0 || p >= sequenceLength)
            throw new ArgumentException(
                $"target position {Position} is out of range for a sequence of {sequenceLength} tokens (use 0..{sequenceLength - 1}, or -1..-{sequenceLength} from the end)", "target");
        long token = -1;
        if (Kind != TargetKind.Custom)
        {
            if (Token is { } t)
            {
                if (t < 0 || t >= vocabSize)
                    throw new ArgumentException($"target token {t} is out of range: ids must be in [0, {vocabSize - 1}] (vocab_size {vocabSize})", "target");
                token = t;
            }
            else
            {
                if (inputLogits is null) throw new ArgumentException("the target token is not given and no logits were supplied to take the argmax from", "target");
                using var _ = no_grad();
                using var row = inputLogits[0, p];
                using var am = row.argmax();
                token = am.item<long>();
            }
        }
        long contrast = -1;
        if (Kind == TargetKind.LogitDifference)
        {
            long t2 = ContrastToken!.Value;
            if (t2 < 0 || t2 >= vocabSize)
                throw new ArgumentException($"contrast token {t2} is out of range: ids must be in [0, {vocabSize - 1}] (vocab_size {vocabSize})", "target");
            if (t2 == token)
                throw new ArgumentException(
                    $"the contrast token {t2} equals the target token{(Token is null ? " (the argmax at position " + p + ")" : "")}: the logit difference would be identically 0; choose another token to contrast with", "target");
            contrast = t2;
        }
        return new ResolvedTarget(Kind, (int)p, token, CustomFunction, Name, contrast);
    }
}

/// <summary>A target with an absolute position and a concrete token: evaluates F on a batch of logits.</summary>
public sealed class ResolvedTarget
{
    private readonly Func<Tensor, Tensor>? _custom;

    internal ResolvedTarget(TargetKind kind, int position, long token, Func<Tensor, Tensor>? custom, string name, long contrastToken = -1)
    {
        Kind = kind; Position = position; Token = token; _custom = custom; Name = name; ContrastToken = contrastToken;
    }

    /// <summary>The kind of scalar.</summary>
    public TargetKind Kind { get; }
    /// <summary>Absolute position P.</summary>
    public int Position { get; }
    /// <summary>Token T (−1 for custom targets).</summary>
    public long Token { get; }
    /// <summary>Token T2 of a <see cref="TargetKind.LogitDifference"/> target (−1 otherwise).</summary>
    public long ContrastToken { get; }
    /// <summary>Label.</summary>
    public string Name { get; }

    /// <summary>
    /// The explained sequence's token ids when the model routes layers by token id (DeepSeek-V4 hash layers): every
    /// forward from (scaled, perturbed) embeddings keeps the input's hash routing. Null otherwise.
    /// </summary>
    internal long[]? RoutingIds { get; set; }

    /// <summary>F for each batch row: logits [batch, seq, vocab] → [batch].</summary>
    public Tensor Evaluate(Tensor logits)
    {
        if (Kind == TargetKind.Custom)
        {
            var y = _custom!(logits);
            if (y.dim() != 1 || y.shape[0] != logits.shape[0])
                throw new InvalidOperationException(
                    $"the custom target must return one scalar per batch row [{logits.shape[0]}], got [{string.Join(", ", y.shape)}]");
            return y;
        }
        using var scope = NewDisposeScope();
        var row = logits.select(1, Position); // [b, vocab]
        var result = Kind switch
        {
            TargetKind.Logit => row.select(1, Token),
            TargetKind.Probability => row.softmax(-1).select(1, Token),
            TargetKind.LogProbability => row.log_softmax(-1).select(1, Token),
            TargetKind.LogitDifference => row.select(1, Token) - row.select(1, ContrastToken),
            _ => throw new InvalidOperationException($"unknown target kind {Kind}"),
        };
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Serialisable description.</summary>
    public TargetInfo ToInfo() => new(Position, Kind == TargetKind.Custom ? null : Token, Kind, Name)
    {
        ContrastTokenId = Kind == TargetKind.LogitDifference ? ContrastToken : null,
    };
}

/// <summary>Plain description of a resolved target (position, token, kind; the subtracted token of a contrastive target).</summary>
public sealed record TargetInfo(int Position, long? TokenId, TargetKind Kind, string Name)
{
    /// <summary>For <see cref="TargetKind.LogitDifference"/>: the token T2 in logit T − logit T2; null otherwise.</summary>
    public long? ContrastTokenId { get; init; }
}
