package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The optional OpenBLAS path ({@link BlasKernels}) against the ScalarKernels specification, with the tolerance of
 * {@link VectorKernelsParityTest#assertMatmulClose} (sgemm differs only in summation order). Tests that need the
 * library are skipped, saying so, where it is not installed ({@code apt-get install libopenblas0-pthread}); the
 * fallback tests run everywhere. Nothing here is timed.
 */
class BlasKernelsTest {
    static final int[] ODD = {1, 3, 17, 33, 257};
    static final WorkerPool POOL = new WorkerPool(3);
    static final Kernels VEC = new VectorKernels(POOL);
    static final Kernels REF = new ScalarKernels();
    static final String MISSING = "OpenBLAS is unavailable: " + OpenBlas.unavailableReason();

    @AfterAll
    static void closePool() {
        POOL.close();
    }

    /** Every product it can take goes to OpenBLAS, whatever the policy says. */
    static BlasKernels everyProduct() {
        Assumptions.assumeTrue(OpenBlas.isAvailable(), MISSING);
        return new BlasKernels(VEC, OpenBlas.shared(), POOL, true);
    }

    /** An f32 matrix sgemm can take in place: a float[] on the heap, or 64-byte-aligned native memory, read-only like a mapped file. */
    static Matrix alignedF32(Random rnd, int rows, int cols, boolean heap) {
        float[] v = TestMatrices.randomFloats(rnd, rows * cols);
        if (heap) {
            return new Matrix(MemorySegment.ofArray(v), DType.F32, rows, cols);
        }
        MemorySegment seg = Arena.ofAuto().allocate(4L * v.length, 64);
        MemorySegment.copy(v, 0, seg, Matrix.F32, 0, v.length);
        return new Matrix(seg.asReadOnly(), DType.F32, rows, cols);
    }

    static void check(Kernels k, Matrix w, int tokens, Random rnd, String what) {
        float[] x = TestMatrices.randomFloats(rnd, tokens * w.cols());
        float[] e = new float[tokens * w.rows()], a = new float[tokens * w.rows()];
        java.util.Arrays.fill(a, Float.NaN);   // every output must be written (beta = 0)
        REF.matmul(e, x, w, tokens);
        k.matmul(a, x, w, tokens);
        VectorKernelsParityTest.assertMatmulClose(e, a, x, w, tokens, what + " " + w.rows() + "x" + w.cols() + " t=" + tokens);
    }

    @Test
    void f32MatmulOnOpenBlasMatchesScalarOnOddSizes() {
        BlasKernels k = everyProduct();
        Random rnd = new Random(41);
        for (boolean heap : new boolean[] {true, false}) {
            for (int rows : ODD) {
                for (int cols : ODD) {
                    Matrix w = alignedF32(rnd, rows, cols, heap);
                    for (int tokens : ODD) {
                        check(k, w, tokens, rnd, "F32 " + (heap ? "heap" : "native"));
                    }
                }
            }
        }
    }

    /** bf16, f16, int8 and int4 weights widened per block of rows (several blocks and threads at 257 rows). */
    @Test
    void widenedMatmulOnOpenBlasMatchesScalarForEveryOtherDtype() {
        BlasKernels k = everyProduct();
        Random rnd = new Random(42);
        for (DType dt : new DType[] {DType.BF16, DType.F16}) {
            for (int rows : ODD) {
                for (int cols : ODD) {
                    Matrix w = TestMatrices.matrix(rnd, dt, rows, cols, true);
                    for (int tokens : ODD) {
                        check(k, w, tokens, rnd, dt.toString());
                    }
                }
            }
        }
        for (int rows : ODD) {
            for (int cols : new int[] {32, 96, 256}) {
                Matrix i8 = TestMatrices.i8Matrix(rnd, rows, cols, 32, true);
                Matrix i4 = TestMatrices.i4Matrix(rnd, rows, cols, 32, false, true);
                for (int tokens : ODD) {
                    check(k, i8, tokens, rnd, "I8 group 32");
                    check(k, i4, tokens, rnd, "int4 group 32");
                }
            }
        }
    }

    /** Column strips (Matrix#withStrips): f32 ones stay on the Java kernels, bf16 ones are widened row by row like any other. */
    @Test
    void matricesInColumnStripsGiveTheSameProducts() {
        BlasKernels k = everyProduct();
        Random rnd = new Random(44);
        Matrix[] ws = {alignedF32(rnd, 67, 257, false).withStrips(128), TestMatrices.matrix(rnd, DType.BF16, 67, 257, true).withStrips(64)};
        for (Matrix w : ws) {
            for (int tokens : new int[] {1, BlasKernels.MIN_TOKENS, 40}) {
                check(k, w, tokens, rnd, "strips " + w.dtype());
            }
            float[] dy = TestMatrices.randomFloats(rnd, 5 * w.rows());
            float[] e = new float[5 * w.cols()], a = new float[5 * w.cols()];
            REF.matmulBackwardInput(e, dy, w, 5);
            k.matmulBackwardInput(a, dy, w, 5);
            for (int t = 0; t < 5; t++) {
                for (int c = 0; c < w.cols(); c++) {
                    double scale = 0;
                    for (int r = 0; r < w.rows(); r++) {
                        scale += Math.abs((double) dy[t * w.rows() + r] * w.get(r, c));
                    }
                    int i = t * w.cols() + c;
                    assertClose(e[i], a[i], w.rows(), scale, "strips " + w.dtype() + " backward input " + i);
                }
            }
        }
    }

    /** The policy instance: f32 products from MIN_TOKENS tokens on go native, the rest to Java; all must agree. */
    @Test
    void policyRoutedMatmulMatchesScalarAcrossTheTokenThreshold() {
        Assumptions.assumeTrue(OpenBlas.isAvailable(), MISSING);
        Kernels k = new BlasKernels(VEC, OpenBlas.shared(), POOL, false);
        Random rnd = new Random(43);
        int t = BlasKernels.MIN_TOKENS;
        Matrix[] ws = {alignedF32(rnd, 67, 257, false), alignedF32(rnd, 33, 129, true),
                TestMatrices.matrix(rnd, DType.F32, 67, 257, true),   // unaligned: Java
                TestMatrices.matrix(rnd, DType.BF16, 67, 257, true)};
        for (Matrix w : ws) {
            for (int tokens : new int[] {1, t - 1, t, t + 1, 3 * t + 1}) {
                check(k, w, tokens, rnd, "policy " + w.dtype());
            }
        }
    }

    @Test
    void backwardProductsOnOpenBlasMatchScalarOnOddSizes() {
        BlasKernels k = everyProduct();
        Random rnd = new Random(44);
        for (int rows : ODD) {
            for (int cols : ODD) {
                Matrix w = alignedF32(rnd, rows, cols, true);
                for (int tokens : ODD) {
                    String what = rows + "x" + cols + " t=" + tokens;
                    float[] dy = TestMatrices.randomFloats(rnd, tokens * rows);
                    float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                    float[] dx0 = TestMatrices.randomFloats(rnd, tokens * cols);   // both accumulate into what is there
                    float[] e = dx0.clone(), a = dx0.clone();
                    REF.matmulBackwardInput(e, dy, w, tokens);
                    k.matmulBackwardInput(a, dy, w, tokens);
                    for (int t = 0; t < tokens; t++) {
                        for (int c = 0; c < cols; c++) {
                            double scale = Math.abs(dx0[t * cols + c]);
                            for (int r = 0; r < rows; r++) {
                                scale += Math.abs((double) dy[t * rows + r] * w.get(r, c));
                            }
                            assertClose(e[t * cols + c], a[t * cols + c], rows + 1, scale, "dx " + what);
                        }
                    }
                    float[] dw0 = TestMatrices.randomFloats(rnd, rows * cols);
                    e = dw0.clone();
                    a = dw0.clone();
                    REF.matmulBackwardWeight(e, dy, x, tokens, rows, cols);
                    k.matmulBackwardWeight(a, dy, x, tokens, rows, cols);
                    for (int r = 0; r < rows; r++) {
                        for (int c = 0; c < cols; c++) {
                            double scale = Math.abs(dw0[r * cols + c]);
                            for (int t = 0; t < tokens; t++) {
                                scale += Math.abs((double) dy[t * rows + r] * x[t * cols + c]);
                            }
                            assertClose(e[r * cols + c], a[r * cols + c], tokens + 1, scale, "dw " + what);
                        }
                    }
                }
            }
        }
    }

    static void assertClose(float expected, float actual, int n, double scale, String what) {
        assertTrue(Math.abs(expected - actual) <= VectorKernelsParityTest.tol(n) * scale + 1e-30,
                what + ": scalar " + expected + " openblas " + actual + " scale " + scale);
    }

    /** Decode (one token) stays on the Java kernel and allocates nothing, as MatmulAllocationTest asks of VectorKernels. */
    @Test
    void decodeThroughBlasKernelsAllocatesNothing() {
        Assumptions.assumeTrue(OpenBlas.isAvailable(), MISSING);
        Random rnd = new Random(45);
        try (WorkerPool pool = new WorkerPool(2)) {
            Kernels k = new BlasKernels(new VectorKernels(pool), OpenBlas.shared(), pool, false);
            long best = MatmulAllocationTest.decodeAllocation(k, alignedF32(rnd, 131, 515, false),
                    TestMatrices.randomFloats(rnd, 515));
            assertTrue(best <= 1024, "1000 decode matmuls through BlasKernels allocated " + best + " bytes on the caller");
        }
    }

    /** Operands too small for the sizes are an exception before native code runs, not a crash or silent corruption. */
    @Test
    void sgemmChecksOperandSizesBeforeCallingNativeCode() {
        Assumptions.assumeTrue(OpenBlas.isAvailable(), MISSING);
        OpenBlas b = OpenBlas.shared();
        MemorySegment a = MemorySegment.ofArray(new float[6]), bb = MemorySegment.ofArray(new float[6]);
        MemorySegment c = MemorySegment.ofArray(new float[4]);
        b.sgemm(false, true, 2, 2, 3, 1f, a, 3, bb, 3, 0f, c, 2);   // (2x3)(3x2): fits exactly
        assertThrows(IllegalArgumentException.class, () -> b.sgemm(false, true, 2, 3, 3, 1f, a, 3, bb, 3, 0f, c, 2));
        assertThrows(IllegalArgumentException.class, () -> b.sgemm(false, true, 2, 2, 3, 1f, a, 2, bb, 3, 0f, c, 2));
        assertThrows(IllegalArgumentException.class, () -> b.sgemm(true, false, 2, 2, 4, 1f, a, 2, bb, 2, 0f, c, 2));
    }

    // ---------------------------------------------------------------- when the library is absent (run everywhere)

    @Test
    void bogusLibraryPathGivesAClearReasonAndFallsBackToJava() {
        String bogus = "/nonexistent/jtune-test/libopenblas.so.0";
        OpenBlas b = OpenBlas.load(bogus);
        assertFalse(b.available());
        assertTrue(b.reason().contains("-Djtune.blas.lib=" + bogus) && b.reason().contains("no such file"), b.reason());
        assertThrows(IllegalStateException.class, () -> b.sgemm(false, true, 1, 1, 1, 1f, MemorySegment.NULL, 1,
                MemorySegment.NULL, 1, 0f, MemorySegment.NULL, 1));
        // auto: the pure-Java kernels, unchanged; on: an error that carries the reason; off: never looks
        assertSame(VEC, KernelProvider.withBlas(VEC, "auto", () -> b));
        JTuneException e = assertThrows(JTuneException.class, () -> KernelProvider.withBlas(VEC, "on", () -> b));
        assertTrue(e.getMessage().contains(bogus), e.getMessage());
        assertSame(VEC, KernelProvider.withBlas(VEC, "off", () -> {
            throw new AssertionError("off must not look for the library");
        }));
        assertThrows(JTuneException.class, () -> KernelProvider.withBlas(VEC, "sometimes", () -> b));
        assertThrows(IllegalArgumentException.class, () -> new BlasKernels(VEC, b, POOL, false));
    }

    /** A library that loads but is no CBLAS (libc here) is refused with a reason, not a crash. */
    @Test
    void libraryWithoutCblasIsRefusedWithAReason() {
        OpenBlas b = OpenBlas.load("libc.so.6");
        Assumptions.assumeTrue(b.reason() == null || !b.reason().contains("does not load"), "no libc.so.6 on this system");
        assertFalse(b.available());
        assertTrue(b.reason().contains("cblas_sgemm"), b.reason());
    }

    @Test
    void defaultSearchEitherLoadsOrSaysWhatItTried() {
        OpenBlas b = OpenBlas.load(null);
        if (b.available()) {
            assertTrue(b.description().contains("libopenblas"), b.description());
        } else {
            assertNotNull(b.reason());
            assertTrue(b.reason().contains("libopenblas.so.0") && b.reason().contains("libopenblas0-pthread"), b.reason());
        }
        assertEquals(OpenBlas.shared().available(), OpenBlas.isAvailable());
        assertEquals(OpenBlas.shared().reason(), OpenBlas.unavailableReason());
    }
}
