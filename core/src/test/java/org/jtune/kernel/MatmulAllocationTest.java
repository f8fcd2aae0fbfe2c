package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.util.Random;
import org.jtune.io.safetensors.DType;
import org.junit.jupiter.api.Test;

/**
 * Decode must not allocate: a tokens=1 matmul large enough to go through the worker pool is called
 * 1000 times after warm-up, and the calling thread's allocated-bytes counter must stay (almost)
 * flat. The bound is 1 KB rather than 0 because a JIT event during the measured window (a late
 * recompilation, a deoptimization running briefly in the interpreter, where Vector API boxes are
 * really allocated) can add a few hundred bytes; a real per-call allocation would show as at
 * least 1000 * 16 bytes. The measurement is retried a few times for the same reason, and the smallest
 * window is asserted.
 */
class MatmulAllocationTest {
    @Test
    void decodeMatmulAllocatesNothingOnTheCallingThreadAfterWarmUp() {
        Random rnd = new Random(1);
        try (WorkerPool pool = new WorkerPool(2)) {
            VectorKernels k = new VectorKernels(pool);
            // odd shapes exercise row and column tails; I8 needs a width its group size divides, and groups
            // 32, 16 and 8 take the unrolled decode, the one-vector-per-group decode and the any-group path
            Matrix[] ws = {
                TestMatrices.matrix(rnd, DType.BF16, 131, 515, true),
                TestMatrices.matrix(rnd, DType.F32, 131, 515, true),
                TestMatrices.matrix(rnd, DType.F16, 131, 515, true),
                TestMatrices.matrix(rnd, DType.BF16, 131, 515, true).withStrips(128),   // column strips, a short last one
                TestMatrices.i8Matrix(rnd, 131, 512, 32, true),
                TestMatrices.i8Matrix(rnd, 131, 512, 32, true).withRowPairs(),
                TestMatrices.i8Matrix(rnd, 131, 512, 512, true).withRowPairs(),   // per channel: the generic pair loop
                TestMatrices.i8Matrix(rnd, 131, 512, 32, true).withRowPairs().withStrips(192),
                TestMatrices.i8Matrix(rnd, 131, 512, 512, true).withRowPairs().withStrips(192),
                TestMatrices.i8Matrix(rnd, 131, 512, 16, true),
                TestMatrices.i8Matrix(rnd, 131, 520, 8, true),
            };
            for (Matrix w : ws) {
                String dt = w.dtype() + (w.dtype() == DType.I8 ? " group " + w.groupSize() + (w.rowPairs() ? " row pairs" : "") : "")
                        + (w.strip() > 0 ? " strips " + w.strip() : "");
                int cols = w.cols();
                long best = decodeAllocation(k, w, TestMatrices.randomFloats(rnd, cols));
                assertTrue(best <= 1024, dt + ": 1000 decode matmuls allocated " + best + " bytes on the caller");
            }
        }
    }

    /**
     * Bytes the calling thread allocates for 1000 single-token matmuls, after 20,000 to let C2 compile
     * them; the least of up to five tries, stopping at the first of at most 1 KiB (a late compile or
     * a GC log line can allocate once).
     */
    static long decodeAllocation(Kernels k, Matrix w, float[] x) {
        float[] out = new float[w.rows()];
        return allocation(() -> k.matmul(out, x, w, 1));
    }

    /** The same for {@code call}: warmed up 20,000 times, then the least of up to five windows of 1000 calls. */
    static long allocation(Runnable call) {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        for (int i = 0; i < 20_000; i++) {
            call.run();
        }
        long best = Long.MAX_VALUE;
        for (int attempt = 0; attempt < 5 && best > 1024; attempt++) {
            long before = mx.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < 1000; i++) {
                call.run();
            }
            best = Math.min(best, mx.getCurrentThreadAllocatedBytes() - before);
        }
        return best;
    }

    /** A layer's q/k/v as one shared decode pass allocates nothing either (its job object is reused). */
    @Test
    void sharedDecodePassAllocatesNothing() {
        Random rnd = new Random(2);
        try (WorkerPool pool = new WorkerPool(2)) {
            VectorKernels k = new VectorKernels(pool);
            Matrix[] ws = {
                TestMatrices.i8Matrix(rnd, 576, 576, 32, true).withRowPairs(),
                TestMatrices.i8Matrix(rnd, 192, 576, 32, true).withRowPairs(),
                TestMatrices.matrix(rnd, DType.BF16, 192, 576, true),
            };
            float[] x = TestMatrices.randomFloats(rnd, 576);
            float[][] outs = {new float[576], new float[192], new float[192]};
            long best = allocation(() -> k.matmulShared(outs, x, ws, 3, 1));
            assertTrue(best <= 1024, "1000 shared decode passes allocated " + best + " bytes on the caller");
        }
    }
}
