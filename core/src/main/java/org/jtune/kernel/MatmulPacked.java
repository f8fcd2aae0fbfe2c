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
                micro(out, xp, tb * NT * cols, pan, 0, cols, rows, r, nr, t, Math.min(NT, tokens - t), false, sc);
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

    /**
     * MR panel rows (at panOff) times NT tokens of block xo: 2 * MR accumulators of L tokens each, stored into
     * out or, with {@code add}, added to it.
     */
    private static void micro(float[] out, float[] xp, int xo, float[] pan, int panOff, int cols, int rows, int r,
                              int nr, int t, int nt, boolean add, float[] sc) {
        FloatVector a00 = FloatVector.zero(VectorKernels.F), a01 = a00, a10 = a00, a11 = a00;
        FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        FloatVector a40 = a00, a41 = a00, a50 = a00, a51 = a00;
        FloatVector a60 = a00, a61 = a00, a70 = a00, a71 = a00;
        int p0 = panOff, p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols, p4 = p3 + cols, p5 = p4 + cols,
                p6 = p5 + cols, p7 = p6 + cols;
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
            if (add) {
                for (int i = 0; i < nr; i++) {
                    out[o + i] += sc[i * NT + j];
                }
            } else {
                for (int i = 0; i < nr; i++) {
                    out[o + i] = sc[i * NT + j];
                }
            }
        }
    }

    // ---------------------------------------------------------------- weight gradients

    /**
     * Floats of dy packed per chunk of dw rows: {@code 2^21} (8 MiB), so the vocabulary-wide head's gradient (49152
     * rows) is packed a part at a time instead of as a second copy of its 200 MB.
     */
    private static final int DW_CHUNK_FLOATS = 1 << 21;

    /**
     * {@code dw (rows, cols) += dy^T x} for dy (tokens, rows) and x (tokens, cols), both token-major as the
     * forward left them: the same microkernel with the tokens as its reduction. dw's rows take the lanes, so
     * a block of NT of them is NT contiguous floats of each dy row ({@link #packRowBlocks}: a copy, no
     * transpose), and MR of dw's columns make a panel ({@link #packColumnPanels}: x read once per call). Every
     * element is its fma chain over t = 0, 1, 2... from 0, then added to dw: one order, whatever the threads.
     */
    static void weightGradient(WorkerPool pool, WeightGradientTask task, float[] dw, float[] dy, float[] x,
                               int tokens, int rows, int cols) {
        weightGradient(pool, task, dw, dy, x, tokens, rows, cols, DW_CHUNK_FLOATS);
    }

    /** As above, dy packed {@code chunkFloats} at a time (at least one row block): tests take it small. */
    static void weightGradient(WorkerPool pool, WeightGradientTask task, float[] dw, float[] dy, float[] x,
                               int tokens, int rows, int cols, int chunkFloats) {
        int panels = (cols + MR - 1) / MR;
        int tbs = (rows + NT - 1) / NT;
        int chunkTbs = Math.max(1, Math.min(tbs, chunkFloats / (NT * tokens)));
        boolean parallel = pool.threads() > 1 && (long) rows * cols * tokens >= VectorKernels.PARALLEL_MIN_MACS;
        synchronized (task) {
            if (task.pan.length < panels * MR * tokens) {
                task.pan = new float[panels * MR * tokens];
            }
            if (task.xp.length < chunkTbs * NT * tokens) {
                task.xp = new float[chunkTbs * NT * tokens];
            }
            task.set(dw, dy, x, tokens, rows, cols);
            try {
                task.mode = WeightGradientTask.PANELS;
                run(pool, parallel, panels, task);
                for (int tb0 = 0; tb0 < tbs; tb0 += chunkTbs) {
                    task.tb0 = tb0;
                    task.tbCount = Math.min(chunkTbs, tbs - tb0);
                    task.mode = WeightGradientTask.ROWS;
                    run(pool, parallel, task.tbCount, task);
                    task.mode = WeightGradientTask.TILES;
                    run(pool, parallel, panels * task.tbCount, task);
                }
            } finally {
                task.set(null, null, null, 0, 0, 0);
            }
        }
    }

    private static void run(WorkerPool pool, boolean parallel, int n, RangeTask task) {
        if (parallel) {
            pool.run(n, task);
        } else {
            task.run(0, n);
        }
    }

    /** Panels {@code [from, to)}: {@code pan[p][i][t] = x[t, p * MR + i]}, zero past the last column. */
    static void packColumnPanels(float[] pan, float[] x, int tokens, int cols, int from, int to) {
        for (int p = from; p < to; p++) {
            int c0 = p * MR, n = Math.min(MR, cols - c0), base = p * MR * tokens;
            if (n < MR) {
                java.util.Arrays.fill(pan, base + n * tokens, base + MR * tokens, 0f);
            }
            for (int t = 0; t < tokens; t++) {
                int xo = t * cols + c0;
                for (int i = 0; i < n; i++) {
                    pan[base + i * tokens + t] = x[xo + i];
                }
            }
        }
    }

    /**
     * Row blocks {@code tb0 + [from, to)} of dw, packed from dy: {@code xp[b][t][j] = dy[t, (tb0 + b) * NT + j]}
     * (b relative to the chunk), zero past the last row.
     */
    static void packRowBlocks(float[] xp, float[] dy, int tokens, int rows, int tb0, int from, int to) {
        for (int b = from; b < to; b++) {
            int r0 = (tb0 + b) * NT, n = Math.min(NT, rows - r0), base = b * NT * tokens;
            for (int t = 0; t < tokens; t++) {
                int o = base + t * NT;
                System.arraycopy(dy, t * rows + r0, xp, o, n);
                if (n < NT) {
                    java.util.Arrays.fill(xp, o + n, o + NT, 0f);
                }
            }
        }
    }

    /** The reusable weight-gradient job: one instance per VectorKernels, fields set under its monitor. */
    static final class WeightGradientTask implements RangeTask {
        static final int PANELS = 0, ROWS = 1, TILES = 2;
        private float[] dw, dy, x;
        private float[] pan = new float[0], xp = new float[0];
        private int tokens, rows, cols, mode, tb0, tbCount;

        void set(float[] dw, float[] dy, float[] x, int tokens, int rows, int cols) {
            this.dw = dw;
            this.dy = dy;
            this.x = x;
            this.tokens = tokens;
            this.rows = rows;
            this.cols = cols;
        }

        @Override
        public void run(int from, int to) {
            switch (mode) {
                case PANELS -> packColumnPanels(pan, x, tokens, cols, from, to);
                case ROWS -> packRowBlocks(xp, dy, tokens, rows, tb0, from, to);
                default -> {
                    // item = (panel, row block of the chunk), panel-major: a thread's consecutive items share a panel
                    float[] sc = VectorMath.scratch();
                    for (int item = from; item < to; item++) {
                        int p = item / tbCount, b = item % tbCount;
                        int r = p * MR, t = (tb0 + b) * NT;
                        micro(dw, xp, b * NT * tokens, pan, p * MR * tokens, tokens, cols, r, Math.min(MR, cols - r), t,
                                Math.min(NT, rows - t), true, sc);
                    }
                }
            }
        }
    }
}
