package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;
import org.jtune.io.safetensors.DType;

/**
 * {@link Kernels} on the Vector API ({@code jdk.incubator.vector}), loaded by {@link VectorKernelsLoader}
 * only after the module check. Loops follow Lucene's Panama utilities: several independent
 * accumulators, a vector main loop, then a scalar tail. Results differ from {@link ScalarKernels} only
 * by summation order (and by VectorMath.exp's last ulps against Math.exp).
 *
 * <p>{@link #matmul} is the hot kernel. It is parallelised over blocks of {@value #RB} output rows with
 * the {@link WorkerPool}, through one reusable task object, so a call allocates nothing. Each row block
 * is dotted against {@value #TB} tokens at a time (16 accumulators), so during prefill each weight vector
 * loaded and widened is used for {@value #TB} tokens; decode ({@code tokens == 1}) reads one row after
 * the other, so each thread's share of the matrix is one sequential stream (interleaving {@value #RB}
 * short rows streamed at about 60 % of that). From {@link #PACK_MIN_TOKENS} tokens on (prefill, training),
 * matmul instead packs x once per call and runs {@link MatmulPacked}'s outer-product kernel over f32
 * weight panels widened once per call (about 2x the GFLOP/s of the 4x4 dot-product tile).
 *
 * <p>Weights are widened in registers, in one kernel class per dtype ({@link MatmulF32}, {@link MatmulBF16},
 * {@link MatmulF16}, generated from one template; {@link MatmulI8} from its own): C2 only scalar-replaces vector values it can see
 * through, so a shared kernel with a per-dtype branch, a loop accumulator started from a static final
 * vector, or a conversion helper that was not inlined each made every vector step allocate. BF16:
 * sign-extend shorts to ints, shift left 16; the decode rows instead load 2L weights as L ints and take the
 * even columns by a shift and the odd ones by a mask, against x split once per call ({@link #splitX}). I8: sign-extend bytes to ints, I2F, scale per group (see
 * {@link MatmulI8}; a direct B2F was 3x slower). F16: JDK 25's Vector API has no half-float to float lane
 * conversion ({@code S2F} converts integer values), so the bits are rebuilt with integer ops:
 * {@code (h << 13) & 0x8FFFE000} of the sign-extended short is an f32 with the sign in place and an
 * exponent 112 too small (for f16 subnormals, an f32 subnormal with the right mantissa), so multiplying
 * by 2^112 gives the exact value; lanes with exponent 31 get the f32 inf/NaN exponent or-ed in first.
 * This is exact for all 65536 inputs (see the parity test) and costs a few integer ops per vector.
 *
 * <p>Int4 weights ({@link Matrix#isInt4()}) go to {@link MatmulI4} and the W8A8 integer matmul to
 * {@link MatmulW8A8}, each with its own reusable task.
 */
public final class VectorKernels implements Kernels {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = F.withLanes(int.class);
    /** Shorts with the same lane count as {@link #F}: half its bit size. */
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    static final int L = F.length();
    /**
     * Bytes for I8 weights, one per float lane ({@code SPECIES_128} for 512-bit floats), so a {@code B2I} (part 0)
     * widens a whole load. Below 8 float lanes no byte species that small exists: the 64-bit one is used
     * with loads masked by {@link #BM} to the first L lanes ({@link #I8_NARROW}).
     */
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, F.vectorBitSize() / 4)));
    static final boolean I8_NARROW = B.length() != L;
    static final VectorMask<Byte> BM = B.indexInRange(0, L);
    /** The low eight float lanes (attention writes eight scores per pass). */
    private static final VectorMask<Float> LOW8 = F.indexInRange(0, Math.min(8, L));
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = Matrix.F32;
    private static final ValueLayout.OfShort I16 = Matrix.I16;

    /** Weight layouts as the kernels dispatch on them (MatmulPacked too). */
    static final int DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2, DT_I8 = 3, DT_I8_PAIRS = 4;
    /** Rows per block (the unit of parallel partitioning) and tokens per register tile. */
    static final int RB = 4, TB = 4;
    /** Below this many multiply-adds a matmul runs on the caller: pool dispatch would cost more than it saves. */
    static final long PARALLEL_MIN_MACS = 1 << 16;

    /** From this many tokens on, matmul packs x and runs {@link MatmulPacked}'s outer-product kernel. */
    static final int PACK_MIN_TOKENS = Integer.getInteger("jtune.packMinTokens", 16);
    private static final int MODE_BLOCKS = 0, MODE_PACK = 1, MODE_PANELS = 2;

    private final WorkerPool pool;
    private final MatmulTask task = new MatmulTask();
    private final SharedTask shared = new SharedTask();
    /** Packed x for {@link MatmulPacked}, grown on demand (prefill only), guarded by task's monitor. */
    private float[] packed = new float[0];
    /** x split for the BF16 decode kernel ({@link #splitX}), grown on demand, guarded by task's monitor. */
    private float[] split = new float[0];
    private final MatmulI4.Task i4Task = new MatmulI4.Task();
    private final MatmulW8A8.Task w8a8Task = new MatmulW8A8.Task();
    private final MatmulPacked.WeightGradientTask weightGradientTask = new MatmulPacked.WeightGradientTask();
    private final MatmulPacked.InputGradientTask inputGradientTask = new MatmulPacked.InputGradientTask();

    public VectorKernels(WorkerPool pool) {
        this.pool = pool;
    }

    @Override
    public String name() {
        return "vector-" + F.vectorBitSize();
    }

    // ---------------------------------------------------------------- matmul

    @Override
    public void matmul(float[] out, float[] x, Matrix w, int tokens) {
        int rows = w.rows(), cols = w.cols();
        checkSizes(out, x, w, tokens);
        if (tokens == 0 || rows == 0) {
            return;
        }
        if (w.isInt4()) {
            MatmulI4.matmul(pool, i4Task, out, x, w, tokens);
            return;
        }
        int dt = dtypeCode(w);
        if (tokens >= PACK_MIN_TOKENS) {
            matmulPacked(out, x, w, dt, tokens);
            return;
        }
        int blocks = (rows + RB - 1) / RB;
        synchronized (task) { // the task's fields and the split x are per call; the pool runs one job at a time anyway
            float[] xs = dt == DT_BF16 ? splitX(x, cols, tokens) : null;
            if ((long) rows * cols * tokens < PARALLEL_MIN_MACS || pool.threads() == 1) {
                matmulBlocks(out, x, xs, w.data(), dt, w.scales(), w.groupSize(), rows, cols, w.strip(), tokens, 0, blocks);
                return;
            }
            task.set(out, x, xs, w.data(), dt, w.scales(), w.groupSize(), rows, cols, w.strip(), tokens);
            try {
                pool.run(blocks, task);
            } finally {
                task.set(null, null, null, null, 0, null, 0, 0, 0, 0, 0);
            }
        }
    }

    /**
     * x with each 2L-column block's even columns first, then its odd ones ({@link MatmulBF16#splitX}), for the
     * BF16 decode rows; null where they do not run (tiles, packed prefill). Call under task's monitor.
     */
    private float[] splitX(float[] x, int cols, int tokens) {
        if (tokens >= TB) {
            return null;
        }
        int n = cols * tokens;
        if (split.length < n) {
            split = new float[n];
        }
        MatmulBF16.splitX(split, x, cols, tokens);
        return split;
    }

    /**
     * Decode chunks: the matrices' row blocks as one job, so a layer's k and v projections (a tenth of q's
     * rows on SmolLM2) do not each pay a hand-off to the workers and a wait for the slower thread.
     * Longer chunks, int4 and single-threaded pools take {@link #matmul} for each.
     */
    @Override
    public void matmulShared(float[][] outs, float[] x, Matrix[] ws, int count, int tokens) {
        long macs = 0;
        boolean oneJob = count > 1 && count <= SharedTask.MAX && tokens > 0 && tokens < PACK_MIN_TOKENS
                && pool.threads() > 1;
        for (int i = 0; i < count && oneJob; i++) {
            Matrix w = ws[i];
            oneJob = !w.isInt4() && w.cols() == ws[0].cols() && w.rows() > 0;
            macs += (long) w.rows() * w.cols() * tokens;
        }
        if (!oneJob || macs < PARALLEL_MIN_MACS) {
            Kernels.super.matmulShared(outs, x, ws, count, tokens);
            return;
        }
        boolean bf16 = false;   // any BF16 matrix reads x split (splitX); the matrices share x and its width
        for (int i = 0; i < count; i++) {
            checkSizes(outs[i], x, ws[i], tokens);
            bf16 |= ws[i].dtype() == DType.BF16;
        }
        synchronized (task) {   // the pool runs one job at a time; shared shares task's monitor
            shared.set(outs, x, bf16 ? splitX(x, ws[0].cols(), tokens) : null, ws, count, tokens);
            try {
                pool.run(shared.start[count], shared);
            } finally {
                shared.set(null, null, null, null, 0, 0);
            }
        }
    }

    private static void checkSizes(float[] out, float[] x, Matrix w, int tokens) {
        int rows = w.rows(), cols = w.cols();
        if (tokens < 0 || (long) tokens * cols > x.length || (long) tokens * rows > out.length) {
            throw new IllegalArgumentException("matmul of " + tokens + " tokens with a " + rows + "x" + cols
                    + " matrix needs x.length >= " + (long) tokens * cols + " and out.length >= "
                    + (long) tokens * rows + ", got " + x.length + " and " + out.length);
        }
    }

    /** {@link #matmulShared}'s job: row block b of the concatenation maps to a block of one matrix. */
    private static final class SharedTask implements RangeTask {
        static final int MAX = 4;
        private final float[][] outs = new float[MAX][];
        private final Matrix[] ws = new Matrix[MAX];
        private final int[] dts = new int[MAX];
        final int[] start = new int[MAX + 1];   // start[i]: the first global block of matrix i
        private float[] x, xs;
        private int count, tokens;

        void set(float[][] outs, float[] x, float[] xs, Matrix[] ws, int count, int tokens) {
            this.x = x;
            this.xs = xs;
            this.count = count;
            this.tokens = tokens;
            for (int i = 0; i < MAX; i++) {
                boolean used = i < count;
                this.outs[i] = used ? outs[i] : null;
                this.ws[i] = used ? ws[i] : null;
                this.dts[i] = used ? dtypeCode(ws[i]) : 0;
                start[i + 1] = start[i] + (used ? (ws[i].rows() + RB - 1) / RB : 0);
            }
        }

        @Override
        public void run(int from, int to) {
            for (int i = 0; i < count; i++) {
                int lo = Math.max(from, start[i]), hi = Math.min(to, start[i + 1]);
                if (lo < hi) {
                    Matrix w = ws[i];
                    matmulBlocks(outs[i], x, xs, w.data(), dts[i], w.scales(), w.groupSize(), w.rows(), w.cols(), w.strip(),
                            tokens, lo - start[i], hi - start[i]);
                }
            }
        }
    }

    /** Prefill: x packed once per call, then {@link MatmulPacked} panels in parallel (see there). */
    private void matmulPacked(float[] out, float[] x, Matrix w, int dt, int tokens) {
        int rows = w.rows(), cols = w.cols();
        int panels = (rows + MatmulPacked.MR - 1) / MatmulPacked.MR;
        int tbs = (tokens + MatmulPacked.NT - 1) / MatmulPacked.NT;
        synchronized (task) {
            int need = MatmulPacked.packedSize(tokens, cols);
            if (packed.length < need) {
                packed = new float[need];
            }
            float[] xp = packed;
            task.set(out, x, null, w.data(), dt, w.scales(), w.groupSize(), rows, cols, w.strip(), tokens);
            task.xp = xp;
            try {
                boolean parallel = pool.threads() > 1 && (long) rows * cols * tokens >= PARALLEL_MIN_MACS;
                task.mode = MODE_PACK;
                if (parallel) {
                    pool.run(tbs, task);
                } else {
                    task.run(0, tbs);
                }
                task.mode = MODE_PANELS;
                if (parallel) {
                    pool.run(panels, MatmulPacked.FINE_CHUNKS, task);
                } else {
                    task.run(0, panels);
                }
            } finally {
                task.mode = MODE_BLOCKS;
                task.xp = null;
                task.set(null, null, null, null, 0, null, 0, 0, 0, 0, 0);
            }
        }
    }

    /**
     * {@code dx += dy w} on the packed microkernel ({@link MatmulPacked#inputGradient}) once the product is worth a
     * dispatch: at any token count it reads w once, as the interface's row-by-row axpys do.
     */
    @Override
    public void matmulBackwardInput(float[] dx, float[] dy, Matrix w, int tokens) {
        int rows = w.rows(), cols = w.cols();
        if ((long) rows * cols * tokens < PARALLEL_MIN_MACS) {
            Kernels.super.matmulBackwardInput(dx, dy, w, tokens);
            return;
        }
        if ((long) tokens * cols > dx.length || (long) tokens * rows > dy.length) {
            throw new IllegalArgumentException("input gradient of a " + rows + "x" + cols + " weight over " + tokens
                    + " tokens needs dx and dy of " + (long) tokens * cols + " and " + (long) tokens * rows
                    + " floats, got " + dx.length + " and " + dy.length);
        }
        MatmulPacked.inputGradient(pool, inputGradientTask, dx, dy, w, w.isInt4() ? -1 : dtypeCode(w), tokens);
    }

    /**
     * {@code dw += dy^T x} on the packed microkernel ({@link MatmulPacked#weightGradient}) once the product is worth
     * a dispatch and spans a few tokens (its reduction: below four, the interface's axpys along dw's rows).
     */
    @Override
    public void matmulBackwardWeight(float[] dw, float[] dy, float[] x, int tokens, int rows, int cols) {
        if (tokens < 4 || (long) rows * cols * tokens < PARALLEL_MIN_MACS) {
            Kernels.super.matmulBackwardWeight(dw, dy, x, tokens, rows, cols);
            return;
        }
        if ((long) rows * cols > dw.length || (long) tokens * rows > dy.length || (long) tokens * cols > x.length) {
            throw new IllegalArgumentException("weight gradient " + rows + "x" + cols + " over " + tokens
                    + " tokens needs dw, dy and x of " + (long) rows * cols + ", " + (long) tokens * rows + " and "
                    + (long) tokens * cols + " floats, got " + dw.length + ", " + dy.length + " and " + x.length);
        }
        MatmulPacked.weightGradient(pool, weightGradientTask, dw, dy, x, tokens, rows, cols);
    }

    private static int dtypeCode(Matrix w) {
        return switch (w.dtype()) {
            case F32 -> DT_F32;
            case BF16 -> DT_BF16;
            case F16 -> DT_F16;
            case I8 -> w.rowPairs() ? DT_I8_PAIRS : DT_I8;
            default -> throw new IllegalArgumentException("unsupported weight dtype " + w.dtype());
        };
    }

    /** The reusable parallel job: one instance per VectorKernels, fields set under its monitor. */
    private static final class MatmulTask implements RangeTask {
        private float[] out, x, xs;
        private MemorySegment w;
        private float[] scales; // I8 only: (rows, cols / group)
        private int dt, group, rows, cols, strip, tokens;

        void set(float[] out, float[] x, float[] xs, MemorySegment w, int dt, float[] scales, int group, int rows,
                 int cols, int strip, int tokens) {
            this.out = out;
            this.x = x;
            this.xs = xs;
            this.w = w;
            this.dt = dt;
            this.scales = scales;
            this.group = group;
            this.rows = rows;
            this.cols = cols;
            this.strip = strip;
            this.tokens = tokens;
        }

        private float[] xp;
        private int mode;

        @Override
        public void run(int from, int to) {
            switch (mode) {
                case MODE_PACK -> MatmulPacked.packX(xp, x, tokens, cols, from, to);
                case MODE_PANELS -> MatmulPacked.panels(out, xp, w, dt, scales, group, rows, cols, strip, tokens, from, to);
                default -> matmulBlocks(out, x, xs, w, dt, scales, group, rows, cols, strip, tokens, from, to);
            }
        }
    }

    /**
     * Row blocks {@code [fromBlock, toBlock)} of the matmul, in the dtype's own kernel class; {@code xs}: x split
     * for the BF16 decode rows ({@link #splitX}), or null.
     */
    static void matmulBlocks(float[] out, float[] x, float[] xs, MemorySegment w, int dt, float[] scales, int group, int rows,
                             int cols, int strip, int tokens, int fromBlock, int toBlock) {
        switch (dt) {
            case DT_I8, DT_I8_PAIRS -> MatmulI8.blocks(out, x, w, scales, group, rows, cols, strip, tokens, fromBlock,
                    toBlock, dt == DT_I8_PAIRS);
            case DT_F32 -> MatmulF32.blocks(out, x, w, rows, cols, strip, tokens, fromBlock, toBlock);
            case DT_BF16 -> MatmulBF16.blocks(out, x, xs, w, rows, cols, strip, tokens, fromBlock, toBlock);
            default -> MatmulF16.blocks(out, x, w, rows, cols, strip, tokens, fromBlock, toBlock);
        }
    }

    @Override
    public void matmulW8A8(float[] out, float[] x, Matrix w, int tokens, float[] actScale) {
        MatmulW8A8.matmul(pool, w8a8Task, out, x, w, tokens, actScale);
    }

    static float f32At(MemorySegment w, long off) {
        return w.get(F32, off);
    }

    static float bf16At(MemorySegment w, long off) {
        return Float.intBitsToFloat(w.get(I16, off) << 16);
    }

    static float f16At(MemorySegment w, long off) {
        return Float.float16ToFloat(w.get(I16, off));
    }

    @Override
    public void gatherRow(float[] out, int outOff, Matrix m, int row) {
        int cols = m.cols();
        if (row < 0 || row >= m.rows() || outOff < 0 || outOff + cols > out.length) {
            throw new IndexOutOfBoundsException("gatherRow " + row + " of " + m.rows() + " rows x " + cols
                    + " cols into out[" + outOff + "..] of length " + out.length);
        }
        switch (m.dtype()) {
            case F32 -> MatmulF32.gather(out, outOff, m.data(), m.rows(), row, cols, m.strip());
            case BF16 -> MatmulBF16.gather(out, outOff, m.data(), m.rows(), row, cols, m.strip());
            case F16 -> MatmulF16.gather(out, outOff, m.data(), m.rows(), row, cols, m.strip());
            case I8 -> MatmulI8.gather(out, outOff, m.data(), m.scales(), m.groupSize(), m.rows(), row, cols, m.strip(),
                    m.rowPairs());
            case U8 -> MatmulI4.gather(out, outOff, m.data(), m.scales(), m.zeros(), m.groupSize(), row, cols);
            default -> throw new IllegalArgumentException("unsupported weight dtype " + m.dtype());
        }
    }

    // ---------------------------------------------------------------- vector helpers on float[]

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float[] sc = VectorMath.scratch();
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        int bound4 = n - 4 * L + 1;
        for (; i < bound4; i += 4 * L) {
            a0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), a0);
            a1 = FloatVector.fromArray(F, a, aOff + i + L).fma(FloatVector.fromArray(F, b, bOff + i + L), a1);
            a2 = FloatVector.fromArray(F, a, aOff + i + 2 * L).fma(FloatVector.fromArray(F, b, bOff + i + 2 * L), a2);
            a3 = FloatVector.fromArray(F, a, aOff + i + 3 * L).fma(FloatVector.fromArray(F, b, bOff + i + 3 * L), a3);
        }
        int bound = F.loopBound(n);
        for (; i < bound; i += L) {
            a0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), a0);
        }
        (a0.add(a1).add(a2.add(a3))).intoArray(sc, 0);
        float s = VectorMath.sumLanes(sc, 0);
        for (; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    @Override
    public void axpy(float[] y, int yOff, float alpha, float[] x, int xOff, int n) {
        FloatVector av = FloatVector.broadcast(F, alpha);
        int bound = F.loopBound(n);
        int i = 0;
        for (; i < bound; i += L) {
            FloatVector.fromArray(F, x, xOff + i).fma(av, FloatVector.fromArray(F, y, yOff + i))
                    .intoArray(y, yOff + i);
        }
        for (; i < n; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    private static float sumSquares(float[] x, int off, int n) {
        float[] sc = VectorMath.scratch();
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        int i = 0;
        int bound2 = n - 2 * L + 1;
        for (; i < bound2; i += 2 * L) {
            FloatVector v = FloatVector.fromArray(F, x, off + i);
            FloatVector u = FloatVector.fromArray(F, x, off + i + L);
            a0 = v.fma(v, a0);
            a1 = u.fma(u, a1);
        }
        int bound = F.loopBound(n);
        for (; i < bound; i += L) {
            FloatVector v = FloatVector.fromArray(F, x, off + i);
            a0 = v.fma(v, a0);
        }
        (a0.add(a1)).intoArray(sc, 0);
        float s = VectorMath.sumLanes(sc, 0);
        for (; i < n; i++) {
            s += x[off + i] * x[off + i];
        }
        return s;
    }

    @Override
    public void rmsNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, float eps, int n) {
        float inv = (float) (1.0 / Math.sqrt(sumSquares(x, xOff, n) / n + eps));
        int bound = F.loopBound(n);
        int i = 0;
        for (; i < bound; i += L) {
            FloatVector.fromArray(F, x, xOff + i).mul(inv).mul(FloatVector.fromArray(F, weight, i))
                    .intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = weight[i] * (x[xOff + i] * inv);
        }
    }

    @Override
    public void layerNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, float[] bias, float eps, int n) {
        float[] sc = VectorMath.scratch();
        int bound = F.loopBound(n);
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i < bound; i += L) {
            acc = FloatVector.fromArray(F, x, xOff + i).add(acc);   // receiver of exact type: see softmax
        }
        acc.intoArray(sc, 0);
        float mean = VectorMath.sumLanes(sc, 0);
        for (; i < n; i++) {
            mean += x[xOff + i];
        }
        mean /= n;
        acc = FloatVector.zero(F);
        for (i = 0; i < bound; i += L) {
            FloatVector d = FloatVector.fromArray(F, x, xOff + i).sub(mean);
            acc = d.fma(d, acc);
        }
        acc.intoArray(sc, L);
        float var = VectorMath.sumLanes(sc, L);
        for (; i < n; i++) {
            float d = x[xOff + i] - mean;
            var += d * d;
        }
        var /= n;
        float inv = (float) (1.0 / Math.sqrt(var + eps));
        for (i = 0; i < bound; i += L) {
            FloatVector y = FloatVector.fromArray(F, x, xOff + i).sub(mean).mul(inv).mul(FloatVector.fromArray(F, weight, i));
            if (bias != null) {
                y = y.add(FloatVector.fromArray(F, bias, i));
            }
            y.intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            float y = (x[xOff + i] - mean) * inv * weight[i];
            out[outOff + i] = bias == null ? y : y + bias[i];
        }
    }

    /**
     * The exps in f32 ({@link VectorMath#exp}, within an ulp or two of {@code Math.exp}), summed in f32 a chunk of
     * 16 vectors at a time and the chunks in double: two double exps per logit had been a twentieth of a LoRA step.
     */
    @Override
    public double logSumExp(float[] x, int off, int n) {
        int bound = F.loopBound(n);
        float max = Float.NEGATIVE_INFINITY;
        if (bound > 0) {
            FloatVector m = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
            for (int i = 0; i < bound; i += L) {
                m = FloatVector.fromArray(F, x, off + i).max(m);   // fresh load as receiver: see softmax
            }
            max = m.reduceLanes(VectorOperators.MAX);
        }
        for (int i = bound; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        if (max == Float.NEGATIVE_INFINITY || max == Float.POSITIVE_INFINITY || Float.isNaN(max)) {
            return Kernels.logSumExpExact(x, off, n);   // the exact loops' infinities and NaN
        }
        double sum = 0;
        int i = 0;
        for (; i < bound; ) {
            int end = Math.min(bound, i + 16 * L);
            FloatVector acc = FloatVector.zero(F);
            for (; i < end; i += L) {
                acc = VectorMath.exp(FloatVector.fromArray(F, x, off + i).sub(max)).add(acc);
            }
            sum += acc.reduceLanes(VectorOperators.ADD);
        }
        for (; i < n; i++) {
            sum += Math.exp((double) x[off + i] - max);
        }
        return max + Math.log(sum);
    }

    @Override
    public void addSoftmax(float[] dst, int dOff, float[] x, int xOff, int n, double logZ, double scale) {
        float z = (float) logZ;
        FloatVector s = FloatVector.broadcast(F, (float) scale);
        int bound = F.loopBound(n);
        int i = 0;
        for (; i < bound; i += L) {
            FloatVector e = VectorMath.exp(FloatVector.fromArray(F, x, xOff + i).sub(z));
            e.fma(s, FloatVector.fromArray(F, dst, dOff + i)).intoArray(dst, dOff + i);
        }
        for (; i < n; i++) {
            dst[dOff + i] += (float) (scale * Math.exp(x[xOff + i] - logZ));
        }
    }

    @Override
    public float softmax(float[] x, int off, int n) {
        float[] sc = VectorMath.scratch();
        if (n <= 0) {
            return Float.NEGATIVE_INFINITY;
        }
        int bound = F.loopBound(n);
        int i = 0;
        float max = Float.NEGATIVE_INFINITY;
        if (bound > 0) {
            FloatVector m = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
            for (; i < bound; i += L) {
                // the fresh load as receiver: C2 knows its exact class; the loop-carried m's class it learns
                // only from a profile, which a short warm-up leaves empty (then max is a virtual call and
                // every step boxes). max and add are commutative, so the bits are the same either way round.
                m = FloatVector.fromArray(F, x, off + i).max(m);
            }
            max = m.reduceLanes(VectorOperators.MAX);
        }
        for (; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        FloatVector sumV = FloatVector.zero(F);
        for (i = 0; i < bound; i += L) {
            FloatVector e = VectorMath.exp(FloatVector.fromArray(F, x, off + i).sub(max));
            e.intoArray(x, off + i);
            sumV = e.add(sumV);
        }
        sumV.intoArray(sc, 0);
        float sum = VectorMath.sumLanes(sc, 0);
        for (; i < n; i++) {
            float e = VectorMath.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        float inv = 1f / sum;
        for (i = 0; i < bound; i += L) {
            FloatVector.fromArray(F, x, off + i).mul(inv).intoArray(x, off + i);
        }
        for (; i < n; i++) {
            x[off + i] *= inv;
        }
        return max + (float) Math.log(sum);
    }

    @Override
    public void siluMul(float[] gate, float[] up, int n) {
        int bound = F.loopBound(n);
        int i = 0;
        for (; i < bound; i += L) {
            FloatVector g = FloatVector.fromArray(F, gate, i);
            FloatVector den = VectorMath.exp(g.neg()).add(1f);
            g.div(den).mul(FloatVector.fromArray(F, up, i)).intoArray(gate, i);
        }
        for (; i < n; i++) {
            float g = gate[i];
            gate[i] = g / (1f + VectorMath.exp(-g)) * up[i];
        }
    }

    /** The sigmoid in f32 ({@link VectorMath#exp}), as the forward takes it, where the reference takes a double exp. */
    @Override
    public void siluMulBackward(float[] dGate, float[] dUp, float[] dOut, float[] gate, float[] up, int off, int n) {
        FloatVector one = FloatVector.broadcast(F, 1f);
        int bound = off + F.loopBound(n);
        int i = off;
        for (; i < bound; i += L) {
            FloatVector g = FloatVector.fromArray(F, gate, i);
            FloatVector s = one.div(VectorMath.exp(g.neg()).add(1f));
            FloatVector ds = FloatVector.fromArray(F, dOut, i).mul(s);
            ds.mul(g).add(FloatVector.fromArray(F, dUp, i)).intoArray(dUp, i);
            ds.mul(FloatVector.fromArray(F, up, i)).mul(g.mul(one.sub(s)).add(one))
                    .add(FloatVector.fromArray(F, dGate, i)).intoArray(dGate, i);
        }
        for (; i < off + n; i++) {
            float g = gate[i];
            float sg = 1f / (1f + VectorMath.exp(-g));
            dUp[i] += dOut[i] * g * sg;
            dGate[i] += dOut[i] * up[i] * sg * (1 + g * (1 - sg));
        }
    }

    @Override
    public void rope(float[] x, int off, float[] cos, float[] sin, int tableOff, int rotDim) {
        int half = rotDim / 2;
        int bound = F.loopBound(half);
        int i = 0;
        for (; i < bound; i += L) {
            FloatVector a = FloatVector.fromArray(F, x, off + i);
            FloatVector b = FloatVector.fromArray(F, x, off + i + half);
            FloatVector c = FloatVector.fromArray(F, cos, tableOff + i);
            FloatVector s = FloatVector.fromArray(F, sin, tableOff + i);
            a.mul(c).sub(b.mul(s)).intoArray(x, off + i);
            b.mul(c).add(a.mul(s)).intoArray(x, off + i + half);
        }
        for (; i < half; i++) {
            float a = x[off + i], b = x[off + i + half];
            float c = cos[tableOff + i], s = sin[tableOff + i];
            x[off + i] = a * c - b * s;
            x[off + i + half] = b * c + a * s;
        }
    }

    /**
     * {@code out[off + i] = sumLanes(sc, i * L)} for i < 8, bit for bit: with 8 or 16 lanes the eight
     * vectors fold into one in registers ({@link VectorMath#merge1} and on) and are stored at once. For
     * decode kernels past C2's node budget, which store their row totals into sc and call this once per
     * 8 rows: it takes arrays, and it lives here, where the JVM flags keep it from being inlined, so it is
     * always compiled with a budget of its own (inlined into such a kernel, its folds were left as calls
     * and boxed their vectors). Eight rows, not sixteen: a sixteen-row tree is itself past that budget.
     * With {@code add} the sums are added to out (the second and later column strips of a matrix).
     */
    static void sum8(float[] out, int off, float[] sc, boolean add) {
        if (L != 16 && L != 8) {
            VectorMath.sumRows(out, off, sc, 8, add);
            return;
        }
        FloatVector z = VectorMath.fold8(VectorMath.merge4(
                VectorMath.merge2(VectorMath.merge1(VectorMath.row(sc, 0), VectorMath.row(sc, 1)),
                        VectorMath.merge1(VectorMath.row(sc, 2), VectorMath.row(sc, 3))),
                VectorMath.merge2(VectorMath.merge1(VectorMath.row(sc, 4), VectorMath.row(sc, 5)),
                        VectorMath.merge1(VectorMath.row(sc, 6), VectorMath.row(sc, 7)))));
        if (L == 8) {
            (add ? z.add(FloatVector.fromArray(F, out, off)) : z).intoArray(out, off);
        } else {
            (add ? z.add(FloatVector.fromArray(F, out, off, LOW8)) : z).intoArray(out, off, LOW8);
        }
    }

    /**
     * Scores eight cached keys per pass (each q vector loaded once for eight FMAs) and folds the eight
     * accumulators into one vector of eight scores ({@link VectorMath#merge1} and on: the same sums, bit
     * for bit, as eight sumLanes, at a fifth of the operations; the per-key lane sums were most of the
     * time of a 64-wide head). Then sums the weighted value rows in registers ({@link #weightedValues}).
     * One head is a group of one ({@link #attendGroup}).
     */
    @Override
    public void attend(float[] out, int outOff, float[] q, int qOff, float[] keys, float[] values, int kvOff,
                       int kvStride, int len, int headDim, float scale, float[] scores) {
        attendGroup(out, outOff, q, qOff, 1, keys, values, kvOff, kvStride, len, headDim, scale, scores, null, 0);
    }

    /**
     * {@link #attend}'s passes with the group's heads inside each block of keys (eight keys: 2 KiB at head
     * width 64), read from memory for the first head and from L1 for the others, and two heads per pass over
     * the values, so a kv head's rows stream in once per group (its keys) or per two heads (its values) instead
     * of once per query head. Each head's sums run in the same order as attend's, so the results are the same
     * bits.
     */
    @Override
    public void attendGroup(float[] out, int outOff, float[] q, int qOff, int group, float[] keys, float[] values,
                            int kvOff, int kvStride, int len, int headDim, float scale, float[] scores, float[] lse,
                            int lseOff) {
        scoreKeys(scores, 0, len, q, qOff, group, keys, kvOff, kvStride, len, headDim, scale);
        for (int g = 0; g < group; g++) {
            float l = softmax(scores, g * len, len);
            if (lse != null) {
                lse[lseOff + g] = l;
            }
        }
        weightedValues(out, outOff, group, values, kvOff, kvStride, len, headDim, scores);
    }

    /** Tokens per causal block: two vectors of one token per lane, so that each broadcast feeds two FMAs. */
    private static final int BLOCK = 2 * L;

    /** A block of 2L rows shares every key and value load, with no lane sums. */
    @Override
    public int causalBlockRows() {
        return BLOCK;
    }

    /** The block's scores and probabilities ({@code 2L x maxLen}), its queries and outputs transposed, max and sums. */
    @Override
    public int causalBlockScratch(int maxLen, int headDim) {
        return BLOCK * (maxLen + 2 * headDim + 2);
    }

    /**
     * The block with one token per lane, over two vectors (rows 0..L-1, then L..2L-1): q transposed once (scale
     * folded in), so that each pair of score vectors holds one position for all the rows and builds from a key
     * element broadcast against a q column (no lane sums, no merge tree, each key read once for 2L rows); softmax
     * runs lane-wise over those vectors (a row's max and sum are its lane's), positions past a row's end masked
     * to zero; the values are summed the same way into the output transposed, then divided by the sums as the
     * rows are written out. Fewer than 2L rows leave the other lanes' queries zero, and their results unwritten.
     */
    @Override
    public void attendCausalBlock(float[] out, int outOff, int outStride, float[] q, int qOff, int qStride, int rows,
                                  float[] keys, float[] values, int kvOff, int kvStride, int firstLen, int headDim,
                                  float scale, float[] scratch) {
        if (rows < 1) {
            return;
        }
        if (rows > BLOCK || firstLen < 1) {
            Kernels.super.attendCausalBlock(out, outOff, outStride, q, qOff, qStride, rows, keys, values, kvOff,
                    kvStride, firstLen, headDim, scale, scratch);
            return;
        }
        int len = firstLen + rows - 1;   // the positions the last row reads
        int qt = BLOCK * len, ot = qt + BLOCK * headDim, max = ot + BLOCK * headDim, sums = max + BLOCK;
        transposeRows(scratch, qt, q, qOff, qStride, rows, headDim, scale);
        int maxed = blockScores(scratch, 0, qt, keys, kvOff, kvStride, len, firstLen, headDim, max);
        blockSoftmax(scratch, 0, len, firstLen, maxed, max, sums);
        blockValues(scratch, ot, 0, values, kvOff, kvStride, len, headDim);
        for (int r = 0; r < rows; r++) {
            float inv = 1f / scratch[sums + r];
            int o = outOff + r * outStride;
            for (int d = 0; d < headDim; d++) {
                out[o + d] = scratch[ot + d * BLOCK + r] * inv;
            }
        }
    }

    /**
     * A block's rows into one lane each: {@code dst[at + d * 2L + r] = scale * src[off + r * stride + d]} for r < rows,
     * zero in the lanes past them.
     */
    private static void transposeRows(float[] dst, int at, float[] src, int off, int stride, int rows, int headDim,
                                      float scale) {
        for (int d = 0; d < headDim; d++) {
            for (int r = 0; r < BLOCK; r++) {
                dst[at + d * BLOCK + r] = r < rows ? scale * src[off + r * stride + d] : 0f;
            }
        }
    }

    /**
     * {@code s[at + p * 2L + r] = s[qt + d * 2L + r] . k_p[d]} (summed over d) for p < len: eight positions per pass, each pair of q column vectors
     * loaded once for sixteen FMAs. The lane-wise max of the positions in passes wholly below {@code firstLen}
     * (which every row reads) goes to {@code s[max ..]}; returns how many positions that max covers.
     */
    private static int blockScores(float[] s, int at, int qt, float[] keys, int kvOff, int kvStride, int len,
                                   int firstLen, int headDim, int max) {
        FloatVector ma = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY), mb = ma;
        int p = 0, maxed = 0;
        for (; p + 8 <= len; p += 8) {
            int k0 = kvOff + p * kvStride, k1 = k0 + kvStride, k2 = k1 + kvStride, k3 = k2 + kvStride;
            int k4 = k3 + kvStride, k5 = k4 + kvStride, k6 = k5 + kvStride, k7 = k6 + kvStride;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
            for (int d = 0; d < headDim; d++) {
                FloatVector c = FloatVector.fromArray(F, s, qt + d * BLOCK), e = FloatVector.fromArray(F, s, qt + d * BLOCK + L);
                FloatVector k = FloatVector.broadcast(F, keys[k0 + d]);
                a0 = k.fma(c, a0);
                b0 = k.fma(e, b0);
                k = FloatVector.broadcast(F, keys[k1 + d]);
                a1 = k.fma(c, a1);
                b1 = k.fma(e, b1);
                k = FloatVector.broadcast(F, keys[k2 + d]);
                a2 = k.fma(c, a2);
                b2 = k.fma(e, b2);
                k = FloatVector.broadcast(F, keys[k3 + d]);
                a3 = k.fma(c, a3);
                b3 = k.fma(e, b3);
                k = FloatVector.broadcast(F, keys[k4 + d]);
                a4 = k.fma(c, a4);
                b4 = k.fma(e, b4);
                k = FloatVector.broadcast(F, keys[k5 + d]);
                a5 = k.fma(c, a5);
                b5 = k.fma(e, b5);
                k = FloatVector.broadcast(F, keys[k6 + d]);
                a6 = k.fma(c, a6);
                b6 = k.fma(e, b6);
                k = FloatVector.broadcast(F, keys[k7 + d]);
                a7 = k.fma(c, a7);
                b7 = k.fma(e, b7);
            }
            int o = at + p * BLOCK;
            a0.intoArray(s, o);
            b0.intoArray(s, o + L);
            a1.intoArray(s, o + BLOCK);
            b1.intoArray(s, o + BLOCK + L);
            a2.intoArray(s, o + 2 * BLOCK);
            b2.intoArray(s, o + 2 * BLOCK + L);
            a3.intoArray(s, o + 3 * BLOCK);
            b3.intoArray(s, o + 3 * BLOCK + L);
            a4.intoArray(s, o + 4 * BLOCK);
            b4.intoArray(s, o + 4 * BLOCK + L);
            a5.intoArray(s, o + 5 * BLOCK);
            b5.intoArray(s, o + 5 * BLOCK + L);
            a6.intoArray(s, o + 6 * BLOCK);
            b6.intoArray(s, o + 6 * BLOCK + L);
            a7.intoArray(s, o + 7 * BLOCK);
            b7.intoArray(s, o + 7 * BLOCK + L);
            if (p + 8 <= firstLen) {
                ma = a0.max(a1).max(a2.max(a3)).max(a4.max(a5).max(a6.max(a7))).max(ma);
                mb = b0.max(b1).max(b2.max(b3)).max(b4.max(b5).max(b6.max(b7))).max(mb);
                maxed = p + 8;
            }
        }
        for (; p < len; p++) {
            int k0 = kvOff + p * kvStride;
            FloatVector a0 = FloatVector.zero(F), b0 = a0;
            for (int d = 0; d < headDim; d++) {
                FloatVector k = FloatVector.broadcast(F, keys[k0 + d]);
                a0 = k.fma(FloatVector.fromArray(F, s, qt + d * BLOCK), a0);
                b0 = k.fma(FloatVector.fromArray(F, s, qt + d * BLOCK + L), b0);
            }
            a0.intoArray(s, at + p * BLOCK);
            b0.intoArray(s, at + p * BLOCK + L);
        }
        ma.intoArray(s, max);
        mb.intoArray(s, max + L);
        return maxed;
    }

    /**
     * Lane-wise softmax numerators of {@code s[at + p * 2L + r]}, p < len, and their sums into {@code s[sums + r]}; lane r
     * reads positions below {@code firstLen + r}: the rest become exact zeros. {@code s[max ..]} holds the lanes'
     * max over the first {@code maxed} positions.
     */
    private static void blockSoftmax(float[] s, int at, int len, int firstLen, int maxed, int max, int sums) {
        // lane r's mask at position p: r <= p - firstLen, all clear before firstLen; one exp call site, as C2
        // stops inlining exp (and boxes its vectors) in a method with two
        for (int half = 0; half < BLOCK; half += L) {
            FloatVector lane = FloatVector.broadcast(F, (float) half).addIndex(1);
            FloatVector m = FloatVector.fromArray(F, s, max + half);
            for (int p = maxed; p < len; p++) {
                VectorMask<Float> hidden = lane.compare(VectorOperators.LE, (float) (p - firstLen));
                m = FloatVector.fromArray(F, s, at + p * BLOCK + half).blend(Float.NEGATIVE_INFINITY, hidden).max(m);
            }
            FloatVector sum = FloatVector.zero(F);
            for (int p = 0; p < len; p++) {
                VectorMask<Float> hidden = lane.compare(VectorOperators.LE, (float) (p - firstLen));
                FloatVector e = VectorMath.exp(FloatVector.fromArray(F, s, at + p * BLOCK + half).sub(m)).blend(0f, hidden);
                e.intoArray(s, at + p * BLOCK + half);
                sum = e.add(sum);
            }
            sum.intoArray(s, sums + half);
        }
    }

    /**
     * {@code s[ot + d * 2L + r] = sum_p s[at + p * 2L + r] * v_p[d]} for d < headDim: eight columns per pass (each value
     * element broadcast once for both vectors of rows: sixteen FMAs per position), then one at a time.
     */
    private static void blockValues(float[] s, int ot, int at, float[] values, int kvOff, int kvStride, int len,
                                    int headDim) {
        int d = 0;
        for (; d + 8 <= headDim; d += 8) {
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
            for (int p = 0, v = kvOff + d; p < len; p++, v += kvStride) {
                FloatVector w = FloatVector.fromArray(F, s, at + p * BLOCK), x = FloatVector.fromArray(F, s, at + p * BLOCK + L);
                FloatVector k = FloatVector.broadcast(F, values[v]);
                a0 = k.fma(w, a0);
                b0 = k.fma(x, b0);
                k = FloatVector.broadcast(F, values[v + 1]);
                a1 = k.fma(w, a1);
                b1 = k.fma(x, b1);
                k = FloatVector.broadcast(F, values[v + 2]);
                a2 = k.fma(w, a2);
                b2 = k.fma(x, b2);
                k = FloatVector.broadcast(F, values[v + 3]);
                a3 = k.fma(w, a3);
                b3 = k.fma(x, b3);
                k = FloatVector.broadcast(F, values[v + 4]);
                a4 = k.fma(w, a4);
                b4 = k.fma(x, b4);
                k = FloatVector.broadcast(F, values[v + 5]);
                a5 = k.fma(w, a5);
                b5 = k.fma(x, b5);
                k = FloatVector.broadcast(F, values[v + 6]);
                a6 = k.fma(w, a6);
                b6 = k.fma(x, b6);
                k = FloatVector.broadcast(F, values[v + 7]);
                a7 = k.fma(w, a7);
                b7 = k.fma(x, b7);
            }
            int b = ot + d * BLOCK;
            a0.intoArray(s, b);
            b0.intoArray(s, b + L);
            a1.intoArray(s, b + BLOCK);
            b1.intoArray(s, b + BLOCK + L);
            a2.intoArray(s, b + 2 * BLOCK);
            b2.intoArray(s, b + 2 * BLOCK + L);
            a3.intoArray(s, b + 3 * BLOCK);
            b3.intoArray(s, b + 3 * BLOCK + L);
            a4.intoArray(s, b + 4 * BLOCK);
            b4.intoArray(s, b + 4 * BLOCK + L);
            a5.intoArray(s, b + 5 * BLOCK);
            b5.intoArray(s, b + 5 * BLOCK + L);
            a6.intoArray(s, b + 6 * BLOCK);
            b6.intoArray(s, b + 6 * BLOCK + L);
            a7.intoArray(s, b + 7 * BLOCK);
            b7.intoArray(s, b + 7 * BLOCK + L);
        }
        for (; d < headDim; d++) {
            FloatVector a0 = FloatVector.zero(F), b0 = a0;
            for (int p = 0, v = kvOff + d; p < len; p++, v += kvStride) {
                FloatVector k = FloatVector.broadcast(F, values[v]);
                a0 = k.fma(FloatVector.fromArray(F, s, at + p * BLOCK), a0);
                b0 = k.fma(FloatVector.fromArray(F, s, at + p * BLOCK + L), b0);
            }
            a0.intoArray(s, ot + d * BLOCK);
            b0.intoArray(s, ot + d * BLOCK + L);
        }
    }

    /** Probabilities and their gradients ({@code 2L x maxLen} each), q, dOut and dQ transposed, max and sums. */
    @Override
    public int causalBlockBackwardScratch(int maxLen, int headDim) {
        return BLOCK * (2 * maxLen + 3 * headDim + 2);
    }

    /**
     * The backward with {@link #attendCausalBlock}'s layout (one token per lane, 2L rows): the probabilities are
     * recomputed by the forward's passes, dP by the scores pass over dOut and the values, dS lane-wise; dQ by the
     * values pass over dS and the keys; dKeys and dValues, one row per position, as sums over the block's rows
     * of a broadcast dS (or p) times a q (or dOut) row ({@link #blockOuter}).
     */
    @Override
    public void attendCausalBlockBackward(float[] q, int qOff, int qStride, float[] dOut, int dOutOff, float[] dQ,
                                          int rows, float[] keys, float[] values, float[] dKeys, float[] dValues,
                                          int kvOff, int kvStride, int firstLen, int headDim, float scale,
                                          float[] scratch) {
        if (rows < 1) {
            return;
        }
        if (rows > BLOCK || firstLen < 1) {
            Kernels.super.attendCausalBlockBackward(q, qOff, qStride, dOut, dOutOff, dQ, rows, keys, values, dKeys,
                    dValues, kvOff, kvStride, firstLen, headDim, scale, scratch);
            return;
        }
        int len = firstLen + rows - 1;
        int dp = BLOCK * len, qt = 2 * dp, gt = qt + BLOCK * headDim, dqt = gt + BLOCK * headDim;
        int max = dqt + BLOCK * headDim, sums = max + BLOCK;
        transposeRows(scratch, qt, q, qOff, qStride, rows, headDim, scale);
        transposeRows(scratch, gt, dOut, dOutOff, qStride, rows, headDim, 1f);
        int maxed = blockScores(scratch, 0, qt, keys, kvOff, kvStride, len, firstLen, headDim, max);
        blockSoftmax(scratch, 0, len, firstLen, maxed, max, sums);
        blockScores(scratch, dp, gt, values, kvOff, kvStride, len, 0, headDim, max);   // dP; no max (firstLen 0)
        blockSoftmaxBackward(scratch, dp, len, sums, scale);
        blockValues(scratch, dqt, dp, keys, kvOff, kvStride, len, headDim);
        for (int r = 0; r < rows; r++) {
            int o = qOff + r * qStride;
            for (int d = 0; d < headDim; d++) {
                dQ[o + d] += scratch[dqt + d * BLOCK + r];
            }
        }
        blockOuter(dKeys, kvOff, kvStride, scratch, dp, len, q, qOff, qStride, rows, headDim);
        blockOuter(dValues, kvOff, kvStride, scratch, 0, len, dOut, dOutOff, qStride, rows, headDim);
    }

    /**
     * From the softmax numerators at {@code s[0 ..]} (sums at {@code s[sums ..]}) and dP at {@code s[dp ..]}: the
     * probabilities p in place, and {@code dS = scale * p (dP - sum_j p_j dP_j)} over dP, lane by lane.
     */
    private static void blockSoftmaxBackward(float[] s, int dp, int len, int sums, float scale) {
        for (int half = 0; half < BLOCK; half += L) {
            FloatVector inv = FloatVector.broadcast(F, 1f).div(FloatVector.fromArray(F, s, sums + half));
            FloatVector dot = FloatVector.zero(F);
            for (int p = 0; p < len; p++) {
                FloatVector pv = FloatVector.fromArray(F, s, p * BLOCK + half).mul(inv);
                pv.intoArray(s, p * BLOCK + half);
                dot = pv.fma(FloatVector.fromArray(F, s, dp + p * BLOCK + half), dot);
            }
            for (int p = 0; p < len; p++) {
                FloatVector pv = FloatVector.fromArray(F, s, p * BLOCK + half);
                FloatVector g = FloatVector.fromArray(F, s, dp + p * BLOCK + half).sub(dot);
                pv.mul(g).mul(scale).intoArray(s, dp + p * BLOCK + half);
            }
        }
    }

    /**
     * {@code out[outOff + j * outStride + d] += sum_{r < rows} s[at + j * 2L + r] * x[xOff + r * xStride + d]} for
     * j < len and d < headDim: per position, 4L columns at a time in registers, each lane value broadcast once.
     */
    private static void blockOuter(float[] out, int outOff, int outStride, float[] s, int at, int len, float[] x,
                                   int xOff, int xStride, int rows, int headDim) {
        for (int j = 0; j < len; j++) {
            int o = outOff + j * outStride, w = at + j * BLOCK;
            int d = 0;
            for (; d + 4 * L <= headDim; d += 4 * L) {
                FloatVector a0 = FloatVector.fromArray(F, out, o + d), a1 = FloatVector.fromArray(F, out, o + d + L);
                FloatVector a2 = FloatVector.fromArray(F, out, o + d + 2 * L), a3 = FloatVector.fromArray(F, out, o + d + 3 * L);
                for (int r = 0, xr = xOff + d; r < rows; r++, xr += xStride) {
                    FloatVector c = FloatVector.broadcast(F, s[w + r]);
                    a0 = c.fma(FloatVector.fromArray(F, x, xr), a0);
                    a1 = c.fma(FloatVector.fromArray(F, x, xr + L), a1);
                    a2 = c.fma(FloatVector.fromArray(F, x, xr + 2 * L), a2);
                    a3 = c.fma(FloatVector.fromArray(F, x, xr + 3 * L), a3);
                }
                a0.intoArray(out, o + d);
                a1.intoArray(out, o + d + L);
                a2.intoArray(out, o + d + 2 * L);
                a3.intoArray(out, o + d + 3 * L);
            }
            for (; d + L <= headDim; d += L) {
                FloatVector a0 = FloatVector.fromArray(F, out, o + d);
                for (int r = 0, xr = xOff + d; r < rows; r++, xr += xStride) {
                    a0 = FloatVector.broadcast(F, s[w + r]).fma(FloatVector.fromArray(F, x, xr), a0);
                }
                a0.intoArray(out, o + d);
            }
            for (; d < headDim; d++) {
                float a = out[o + d];
                for (int r = 0; r < rows; r++) {
                    a += s[w + r] * x[xOff + r * xStride + d];
                }
                out[o + d] = a;
            }
        }
    }

    /**
     * {@code scores[g * stride + at + j] = scale * q_g . k_j} for the group's heads and j < len: eight keys per
     * pass (each q vector loaded once for eight FMAs) folded into one vector of eight scores
     * ({@link VectorMath#merge1} and on: the same sums, bit for bit, as eight sumLanes, at a fifth of the
     * operations), the group's heads inside each block of keys, so a block is read from memory for the first
     * head and from L1 for the others.
     */
    private void scoreKeys(float[] scores, int at, int stride, float[] q, int qOff, int group, float[] keys, int kvOff,
                           int kvStride, int len, int headDim, float scale) {
        float[] sc = VectorMath.scratch();
        int bound = F.loopBound(headDim);
        int j = 0;
        if (L >= 8 && L <= 16 && bound == headDim) {
            FloatVector scaleV = FloatVector.broadcast(F, scale);
            for (; j + 8 <= len; j += 8) {
                int k0 = kvOff + j * kvStride;
                for (int g = 0; g < group; g++) {
                    int qg = qOff + g * headDim;
                    FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
                    for (int i = 0; i < headDim; i += L) {
                        FloatVector qv = FloatVector.fromArray(F, q, qg + i);
                        int k = k0 + i;
                        a0 = qv.fma(FloatVector.fromArray(F, keys, k), a0);
                        a1 = qv.fma(FloatVector.fromArray(F, keys, k + kvStride), a1);
                        a2 = qv.fma(FloatVector.fromArray(F, keys, k + 2 * kvStride), a2);
                        a3 = qv.fma(FloatVector.fromArray(F, keys, k + 3 * kvStride), a3);
                        a4 = qv.fma(FloatVector.fromArray(F, keys, k + 4 * kvStride), a4);
                        a5 = qv.fma(FloatVector.fromArray(F, keys, k + 5 * kvStride), a5);
                        a6 = qv.fma(FloatVector.fromArray(F, keys, k + 6 * kvStride), a6);
                        a7 = qv.fma(FloatVector.fromArray(F, keys, k + 7 * kvStride), a7);
                    }
                    FloatVector z = VectorMath.merge4(
                            VectorMath.merge2(VectorMath.merge1(a0, a1), VectorMath.merge1(a2, a3)),
                            VectorMath.merge2(VectorMath.merge1(a4, a5), VectorMath.merge1(a6, a7)));
                    z = VectorMath.fold8(z).mul(scaleV);   // lane p: key j + p
                    if (L == 8) {
                        z.intoArray(scores, g * stride + at + j);
                    } else {
                        z.intoArray(scores, g * stride + at + j, LOW8);
                    }
                }
            }
        }
        for (; j + 4 <= len; j += 4) {
            int k0 = kvOff + j * kvStride, k1 = k0 + kvStride, k2 = k1 + kvStride, k3 = k2 + kvStride;
            for (int g = 0; g < group; g++) {
                int qg = qOff + g * headDim;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                int i = 0;
                for (; i < bound; i += L) {
                    FloatVector qv = FloatVector.fromArray(F, q, qg + i);
                    a0 = qv.fma(FloatVector.fromArray(F, keys, k0 + i), a0);
                    a1 = qv.fma(FloatVector.fromArray(F, keys, k1 + i), a1);
                    a2 = qv.fma(FloatVector.fromArray(F, keys, k2 + i), a2);
                    a3 = qv.fma(FloatVector.fromArray(F, keys, k3 + i), a3);
                }
                a0.intoArray(sc, 0);
                a1.intoArray(sc, L);
                float s0 = VectorMath.sumLanes(sc, 0), s1 = VectorMath.sumLanes(sc, L);
                a2.intoArray(sc, 2 * L);
                a3.intoArray(sc, 3 * L);
                float s2 = VectorMath.sumLanes(sc, 2 * L), s3 = VectorMath.sumLanes(sc, 3 * L);
                for (; i < headDim; i++) {
                    float qi = q[qg + i];
                    s0 += qi * keys[k0 + i];
                    s1 += qi * keys[k1 + i];
                    s2 += qi * keys[k2 + i];
                    s3 += qi * keys[k3 + i];
                }
                int o = g * stride + at + j;
                scores[o] = scale * s0;
                scores[o + 1] = scale * s1;
                scores[o + 2] = scale * s2;
                scores[o + 3] = scale * s3;
            }
        }
        for (; j < len; j++) {
            for (int g = 0; g < group; g++) {
                scores[g * stride + at + j] = scale * dot(q, qOff + g * headDim, keys, kvOff + j * kvStride, headDim);
            }
        }
    }

    /**
     * Over a packed bf16 cache: the keys widened ({@link #widenBf16}) a chunk of {@link #BF16_CHUNK_FLOATS} at a
     * time into {@code scores} past the group's probabilities, where they stay in L1 while {@link #scoreKeys} scores
     * them as f32 keys (widening all of them first ran about a quarter slower from memory: the two passes no
     * longer overlapped); the values weighted in registers straight from the packed pairs
     * ({@link #weightedValuesBf16}). Head widths that are not a multiple of 2L take the interface's scalar loops.
     */
    @Override
    public void attendGroupBf16(float[] out, int outOff, float[] q, int qOff, int group, int[] keys, int[] values,
                                int kvOff, int kvStride, int len, int headDim, float scale, float[] scores,
                                float[] lse, int lseOff) {
        if (L < 8 || L > 16 || headDim % (2 * L) != 0) {
            Kernels.super.attendGroupBf16(out, outOff, q, qOff, group, keys, values, kvOff, kvStride, len, headDim,
                    scale, scores, lse, lseOff);
            return;
        }
        // keys widened a chunk at a time into L1 past the group's probabilities, then scored there as f32 keys
        int wide = group * len, chunk = Math.max(1, BF16_CHUNK_FLOATS / headDim);
        for (int j0 = 0; j0 < len; j0 += chunk) {
            int n = Math.min(chunk, len - j0);
            if (kvStride == headDim) {
                widenBf16(scores, wide, keys, (kvOff + j0 * kvStride) / 2, n * headDim);
            } else {
                for (int j = 0; j < n; j++) {
                    widenBf16(scores, wide + j * headDim, keys, (kvOff + (j0 + j) * kvStride) / 2, headDim);
                }
            }
            scoreKeys(scores, j0, len, q, qOff, group, scores, wide, headDim, n, headDim, scale);
        }
        for (int g = 0; g < group; g++) {
            float l = softmax(scores, g * len, len);
            if (lse != null) {
                lse[lseOff + g] = l;
            }
        }
        weightedValuesBf16(out, outOff, group, values, kvOff, kvStride, len, headDim, scores);
    }

    /**
     * A vector of packed pairs widens into its even elements (a shift) and its odd ones (a mask); two
     * two-vector rearranges interleave them back into order.
     */
    @Override
    public void widenBf16(float[] dst, int dstOff, int[] packed, int srcOff, int count) {
        int bound = count - count % (2 * L);
        for (int i = 0; i < bound; i += 2 * L) {
            IntVector v = IntVector.fromArray(I, packed, srcOff + i / 2);
            FloatVector even = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector odd = v.and(0xFFFF0000).reinterpretAsFloats();
            even.rearrange(INTERLEAVE_FIRST, odd).intoArray(dst, dstOff + i);
            even.rearrange(INTERLEAVE_SECOND, odd).intoArray(dst, dstOff + i + L);
        }
        Kernels.super.widenBf16(dst, dstOff + bound, packed, srcOff + bound / 2, count - bound);
    }

    /** Floats of widened keys per chunk in {@link #attendGroupBf16}: 16 KiB, half of a 32 KiB L1. */
    static final int BF16_CHUNK_FLOATS = 4096;

    /** Lanes 0, L, 1, L + 1, ...: the first halves of two vectors interleaved (indexes from L on pick the second). */
    private static final VectorShuffle<Float> INTERLEAVE_FIRST =
            VectorShuffle.fromOp(F, i -> i % 2 == 0 ? i / 2 : L + i / 2);
    /** The same for the second halves. */
    private static final VectorShuffle<Float> INTERLEAVE_SECOND =
            VectorShuffle.fromOp(F, i -> i % 2 == 0 ? L / 2 + i / 2 : L + L / 2 + i / 2);

    /**
     * {@link #weightedValues} over packed bf16 values: per pass over the positions, one vector of packed pairs
     * for two heads (the even and the odd elements of a 2L block: four sums in registers), put back in order
     * by the interleaving rearranges of {@link #widenBf16}.
     */
    private static void weightedValuesBf16(float[] out, int outOff, int group, int[] values, int kvOff, int kvStride,
                                           int len, int headDim, float[] scores) {
        for (int g = 0; g < group; g += 2) {
            boolean two = g + 1 < group;   // an odd group's last head is summed twice, stored once
            int pg = g * len, ph = two ? pg + len : pg;
            for (int c = 0; c < headDim; c += 2 * L) {
                FloatVector e = FloatVector.zero(F), o = e, e2 = e, o2 = e;
                for (int j = 0, v = (kvOff + c) / 2; j < len; j++, v += kvStride / 2) {
                    IntVector x = IntVector.fromArray(I, values, v);
                    FloatVector lo = x.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                    FloatVector hi = x.and(0xFFFF0000).reinterpretAsFloats();
                    FloatVector p = FloatVector.broadcast(F, scores[pg + j]), r = FloatVector.broadcast(F, scores[ph + j]);
                    e = lo.fma(p, e);
                    o = hi.fma(p, o);
                    e2 = lo.fma(r, e2);
                    o2 = hi.fma(r, o2);
                }
                int og = outOff + g * headDim + c;
                e.rearrange(INTERLEAVE_FIRST, o).intoArray(out, og);
                e.rearrange(INTERLEAVE_SECOND, o).intoArray(out, og + L);
                if (two) {
                    e2.rearrange(INTERLEAVE_FIRST, o2).intoArray(out, og + headDim);
                    e2.rearrange(INTERLEAVE_SECOND, o2).intoArray(out, og + headDim + L);
                }
            }
        }
    }

    /**
     * out (group heads of headDim) = each head's probabilities (scores, len per head) times the value rows. The
     * sums live in registers for the whole pass over the positions (four vectors of a head, two heads at a
     * time, which share each loaded value vector): accumulating into out in memory chained every step through a
     * store and a reload, at half this speed. Each head's sums are the same sequential FMAs whether or not it
     * is paired, so a group gives the same bits as its heads alone. Kept out of attendGroup (this class is not
     * inlined): in one method with the scores, C2 stops intrinsifying the vectors.
     */
    private static void weightedValues(float[] out, int outOff, int group, float[] values, int kvOff, int kvStride,
                                       int len, int headDim, float[] scores) {
        int wide = headDim - headDim % (4 * L), bound = F.loopBound(headDim);
        int g = 0;
        for (; g + 2 <= group; g += 2) {   // two heads per pass
            int og = outOff + g * headDim, oh = og + headDim, pg = g * len, ph = pg + len;
            for (int i = 0; i < wide; i += 4 * L) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (int j = 0, v = kvOff + i; j < len; j++, v += kvStride) {
                    FloatVector p = FloatVector.broadcast(F, scores[pg + j]), r = FloatVector.broadcast(F, scores[ph + j]);
                    FloatVector v0 = FloatVector.fromArray(F, values, v), v1 = FloatVector.fromArray(F, values, v + L);
                    FloatVector v2 = FloatVector.fromArray(F, values, v + 2 * L);
                    FloatVector v3 = FloatVector.fromArray(F, values, v + 3 * L);
                    a0 = v0.fma(p, a0);
                    a1 = v1.fma(p, a1);
                    a2 = v2.fma(p, a2);
                    a3 = v3.fma(p, a3);
                    b0 = v0.fma(r, b0);
                    b1 = v1.fma(r, b1);
                    b2 = v2.fma(r, b2);
                    b3 = v3.fma(r, b3);
                }
                a0.intoArray(out, og + i);
                a1.intoArray(out, og + i + L);
                a2.intoArray(out, og + i + 2 * L);
                a3.intoArray(out, og + i + 3 * L);
                b0.intoArray(out, oh + i);
                b1.intoArray(out, oh + i + L);
                b2.intoArray(out, oh + i + 2 * L);
                b3.intoArray(out, oh + i + 3 * L);
            }
        }
        for (; g < group; g++) {   // the last head of an odd group
            int og = outOff + g * headDim, pg = g * len;
            for (int i = 0; i < wide; i += 4 * L) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int j = 0, v = kvOff + i; j < len; j++, v += kvStride) {
                    FloatVector p = FloatVector.broadcast(F, scores[pg + j]);
                    a0 = FloatVector.fromArray(F, values, v).fma(p, a0);
                    a1 = FloatVector.fromArray(F, values, v + L).fma(p, a1);
                    a2 = FloatVector.fromArray(F, values, v + 2 * L).fma(p, a2);
                    a3 = FloatVector.fromArray(F, values, v + 3 * L).fma(p, a3);
                }
                a0.intoArray(out, og + i);
                a1.intoArray(out, og + i + L);
                a2.intoArray(out, og + i + 2 * L);
                a3.intoArray(out, og + i + 3 * L);
            }
        }
        for (g = 0; g < group; g++) {   // every head: single vectors past the last four, then lanes past the last vector
            int og = outOff + g * headDim, pg = g * len;
            for (int i = wide; i < bound; i += L) {
                FloatVector a = FloatVector.zero(F);
                for (int j = 0, v = kvOff + i; j < len; j++, v += kvStride) {
                    a = FloatVector.fromArray(F, values, v).fma(FloatVector.broadcast(F, scores[pg + j]), a);
                }
                a.intoArray(out, og + i);
            }
            for (int i = bound; i < headDim; i++) {
                float a = 0f;
                for (int j = 0, v = kvOff + i; j < len; j++, v += kvStride) {
                    a = Math.fma(values[v], scores[pg + j], a);
                }
                out[og + i] = a;
            }
        }
    }
}
