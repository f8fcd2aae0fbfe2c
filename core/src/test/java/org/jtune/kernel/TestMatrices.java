package org.jtune.kernel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.jtune.io.safetensors.DType;

/** Random weight matrices in each stored dtype, on the heap or off-heap at an odd (unaligned) address. */
final class TestMatrices {
    private TestMatrices() {
    }

    static float[] randomFloats(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = rnd.nextFloat() * 2f - 1f;
        }
        return a;
    }

    /** Encodes values (rounded to dtype) into a segment; offHeap slices a native allocation at offset 1. */
    static Matrix matrix(Random rnd, DType dtype, int rows, int cols, boolean offHeap) {
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
}
