package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import org.jtune.io.safetensors.DType;

/**
 * {@link Kernels} that send some matrix products to OpenBLAS's {@code cblas_sgemm} ({@link OpenBlas}) and
 * everything else to the pure-Java kernels they decorate. Selected by {@code -Djtune.blas=auto|on}
 * ({@link KernelProvider}); never the default.
 *
 * <p>The policy, from {@code jtune bench --blas-compare} on this project's machine (2 cores of an AVX-512 EPYC,
 * Debian's OpenBLAS 0.3.21 picking its Cooperlake kernels; the table is in docs/performance.md):
 * <ul>
 *   <li>{@link #matmul}: OpenBLAS for f32 weights from {@value #MIN_TOKENS} tokens on. There it measured
 *   1.1-1.5x the packed Java kernel wherever the token count is not a multiple of the Java kernel's 32-token
 *   tile (16, 24, 40, 48, 80, 100, 200, 300 tokens: the Java tile's empty lanes cost FMAs, sgemm's don't), and
 *   even at multiples of it (0.91-1.27x over runs, within run-to-run noise; 0.95-1.01x at 32 and 64). Below
 *   16 tokens (decode, very short prompts) the Java kernel is faster (OpenBLAS 0.5-0.65x at 8 tokens) and
 *   allocation-free, so it keeps them.</li>
 *   <li>bf16, f16, int8 and int4 weights stay on Java: OpenBLAS has no sgemm for them, and widening each block of
 *   rows into an f32 panel first costs more than OpenBLAS gains from 128 tokens on (bf16: 0.79-0.93x at 128
 *   tokens, 0.86-0.99x at 1024; 1.0-1.16x only at 16-48 tokens, the Java kernel's partial tiles again).</li>
 *   <li>{@link #matmulBackwardInput} / {@link #matmulBackwardWeight} with f32 operands (the LoRA factors'
 *   backward, which {@code TrainingOps} calls directly; the big backward products go through {@link #matmul} on
 *   transposed weights): OpenBLAS, 18-66x the interface's axpy loops it replaces for rank-8 factors.</li>
 * </ul>
 * Results differ from the Java kernels by summation order only (parity tests), but they do depend on the
 * OpenBLAS build and CPU, which is one reason {@code -Djtune.blas} is off by default ({@link KernelProvider}).
 *
 * <p>Threads: OpenBLAS runs single-threaded and each of jtune's pool threads calls sgemm on its own block of
 * output rows (widening its own block for non-f32 weights, when asked to). Letting OpenBLAS thread one call
 * itself measured 5-10 % slower for f32 and about 3x slower around the widening: its threads and the pool's
 * spin-waiting workers then compete for the same cores.
 *
 * <p>{@code everyProduct} (the comparison benchmark and the parity tests) sends every product it can to
 * OpenBLAS, whatever the policy says: any token count, and bf16, f16, int8 and int4 weights widened per block of
 * {@value #WIDEN_ROWS} rows.
 */
public final class BlasKernels implements Kernels {
    /** The policy's token threshold for f32 matmuls (see the class comment). */
    static final int MIN_TOKENS = 16;
    /** Rows widened at a time per thread for non-f32 weights in {@code everyProduct} mode (best of 32, 64, 128 measured). */
    static final int WIDEN_ROWS = 64;
    /** Below this many multiply-adds a product runs in one sgemm on the caller. */
    private static final long PARALLEL_MIN_MACS = 1 << 18;

    private final Kernels java;
    private final OpenBlas blas;
    private final WorkerPool pool;
    private final boolean everyProduct;

    /** Per-thread f32 panel for widened rows (everyProduct mode only). */
    private static final ThreadLocal<float[][]> PANEL = ThreadLocal.withInitial(() -> new float[1][0]);

    public BlasKernels(Kernels java, OpenBlas blas, WorkerPool pool, boolean everyProduct) {
        if (!blas.available()) {
            throw new IllegalArgumentException("OpenBLAS is unavailable: " + blas.reason());
        }
        this.java = java;
        this.blas = blas;
        this.pool = pool;
        this.everyProduct = everyProduct;
        blas.setThreads(1);   // parallelism comes from the pool (class comment)
    }

    @Override
    public String name() {
        return java.name() + "+openblas";
    }

    /** The pure-Java kernels everything else goes to. */
    public Kernels delegate() {
        return java;
    }

    /** Whether s can be handed to sgemm as a float pointer: a native address or float[] element aligned to 4 bytes. */
    static boolean f32Aligned(MemorySegment s) {
        return s.maxByteAlignment() >= Float.BYTES;
    }

    // ---------------------------------------------------------------- matmul

    @Override
    public void matmul(float[] out, float[] x, Matrix w, int tokens) {
        int rows = w.rows(), cols = w.cols();
        boolean f32 = w.dtype() == DType.F32 && w.strip() == 0 && f32Aligned(w.data());   // strips: the Java kernel
        boolean take = everyProduct ? tokens > 0 && (f32 || w.dtype() != DType.F32) : f32 && tokens >= MIN_TOKENS;
        // sizes are checked here, not left to the Java kernel: native code would read or write past the arrays
        if (!take || rows == 0 || cols == 0 || (long) tokens * cols > x.length || (long) tokens * rows > out.length) {
            java.matmul(out, x, w, tokens);
            return;
        }
        MemorySegment xs = MemorySegment.ofArray(x), os = MemorySegment.ofArray(out);
        int threads = (long) rows * cols * tokens < PARALLEL_MIN_MACS ? 1 : pool.threads();
        int br = f32 ? (rows + threads - 1) / threads : Math.min(rows, WIDEN_ROWS);
        int blocks = (rows + br - 1) / br;
        if (blocks == 1 || threads == 1) {
            rowBlocks(os, xs, w, tokens, f32, br, 0, blocks);
        } else {
            pool.run(blocks, (from, to) -> rowBlocks(os, xs, w, tokens, f32, br, from, to));
        }
    }

    /** Short (decode) chunks go to the Java kernels' shared pass; longer ones product by product, as matmul picks. */
    @Override
    public void matmulShared(float[][] outs, float[] x, Matrix[] ws, int count, int tokens) {
        if (!everyProduct && tokens < MIN_TOKENS) {
            java.matmulShared(outs, x, ws, count, tokens);
            return;
        }
        for (int i = 0; i < count; i++) {
            matmul(outs[i], x, ws[i], tokens);
        }
    }

    /** out[:, r0 .. r0 + n) for row blocks {@code [from, to)} of br rows: one sgemm per block. */
    private void rowBlocks(MemorySegment os, MemorySegment xs, Matrix w, int tokens, boolean f32, int br, int from, int to) {
        int rows = w.rows(), cols = w.cols();
        for (int b = from; b < to; b++) {
            int r0 = b * br, n = Math.min(br, rows - r0);
            MemorySegment ws;
            if (f32) {
                ws = w.data().asSlice(4L * r0 * cols, 4L * n * cols);
            } else {
                float[][] h = PANEL.get();
                if (h[0].length < n * cols) {
                    h[0] = new float[n * cols];
                }
                float[] pan = h[0];
                for (int i = 0; i < n; i++) {
                    java.gatherRow(pan, i * cols, w, r0 + i);   // exactly Matrix.get: scales applied
                }
                ws = MemorySegment.ofArray(pan);
            }
            blas.sgemm(false, true, tokens, n, cols, 1f, xs, cols, ws, cols, 0f, os.asSlice(4L * r0), rows);
        }
    }

    // ---------------------------------------------------------------- backward

    /** {@code dx += dy W}: (tokens, rows) times (rows, cols), accumulated. */
    @Override
    public void matmulBackwardInput(float[] dx, float[] dy, Matrix w, int tokens) {
        int rows = w.rows(), cols = w.cols();
        if (tokens <= 0 || rows == 0 || cols == 0 || w.dtype() != DType.F32 || w.strip() != 0 || !f32Aligned(w.data())
                || (long) tokens * cols > dx.length || (long) tokens * rows > dy.length) {
            java.matmulBackwardInput(dx, dy, w, tokens);
            return;
        }
        gemm(false, tokens, cols, rows, MemorySegment.ofArray(dy), rows, w.data(), cols, MemorySegment.ofArray(dx));
    }

    /** {@code dw += dy^T x}: (rows, tokens) times (tokens, cols), accumulated. */
    @Override
    public void matmulBackwardWeight(float[] dw, float[] dy, float[] x, int tokens, int rows, int cols) {
        if (tokens <= 0 || rows <= 0 || cols <= 0 || (long) rows * cols > dw.length || (long) tokens * rows > dy.length
                || (long) tokens * cols > x.length) {
            java.matmulBackwardWeight(dw, dy, x, tokens, rows, cols);
            return;
        }
        gemm(true, rows, cols, tokens, MemorySegment.ofArray(dy), rows, MemorySegment.ofArray(x), cols,
                MemorySegment.ofArray(dw));
    }

    /**
     * {@code C (m, n) += op(A) B}, B (k, n) and C row-major with leading dimensions ldb and n; op(A) is A (m, k) with
     * leading dimension lda, or A^T for A stored (k, m). The larger of m and n is split over the pool (the LoRA
     * factors' products have 8 on one side), one sgemm per thread.
     */
    private void gemm(boolean transA, int m, int n, int k, MemorySegment a, int lda, MemorySegment b, int ldb,
                      MemorySegment c) {
        int threads = (long) m * n * k < PARALLEL_MIN_MACS ? 1 : pool.threads();
        boolean splitM = m >= n;
        int len = splitM ? m : n;
        int chunk = (len + threads - 1) / threads, blocks = (len + chunk - 1) / chunk;
        RangeTask task = (from, to) -> {
            for (int blk = from; blk < to; blk++) {
                int s = blk * chunk, e = Math.min(len, s + chunk);
                if (splitM) {   // rows s..e of C: rows of A, or columns of A when it is transposed
                    MemorySegment as = a.asSlice(4L * (transA ? s : (long) s * lda));
                    blas.sgemm(transA, false, e - s, n, k, 1f, as, lda, b, ldb, 1f, c.asSlice(4L * s * n), n);
                } else {        // columns s..e of C and of B
                    blas.sgemm(transA, false, m, e - s, k, 1f, a, lda, b.asSlice(4L * s), ldb, 1f, c.asSlice(4L * s), n);
                }
            }
        };
        if (blocks == 1) {
            task.run(0, 1);
        } else {
            pool.run(blocks, task);
        }
    }

    // ---------------------------------------------------------------- delegated

    @Override
    public void matmulW8A8(float[] out, float[] x, Matrix w, int tokens, float[] actScale) {
        java.matmulW8A8(out, x, w, tokens, actScale);
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        return java.dot(a, aOff, b, bOff, n);
    }

    @Override
    public void axpy(float[] y, int yOff, float alpha, float[] x, int xOff, int n) {
        java.axpy(y, yOff, alpha, x, xOff, n);
    }

    @Override
    public void rmsNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, float eps, int n) {
        java.rmsNorm(out, outOff, x, xOff, weight, eps, n);
    }

    @Override
    public void layerNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, float[] bias, float eps, int n) {
        java.layerNorm(out, outOff, x, xOff, weight, bias, eps, n);
    }

    @Override
    public float softmax(float[] x, int off, int n) {
        return java.softmax(x, off, n);
    }

    @Override
    public double logSumExp(float[] x, int off, int n) {
        return java.logSumExp(x, off, n);
    }

    @Override
    public void addSoftmax(float[] dst, int dOff, float[] x, int xOff, int n, double logZ, double scale) {
        java.addSoftmax(dst, dOff, x, xOff, n, logZ, scale);
    }

    @Override
    public void siluMul(float[] gate, float[] up, int n) {
        java.siluMul(gate, up, n);
    }

    @Override
    public void siluMulBackward(float[] dGate, float[] dUp, float[] dOut, float[] gate, float[] up, int off, int n) {
        java.siluMulBackward(dGate, dUp, dOut, gate, up, off, n);
    }

    @Override
    public void rope(float[] x, int off, float[] cos, float[] sin, int tableOff, int rotDim) {
        java.rope(x, off, cos, sin, tableOff, rotDim);
    }

    @Override
    public void attend(float[] out, int outOff, float[] q, int qOff, float[] keys, float[] values, int kvOff,
                       int kvStride, int len, int headDim, float scale, float[] scores) {
        java.attend(out, outOff, q, qOff, keys, values, kvOff, kvStride, len, headDim, scale, scores);
    }

    @Override
    public void attendCausalBlock(float[] out, int outOff, int outStride, float[] q, int qOff, int qStride, int rows,
                                  float[] keys, float[] values, int kvOff, int kvStride, int firstLen, int headDim,
                                  float scale, float[] scratch) {
        java.attendCausalBlock(out, outOff, outStride, q, qOff, qStride, rows, keys, values, kvOff, kvStride, firstLen,
                headDim, scale, scratch);
    }

    @Override
    public void attendCausalBlockBackward(float[] q, int qOff, int qStride, float[] dOut, int dOutOff, float[] dQ,
                                          int rows, float[] keys, float[] values, float[] dKeys, float[] dValues,
                                          int kvOff, int kvStride, int firstLen, int headDim, float scale,
                                          float[] scratch) {
        java.attendCausalBlockBackward(q, qOff, qStride, dOut, dOutOff, dQ, rows, keys, values, dKeys, dValues, kvOff,
                kvStride, firstLen, headDim, scale, scratch);
    }

    @Override
    public int causalBlockBackwardScratch(int maxLen, int headDim) {
        return java.causalBlockBackwardScratch(maxLen, headDim);
    }

    @Override
    public int causalBlockRows() {
        return java.causalBlockRows();
    }

    @Override
    public int causalBlockScratch(int maxLen, int headDim) {
        return java.causalBlockScratch(maxLen, headDim);
    }

    @Override
    public void attendGroup(float[] out, int outOff, float[] q, int qOff, int group, float[] keys, float[] values,
                            int kvOff, int kvStride, int len, int headDim, float scale, float[] scores, float[] lse,
                            int lseOff) {
        java.attendGroup(out, outOff, q, qOff, group, keys, values, kvOff, kvStride, len, headDim, scale, scores, lse,
                lseOff);
    }

    @Override
    public void attendGroupBf16(float[] out, int outOff, float[] q, int qOff, int group, int[] keys, int[] values,
                                int kvOff, int kvStride, int len, int headDim, float scale, float[] scores, float[] lse,
                                int lseOff) {
        java.attendGroupBf16(out, outOff, q, qOff, group, keys, values, kvOff, kvStride, len, headDim, scale, scores,
                lse, lseOff);
    }

    @Override
    public void widenBf16(float[] dst, int dstOff, int[] packed, int srcOff, int count) {
        java.widenBf16(dst, dstOff, packed, srcOff, count);
    }

    @Override
    public void gatherRow(float[] out, int outOff, Matrix m, int row) {
        java.gatherRow(out, outOff, m, row);
    }
}
