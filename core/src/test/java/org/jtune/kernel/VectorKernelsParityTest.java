package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.HalfFloats;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * VectorKernels against the ScalarKernels specification on awkward sizes. The only differences
 * allowed are from summation order (and the vector EXP's last ulp), so the tolerance is
 * {@code |vector - scalar| <= 1e-5 * sqrt(n) * scale}, where n is the length of the reduction and
 * scale is the sum of the absolute terms (for a dot product, {@code sum |a_i b_i|}) or the magnitude
 * of the expected value for elementwise results. Conversions (gatherRow) must be bit-exact.
 */
class VectorKernelsParityTest {
    static final int[] SIZES = {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 65, 257, 1023, 4097};
    static final int[] TOKENS = {1, 2, 3, 4, 5, 7, 9};
    static final DType[] DTYPES = {DType.F32, DType.BF16, DType.F16};

    static final WorkerPool POOL = new WorkerPool(3);
    static final Kernels VEC = new VectorKernels(POOL);
    static final Kernels REF = new ScalarKernels();

    @AfterAll
    static void closePool() {
        POOL.close();
    }

    static double tol(int n) {
        return 1e-5 * Math.sqrt(Math.max(1, n));
    }

    static void assertMatmulClose(float[] expected, float[] actual, float[] x, Matrix w, int tokens, String what) {
        int rows = w.rows(), cols = w.cols();
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < rows; r++) {
                double scale = 0;
                for (int c = 0; c < cols; c++) {
                    scale += Math.abs((double) x[t * cols + c] * w.get(r, c));
                }
                float e = expected[t * rows + r], a = actual[t * rows + r];
                assertTrue(Math.abs(e - a) <= tol(cols) * scale + 1e-30,
                        what + " out[" + t + "," + r + "]: scalar " + e + " vector " + a + " scale " + scale);
            }
        }
    }

    /**
     * One parallel pass over several matrices (a layer's q/k/v, gate/up) gives each output exactly what
     * its own matmul gives: the same kernels on the same rows, whichever thread takes a block. Mixed dtypes
     * and row counts that are not multiples of the row block; decode and short-prefill token counts.
     */
    @Test
    void matmulSharedEqualsSeparateMatmulsBitForBit() {
        Random rnd = new Random(11);
        int cols = 576;
        Matrix[] ws = {
            TestMatrices.matrix(rnd, DType.BF16, 577, cols, true),
            TestMatrices.i8Matrix(rnd, 193, cols, 32, true).withRowPairs(),
            TestMatrices.matrix(rnd, DType.F32, 191, cols, true),
            TestMatrices.matrix(rnd, DType.F16, 5, cols, true),
        };
        for (int count = 1; count <= ws.length; count++) {
            for (int tokens : new int[] {1, 2, 5, 15, 16}) {
                float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                float[][] outs = new float[count][];
                for (int i = 0; i < count; i++) {
                    outs[i] = new float[tokens * ws[i].rows() + 3];
                }
                VEC.matmulShared(outs, x, ws, count, tokens);
                for (int i = 0; i < count; i++) {
                    float[] expected = new float[outs[i].length];
                    VEC.matmul(expected, x, ws[i], tokens);
                    org.junit.jupiter.api.Assertions.assertArrayEquals(expected, outs[i],
                            "matrix " + i + " of " + count + ", " + tokens + " tokens");
                }
            }
        }
        float[][] tooSmall = {new float[10], new float[193]};
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> VEC.matmulShared(tooSmall, new float[cols], ws, 2, 1));
    }

    @Test
    void matmulMatchesScalarForAllDtypesSizesAndTokenCounts() {
        Random rnd = new Random(1);
        int[] rowsList = {1, 3, 7, 13};
        for (DType dt : DTYPES) {
            for (boolean offHeap : new boolean[] {false, true}) {
                for (int cols : SIZES) {
                    if (cols > 1023) {
                        continue; // covered by the parallel-sized test below
                    }
                    for (int rows : rowsList) {
                        Matrix w = TestMatrices.matrix(rnd, dt, rows, cols, offHeap);
                        for (int tokens : TOKENS) {
                            float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                            float[] e = new float[tokens * rows], a = new float[tokens * rows];
                            REF.matmul(e, x, w, tokens);
                            VEC.matmul(a, x, w, tokens);
                            assertMatmulClose(e, a, x, w, tokens,
                                    dt + (offHeap ? " off-heap" : " heap") + " " + rows + "x" + cols + " t=" + tokens);
                        }
                    }
                }
            }
        }
    }

    /** The BF16 decode rows' x layout: per whole 2L-column block its even columns, then its odd ones; the rest as is. */
    @Test
    void bf16SplitXPutsEachBlocksEvenColumnsFirst() {
        int l = VectorKernels.L, cols = 4 * l + 3, tokens = 2;
        float[] x = new float[tokens * cols], xs = new float[tokens * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = i;
        }
        MatmulBF16.splitX(xs, x, cols, tokens);
        for (int t = 0; t < tokens; t++) {
            for (int c = 0; c < cols; c++) {
                int block = c / (2 * l) * (2 * l), j = c - block;
                float expected = c >= cols / (2 * l) * (2 * l) ? c : j < l ? block + 2 * j : block + 2 * (j - l) + 1;
                assertEquals(t * cols + expected, xs[t * cols + c], "t=" + t + " c=" + c);
            }
        }
    }

    @Test
    void parallelSizedMatmulMatchesScalar() {
        Random rnd = new Random(2);
        for (DType dt : DTYPES) {
            for (int[] shape : new int[][] {{67, 1023}, {33, 4097}, {129, 257}}) {
                Matrix w = TestMatrices.matrix(rnd, dt, shape[0], shape[1], true);
                for (int tokens : new int[] {1, 5, 9}) {
                    float[] x = TestMatrices.randomFloats(rnd, tokens * shape[1]);
                    float[] e = new float[tokens * shape[0]], a = new float[tokens * shape[0]];
                    REF.matmul(e, x, w, tokens);
                    VEC.matmul(a, x, w, tokens);
                    assertMatmulClose(e, a, x, w, tokens, dt + " " + shape[0] + "x" + shape[1] + " t=" + tokens);
                }
            }
        }
    }

    @Test
    void matmulIsIdenticalForOneTwoAndThreeThreads() {
        Random rnd = new Random(3);
        for (DType dt : DTYPES) {
            Matrix w = TestMatrices.matrix(rnd, dt, 203, 517, true);
            for (int tokens : new int[] {1, 6}) {
                float[] x = TestMatrices.randomFloats(rnd, tokens * 517);
                float[] first = null;
                for (int threads = 1; threads <= 3; threads++) {
                    try (WorkerPool p = new WorkerPool(threads)) {
                        float[] out = new float[tokens * 203];
                        new VectorKernels(p).matmul(out, x, w, tokens);
                        if (first == null) {
                            first = out;
                        } else {
                            assertArrayEquals(first, out, dt + " tokens=" + tokens + " threads=" + threads);
                        }
                    }
                }
            }
        }
    }

    /** Prefill-sized token counts take MatmulPacked (tokens >= PACK_MIN_TOKENS): odd token, row and column counts, every dtype. */
    @Test
    void packedPrefillMatmulMatchesScalarForAllDtypes() {
        Random rnd = new Random(4);
        int[][] shapes = {{1, 1}, {7, 17}, {13, 65}, {9, 96}, {67, 257}, {16, 1024}};
        for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16, DType.I8}) {
            for (boolean offHeap : new boolean[] {false, true}) {
                for (int[] shape : shapes) {
                    int rows = shape[0], cols = shape[1];
                    int group = dt == DType.I8 ? i8Groups(cols)[i8Groups(cols).length - 1] : 0;
                    Matrix w = dt == DType.I8 ? TestMatrices.i8Matrix(rnd, rows, cols, group, offHeap)
                            : TestMatrices.matrix(rnd, dt, rows, cols, offHeap);
                    for (int tokens : new int[] {VectorKernels.PACK_MIN_TOKENS, 17, 31, 33, 64, 70}) {
                        float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                        float[] e = new float[tokens * rows], a = new float[tokens * rows];
                        REF.matmul(e, x, w, tokens);
                        VEC.matmul(a, x, w, tokens);
                        assertMatmulClose(e, a, x, w, tokens, dt + (offHeap ? " off-heap" : " heap") + " " + rows + "x"
                                + cols + (dt == DType.I8 ? " group " + group : "") + " t=" + tokens);
                    }
                }
            }
        }
    }

    @Test
    void packedPrefillMatmulIsIdenticalForOneTwoAndThreeThreads() {
        Random rnd = new Random(5);
        for (DType dt : new DType[] {DType.BF16, DType.I8}) {
            Matrix w = dt == DType.I8 ? TestMatrices.i8Matrix(rnd, 203, 512, 32, true)
                    : TestMatrices.matrix(rnd, dt, 203, 517, true);
            int cols = w.cols();
            for (int tokens : new int[] {40, 77}) {
                float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                float[] first = null;
                for (int threads = 1; threads <= 3; threads++) {
                    try (WorkerPool p = new WorkerPool(threads)) {
                        float[] out = new float[tokens * 203];
                        new VectorKernels(p).matmul(out, x, w, tokens);
                        if (first == null) {
                            first = out;
                        } else {
                            assertArrayEquals(first, out, dt + " tokens=" + tokens + " threads=" + threads);
                        }
                    }
                }
            }
        }
    }

    /**
     * The weight gradient {@code dw += dy^T x} on the packed microkernel against the scalar spec's axpys, added into
     * a nonzero dw: shapes with partial row blocks and panels, a LoRA B factor (8 columns), rank-many rows (the axpy
     * path), and dy packed a row block at a time as the vocabulary-wide head is.
     */
    @Test
    void weightGradientMatchesScalar() {
        Random rnd = new Random(12);
        int[][] shapes = {{32, 8}, {33, 7}, {96, 64}, {70, 130}, {8, 576}, {576, 8}, {257, 31}};
        for (int[] shape : shapes) {
            int rows = shape[0], cols = shape[1];
            for (int tokens : new int[] {4, 17, 64, 131}) {
                float[] dy = TestMatrices.randomFloats(rnd, tokens * rows), x = TestMatrices.randomFloats(rnd, tokens * cols);
                float[] dw = TestMatrices.randomFloats(rnd, rows * cols);
                float[] e = dw.clone(), a = dw.clone(), chunked = dw.clone();
                REF.matmulBackwardWeight(e, dy, x, tokens, rows, cols);
                VEC.matmulBackwardWeight(a, dy, x, tokens, rows, cols);
                MatmulPacked.weightGradient(POOL, new MatmulPacked.WeightGradientTask(), chunked, dy, x, tokens, rows, cols,
                        1);
                String what = rows + "x" + cols + " t=" + tokens;
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) {
                        double scale = Math.abs(dw[r * cols + c]);
                        for (int t = 0; t < tokens; t++) {
                            scale += Math.abs((double) dy[t * rows + r] * x[t * cols + c]);
                        }
                        int i = r * cols + c;
                        assertTrue(Math.abs(e[i] - a[i]) <= tol(tokens) * scale, what + " dw[" + r + "," + c + "]: scalar "
                                + e[i] + " vector " + a[i]);
                        assertTrue(Math.abs(e[i] - chunked[i]) <= tol(tokens) * scale, what + " chunked dw[" + r + "," + c
                                + "]: scalar " + e[i] + " vector " + chunked[i]);
                    }
                }
            }
        }
    }

    /**
     * The input gradient {@code dx += dy w} on the packed microkernel against the scalar spec, added into a nonzero
     * dx: every dtype and layout its column panels are gathered from (row pairs, strips, int4), partial panels, and
     * the LoRA factors' shapes (one panel of 8 columns; 8 rows).
     */
    @Test
    void inputGradientMatchesScalarForAllDtypesAndLayouts() {
        Random rnd = new Random(14);
        int[][] shapes = {{7, 17}, {65, 96}, {576, 8}, {8, 576}, {33, 192}, {900, 40}};   // 900: rows in two chunks
        for (int[] shape : shapes) {
            int rows = shape[0], cols = shape[1];
            java.util.List<Matrix> ws = new java.util.ArrayList<>();
            for (DType dt : DTYPES) {
                ws.add(TestMatrices.matrix(rnd, dt, rows, cols, true));
            }
            if (cols > 64) {
                ws.add(TestMatrices.matrix(rnd, DType.BF16, rows, cols, true).withStrips(64));
            }
            if (cols % 32 == 0) {
                ws.add(TestMatrices.i8Matrix(rnd, rows, cols, 32, true));
                ws.add(TestMatrices.i8Matrix(rnd, rows, cols, 32, true).withRowPairs().withStrips(64));
                ws.add(TestMatrices.i4Matrix(rnd, rows, cols, 32, false, true));
            }
            ws.add(TestMatrices.i8Matrix(rnd, rows, cols, cols, false));   // per channel
            for (Matrix w : ws) {
                for (int tokens : new int[] {1, 3, 9, 16, 17, 70}) {
                    float[] dy = TestMatrices.randomFloats(rnd, tokens * rows), dx = TestMatrices.randomFloats(rnd, tokens * cols);
                    float[] e = dx.clone(), a = dx.clone();
                    REF.matmulBackwardInput(e, dy, w, tokens);
                    VEC.matmulBackwardInput(a, dy, w, tokens);
                    String what = w.dtype() + (w.strip() > 0 ? " strips" : "") + (w.rowPairs() ? " pairs " : " ") + rows
                            + "x" + cols + " t=" + tokens;
                    for (int t = 0; t < tokens; t++) {
                        for (int c = 0; c < cols; c++) {
                            double scale = Math.abs(dx[t * cols + c]);
                            for (int r = 0; r < rows; r++) {
                                scale += Math.abs((double) dy[t * rows + r] * w.get(r, c));
                            }
                            int i = t * cols + c;
                            assertTrue(Math.abs(e[i] - a[i]) <= tol(rows) * scale + 1e-30, what + " dx[" + t + "," + c
                                    + "]: scalar " + e[i] + " vector " + a[i]);
                        }
                    }
                }
            }
        }
    }

    @Test
    void inputGradientIsIdenticalForOneTwoAndThreeThreads() {
        Random rnd = new Random(15);
        for (Matrix w : new Matrix[] {TestMatrices.matrix(rnd, DType.BF16, 203, 77, true),
                TestMatrices.matrix(rnd, DType.F32, 300, 8, false)}) {
            int tokens = 90;
            float[] dy = TestMatrices.randomFloats(rnd, tokens * w.rows());
            float[] first = null;
            for (int threads = 1; threads <= 3; threads++) {
                try (WorkerPool p = new WorkerPool(threads)) {
                    float[] dx = new float[tokens * w.cols()];
                    new VectorKernels(p).matmulBackwardInput(dx, dy, w, tokens);
                    if (first == null) {
                        first = dx;
                    } else {
                        assertArrayEquals(first, dx, w.rows() + "x" + w.cols() + " threads=" + threads);
                    }
                }
            }
        }
    }

    @Test
    void weightGradientIsIdenticalForOneTwoAndThreeThreads() {
        Random rnd = new Random(13);
        int rows = 203, cols = 77, tokens = 90;
        float[] dy = TestMatrices.randomFloats(rnd, tokens * rows), x = TestMatrices.randomFloats(rnd, tokens * cols);
        float[] first = null;
        for (int threads = 1; threads <= 3; threads++) {
            try (WorkerPool p = new WorkerPool(threads)) {
                float[] dw = new float[rows * cols];
                new VectorKernels(p).matmulBackwardWeight(dw, dy, x, tokens, rows, cols);
                if (first == null) {
                    first = dw;
                } else {
                    assertArrayEquals(first, dw, "threads=" + threads);
                }
            }
        }
    }

    /** Group sizes to test for a width: per channel, then 64, 32, 16, 8 where they divide it (2 and 4 vectors at 16 or 8 lanes take the straight-line decode path). */
    static int[] i8Groups(int cols) {
        return java.util.stream.IntStream.of(cols, 64, 32, 16, 8).filter(g -> g <= cols && cols % g == 0).distinct().toArray();
    }

    /**
     * I8 against the scalar spec, whose terms are {@code x * (q * scale)}; the vector kernel sums
     * {@code x * q} per group and scales the sum (or scales the widened weights once for four tokens),
     * so results differ by summation order and one rounding per term: same tolerance as the float dtypes.
     */
    @Test
    void int8MatmulMatchesScalarForOddRowsWidthsGroupsAndTokenCounts() {
        Random rnd = new Random(13);
        for (boolean offHeap : new boolean[] {false, true}) {
            for (int cols : new int[] {8, 16, 24, 32, 48, 96, 1024, 4096}) {
                for (int group : i8Groups(cols)) {
                    for (int rows : new int[] {1, 3, 7, 13, 259}) {
                        if ((long) rows * cols > 300_000) {
                            continue; // 259 x 4096 adds nothing over 259 x 1024 and 13 x 4096 but time
                        }
                        Matrix w = TestMatrices.i8Matrix(rnd, rows, cols, group, offHeap);
                        Matrix paired = w.withRowPairs();
                        for (int tokens : TOKENS) {
                            float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                            float[] e = new float[tokens * rows], a = new float[tokens * rows];
                            REF.matmul(e, x, w, tokens);
                            VEC.matmul(a, x, w, tokens);
                            assertMatmulClose(e, a, x, w, tokens, "I8" + (offHeap ? " off-heap" : " heap") + " "
                                    + rows + "x" + cols + " group " + group + " t=" + tokens);
                            if (paired != w) {   // the row-pair layout against the row-major scalar spec
                                float[] p = new float[tokens * rows];
                                VEC.matmul(p, x, paired, tokens);
                                assertMatmulClose(e, p, x, w, tokens, "I8 row pairs " + rows + "x" + cols + " group "
                                        + group + " t=" + tokens);
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void int8MatmulIsIdenticalForOneTwoAndThreeThreads() {
        Random rnd = new Random(14);
        for (int group : new int[] {32, 8}) {
            Matrix w = TestMatrices.i8Matrix(rnd, 203, 512, group, true).withRowPairs();   // paired when group 32
            for (int tokens : new int[] {1, 6}) {
                float[] x = TestMatrices.randomFloats(rnd, tokens * 512);
                float[] first = null;
                for (int threads = 1; threads <= 3; threads++) {
                    try (WorkerPool p = new WorkerPool(threads)) {
                        float[] out = new float[tokens * 203];
                        new VectorKernels(p).matmul(out, x, w, tokens);
                        if (first == null) {
                            first = out;
                        } else {
                            assertArrayEquals(first, out, "group " + group + " tokens=" + tokens + " threads=" + threads);
                        }
                    }
                }
            }
        }
    }

    @Test
    void int8GatherRowIsBitExact() {
        Random rnd = new Random(15);
        for (boolean offHeap : new boolean[] {false, true}) {
            for (int cols : new int[] {8, 16, 24, 32, 48, 96, 1024}) {
                for (int group : i8Groups(cols)) {
                    Matrix m = TestMatrices.i8Matrix(rnd, 3, cols, group, offHeap), paired = m.withRowPairs();
                    for (int r = 0; r < 3; r++) {
                        float[] a = new float[cols + 2], p = new float[cols + 2];
                        VEC.gatherRow(a, 2, m, r);
                        VEC.gatherRow(p, 2, paired, r);
                        for (int c = 0; c < cols; c++) {
                            assertEquals(Float.floatToRawIntBits(m.get(r, c)), Float.floatToRawIntBits(a[2 + c]),
                                    "cols " + cols + " group " + group + " row " + r + " col " + c);
                            assertEquals(Float.floatToRawIntBits(m.get(r, c)), Float.floatToRawIntBits(paired.get(r, c)),
                                    "row pairs get, cols " + cols + " group " + group + " row " + r + " col " + c);
                            assertEquals(Float.floatToRawIntBits(m.get(r, c)), Float.floatToRawIntBits(p[2 + c]),
                                    "row pairs gather, cols " + cols + " group " + group + " row " + r + " col " + c);
                        }
                    }
                }
            }
        }
    }

    @Test
    void gatherRowIsBitExactForEveryHalfAndBfloat16Pattern() {
        for (DType dt : new DType[] {DType.F16, DType.BF16}) {
            MemorySegment seg = MemorySegment.ofArray(new byte[2 * 65536 + 1]).asSlice(1, 2 * 65536);
            for (int i = 0; i < 65536; i++) {
                seg.setAtIndex(Matrix.I16, i, (short) i);
            }
            Matrix m = new Matrix(seg, dt, 1, 65536);
            float[] e = new float[65536], a = new float[65536];
            REF.gatherRow(e, 0, m, 0);
            VEC.gatherRow(a, 0, m, 0);
            for (int i = 0; i < 65536; i++) {
                if (Float.isNaN(e[i])) {
                    assertTrue(Float.isNaN(a[i]), dt + " pattern " + Integer.toHexString(i));
                } else {
                    assertEquals(Float.floatToRawIntBits(e[i]), Float.floatToRawIntBits(a[i]),
                            dt + " pattern " + Integer.toHexString(i) + ": " + e[i] + " vs " + a[i]);
                }
            }
        }
    }

    @Test
    void gatherRowMatchesScalarOnOddShapes() {
        Random rnd = new Random(4);
        for (DType dt : DTYPES) {
            for (int cols : SIZES) {
                Matrix m = TestMatrices.matrix(rnd, dt, 3, cols, true);
                for (int r = 0; r < 3; r++) {
                    float[] e = new float[cols + 2], a = new float[cols + 2];
                    REF.gatherRow(e, 2, m, r);
                    VEC.gatherRow(a, 2, m, r);
                    assertArrayEquals(e, a, dt + " cols=" + cols + " row=" + r);
                }
            }
        }
    }

    @Test
    void dotMatchesScalar() {
        Random rnd = new Random(5);
        for (int n : SIZES) {
            float[] a = TestMatrices.randomFloats(rnd, n + 3), b = TestMatrices.randomFloats(rnd, n + 5);
            double scale = 0;
            for (int i = 0; i < n; i++) {
                scale += Math.abs((double) a[3 + i] * b[5 + i]);
            }
            float e = REF.dot(a, 3, b, 5, n), v = VEC.dot(a, 3, b, 5, n);
            assertTrue(Math.abs(e - v) <= tol(n) * scale, "n=" + n + ": " + e + " vs " + v);
        }
    }

    @Test
    void axpyMatchesScalar() {
        Random rnd = new Random(6);
        for (int n : SIZES) {
            float[] x = TestMatrices.randomFloats(rnd, n + 1), y = TestMatrices.randomFloats(rnd, n + 2);
            float[] e = y.clone(), a = y.clone();
            REF.axpy(e, 2, 0.37f, x, 1, n);
            VEC.axpy(a, 2, 0.37f, x, 1, n);
            // fma rounds once instead of twice: at most one ulp of the larger term apart
            assertElementsClose(e, a, 1e-6, "axpy n=" + n);
        }
    }

    static void assertElementsClose(float[] e, float[] a, double relTol, String what) {
        assertEquals(e.length, a.length);
        for (int i = 0; i < e.length; i++) {
            assertTrue(Math.abs(e[i] - a[i]) <= relTol * Math.max(1.0, Math.abs(e[i])),
                    what + " [" + i + "]: scalar " + e[i] + " vector " + a[i]);
        }
    }

    @Test
    void rmsNormMatchesScalarAlsoInPlace() {
        Random rnd = new Random(7);
        for (int n : SIZES) {
            float[] x = TestMatrices.randomFloats(rnd, n + 1), w = TestMatrices.randomFloats(rnd, n);
            float[] e = new float[n + 4], a = new float[n + 4];
            REF.rmsNorm(e, 4, x, 1, w, 1e-5f, n);
            VEC.rmsNorm(a, 4, x, 1, w, 1e-5f, n);
            assertElementsClose(e, a, tol(n), "rmsNorm n=" + n);
            float[] inPlace = x.clone();
            VEC.rmsNorm(inPlace, 1, inPlace, 1, w, 1e-5f, n);
            assertElementsClose(Arrays.copyOfRange(e, 4, 4 + n), Arrays.copyOfRange(inPlace, 1, 1 + n), tol(n),
                    "in-place rmsNorm n=" + n);
        }
    }

    @Test
    void layerNormMatchesScalarWithAndWithoutBias() {
        Random rnd = new Random(8);
        for (int n : SIZES) {
            float[] x = TestMatrices.randomFloats(rnd, n + 2), w = TestMatrices.randomFloats(rnd, n);
            float[] b = TestMatrices.randomFloats(rnd, n);
            for (float[] bias : new float[][] {b, null}) {
                float[] e = new float[n + 1], a = new float[n + 1];
                REF.layerNorm(e, 1, x, 2, w, bias, 1e-5f, n);
                VEC.layerNorm(a, 1, x, 2, w, bias, 1e-5f, n);
                assertElementsClose(e, a, 10 * tol(n), "layerNorm n=" + n + " bias=" + (bias != null));
                float[] inPlace = x.clone();
                VEC.layerNorm(inPlace, 2, inPlace, 2, w, bias, 1e-5f, n);
                assertElementsClose(Arrays.copyOfRange(e, 1, 1 + n), Arrays.copyOfRange(inPlace, 2, 2 + n),
                        10 * tol(n), "in-place layerNorm n=" + n);
            }
        }
    }

    @Test
    void softmaxMatchesScalar() {
        Random rnd = new Random(9);
        for (int n : SIZES) {
            float[] x = new float[n + 3];
            for (int i = 0; i < x.length; i++) {
                x[i] = (rnd.nextFloat() - 0.5f) * 20f;
            }
            float[] e = x.clone(), a = x.clone();
            float lseRef = REF.softmax(e, 3, n), lseVec = VEC.softmax(a, 3, n);
            assertElementsClose(e, a, tol(n), "softmax n=" + n);
            double max = Double.NEGATIVE_INFINITY, sum = 0;   // the log-sum-exp, in double
            for (int i = 3; i < 3 + n; i++) {
                max = Math.max(max, x[i]);
            }
            for (int i = 3; i < 3 + n; i++) {
                sum += Math.exp(x[i] - max);
            }
            double lse = max + Math.log(sum);
            assertEquals(lse, lseRef, 1e-5 * Math.max(1, Math.abs(lse)), "scalar log-sum-exp n=" + n);
            assertEquals(lse, lseVec, 1e-5 * Math.max(1, Math.abs(lse)), "vector log-sum-exp n=" + n);
        }
    }

    /**
     * The loss row's kernels: log-sum-exp (f32 exps summed in double against every exp in double) and the scaled
     * softmax added into a gradient, on rows up to a vocabulary's width and logits spread as a trained head's are;
     * a row whose max is infinite or NaN takes the exact loops.
     */
    @Test
    void lossRowKernelsMatchScalar() {
        Random rnd = new Random(16);
        for (int n : new int[] {1, 7, 16, 17, 33, 257, 4097, 49152}) {
            float[] x = new float[n + 3];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (rnd.nextGaussian() * 4);
            }
            double e = REF.logSumExp(x, 2, n), a = VEC.logSumExp(x, 2, n);
            assertTrue(Math.abs(e - a) <= 1e-6 * Math.max(1, Math.abs(e)), "logSumExp n=" + n + ": " + e + " vs " + a);
            float[] de = TestMatrices.randomFloats(rnd, n + 1), da = de.clone();
            REF.addSoftmax(de, 1, x, 2, n, e, 0.37);
            VEC.addSoftmax(da, 1, x, 2, n, e, 0.37);
            assertElementsClose(de, da, 2e-6, "addSoftmax n=" + n);
        }
        float[] special = {1f, Float.POSITIVE_INFINITY, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f, 13f, 14f, 15f, 16f};
        assertEquals(REF.logSumExp(special, 0, special.length), VEC.logSumExp(special, 0, special.length));
        special[1] = Float.NaN;
        assertTrue(Double.isNaN(VEC.logSumExp(special, 0, special.length)));
        java.util.Arrays.fill(special, Float.NEGATIVE_INFINITY);
        assertEquals(REF.logSumExp(special, 0, special.length), VEC.logSumExp(special, 0, special.length));
    }

    @Test
    void siluMulBackwardMatchesScalar() {
        Random rnd = new Random(17);
        for (int n : SIZES) {
            float[] g = new float[n + 5], up = TestMatrices.randomFloats(rnd, n + 5), dOut = TestMatrices.randomFloats(rnd, n + 5);
            for (int i = 0; i < g.length; i++) {
                g[i] = (rnd.nextFloat() - 0.5f) * 30f;
            }
            float[] dg = TestMatrices.randomFloats(rnd, n + 5), du = TestMatrices.randomFloats(rnd, n + 5);
            float[] eg = dg.clone(), eu = du.clone(), ag = dg.clone(), au = du.clone();
            REF.siluMulBackward(eg, eu, dOut, g, up, 3, n);
            VEC.siluMulBackward(ag, au, dOut, g, up, 3, n);
            assertElementsClose(eg, ag, 2e-6, "siluMulBackward dGate n=" + n);
            assertElementsClose(eu, au, 2e-6, "siluMulBackward dUp n=" + n);
        }
    }

    @Test
    void siluMulMatchesScalar() {
        Random rnd = new Random(10);
        for (int n : SIZES) {
            float[] g = new float[n], up = TestMatrices.randomFloats(rnd, n);
            for (int i = 0; i < n; i++) {
                g[i] = (rnd.nextFloat() - 0.5f) * 30f;
            }
            float[] e = g.clone(), a = g.clone();
            REF.siluMul(e, up, n);
            VEC.siluMul(a, up, n);
            assertElementsClose(e, a, 1e-6, "siluMul n=" + n);
        }
    }

    @Test
    void ropeMatchesScalarIncludingPassThroughFeatures() {
        Random rnd = new Random(11);
        for (int headDim : new int[] {2, 8, 16, 34, 64, 66, 128, 130}) {
            for (int rotDim : new int[] {2, headDim / 2 & ~1, headDim}) {
                if (rotDim < 2) {
                    continue;
                }
                float[] x = TestMatrices.randomFloats(rnd, headDim + 5);
                float[] cos = TestMatrices.randomFloats(rnd, rotDim / 2 + 7), sin = TestMatrices.randomFloats(rnd, rotDim / 2 + 7);
                float[] e = x.clone(), a = x.clone();
                REF.rope(e, 5, cos, sin, 7, rotDim);
                VEC.rope(a, 5, cos, sin, 7, rotDim);
                assertElementsClose(e, a, 1e-6, "rope headDim=" + headDim + " rotDim=" + rotDim);
            }
        }
    }

    @Test
    void attendMatchesScalar() {
        Random rnd = new Random(12);
        for (int headDim : new int[] {1, 7, 8, 16, 17, 64, 65, 128}) {
            for (int len : new int[] {1, 3, 4, 7, 17, 33, 65, 257}) {
                int kvStride = 3 * headDim + 1, kvOff = 2;
                float[] keys = TestMatrices.randomFloats(rnd, kvOff + len * kvStride);
                float[] values = TestMatrices.randomFloats(rnd, kvOff + len * kvStride);
                float[] q = TestMatrices.randomFloats(rnd, headDim + 1);
                float scale = (float) (1 / Math.sqrt(headDim));
                float[] e = new float[headDim + 3], a = new float[headDim + 3];
                REF.attend(e, 3, q, 1, keys, values, kvOff, kvStride, len, headDim, scale, new float[len]);
                VEC.attend(a, 3, q, 1, keys, values, kvOff, kvStride, len, headDim, scale, new float[len + 2]);
                assertElementsClose(e, a, 10 * tol(Math.max(len, headDim)), "attend headDim=" + headDim + " len=" + len);
            }
        }
    }

    /**
     * A block of consecutive tokens attended causally (prefill): every row close to the scalar twin's, which is
     * attend row by row, for full and partial blocks, first rows that see one position or many, odd head widths
     * and strides; rows outside the block and the output's gaps are left as they were; the scratch the kernel
     * asks for is enough.
     */
    @Test
    void attendCausalBlockMatchesScalar() {
        Random rnd = new Random(15);
        for (int headDim : new int[] {1, 7, 16, 17, 64, 65}) {
            for (int rows : new int[] {1, 2, 5, VEC.causalBlockRows() / 2 + 1, VEC.causalBlockRows() - 1, VEC.causalBlockRows()}) {
                for (int firstLen : new int[] {1, 2, 9, 40, 300}) {
                    int len = firstLen + rows - 1;
                    int kvStride = headDim + 3, kvOff = 2, qStride = 2 * headDim + 1, outStride = headDim + 4;
                    int qOff = 1, outOff = 3;
                    float[] keys = TestMatrices.randomFloats(rnd, kvOff + len * kvStride);
                    float[] values = TestMatrices.randomFloats(rnd, kvOff + len * kvStride);
                    float[] q = TestMatrices.randomFloats(rnd, qOff + rows * qStride);
                    for (int i = 0; i < q.length; i++) {
                        q[i] *= 4;   // peaked probabilities, so that a misplaced mask or max would show
                    }
                    float scale = (float) (1 / Math.sqrt(headDim));
                    float[] e = new float[outOff + rows * outStride + 2];
                    java.util.Arrays.fill(e, -7f);
                    float[] a = e.clone();
                    REF.attendCausalBlock(e, outOff, outStride, q, qOff, qStride, rows, keys, values, kvOff, kvStride,
                            firstLen, headDim, scale, new float[REF.causalBlockScratch(len, headDim)]);
                    VEC.attendCausalBlock(a, outOff, outStride, q, qOff, qStride, rows, keys, values, kvOff, kvStride,
                            firstLen, headDim, scale, new float[VEC.causalBlockScratch(len, headDim)]);
                    assertElementsClose(e, a, 10 * tol(Math.max(len, headDim)),
                            "causal block headDim=" + headDim + " rows=" + rows + " firstLen=" + firstLen);
                    for (int i = 0; i < a.length; i++) {
                        int r = (i - outOff) / outStride, c = (i - outOff) % outStride;
                        if (i < outOff || r >= rows || c >= headDim) {
                            assertEquals(-7f, a[i], "element " + i + " is outside the block's rows");
                        }
                    }
                }
            }
        }
    }

    /**
     * The block backward adds to dQ, dKeys and dValues what the scalar twin (the per-row backward) adds, for
     * full and partial blocks, odd head widths and strides, starting from nonzero gradients; positions past the
     * block's reach and rows outside it keep theirs.
     */
    @Test
    void attendCausalBlockBackwardMatchesScalar() {
        Random rnd = new Random(16);
        for (int headDim : new int[] {1, 7, 16, 17, 64, 65}) {
            for (int rows : new int[] {1, 5, VEC.causalBlockRows() / 2 + 1, VEC.causalBlockRows()}) {
                for (int firstLen : new int[] {1, 9, 70}) {
                    int len = firstLen + rows - 1, extra = 3;   // positions past the block's reach
                    int kvStride = headDim + 3, kvOff = 2, qStride = 2 * headDim + 1, qOff = 1;
                    float[] keys = TestMatrices.randomFloats(rnd, kvOff + (len + extra) * kvStride);
                    float[] values = TestMatrices.randomFloats(rnd, keys.length);
                    float[] q = TestMatrices.randomFloats(rnd, qOff + rows * qStride + 2);
                    float[] dOut = TestMatrices.randomFloats(rnd, q.length);
                    for (int i = 0; i < q.length; i++) {
                        q[i] *= 3;
                    }
                    float[] dQ = TestMatrices.randomFloats(rnd, q.length), dK = TestMatrices.randomFloats(rnd, keys.length);
                    float[] dV = TestMatrices.randomFloats(rnd, keys.length);
                    float[][] e = {dQ.clone(), dK.clone(), dV.clone()}, a = {dQ.clone(), dK.clone(), dV.clone()};
                    float scale = (float) (1 / Math.sqrt(headDim));
                    REF.attendCausalBlockBackward(q, qOff, qStride, dOut, qOff, e[0], rows, keys, values, e[1], e[2], kvOff,
                            kvStride, firstLen, headDim, scale, new float[REF.causalBlockBackwardScratch(len, headDim)]);
                    VEC.attendCausalBlockBackward(q, qOff, qStride, dOut, qOff, a[0], rows, keys, values, a[1], a[2], kvOff,
                            kvStride, firstLen, headDim, scale, new float[VEC.causalBlockBackwardScratch(len, headDim)]);
                    String what = "causal block backward headDim=" + headDim + " rows=" + rows + " firstLen=" + firstLen;
                    for (int g = 0; g < 3; g++) {
                        assertElementsClose(e[g], a[g], 10 * tol(Math.max(len, headDim)), what + " " + "QKV".charAt(g));
                    }
                    for (int i = kvOff + len * kvStride; i < keys.length; i++) {
                        assertEquals(dK[i], a[1][i], what + ": dKeys past the block's reach");
                        assertEquals(dV[i], a[2][i], what + ": dValues past the block's reach");
                    }
                    for (int i = qOff + rows * qStride; i < q.length; i++) {
                        assertEquals(dQ[i], a[0][i], what + ": dQ past the block's rows");
                    }
                }
            }
        }
    }

    /**
     * Grouped-query heads attended together: each head the same bits as the vector kernel's attend of that
     * head alone (the sums run in the same order), and close to the scalar twin's per-head attend.
     */
    @Test
    void attendGroupIsAttendPerHead() {
        Random rnd = new Random(13);
        for (int group : new int[] {1, 2, 3, 8}) {
            for (int headDim : new int[] {7, 16, 64, 65}) {
                for (int len : new int[] {1, 3, 4, 7, 9, 17, 33, 257}) {
                    int kvStride = headDim + 5, kvOff = 2, outOff = 3, qOff = 1;
                    float[] keys = TestMatrices.randomFloats(rnd, kvOff + len * kvStride);
                    float[] values = TestMatrices.randomFloats(rnd, kvOff + len * kvStride);
                    float[] q = TestMatrices.randomFloats(rnd, qOff + group * headDim);
                    float scale = (float) (1 / Math.sqrt(headDim));
                    float[] grouped = new float[outOff + group * headDim + 2];
                    VEC.attendGroup(grouped, outOff, q, qOff, group, keys, values, kvOff, kvStride, len, headDim, scale,
                            new float[group * len + 1]);
                    float[] alone = new float[grouped.length], scalar = new float[grouped.length];
                    for (int g = 0; g < group; g++) {
                        VEC.attend(alone, outOff + g * headDim, q, qOff + g * headDim, keys, values, kvOff, kvStride, len,
                                headDim, scale, new float[len]);
                    }
                    REF.attendGroup(scalar, outOff, q, qOff, group, keys, values, kvOff, kvStride, len, headDim, scale,
                            new float[group * len]);
                    String what = "group=" + group + " headDim=" + headDim + " len=" + len;
                    org.junit.jupiter.api.Assertions.assertArrayEquals(alone, grouped, what);
                    assertElementsClose(scalar, grouped, 10 * tol(Math.max(len, headDim)), what);
                }
            }
        }
    }

    /**
     * A grouped attention split into ranges of positions and joined by the ranges' log-sum-exps (decode's split
     * over threads) equals the attention over all positions at once, for both kernels; one range gives the
     * same bits as no split.
     */
    @Test
    void attentionOverRangesCombinesToTheWhole() {
        Random rnd = new Random(14);
        for (Kernels k : new Kernels[] {REF, VEC}) {
            for (int group : new int[] {1, 3}) {
                for (int headDim : new int[] {7, 64}) {
                    for (int len : new int[] {2, 9, 100, 513}) {
                        int kvStride = headDim, kvOff = 5;
                        float[] keys = TestMatrices.randomFloats(rnd, kvOff + len * kvStride);
                        float[] values = TestMatrices.randomFloats(rnd, kvOff + len * kvStride);
                        float[] q = TestMatrices.randomFloats(rnd, group * headDim);
                        for (int i = 0; i < q.length; i++) {
                            q[i] *= 8;   // peaked scores, so the parts' weights differ by orders of magnitude
                        }
                        float scale = (float) (1 / Math.sqrt(headDim));
                        float[] whole = new float[group * headDim];
                        k.attendGroup(whole, 0, q, 0, group, keys, values, kvOff, kvStride, len, headDim, scale,
                                new float[group * len]);
                        for (int parts = 1; parts <= Math.min(len, 4); parts++) {
                            float[] partOut = new float[parts * group * headDim], lse = new float[parts * group];
                            for (int p = 0; p < parts; p++) {
                                int p0 = len * p / parts, p1 = len * (p + 1) / parts;
                                k.attendGroup(partOut, p * group * headDim, q, 0, group, keys, values,
                                        kvOff + p0 * kvStride, kvStride, p1 - p0, headDim, scale,
                                        new float[group * len], lse, p * group);
                            }
                            float[] joined = new float[group * headDim + 2];
                            for (int g = 0; g < group; g++) {
                                k.combineAttention(joined, 2 + g * headDim, partOut, g * headDim, group * headDim, lse, g,
                                        group, parts, headDim);
                            }
                            float[] got = Arrays.copyOfRange(joined, 2, joined.length);
                            String what = k.getClass().getSimpleName() + " group=" + group + " headDim=" + headDim
                                    + " len=" + len + " parts=" + parts;
                            if (parts == 1) {
                                org.junit.jupiter.api.Assertions.assertArrayEquals(whole, got, what);
                            } else {
                                assertElementsClose(whole, got, 10 * tol(Math.max(len, headDim)), what);
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * Attention over a bf16 cache packed two values per int: the vector kernel (its fast path at head widths of
     * 2L multiples, the interface's loops otherwise) against the scalar twin, and both against the f32 kernel
     * over the same values widened (bf16 values are exact in f32, so only the order of the sums differs),
     * log-sum-exps included.
     */
    @Test
    void attendGroupBf16MatchesScalarAndF32() {
        Random rnd = new Random(15);
        for (int group : new int[] {1, 2, 3}) {
            for (int headDim : new int[] {8, 32, 64, 66, 128}) {
                for (int len : new int[] {1, 7, 8, 9, 100, 257}) {
                    int kvStride = headDim + 4, kvOff = 6;
                    int elements = kvOff + len * kvStride;
                    int[] keys = new int[elements / 2 + 1], values = new int[elements / 2 + 1];
                    float[] keysF = new float[elements + 2], valuesF = new float[elements + 2];
                    for (int i = 0; i < keys.length; i++) {
                        keys[i] = rnd.nextInt();
                        values[i] = rnd.nextInt();
                        keys[i] = (keys[i] & 0x807F807F) | 0x3E003E00;   // exponents near 1: no inf, NaN or denormal
                        values[i] = (values[i] & 0x807F807F) | 0x3E003E00;
                        if (2 * i + 1 < keysF.length) {
                            keysF[2 * i] = HalfFloats.bf16ToFloat((short) keys[i]);
                            keysF[2 * i + 1] = HalfFloats.bf16ToFloat((short) (keys[i] >>> 16));
                            valuesF[2 * i] = HalfFloats.bf16ToFloat((short) values[i]);
                            valuesF[2 * i + 1] = HalfFloats.bf16ToFloat((short) (values[i] >>> 16));
                        }
                    }
                    float[] q = TestMatrices.randomFloats(rnd, 1 + group * headDim);
                    float scale = (float) (1 / Math.sqrt(headDim));
                    int work = group * len + Math.max(4096, 2 * headDim);
                    float[] vec = new float[2 + group * headDim], ref = vec.clone(), f32 = vec.clone();
                    float[] lseVec = new float[group], lseRef = new float[group], lseF32 = new float[group];
                    VEC.attendGroupBf16(vec, 2, q, 1, group, keys, values, kvOff, kvStride, len, headDim, scale,
                            new float[work], lseVec, 0);
                    REF.attendGroupBf16(ref, 2, q, 1, group, keys, values, kvOff, kvStride, len, headDim, scale,
                            new float[work], lseRef, 0);
                    VEC.attendGroup(f32, 2, q, 1, group, keysF, valuesF, kvOff, kvStride, len, headDim, scale,
                            new float[group * len], lseF32, 0);
                    String what = "group=" + group + " headDim=" + headDim + " len=" + len;
                    double tol = 10 * tol(Math.max(len, headDim));
                    assertElementsClose(ref, vec, tol, "vector against scalar, " + what);
                    assertElementsClose(f32, vec, tol, "bf16 against f32 over the same values, " + what);
                    assertElementsClose(lseRef, lseVec, tol, "log-sum-exp, vector against scalar, " + what);
                    assertElementsClose(lseF32, lseVec, tol, "log-sum-exp, bf16 against f32, " + what);
                }
            }
        }
    }

    /** Packed bf16 pairs widened in order, exactly, by both kernels, from odd offsets and for any even count. */
    @Test
    void widenBf16IsExact() {
        Random rnd = new Random(16);
        for (int count : new int[] {2, 6, 16, 32, 34, 130}) {
            int[] packed = new int[count / 2 + 3];   // from index 3: an offset that is not a multiple of anything
            for (int i = 0; i < packed.length; i++) {
                packed[i] = rnd.nextInt();
            }
            float[] want = new float[count + 1], vec = new float[count + 1], ref = new float[count + 1];
            for (int m = 0; m < count / 2; m++) {
                want[1 + 2 * m] = HalfFloats.bf16ToFloat((short) packed[3 + m]);
                want[2 + 2 * m] = HalfFloats.bf16ToFloat((short) (packed[3 + m] >>> 16));
            }
            VEC.widenBf16(vec, 1, packed, 3, count);
            REF.widenBf16(ref, 1, packed, 3, count);
            for (int i = 0; i < want.length; i++) {
                assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(vec[i]), "vector count=" + count + " [" + i + "]");
                assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(ref[i]), "scalar count=" + count + " [" + i + "]");
            }
        }
    }

    @Test
    void rejectsMismatchedMatmulBuffers() {
        Matrix w = Matrix.ofFloats(new float[6], 2, 3);
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> VEC.matmul(new float[4], new float[5], w, 2));
    }
}
