package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import org.jtune.io.safetensors.DType;

/**
 * A row-major weight matrix in its stored dtype: {@code rows} output features by {@code cols} input
 * features, exactly as HF stores {@code nn.Linear.weight} ({@code [out, in]}). The bytes are usually a
 * read-only slice of a memory-mapped safetensors file; kernels widen bf16/f16 to f32 in registers, so
 * no f32 copy of the weights ever exists.
 *
 * <p>I8 matrices are weight-only quantized: element (r, c) is {@code data[r, c] * scales[r, c / groupSize]},
 * with {@code groupSize} dividing {@code cols} ({@code groupSize == cols}: one scale per output channel).
 */
public record Matrix(MemorySegment data, DType dtype, int rows, int cols, float[] scales, int groupSize) {
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public Matrix {
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16 && dtype != DType.I8) {
            throw new IllegalArgumentException("weight matrices must be F32, F16, BF16 or I8, got " + dtype);
        }
        if (dtype == DType.I8) {
            if (groupSize <= 0 || cols % groupSize != 0 || scales == null
                    || scales.length != (long) rows * (cols / groupSize)) {
                throw new IllegalArgumentException("I8 matrix " + rows + "x" + cols + " needs group size dividing cols and "
                        + "rows * cols / groupSize scales; got group " + groupSize + ", "
                        + (scales == null ? "no" : scales.length) + " scales");
            }
        } else if (scales != null) {
            throw new IllegalArgumentException("only I8 matrices carry scales");
        }
        if (data.byteSize() != (long) rows * cols * dtype.byteSize()) {
            throw new IllegalArgumentException("matrix " + rows + "x" + cols + " " + dtype + " needs "
                    + (long) rows * cols * dtype.byteSize() + " bytes, segment has " + data.byteSize());
        }
    }

    /** A matrix of a float dtype (no scales). */
    public Matrix(MemorySegment data, DType dtype, int rows, int cols) {
        this(data, dtype, rows, cols, null, 0);
    }

    /** Number of scale groups per row (I8 only). */
    public int groupsPerRow() {
        return cols / groupSize;
    }

    /** An f32 matrix over a heap array (tests, small derived weights). */
    public static Matrix ofFloats(float[] values, int rows, int cols) {
        MemorySegment seg = MemorySegment.ofArray(new byte[values.length * 4]);
        for (int i = 0; i < values.length; i++) {
            seg.setAtIndex(F32, i, values[i]);
        }
        return new Matrix(seg, DType.F32, rows, cols);
    }

    /** Element (r, c) widened to f32; for scalar reference code and single-row gathers. */
    public float get(int r, int c) {
        long i = (long) r * cols + c;
        return switch (dtype) {
            case F32 -> data.getAtIndex(F32, i);
            case BF16 -> Float.intBitsToFloat(data.getAtIndex(I16, i) << 16);
            case F16 -> Float.float16ToFloat(data.getAtIndex(I16, i));
            case I8 -> data.get(ValueLayout.JAVA_BYTE, i) * scales[r * (cols / groupSize) + c / groupSize];
            default -> throw new AssertionError(dtype);
        };
    }

    /** Bytes a pass over the matrix reads: the weights plus their scales. */
    public long byteSize() {
        return data.byteSize() + (scales == null ? 0 : 4L * scales.length);
    }
}
