package org.jtune.autograd;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.jtune.io.safetensors.DType;
import org.jtune.kernel.Matrix;

/** Transposes for the backward pass: weights keep their dtype (I8 and int4 widen to f32), activations are plain arrays. */
final class Matrices {
    private Matrices() {
    }

    /** W^T; reuses {@code into}'s memory when it has the right shape (a refreshed trainable master). */
    static Matrix transpose(Matrix w, Matrix into) {
        int rows = w.rows(), cols = w.cols();
        if (w.dtype() == DType.I8 || w.dtype() == DType.U8 || w.dtype() == DType.F32) {
            float[] t = into != null && into.data().heapBase().orElse(null) instanceof float[] f && f.length == rows * cols
                    ? f : new float[rows * cols];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    t[c * rows + r] = w.get(r, c);
                }
            }
            return new Matrix(MemorySegment.ofArray(t), DType.F32, cols, rows);
        }
        int size = w.dtype().byteSize();
        MemorySegment src = w.data();
        MemorySegment dst = Arena.ofAuto().allocate((long) rows * cols * size, 64);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                MemorySegment.copy(src, w.index(r, c) * size, dst, ((long) c * rows + r) * size, size);
            }
        }
        return new Matrix(dst, w.dtype(), cols, rows);
    }

    /** a (rows, cols) row-major, transposed. */
    static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }
}
