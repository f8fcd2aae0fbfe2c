package org.jtune.autograd;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import org.jtune.io.safetensors.DType;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.WorkerPool;

/**
 * Weight transposes for the backward pass: they keep their dtype (I8 and int4 widen to f32).
 * They go tile by tile over the pool: element by element, every write of a wide matrix's transpose landed a row's
 * stride apart, and a full fine-tuning step spent a sixth of its time on them and the activations' transposes.
 */
final class Matrices {
    private Matrices() {
    }

    /** Side of a tile: 32 x 32 floats are 4 KiB read and 4 KiB written, both in L1. */
    private static final int TILE = 32;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** W^T; reuses {@code into}'s memory when it has the right shape (a refreshed trainable master). */
    static Matrix transpose(Matrix w, Matrix into) {
        int rows = w.rows(), cols = w.cols();
        boolean rowMajor = w.strip() == 0 && !w.rowPairs();
        if (w.dtype() == DType.I8 || w.dtype() == DType.U8 || w.dtype() == DType.F32) {
            float[] t = into != null && into.data().heapBase().orElse(null) instanceof float[] f && f.length == rows * cols
                    ? f : new float[rows * cols];
            if (rowMajor && w.dtype() == DType.F32 && w.data().heapBase().orElse(null) instanceof float[] a
                    && w.data().address() == 0 && a.length == rows * cols) {
                transpose(a, t, rows, cols);
            } else {
                forTiles(rows, cols, (r0, r1, c0, c1) -> {
                    for (int r = r0; r < r1; r++) {
                        for (int c = c0; c < c1; c++) {
                            t[c * rows + r] = w.get(r, c);
                        }
                    }
                });
            }
            return new Matrix(MemorySegment.ofArray(t), DType.F32, cols, rows);
        }
        MemorySegment src = w.data();   // BF16 / F16: the 16-bit patterns move unchanged
        MemorySegment dst = Arena.ofAuto().allocate((long) rows * cols * Short.BYTES, 64);
        forTiles(rows, cols, (r0, r1, c0, c1) -> {
            for (int r = r0; r < r1; r++) {
                for (int c = c0; c < c1; c++) {
                    long from = rowMajor ? (long) r * cols + c : w.index(r, c);
                    dst.setAtIndex(I16, (long) c * rows + r, src.getAtIndex(I16, from));
                }
            }
        });
        return new Matrix(dst, w.dtype(), cols, rows);
    }

    /** a (rows, cols) row-major, transposed into {@code t[0 .. rows * cols)}. */
    private static void transpose(float[] a, float[] t, int rows, int cols) {
        forTiles(rows, cols, (r0, r1, c0, c1) -> {
            for (int c = c0; c < c1; c++) {
                for (int r = r0; r < r1; r++) {
                    t[c * rows + r] = a[r * cols + c];
                }
            }
        });
    }

    private interface Tile {
        void run(int r0, int r1, int c0, int c1);
    }

    /** Every tile of a rows x cols matrix once, bands of {@link #TILE} columns spread over the pool. */
    private static void forTiles(int rows, int cols, Tile tile) {
        WorkerPool.shared().run((cols + TILE - 1) / TILE, (from, to) -> {
            for (int c0 = from * TILE; c0 < Math.min(cols, to * TILE); c0 += TILE) {
                for (int r0 = 0; r0 < rows; r0 += TILE) {
                    tile.run(r0, Math.min(rows, r0 + TILE), c0, Math.min(cols, c0 + TILE));
                }
            }
        });
    }
}
