package org.jtune.kernel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.jtune.io.safetensors.DType;

/** Random weight matrices in each stored dtype, on the heap or off-heap at an odd (unaligned) address. */
public final class TestMatrices {
    private TestMatrices() {
    }

    public static float[] randomFloats(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = rnd.nextFloat() * 2f - 1f;
        }
        return a;
    }

    /** Encodes values (rounded to dtype) into a segment; offHeap slices a native allocation at offset 1. */
    public static Matrix matrix(Random rnd, DType dtype, int rows, int cols, boolean offHeap) {
        int n = rows * cols;
        long bytes = (long) n * dtype.byteSize();
        MemorySegment seg = offHeap
                ? Arena.ofAuto().allocate(bytes + 1, 8).asSlice(1, bytes)
                : MemorySegment.ofArray(new byte[(int) bytes]);
        for (int i = 0; i < n; i++) {
            float v = rnd.nextFloat() * 2f - 1f;
            switch (dtype) {
                case F32 -> seg.setAtIndex(Matrix.F32, i, v);
                case BF16 -> seg.setAtIndex(Matrix.I16, i, (short) (Float.floatToRawIntBits(v) >>> 16));
                case F16 -> seg.setAtIndex(Matrix.I16, i, Float.floatToFloat16(v));
                default -> throw new AssertionError(dtype);
            }
        }
        return new Matrix(seg, dtype, rows, cols);
    }

    /**
     * An I8 matrix: random int8 weights over the whole range (-128 included, which the quantizer never
     * writes but a kernel must still handle) and positive scales of varied magnitude, one per group.
     */
    public static Matrix i8Matrix(Random rnd, int rows, int cols, int group, boolean offHeap) {
        MemorySegment seg = randomBytes(rnd, (long) rows * cols, offHeap);
        return new Matrix(seg, DType.I8, rows, cols, groupScales(rnd, rows * (cols / group)), group);
    }

    /**
     * An int4 matrix: random bytes (every nibble pattern), positive scales of varied magnitude and, when
     * asymmetric, random integer zero points 0..15.
     */
    public static Matrix i4Matrix(Random rnd, int rows, int cols, int group, boolean symmetric, boolean offHeap) {
        MemorySegment seg = randomBytes(rnd, (long) rows * cols / 2, offHeap);
        float[] scales = groupScales(rnd, rows * (cols / group));
        float[] zeros = null;
        if (!symmetric) {
            zeros = new float[scales.length];
            for (int i = 0; i < zeros.length; i++) {
                zeros[i] = rnd.nextInt(16);
            }
        }
        return Matrix.int4(seg, rows, cols, scales, group, zeros);
    }

    /** Random bytes (every pattern), on the heap or off it at an odd address. */
    private static MemorySegment randomBytes(Random rnd, long bytes, boolean offHeap) {
        MemorySegment seg = offHeap
                ? Arena.ofAuto().allocate(bytes + 1, 8).asSlice(1, bytes)
                : MemorySegment.ofArray(new byte[(int) bytes]);
        for (long i = 0; i < bytes; i++) {
            seg.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt(256));
        }
        return seg;
    }

    /** Positive group scales of varied magnitude, 1e-3 .. 1e-1. */
    private static float[] groupScales(Random rnd, int n) {
        float[] scales = new float[n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) (Math.pow(10, rnd.nextDouble() * 2 - 3));
        }
        return scales;
    }
}
