package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import org.jtune.io.safetensors.DType;

/**
 * A row-major weight matrix in its stored dtype: {@code rows} output features by {@code cols} input
 * features, exactly as HF stores {@code nn.Linear.weight} ({@code [out, in]}). The bytes are a read-only
 * slice of a memory-mapped safetensors file, or (inference sessions) a copy in the decode layout; kernels
 * widen bf16/f16 to f32 in registers, so no f32 copy of the weights ever exists.
 *
 * <p>I8 matrices are weight-only quantized: element (r, c) is {@code data[r, c] * scales[r, c / groupSize]},
 * with {@code groupSize} dividing {@code cols} ({@code groupSize == cols}: one scale per output channel).
 * With {@code rowPairs} the bytes are held as row pairs (see {@link #withRowPairs}): rows {@code 2p} and
 * {@code 2p + 1} alternate every {@value #PAIR_BLOCK} bytes (a block of one, then the same block of the
 * other), so the decode kernel reads two rows as one sequential stream; an odd last row stays plain.
 * {@code jtune quantize} writes int8 in this layout and records it in the file's metadata, so the
 * loader maps it as it is.
 *
 * <p>U8 matrices are int4 weight-only quantized: two 4-bit codes per byte, the low nibble holding the even
 * column, so {@code data} has {@code rows * cols / 2} bytes ({@code cols} must be even). Element (r, c) is
 * {@code (n - z) * scale} where n in [0, 15] is the nibble, scale is {@code scales[r, c / groupSize]} and z is
 * {@code zeros[r, c / groupSize]} (asymmetric: integers 0..15 held as floats) or 8 when {@code zeros} is
 * null (symmetric: the nibble is the signed code plus 8, as llama.cpp's Q4_0). The tag U8 is what the
 * tensor is on disk; {@link #isInt4()} names it.
 *
 * <p>With {@code strip > 0} the matrix is held in column strips (see {@link #withStrips}): columns
 * {@code [s * strip, min(cols, (s + 1) * strip))} of every row form strip s, stored as a {@code rows x width}
 * matrix of its own (row-major, or row pairs for I8) after the full-width strips before it. {@code strip == 0}:
 * one strip, the whole matrix.
 */
public record Matrix(MemorySegment data, DType dtype, int rows, int cols, float[] scales, int groupSize, float[] zeros,
                     boolean rowPairs, int strip) {
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The zero point of symmetric int4 groups: nibble 8 is weight 0. */
    public static final float INT4_SYMMETRIC_ZERO = 8f;

    public Matrix {
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16 && dtype != DType.I8 && dtype != DType.U8) {
            throw new IllegalArgumentException("weight matrices must be F32, F16, BF16, I8 or U8 (int4), got " + dtype);
        }
        if (dtype == DType.U8) {
            if (cols % 2 != 0) {
                throw new IllegalArgumentException("int4 matrix " + rows + "x" + cols + " needs an even number of columns");
            }
            if (groupSize <= 0 || cols % groupSize != 0 || scales == null
                    || scales.length != (long) rows * (cols / groupSize)
                    || (zeros != null && zeros.length != scales.length)) {
                throw new IllegalArgumentException("int4 matrix " + rows + "x" + cols + " needs group size dividing cols and "
                        + "rows * cols / groupSize scales (and as many zero points, if any); got group " + groupSize + ", "
                        + (scales == null ? "no" : scales.length) + " scales, "
                        + (zeros == null ? "no" : zeros.length) + " zero points");
            }
            if (data.byteSize() != (long) rows * cols / 2) {
                throw new IllegalArgumentException("int4 matrix " + rows + "x" + cols + " needs " + (long) rows * cols / 2
                        + " bytes, segment has " + data.byteSize());
            }
        } else if (zeros != null) {
            throw new IllegalArgumentException("only int4 (U8) matrices carry zero points");
        } else if (dtype == DType.I8) {
            if (groupSize <= 0 || cols % groupSize != 0 || scales == null
                    || scales.length != (long) rows * (cols / groupSize)) {
                throw new IllegalArgumentException("I8 matrix " + rows + "x" + cols + " needs group size dividing cols and "
                        + "rows * cols / groupSize scales; got group " + groupSize + ", "
                        + (scales == null ? "no" : scales.length) + " scales");
            }
        } else if (scales != null) {
            throw new IllegalArgumentException("only I8 and int4 matrices carry scales");
        }
        if (strip != 0 && (strip < 0 || strip % STRIP_ALIGN != 0 || strip >= cols || !stripsFit(dtype, rowPairs, cols,
                groupSize, strip))) {
            throw new IllegalArgumentException("column strips are for F32/BF16/F16 matrices and I8 row pairs whose groups "
                    + "divide the strip (or per channel), a positive multiple of " + STRIP_ALIGN
                    + " columns narrower than the matrix; got " + dtype + (rowPairs ? " row pairs " : " ") + rows + "x"
                    + cols + (dtype == DType.I8 ? " group " + groupSize : "") + " strip " + strip);
        }
        if (rowPairs && (dtype != DType.I8 || !rowPairsFit(cols, groupSize))) {
            throw new IllegalArgumentException("the row-pair layout is for I8 matrices with groups of a multiple of "
                    + PAIR_BLOCK + " columns, got " + dtype + " " + rows + "x" + cols + " group " + groupSize);
        }
        if (dtype != DType.U8 && data.byteSize() != (long) rows * cols * dtype.byteSize()) {
            throw new IllegalArgumentException("matrix " + rows + "x" + cols + " " + dtype + " needs "
                    + (long) rows * cols * dtype.byteSize() + " bytes, segment has " + data.byteSize());
        }
    }

    /** A matrix of a float dtype (no scales). */
    public Matrix(MemorySegment data, DType dtype, int rows, int cols) {
        this(data, dtype, rows, cols, null, 0, null, false, 0);
    }

    /** A row-major I8 matrix with group scales (or a float matrix: scales null, groupSize 0). */
    public Matrix(MemorySegment data, DType dtype, int rows, int cols, float[] scales, int groupSize) {
        this(data, dtype, rows, cols, scales, groupSize, null, false, 0);
    }

    /** An int4 matrix: packed nibbles {@code [rows, cols / 2]}, group scales, zero points or null (symmetric). */
    public static Matrix int4(MemorySegment packed, int rows, int cols, float[] scales, int groupSize, float[] zeros) {
        return new Matrix(packed, DType.U8, rows, cols, scales, groupSize, zeros, false, 0);
    }

    /** Bytes of one row between switches to the other row of a pair: a group of Q8_0's size. */
    public static final int PAIR_BLOCK = 32;

    /**
     * Whether an I8 matrix with this group size can take the row-pair layout: groups (or, per channel,
     * rows) a multiple of {@value #PAIR_BLOCK} columns, so every block lies in one group and is whole
     * vectors at every lane count up to 16.
     */
    public static boolean rowPairsFit(int cols, int groupSize) {
        return groupSize > 0 && groupSize % PAIR_BLOCK == 0 && cols % groupSize == 0;
    }

    /**
     * This row-major I8 matrix re-laid as row pairs, in a new off-heap segment (freed with the matrix);
     * itself when it does not fit ({@link #rowPairsFit}), has one row or is already paired. Single-row decode reads a
     * weight matrix once per token, and with one row per stream the int8 kernel is compute-bound on
     * short rows: two rows at a time share every x load and the lane sums, and the pairing keeps their
     * bytes one sequential stream (two separate row streams read DRAM at about 60 % of one).
     */
    public Matrix withRowPairs() {
        return withRowPairs(java.lang.foreign.Arena.ofAuto());
    }

    /** {@link #withRowPairs()} into memory from {@code into}. */
    public Matrix withRowPairs(SegmentAllocator into) {
        if (dtype != DType.I8 || rowPairs || strip != 0 || rows < 2 || !rowPairsFit(cols, groupSize)) {
            return this;
        }
        MemorySegment paired = into.allocate(data.byteSize(), 64);
        int paired2 = rows & ~1;
        for (int r = 0; r < paired2; r++) {
            for (int c = 0; c < cols; c += PAIR_BLOCK) {
                MemorySegment.copy(data, (long) r * cols + c, paired, pairOffset(r, c, cols), PAIR_BLOCK);
            }
        }
        if (paired2 < rows) {
            MemorySegment.copy(data, (long) paired2 * cols, paired, (long) paired2 * cols, cols);
        }
        return new Matrix(paired, dtype, rows, cols, scales, groupSize, null, true, 0);
    }

    /**
     * Strip width for decode ({@link #withStrips}), for matrices more than twice as wide: up to 2048 columns
     * the x row (8 KiB of f32) stays in a 32 KiB L1 cache next to the weight stream, past that it does not. On
     * TinyLlama-1.1B's down projection (2048 x 5632) the bf16 decode matmul streamed 15-19 GB/s against 29-32
     * for the other matrices of the same passes, 26-31 in strips of 1024 columns (strips of 512 and 2048 a
     * little slower; 2 threads, the two layouts alternated in one process); int8 17 against 22-24.
     */
    public static final int DECODE_STRIP = 1024;
    /** Strip widths are a multiple of this many columns: whole 4-vector steps at every lane count up to 16. */
    public static final int STRIP_ALIGN = 64;

    /**
     * This matrix in column strips of {@code width} columns (see the class comment), copied into a new
     * off-heap segment (freed with the matrix); itself when it is no wider than {@code width}, already in
     * strips, or not an F32/BF16/F16 matrix or I8 row pairs whose groups divide the width (or are per channel).
     * Decode dots each weight row with the whole x row; when x (4 bytes a column) no longer fits beside the
     * weight stream in L1, every row re-reads it from L2 and the stream slows to half: a strip is one
     * sequential stream over all rows against an x slice that stays in L1.
     */
    public Matrix withStrips(int width) {
        return withStrips(width, java.lang.foreign.Arena.ofAuto());
    }

    /** {@link #withStrips(int)} into memory from {@code into}. */
    public Matrix withStrips(int width, SegmentAllocator into) {
        if (width <= 0 || width % STRIP_ALIGN != 0) {
            throw new IllegalArgumentException("strip width must be a positive multiple of " + STRIP_ALIGN + ", got " + width);
        }
        if (strip != 0 || cols <= width || !stripsFit(dtype, rowPairs, cols, groupSize, width)) {
            return this;
        }
        int esz = dtype.byteSize();
        MemorySegment striped = into.allocate(data.byteSize(), 64);
        for (int c0 = 0; c0 < cols; c0 += width) {
            int run = rowPairs ? PAIR_BLOCK : Math.min(width, cols - c0);   // elements that stay together
            for (int r = 0; r < rows; r++) {
                for (int c = c0; c < Math.min(cols, c0 + width); c += run) {
                    MemorySegment.copy(data, index(r, c) * esz, striped,
                            offset(rows, cols, width, rowPairs, r, c) * esz, (long) run * esz);
                }
            }
        }
        float[] stripedScales = scales;
        if (scales != null && groupSize < cols) {   // each strip's scales together too, in the order its pass reads them
            stripedScales = new float[scales.length];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c += groupSize) {
                    stripedScales[scaleOffset(rows, cols, width, groupSize, r, c)] = scales[scaleOffset(rows, cols, 0, groupSize, r, c)];
                }
            }
        }
        return new Matrix(striped, dtype, rows, cols, stripedScales, groupSize, null, rowPairs, width);
    }

    /** This matrix with its bytes copied into memory from {@code into}, layout unchanged. */
    public Matrix copyTo(SegmentAllocator into) {
        MemorySegment copy = into.allocate(data.byteSize(), 64);
        MemorySegment.copy(data, 0, copy, 0, data.byteSize());
        return new Matrix(copy, dtype, rows, cols, scales, groupSize, zeros, rowPairs, strip);
    }

    private static boolean stripsFit(DType dtype, boolean rowPairs, int cols, int groupSize, int width) {
        return switch (dtype) {
            case F32, BF16, F16 -> true;
            case I8 -> rowPairs && (groupSize == cols || width % groupSize == 0);
            default -> false;
        };
    }

    /**
     * Index in the scales of an I8 matrix of the group holding (r, c): row-major {@code (rows, groups)}, or in
     * column strips (groups narrower than the matrix) strip after strip, each {@code (rows, its groups)}.
     */
    static int scaleOffset(int rows, int cols, int strip, int groupSize, int r, int c) {
        if (strip == 0 || groupSize == cols) {
            return r * (cols / groupSize) + c / groupSize;
        }
        int c0 = c / strip * strip;
        return rows * (c0 / groupSize) + r * (Math.min(strip, cols - c0) / groupSize) + (c - c0) / groupSize;
    }

    /** Element index of (r, c) in {@link #data} (F32/BF16/F16/I8: strips, row pairs or row-major). */
    public long index(int r, int c) {
        return offset(rows, cols, strip, rowPairs, r, c);
    }

    /**
     * Element index of (r, c) in a {@code rows x cols} matrix held in column strips of {@code strip} columns (0:
     * one strip), each strip a matrix of its own, as row pairs when {@code pairs} (an odd last row stays plain).
     */
    static long offset(int rows, int cols, int strip, boolean pairs, int r, int c) {
        int c0 = strip == 0 ? 0 : c / strip * strip;
        int width = strip == 0 ? cols : Math.min(strip, cols - c0);
        long base = (long) rows * c0;
        return pairs && r < (rows & ~1) ? base + pairOffset(r, c - c0, width) : base + (long) r * width + (c - c0);
    }

    /** Byte offset of element (r, c) of a row in a pair (r < rows & ~1). */
    static long pairOffset(int r, int c, int cols) {
        return (long) (r & ~1) * cols + ((long) (c / PAIR_BLOCK) * 2 + (r & 1)) * PAIR_BLOCK + c % PAIR_BLOCK;
    }

    /** Whether this is a packed int4 matrix (dtype tag U8). */
    public boolean isInt4() {
        return dtype == DType.U8;
    }

    /** Number of scale groups per row (I8 and int4 only). */
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
        long i = index(r, c);
        return switch (dtype) {
            case F32 -> data.getAtIndex(F32, i);
            case BF16 -> Float.intBitsToFloat(data.getAtIndex(I16, i) << 16);
            case F16 -> Float.float16ToFloat(data.getAtIndex(I16, i));
            case I8 -> data.get(ValueLayout.JAVA_BYTE, i) * scales[scaleOffset(rows, cols, strip, groupSize, r, c)];
            case U8 -> {
                int b = data.get(ValueLayout.JAVA_BYTE, i >> 1);
                int n = (c & 1) == 0 ? b & 0xF : (b >> 4) & 0xF;
                int g = r * (cols / groupSize) + c / groupSize;
                yield (n - (zeros == null ? INT4_SYMMETRIC_ZERO : zeros[g])) * scales[g];
            }
            default -> throw new AssertionError(dtype);
        };
    }

    /** Bytes a pass over the matrix reads: the weights plus their scales (and zero points). */
    public long byteSize() {
        return data.byteSize() + (scales == null ? 0 : 4L * scales.length) + (zeros == null ? 0 : 4L * zeros.length);
    }
}
