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
 *
 * <p>Training's two backward products run on the same microkernel with other operands in its lanes and
 * panels: {@link #weightGradient} ({@code dw += dy^T x}, the tokens as the reduction) and
 * {@link #inputGradient} ({@code dx += dy w}, w's rows as the reduction), neither transposing anything.
 */
final class MatmulPacked {
    private static final int L = VectorKernels.L;
    /** Rows per panel and lanes per tile (two vectors): tokens in the forward. */
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
                micro(out, xp, tb * NT * cols, pan, 0, cols, cols, rows, 1, r, nr, t, Math.min(NT, tokens - t), false, sc);
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
     * MR panel rows (row i at {@code panOff + i * panStride}) times the NT lanes of block xo, over a reduction of
     * k: 2 * MR accumulators of L lanes each. Lane j of panel row i goes to {@code out[(t + j) * laneStride +
     * (r + i) * rowStride]} (the forward: lanes are tokens, {@code laneStride} the output's width), stored or, with
     * {@code add}, added.
     */
    private static void micro(float[] out, float[] xp, int xo, float[] pan, int panOff, int panStride, int k,
                              int laneStride, int rowStride, int r, int nr, int t, int nt, boolean add, float[] sc) {
        FloatVector a00 = FloatVector.zero(VectorKernels.F), a01 = a00, a10 = a00, a11 = a00;
        FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        FloatVector a40 = a00, a41 = a00, a50 = a00, a51 = a00;
        FloatVector a60 = a00, a61 = a00, a70 = a00, a71 = a00;
        int p0 = panOff, p1 = p0 + panStride, p2 = p1 + panStride, p3 = p2 + panStride, p4 = p3 + panStride,
                p5 = p4 + panStride, p6 = p5 + panStride, p7 = p6 + panStride;
        for (int c = 0; c < k; c++) {
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
        if (add && laneStride == 1 && nt == NT) {   // lanes along out's rows (input gradients): whole vectors
            for (int i = 0; i < nr; i++) {
                int o = t + (r + i) * rowStride;
                FloatVector.fromArray(VectorKernels.F, out, o).add(FloatVector.fromArray(VectorKernels.F, sc, i * NT))
                        .intoArray(out, o);
                FloatVector.fromArray(VectorKernels.F, out, o + L)
                        .add(FloatVector.fromArray(VectorKernels.F, sc, i * NT + L)).intoArray(out, o + L);
            }
            return;
        }
        for (int j = 0; j < nt; j++) {
            int o = (t + j) * laneStride + r * rowStride;
            if (add) {
                for (int i = 0; i < nr; i++) {
                    out[o + i * rowStride] += sc[i * NT + j];
                }
            } else {
                for (int i = 0; i < nr; i++) {
                    out[o + i * rowStride] = sc[i * NT + j];
                }
            }
        }
    }

    // ---------------------------------------------------------------- weight gradients

    /**
     * Floats of panels packed per pass: {@code 2^21} (8 MiB), so the vocabulary-wide head's dy (49152 columns) is
     * packed a part at a time instead of as a second copy of its 200 MB.
     */
    private static final int DW_CHUNK_FLOATS = 1 << 21;

    /**
     * {@code dw (rows, cols) += dy^T x} for dy (tokens, rows) and x (tokens, cols), both token-major as the
     * forward left them: the same microkernel with the tokens as its reduction. dw's columns take the lanes, so
     * a block of NT of them is NT contiguous floats of each x row ({@link #packLaneBlocks}: a copy, no
     * transpose), MR of its rows make a panel ({@link #packPanels}: MR columns of dy gathered down the tokens),
     * and each tile's sums are added into dw's rows a vector at a time. A dw narrower than a block (a LoRA B
     * factor, 8 columns) turns this around: its rows take the lanes. Every element is its fma chain over
     * t = 0, 1, 2... from 0, then added to dw: one order, whatever the threads.
     */
    static void weightGradient(WorkerPool pool, WeightGradientTask task, float[] dw, float[] dy, float[] x,
                               int tokens, int rows, int cols) {
        weightGradient(pool, task, dw, dy, x, tokens, rows, cols, DW_CHUNK_FLOATS);
    }

    /** As above, the panels packed {@code chunkFloats} at a time (at least one panel): tests take it small. */
    static void weightGradient(WorkerPool pool, WeightGradientTask task, float[] dw, float[] dy, float[] x,
                               int tokens, int rows, int cols, int chunkFloats) {
        boolean lanesAlongCols = cols >= NT || rows < NT;
        int laneWidth = lanesAlongCols ? cols : rows, panelWidth = lanesAlongCols ? rows : cols;
        int blocks = (laneWidth + NT - 1) / NT, panels = (panelWidth + MR - 1) / MR;
        int chunkPanels = Math.max(1, Math.min(panels, chunkFloats / (MR * tokens)));
        boolean parallel = pool.threads() > 1 && (long) rows * cols * tokens >= VectorKernels.PARALLEL_MIN_MACS;
        synchronized (task) {
            if (task.xp.length < blocks * NT * tokens) {
                task.xp = new float[blocks * NT * tokens];
            }
            if (task.pan.length < chunkPanels * MR * tokens) {
                task.pan = new float[chunkPanels * MR * tokens];
            }
            task.set(dw, lanesAlongCols ? x : dy, lanesAlongCols ? dy : x, tokens, laneWidth, panelWidth, blocks,
                    lanesAlongCols ? 1 : cols, lanesAlongCols ? cols : 1);
            try {
                task.mode = WeightGradientTask.LANES;
                run(pool, parallel, blocks, task);
                for (int p0 = 0; p0 < panels; p0 += chunkPanels) {
                    task.p0 = p0;
                    task.panelCount = Math.min(chunkPanels, panels - p0);
                    task.mode = WeightGradientTask.PANELS;
                    run(pool, parallel, task.panelCount, task);
                    task.mode = WeightGradientTask.TILES;
                    run(pool, parallel, task.panelCount * blocks, task);
                }
            } finally {
                task.set(null, null, null, 0, 0, 0, 0, 0, 0);
            }
        }
    }

    /** Chunks per thread for these jobs of millisecond items (see {@link WorkerPool#run(int, int, RangeTask)}). */
    static final int FINE_CHUNKS = 16;

    private static void run(WorkerPool pool, boolean parallel, int n, RangeTask task) {
        if (parallel) {
            pool.run(n, FINE_CHUNKS, task);
        } else {
            task.run(0, n);
        }
    }

    /**
     * Panels {@code p0 + [from, to)} of a token-major a (tokens, width): {@code pan[p][i][t] = a[t, (p0 + p) * MR + i]}
     * (p relative to p0), zero past the last column.
     */
    static void packPanels(float[] pan, float[] a, int tokens, int width, int p0, int from, int to) {
        for (int p = from; p < to; p++) {
            int c0 = (p0 + p) * MR, n = Math.min(MR, width - c0), base = p * MR * tokens;
            if (n < MR) {
                java.util.Arrays.fill(pan, base + n * tokens, base + MR * tokens, 0f);
            }
            for (int t = 0; t < tokens; t++) {
                int ao = t * width + c0;
                for (int i = 0; i < n; i++) {
                    pan[base + i * tokens + t] = a[ao + i];
                }
            }
        }
    }

    /** Lane blocks {@code [from, to)} of a token-major a (tokens, width): {@code xp[b][t][j] = a[t, b * NT + j]}, zero past the last column. */
    static void packLaneBlocks(float[] xp, float[] a, int tokens, int width, int from, int to) {
        for (int b = from; b < to; b++) {
            int c0 = b * NT, n = Math.min(NT, width - c0), base = b * NT * tokens;
            for (int t = 0; t < tokens; t++) {
                int o = base + t * NT;
                System.arraycopy(a, t * width + c0, xp, o, n);
                if (n < NT) {
                    java.util.Arrays.fill(xp, o + n, o + NT, 0f);
                }
            }
        }
    }

    /** The reusable weight-gradient job: one instance per VectorKernels, fields set under its monitor. */
    static final class WeightGradientTask implements RangeTask {
        static final int LANES = 0, PANELS = 1, TILES = 2;
        private float[] dw, laneSrc, panelSrc;
        private float[] pan = new float[0], xp = new float[0];
        private int tokens, laneWidth, panelWidth, blocks, laneStride, rowStride, mode, p0, panelCount;

        void set(float[] dw, float[] laneSrc, float[] panelSrc, int tokens, int laneWidth, int panelWidth, int blocks,
                 int laneStride, int rowStride) {
            this.dw = dw;
            this.laneSrc = laneSrc;
            this.panelSrc = panelSrc;
            this.tokens = tokens;
            this.laneWidth = laneWidth;
            this.panelWidth = panelWidth;
            this.blocks = blocks;
            this.laneStride = laneStride;
            this.rowStride = rowStride;
        }

        @Override
        public void run(int from, int to) {
            switch (mode) {
                case LANES -> packLaneBlocks(xp, laneSrc, tokens, laneWidth, from, to);
                case PANELS -> packPanels(pan, panelSrc, tokens, panelWidth, p0, from, to);
                default -> {
                    // item = (panel of the chunk, lane block), panel-major: a thread's consecutive items share a panel
                    float[] sc = VectorMath.scratch();
                    for (int item = from; item < to; item++) {
                        int p = item / blocks, b = item % blocks;
                        int r = (p0 + p) * MR, t = b * NT;
                        micro(dw, xp, b * NT * tokens, pan, p * MR * tokens, tokens, tokens, laneStride, rowStride, r,
                                Math.min(MR, panelWidth - r), t, Math.min(NT, laneWidth - t), true, sc);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- input gradients

    /** At most this many rows of w (the reduction) per pass: a column block of them is 96 KiB, in L2. */
    private static final int DX_CHUNK_ROWS = 768;
    /** ... and at most this many floats of w widened per pass (16 MiB), so a wide w's chunk stays in L3. */
    private static final int DX_CHUNK_FLOATS = 1 << 22;

    /**
     * {@code dx (tokens, cols) += dy (tokens, rows) w}, with w's columns in the lanes. W^T is never stored: a
     * transposed copy of every frozen weight had cost as much memory as the weights (1.8 GiB of a LoRA run's peak
     * on a bf16 1.1B model). The rows go in chunks, each added into dx: first, in parallel, the chunk's rows of w
     * are widened into blocks of NT columns ({@link #packRows}: each row read front to back, as the forward reads
     * it; gathered a block at a time, a wide w's rows lie a page or more apart and the prefetchers never caught
     * on) and dy's slab of it is copied out; then the column blocks, over the pool, each meeting every MR tokens'
     * rows of the slab.
     */
    static void inputGradient(WorkerPool pool, InputGradientTask task, float[] dx, float[] dy, Matrix w, int dt,
                              int tokens) {
        int rows = w.rows(), cols = w.cols();
        int blocks = (cols + NT - 1) / NT, groups = (tokens + MR - 1) / MR;
        int most = Math.max(MR, Math.min(DX_CHUNK_ROWS, DX_CHUNK_FLOATS / (blocks * NT)));
        int chunks = (rows + most - 1) / most, chunk = (rows + chunks - 1) / chunks;
        boolean parallel = pool.threads() > 1 && (long) rows * cols * tokens >= VectorKernels.PARALLEL_MIN_MACS;
        synchronized (task) {
            task.set(dx, dy, w, dt, tokens);
            try {
                for (int k0 = 0; k0 < rows; k0 += chunk) {
                    task.k0 = k0;
                    task.kc = Math.min(chunk, rows - k0);
                    // dy's rows at a stride that is not a multiple of 4 KiB (for 1024- or 2048-wide models it would be:
                    // the microkernel's eight panel rows would then share one L1 set)
                    task.slabStride = (task.kc + 15 & ~15) + 16;
                    if (task.slab.length < groups * MR * task.slabStride) {
                        task.slab = new float[groups * MR * task.slabStride];
                    }
                    if (task.packed.length < blocks * task.kc * NT) {
                        task.packed = new float[blocks * task.kc * NT];
                    }
                    task.mode = InputGradientTask.PACK_W;
                    run(pool, parallel, task.kc, task);
                    task.mode = InputGradientTask.PACK_DY;
                    run(pool, parallel, groups, task);
                    task.mode = InputGradientTask.BLOCKS;
                    run(pool, parallel, blocks, task);
                }
            } finally {
                task.set(null, null, null, 0, 0);
            }
        }
    }

    /**
     * Rows {@code k0 + [from, to)} of w into column blocks: {@code xp[cb][k][j] = w[k0 + k, cb * NT + j]} for a
     * chunk of kc rows (zero past the last column). Each row is widened whole by the forward's own gather (exactly
     * {@link Matrix#get}, every layout; int4, dt below zero, through {@code get} itself) and then cut into blocks.
     */
    static void packRows(float[] xp, Matrix w, int dt, int k0, int kc, int from, int to) {
        int rows = w.rows(), cols = w.cols(), blocks = (cols + NT - 1) / NT;
        float[][] holder = PANEL.get();
        if (holder[0].length < blocks * NT) {
            holder[0] = new float[Math.max(MR * cols, blocks * NT)];
        }
        float[] line = holder[0];
        java.util.Arrays.fill(line, cols, blocks * NT, 0f);
        for (int k = from; k < to; k++) {
            int row = k0 + k;
            if (dt < 0) {
                for (int c = 0; c < cols; c++) {
                    line[c] = w.get(row, c);
                }
            } else {
                gather(line, 0, w.data(), dt, w.scales(), w.groupSize(), rows, row, cols, w.strip());
            }
            for (int cb = 0; cb < blocks; cb++) {
                System.arraycopy(line, cb * NT, xp, (cb * kc + k) * NT, NT);
            }
        }
    }

    /** The reusable input-gradient job: one instance per VectorKernels, fields set under its monitor. */
    static final class InputGradientTask implements RangeTask {
        static final int PACK_W = 0, PACK_DY = 1, BLOCKS = 2;
        private float[] dx, dy, slab = new float[0], packed = new float[0];
        private Matrix w;
        private int dt, tokens, k0, kc, slabStride, mode;

        void set(float[] dx, float[] dy, Matrix w, int dt, int tokens) {
            this.dx = dx;
            this.dy = dy;
            this.w = w;
            this.dt = dt;
            this.tokens = tokens;
        }

        /** Rows of w's chunk, token groups of the slab, or column blocks of dx: {@code [from, to)}. */
        @Override
        public void run(int from, int to) {
            int rows = w.rows(), cols = w.cols();
            switch (mode) {
                case PACK_W -> packRows(packed, w, dt, k0, kc, from, to);
                case PACK_DY -> {
                    for (int t = from * MR; t < to * MR; t++) {   // zero rows past the last token fill the last group
                        if (t < tokens) {
                            System.arraycopy(dy, t * rows + k0, slab, t * slabStride, kc);
                        } else {
                            java.util.Arrays.fill(slab, t * slabStride, t * slabStride + kc, 0f);
                        }
                    }
                }
                default -> {
                    float[] sc = VectorMath.scratch();
                    for (int cb = from; cb < to; cb++) {
                        int c0 = cb * NT, n = Math.min(NT, cols - c0);
                        for (int t0 = 0; t0 < tokens; t0 += MR) {
                            micro(dx, packed, cb * kc * NT, slab, t0 * slabStride, slabStride, kc, 1, cols, t0,
                                    Math.min(MR, tokens - t0), c0, n, true, sc);
                        }
                    }
                }
            }
        }
    }
}
