package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.jtune.io.safetensors.DType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Column strips ({@link Matrix#withStrips}): the same matrix in another byte order, so every element, every
 * gathered row and the scalar matmul are bit for bit those of the original, and the vector kernels (decode
 * rows, 4x4 tiles, int8 row pairs, packed prefill, the shared decode pass) match the scalar spec on widths
 * that are not a multiple of the strip and odd row counts.
 */
class MatrixStripsTest {
    static final WorkerPool POOL = new WorkerPool(3);
    static final Kernels VEC = new VectorKernels(POOL);
    static final Kernels REF = new ScalarKernels();
    static final DType[] DTYPES = {DType.F32, DType.BF16, DType.F16};

    @AfterAll
    static void closePool() {
        POOL.close();
    }

    @Test
    void stripsHoldEveryElementAndGatherBitExact() {
        Random rnd = new Random(1);
        for (DType dt : DTYPES) {
            for (int[] shape : new int[][] {{1, 65}, {7, 128}, {5, 200}, {3, 1023}}) {
                int rows = shape[0], cols = shape[1];
                Matrix plain = TestMatrices.matrix(rnd, dt, rows, cols, true);
                Matrix striped = plain.withStrips(64);
                assertEquals(64, striped.strip());
                assertEquals(plain.data().byteSize(), striped.data().byteSize());
                for (int r = 0; r < rows; r++) {
                    float[] e = new float[cols + 1], a = new float[cols + 1], s = new float[cols + 1];
                    REF.gatherRow(e, 1, plain, r);
                    VEC.gatherRow(a, 1, striped, r);
                    REF.gatherRow(s, 1, striped, r);
                    assertArrayEquals(e, a, dt + " " + rows + "x" + cols + " row " + r);
                    assertArrayEquals(e, s, dt + " " + rows + "x" + cols + " row " + r + " (scalar)");
                    for (int c = 0; c < cols; c++) {
                        assertEquals(plain.get(r, c), striped.get(r, c));
                    }
                }
            }
        }
    }

    @Test
    void stripedMatmulMatchesScalarForDecodeTilesAndPrefill() {
        Random rnd = new Random(2);
        for (DType dt : DTYPES) {
            for (int[] shape : new int[][] {{1, 65}, {7, 129}, {13, 200}, {67, 1023}, {203, 517}}) {
                int rows = shape[0], cols = shape[1];
                Matrix plain = TestMatrices.matrix(rnd, dt, rows, cols, true);
                for (int strip : new int[] {64, 128}) {
                    if (strip >= cols) {
                        continue;
                    }
                    Matrix striped = plain.withStrips(strip);
                    for (int tokens : new int[] {1, 3, 4, 9, VectorKernels.PACK_MIN_TOKENS, 33}) {
                        float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                        float[] e = new float[tokens * rows], a = new float[tokens * rows], s = new float[tokens * rows];
                        REF.matmul(e, x, plain, tokens);
                        REF.matmul(s, x, striped, tokens);
                        VEC.matmul(a, x, striped, tokens);
                        String what = dt + " " + rows + "x" + cols + " strip " + strip + " t=" + tokens;
                        assertArrayEquals(e, s, what + " (scalar, both layouts)");
                        VectorKernelsParityTest.assertMatmulClose(e, a, x, plain, tokens, what);
                    }
                }
            }
        }
    }

    @Test
    void stripedMatmulIsIdenticalForOneTwoAndThreeThreadsAndInTheSharedPass() {
        Random rnd = new Random(3);
        int cols = 517;
        Matrix[] ws = {TestMatrices.matrix(rnd, DType.BF16, 203, cols, true).withStrips(128),
                TestMatrices.matrix(rnd, DType.F16, 67, cols, true).withStrips(192),
                TestMatrices.i8Matrix(rnd, 33, 512, 32, true).withRowPairs()};
        float[] x = TestMatrices.randomFloats(rnd, 6 * cols);
        for (int m = 0; m < 2; m++) {
            for (int tokens : new int[] {1, 6}) {
                float[] first = null;
                for (int threads = 1; threads <= 3; threads++) {
                    try (WorkerPool p = new WorkerPool(threads)) {
                        float[] out = new float[tokens * ws[m].rows()];
                        new VectorKernels(p).matmul(out, x, ws[m], tokens);
                        if (first == null) {
                            first = out;
                        } else {
                            assertArrayEquals(first, out, ws[m].dtype() + " tokens=" + tokens + " threads=" + threads);
                        }
                    }
                }
            }
        }
        float[][] outs = {new float[203], new float[67]};
        VEC.matmulShared(outs, x, ws, 2, 1);
        for (int m = 0; m < 2; m++) {
            float[] alone = new float[ws[m].rows()];
            VEC.matmul(alone, x, ws[m], 1);
            assertArrayEquals(alone, outs[m], "shared pass, matrix " + m);
        }
    }

    /** I8 row pairs in strips: group 32 (the straight-line pair kernel), 64, and per channel (a group across strips). */
    @Test
    void int8RowPairsInStripsMatchTheScalarSpec() {
        Random rnd = new Random(5);
        for (int[] shape : new int[][] {{1, 192}, {2, 128}, {7, 320}, {67, 576}, {131, 1536}}) {
            int rows = shape[0], cols = shape[1];
            for (int group : new int[] {32, 64, cols}) {
                if (cols % group != 0) {
                    continue;
                }
                Matrix plain = TestMatrices.i8Matrix(rnd, rows, cols, group, true);
                Matrix pairs = plain.withRowPairs();
                if (!pairs.rowPairs()) {   // a single row stays row-major, and row-major int8 takes no strips
                    assertSame(pairs, pairs.withStrips(64));
                    continue;
                }
                for (int strip : new int[] {64, 128, 512}) {
                    Matrix striped = pairs.withStrips(strip);
                    String what = "I8 " + rows + "x" + cols + " group " + group + " strip " + strip;
                    if (strip >= cols || (group != cols && strip % group != 0)) {
                        assertSame(pairs, striped, what);
                        continue;
                    }
                    assertEquals(strip, striped.strip(), what);
                    for (int r = 0; r < rows; r++) {
                        float[] e = new float[cols], a = new float[cols];
                        REF.gatherRow(e, 0, plain, r);
                        VEC.gatherRow(a, 0, striped, r);
                        assertArrayEquals(e, a, what + " row " + r);
                    }
                    for (int tokens : new int[] {1, 2, 5, VectorKernels.PACK_MIN_TOKENS, 19}) {
                        float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                        float[] e = new float[tokens * rows], a = new float[tokens * rows], s = new float[tokens * rows];
                        REF.matmul(e, x, plain, tokens);
                        REF.matmul(s, x, striped, tokens);
                        VEC.matmul(a, x, striped, tokens);
                        assertArrayEquals(e, s, what + " t=" + tokens + " (scalar, both layouts)");
                        VectorKernelsParityTest.assertMatmulClose(e, a, x, plain, tokens, what + " t=" + tokens);
                    }
                }
            }
        }
    }

    @Test
    void onlyWideFloatMatricesAndInt8RowPairsTakeStripsAndBadWidthsAreRefused() {
        Random rnd = new Random(4);
        Matrix narrow = TestMatrices.matrix(rnd, DType.BF16, 3, 64, true);
        assertSame(narrow, narrow.withStrips(64));
        Matrix i8 = TestMatrices.i8Matrix(rnd, 4, 256, 32, true);
        assertSame(i8, i8.withStrips(64));   // row-major int8 (files written before row pairs) stays as it is
        Matrix group96 = TestMatrices.i8Matrix(rnd, 4, 384, 96, true).withRowPairs();
        assertSame(group96, group96.withStrips(128));   // a group would straddle two strips
        Matrix striped = TestMatrices.matrix(rnd, DType.F32, 3, 200, true).withStrips(64);
        assertSame(striped, striped.withStrips(128));
        Matrix wide = TestMatrices.matrix(rnd, DType.F32, 3, 200, true);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> wide.withStrips(100));
        assertEquals(true, e.getMessage().contains("multiple of " + Matrix.STRIP_ALIGN), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> new Matrix(i8.data(), DType.I8, 4, 256, i8.scales(), 32, null, false, 64));
    }
}
