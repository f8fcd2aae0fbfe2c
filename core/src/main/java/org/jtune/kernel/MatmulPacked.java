package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/**
 * The prefill matmul (many tokens), dtype-independent: an outer-product microkernel over packed f32
 * panels, with no horizontal sums and no weight widening in the inner loop.
 *
 * <p>The caller packs x once per call ({@link #packX}, in parallel): token block {@code tb} of
 * {@value #NT_DOC} tokens becomes {@code xp[tb][c][j] = x[tb * NT + j, c]} (zeros past the last token), so a
 * column of a token block is {@code NT / L} contiguous vectors. Each thread then takes {@value #MR}
 * weight rows at a time, widens them once into a per-thread f32 panel with the dtype's own
 * {@code gather} (exactly {@link Matrix#get}: I8 scales applied), and runs every token block of the
 * call against the panel: {@code MR} broadcast weights times {@code NT / L} token vectors, 16 FMA
 * accumulators (for 16 float lanes: 8 rows x 32 tokens) per step of c.
 *
 * <p>Every output is {@code fma(x[t, c], w[r, c], acc)} for c = 0, 1, 2... from 0: one fixed order per
 * element, independent of tile position, of the thread count and of the JIT tier.
 */
final class MatmulPacked {
    private static final int L = VectorKernels.L;
    /** Rows per panel and tokens per tile (two vectors). */
    static final int MR = 8, NT = 2 * L;
    private static final int NT_DOC = 32;

    /** Per-thread f32 panel of MR widened weight rows (grown on demand; prefill only). */
    private static final ThreadLocal<float[][]> PANEL = ThreadLocal.withInitial(() -> new float[1][0]);

    private MatmulPacked() {
    }

    /** Floats the packed x needs. */
    static int packedSize(int tokens, int cols) {
        return (tokens + NT - 1) / NT * NT * cols;
    }

    /** Packs token blocks {@code [fromTb, toTb)} of x (tokens, cols) into xp. */
    static void packX(float[] xp, float[] x, int tokens, int cols, int fromTb, int toTb) {
        for (int tb = fromTb; tb < toTb; tb++) {
            int base = tb * NT * cols;
            int t0 = tb * NT;
            int n = Math.min(NT, tokens - t0);
            if (n < NT) {
                java.util.Arrays.fill(xp, base, base + NT * cols, 0f);
            }
            // in tiles of 16 columns: a tile's NT output lines stay in L1 while every token fills its lane in them
            // (token by token over all the columns evicted each line before the next token's write: 1.4-1.5x slower)
            for (int c0 = 0; c0 < cols; c0 += 16) {
                int c1 = Math.min(cols, c0 + 16);
                for (int j = 0; j < n; j++) {
                    int xo = (t0 + j) * cols, po = base + j;
                    for (int c = c0; c < c1; c++) {
                        xp[po + c * NT] = x[xo + c];
                    }
                }
            }
        }
    }

    /** Output rows panels {@code [fromPanel, toPanel)} (MR rows each) for all tokens. */
    static void panels(float[] out, float[] xp, MemorySegment w, int dt, float[] scales, int group, int rows,
                       int cols, int strip, int tokens, int fromPanel, int toPanel) {
        float[][] holder = PANEL.get();
        float[] pan = holder[0];
        if (pan.length < MR * cols) {
            pan = holder[0] = new float[MR * cols];
        }
        float[] sc = VectorMath.scratch();
        int tbs = (tokens + NT - 1) / NT;
        for (int p = fromPanel; p < toPanel; p++) {
            int r = p * MR;
            int nr = Math.min(MR, rows - r);
            for (int i = 0; i < MR; i++) {
                int off = i * cols;
                if (i < nr) {
                    gather(pan, off, w, dt, scales, group, rows, r + i, cols, strip);
                } else {
                    java.util.Arrays.fill(pan, off, off + cols, 0f);
                }
            }
            for (int tb = 0; tb < tbs; tb++) {
                int t = tb * NT;
                micro(out, xp, tb * NT * cols, pan, cols, rows, r, nr, t, Math.min(NT, tokens - t), sc);
            }
        }
    }

    private static void gather(float[] pan, int off, MemorySegment w, int dt, float[] scales, int group, int rows,
                               int row, int cols, int strip) {
        switch (dt) {
            case VectorKernels.DT_F32 -> MatmulF32.gather(pan, off, w, rows, row, cols, strip);
            case VectorKernels.DT_BF16 -> MatmulBF16.gather(pan, off, w, rows, row, cols, strip);
            case VectorKernels.DT_F16 -> MatmulF16.gather(pan, off, w, rows, row, cols, strip);
            default -> MatmulI8.gather(pan, off, w, scales, group, rows, row, cols, strip, dt == VectorKernels.DT_I8_PAIRS);
        }
    }

    /** MR panel rows times NT tokens of block xo: 2 * MR accumulators of L tokens each. */
    private static void micro(float[] out, float[] xp, int xo, float[] pan, int cols, int rows, int r, int nr,
                              int t, int nt, float[] sc) {
        FloatVector a00 = FloatVector.zero(VectorKernels.F), a01 = a00, a10 = a00, a11 = a00;
        FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        FloatVector a40 = a00, a41 = a00, a50 = a00, a51 = a00;
        FloatVector a60 = a00, a61 = a00, a70 = a00, a71 = a00;
        int p0 = 0, p1 = cols, p2 = 2 * cols, p3 = 3 * cols, p4 = 4 * cols, p5 = 5 * cols, p6 = 6 * cols,
                p7 = 7 * cols;
        for (int c = 0; c < cols; c++) {
            int o = xo + c * NT;
            FloatVector x0 = FloatVector.fromArray(VectorKernels.F, xp, o);
            FloatVector x1 = FloatVector.fromArray(VectorKernels.F, xp, o + L);
            FloatVector b = FloatVector.broadcast(VectorKernels.F, pan[p0 + c]);
            a00 = x0.fma(b, a00);
            a01 = x1.fma(b, a01);
            b = FloatVector.broadcast(VectorKernels.F, pan[p1 + c]);
            a10 = x0.fma(b, a10);
            a11 = x1.fma(b, a11);
            b = FloatVector.broadcast(VectorKernels.F, pan[p2 + c]);
            a20 = x0.fma(b, a20);
            a21 = x1.fma(b, a21);
            b = FloatVector.broadcast(VectorKernels.F, pan[p3 + c]);
            a30 = x0.fma(b, a30);
            a31 = x1.fma(b, a31);
            b = FloatVector.broadcast(VectorKernels.F, pan[p4 + c]);
            a40 = x0.fma(b, a40);
            a41 = x1.fma(b, a41);
            b = FloatVector.broadcast(VectorKernels.F, pan[p5 + c]);
            a50 = x0.fma(b, a50);
            a51 = x1.fma(b, a51);
            b = FloatVector.broadcast(VectorKernels.F, pan[p6 + c]);
            a60 = x0.fma(b, a60);
            a61 = x1.fma(b, a61);
            b = FloatVector.broadcast(VectorKernels.F, pan[p7 + c]);
            a70 = x0.fma(b, a70);
            a71 = x1.fma(b, a71);
        }
        // sc holds 16 * L floats: row i's tokens j at sc[i * NT + j]
        a00.intoArray(sc, 0);
        a01.intoArray(sc, L);
        a10.intoArray(sc, 2 * L);
        a11.intoArray(sc, 3 * L);
        a20.intoArray(sc, 4 * L);
        a21.intoArray(sc, 5 * L);
        a30.intoArray(sc, 6 * L);
        a31.intoArray(sc, 7 * L);
        a40.intoArray(sc, 8 * L);
        a41.intoArray(sc, 9 * L);
        a50.intoArray(sc, 10 * L);
        a51.intoArray(sc, 11 * L);
        a60.intoArray(sc, 12 * L);
        a61.intoArray(sc, 13 * L);
        a70.intoArray(sc, 14 * L);
        a71.intoArray(sc, 15 * L);
        for (int j = 0; j < nt; j++) {
            int o = (t + j) * rows + r;
            for (int i = 0; i < nr; i++) {
                out[o + i] = sc[i * NT + j];
            }
        }
    }
}
