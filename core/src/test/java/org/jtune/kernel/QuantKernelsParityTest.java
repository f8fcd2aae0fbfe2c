package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.jtune.io.safetensors.DType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The int4 and W8A8 kernels of VectorKernels against the ScalarKernels specification on odd sizes. Int4
 * uses the float tolerance of {@link VectorKernelsParityTest} (summation order only); W8A8 must be
 * bit-identical, since its dot products are exact integers and the final scaling is one shared expression.
 */
class QuantKernelsParityTest {
    static final int[] TOKENS = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    static final WorkerPool POOL = new WorkerPool(3);
    static final Kernels VEC = new VectorKernels(POOL);
    static final Kernels REF = new ScalarKernels();

    @AfterAll
    static void closePool() {
        POOL.close();
    }

    @Test
    void int4MatmulMatchesScalarForOddRowsGroupsAndTokenCounts() {
        Random rnd = new Random(21);
        for (boolean offHeap : new boolean[] {false, true}) {
            for (boolean symmetric : new boolean[] {true, false}) {
                // groups 32/64/128 take the vector path; 8, 10 and 96 (not a multiple of 2L at 16 lanes) the scalar one
                for (int[] cg : new int[][] {{32, 32}, {64, 32}, {128, 64}, {256, 128}, {384, 128}, {96, 96},
                                             {80, 10}, {64, 8}, {1024, 32}, {1024, 128}}) {
                    int cols = cg[0], group = cg[1];
                    for (int rows : new int[] {1, 3, 5, 7, 13, 67}) {
                        Matrix w = TestMatrices.i4Matrix(rnd, rows, cols, group, symmetric, offHeap);
                        for (int tokens : TOKENS) {
                            float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                            float[] e = new float[tokens * rows], a = new float[tokens * rows];
                            REF.matmul(e, x, w, tokens);
                            VEC.matmul(a, x, w, tokens);
                            VectorKernelsParityTest.assertMatmulClose(e, a, x, w, tokens, "I4 "
                                    + (symmetric ? "sym" : "asym") + (offHeap ? " off-heap " : " heap ") + rows + "x"
                                    + cols + " group " + group + " t=" + tokens);
                        }
                    }
                }
            }
        }
    }

    @Test
    void int4MatmulIsIdenticalForOneTwoAndThreeThreads() {
        Random rnd = new Random(22);
        Matrix w = TestMatrices.i4Matrix(rnd, 203, 512, 32, false, true);
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
                        assertArrayEquals(first, out, "tokens=" + tokens + " threads=" + threads);
                    }
                }
            }
        }
    }

    @Test
    void int4GatherRowIsBitExact() {
        Random rnd = new Random(23);
        for (boolean symmetric : new boolean[] {true, false}) {
            for (int[] cg : new int[][] {{32, 32}, {96, 32}, {80, 10}, {256, 128}}) {
                Matrix m = TestMatrices.i4Matrix(rnd, 3, cg[0], cg[1], symmetric, true);
                for (int r = 0; r < 3; r++) {
                    float[] a = new float[cg[0] + 2];
                    VEC.gatherRow(a, 2, m, r);
                    for (int c = 0; c < cg[0]; c++) {
                        assertEquals(Float.floatToRawIntBits(m.get(r, c)), Float.floatToRawIntBits(a[2 + c]),
                                "cols " + cg[0] + " group " + cg[1] + " row " + r + " col " + c);
                    }
                }
            }
        }
    }

    @Test
    void int4GetDecodesNibblesLowFirst() {
        MemorySegment seg = MemorySegment.ofArray(new byte[] {(byte) 0xA3, (byte) 0x0F});
        Matrix sym = Matrix.int4(seg, 1, 4, new float[] {0.5f}, 4, null);
        assertEquals((3 - 8) * 0.5f, sym.get(0, 0));
        assertEquals((10 - 8) * 0.5f, sym.get(0, 1));
        assertEquals((15 - 8) * 0.5f, sym.get(0, 2));
        assertEquals((0 - 8) * 0.5f, sym.get(0, 3));
        Matrix asym = Matrix.int4(seg, 1, 4, new float[] {0.25f, 2f}, 2, new float[] {1f, 15f});
        assertEquals((3 - 1) * 0.25f, asym.get(0, 0));
        assertEquals((10 - 1) * 0.25f, asym.get(0, 1));
        assertEquals(0f, asym.get(0, 2));
        assertEquals((0 - 15) * 2f, asym.get(0, 3));
        assertThrows(IllegalArgumentException.class, () -> Matrix.int4(MemorySegment.ofArray(new byte[3]), 2, 3,
                new float[] {1, 1}, 3, null));
    }

    /** A per-channel I8 matrix with random codes over the whole int8 range, -128 included. */
    static Matrix perChannel(Random rnd, int rows, int cols, boolean offHeap) {
        return TestMatrices.i8Matrix(rnd, rows, cols, cols, offHeap);
    }

    @Test
    void w8a8IsBitIdenticalToScalarOnOddSizesForBothScaleKinds() {
        Random rnd = new Random(24);
        for (boolean offHeap : new boolean[] {false, true}) {
            for (int cols : new int[] {1, 3, 7, 15, 16, 17, 33, 64, 100, 257, 1023}) {
                for (int rows : new int[] {1, 3, 4, 7, 13, 67}) {
                    Matrix w = perChannel(rnd, rows, cols, offHeap);
                    for (int tokens : TOKENS) {
                        float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                        for (float[] s : new float[][] {W8A8.dynamicActScales(x, tokens, cols), {0.8f / 127}}) {
                            float[] e = new float[tokens * rows], a = new float[tokens * rows];
                            REF.matmulW8A8(e, x, w, tokens, s);
                            VEC.matmulW8A8(a, x, w, tokens, s);
                            assertArrayEquals(e, a, rows + "x" + cols + " t=" + tokens + " scales " + s.length);
                        }
                    }
                }
            }
        }
    }

    @Test
    void w8a8ParallelSizedIsBitIdenticalAndCloseToFloatMatmul() {
        Random rnd = new Random(25);
        Matrix w = perChannel(rnd, 259, 4097, true);
        for (int tokens : new int[] {1, 5, 9}) {
            float[] x = TestMatrices.randomFloats(rnd, tokens * 4097);
            float[] s = W8A8.dynamicActScales(x, tokens, 4097);
            float[] e = new float[tokens * 259], a = new float[tokens * 259], f = new float[tokens * 259];
            REF.matmulW8A8(e, x, w, tokens, s);
            VEC.matmulW8A8(a, x, w, tokens, s);
            assertArrayEquals(e, a, "t=" + tokens);
            VEC.matmul(f, x, w, tokens);   // the same weights with f32 activations
            for (int i = 0; i < f.length; i++) {
                // activation rounding: |err| <= sum_c |w_c| * s_t / 2
                int t = i / 259, r = i % 259;
                double bound = 0;
                for (int c = 0; c < 4097; c++) {
                    bound += Math.abs(w.get(r, c));
                }
                bound = bound * s[t] / 2 + 1e-3;
                assertTrue(Math.abs(a[i] - f[i]) <= bound, a[i] + " vs " + f[i] + " bound " + bound);
            }
        }
    }

    @Test
    void w8a8ExactIntegerArithmeticAtTheLargestWidth() {
        // every product 127 * -128 over 65536 columns: -1,065,353,216, which fits in int32
        int cols = W8A8.MAX_COLS, rows = 5;
        MemorySegment seg = Arena.ofAuto().allocate((long) rows * cols);
        seg.fill((byte) -128);
        float[] scales = {1f, 1f, 1f, 1f, 1f};
        Matrix w = new Matrix(seg, DType.I8, rows, cols, scales, cols);
        float[] x = new float[cols];
        java.util.Arrays.fill(x, 127f);
        float[] e = new float[rows], a = new float[rows];
        REF.matmulW8A8(e, x, w, 1, new float[] {1f});
        VEC.matmulW8A8(a, x, w, 1, new float[] {1f});
        assertEquals(-1_065_353_216f, e[0]);
        assertArrayEquals(e, a);
    }

    @Test
    void w8a8RejectsGroupedWeightsWideMatricesAndBadScales() {
        Random rnd = new Random(26);
        Matrix grouped = TestMatrices.i8Matrix(rnd, 2, 64, 32, false);
        Matrix ok = perChannel(rnd, 2, 64, false);
        Matrix wide = new Matrix(Arena.ofAuto().allocate(W8A8.MAX_COLS + 2), DType.I8, 1, W8A8.MAX_COLS + 2,
                new float[] {1f}, W8A8.MAX_COLS + 2);
        for (Kernels k : new Kernels[] {REF, VEC}) {
            assertThrows(IllegalArgumentException.class, () -> k.matmulW8A8(new float[2], new float[64], grouped, 1, new float[] {1f}));
            assertThrows(IllegalArgumentException.class, () -> k.matmulW8A8(new float[2], new float[64], Matrix.ofFloats(new float[128], 2, 64), 1, new float[] {1f}));
            assertThrows(IllegalArgumentException.class, () -> k.matmulW8A8(new float[1], new float[W8A8.MAX_COLS + 2], wide, 1, new float[] {1f}));
            assertThrows(IllegalArgumentException.class, () -> k.matmulW8A8(new float[6], new float[192], ok, 3, new float[] {1f, 1f}));
            assertThrows(IllegalArgumentException.class, () -> k.matmulW8A8(new float[2], new float[64], ok, 1, new float[] {0f}));
        }
    }

    @Test
    void dynamicActScalesAreMaxAbsOver127AndOneForZeroRows() {
        float[] x = {0.5f, -2.54f, 1f, 0f, 0f, 0f};
        float[] s = W8A8.dynamicActScales(x, 2, 3);
        assertEquals(2.54f / 127f, s[0]);
        assertEquals(1f, s[1]);
        assertEquals(-127, W8A8.quantize(-2.54f, s[0]));
        assertEquals(127, W8A8.quantize(300f, 1f));
        assertEquals(1, W8A8.quantize(0.5f, 1f));   // Math.round: half up
        assertEquals(0, W8A8.quantize(-0.5f, 1f));
        assertEquals(0, x[3] / s[1] == 0 ? 0 : 1);
        assertEquals(ValueLayout.JAVA_BYTE.byteSize(), 1);
    }
}
