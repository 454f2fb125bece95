using System.Collections.ObjectModel;

namespace DeepSeekNotebooks.Model.Checkpoints;

/// <summary>
/// One validated tensor entry of a safetensors header (huggingface/safetensors README, "Format"):
/// its name, dtype, shape and the location of its bytes. <see cref="DataBegin"/>/<see cref="DataEnd"/>
/// are absolute file offsets (the header's <c>data_offsets</c> plus <c>8 + N</c>), ready for positional reads.
/// </summary>
public sealed class SafetensorsTensorInfo
{
    private readonly long[] _shape;

    internal SafetensorsTensorInfo(string name, SafetensorsDType dtype, long[] shape, long elementCount, long dataBegin, long dataEnd, long relativeBegin)
    {
        Name = name;
        DType = dtype;
        _shape = shape;
        Shape = new ReadOnlyCollection<long>(shape);
        ElementCount = elementCount;
        DataBegin = dataBegin;
        DataEnd = dataEnd;
        RelativeBegin = relativeBegin;
    }

    /// <summary>The tensor's key in the header.</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public SafetensorsDType DType { get; }

    /// <summary>The shape; empty for a 0-d scalar.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Number of dimensions (0 for a scalar).</summary>
    public int Rank => _shape.Length;

    /// <summary>Product of the shape (1 for a scalar, 0 if any dimension is 0).</summary>
    public long ElementCount { get; }

    /// <summary>Number of data bytes: <see cref="ElementCount"/> × element size.</summary>
    public long ByteLength => DataEnd - DataBegin;

    /// <summary>Absolute file offset of the first data byte.</summary>
    public long DataBegin { get; }

    /// <summary>Absolute file offset one past the last data byte.</summary>
    public long DataEnd { get; }

    /// <summary>Offset of the first data byte relative to the start of the data buffer (the header's <c>data_offsets[0]</c>).</summary>
    public long RelativeBegin { get; }

    /// <summary>A fresh copy of the shape, e.g. to pass to a tensor constructor.</summary>
    public long[] ToShapeArray() => (long[])_shape.Clone();

    /// <inheritdoc />
    public override string ToString() => $"{Name}: {DType} [{string.Join(", ", _shape)}] @ {DataBegin}..{DataEnd}";
}
