package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** Decode (tokens = 1) with int4 weights and the W8A8 matmul allocates nothing on the caller: see {@link MatmulAllocationTest}. */
class QuantMatmulAllocationTest {
    static void assertNoAllocation(String what, Runnable call) {
        long best = MatmulAllocationTest.allocation(call);
        assertTrue(best <= 1024, what + ": 1000 decode calls allocated " + best + " bytes on the caller");
    }

    @Test
    void int4AndW8A8DecodeAllocateNothingOnTheCallingThreadAfterWarmUp() {
        Random rnd = new Random(1);
        try (WorkerPool pool = new WorkerPool(2)) {
            VectorKernels k = new VectorKernels(pool);
            float[] out = new float[131];
            for (boolean symmetric : new boolean[] {true, false}) {
                for (int group : new int[] {32, 128, 8}) {
                    Matrix w = TestMatrices.i4Matrix(rnd, 131, 512, group, symmetric, true);
                    float[] x = TestMatrices.randomFloats(rnd, 512);
                    assertNoAllocation("int4 group " + group + (symmetric ? " sym" : " asym"), () -> k.matmul(out, x, w, 1));
                }
            }
            Matrix w8 = TestMatrices.i8Matrix(rnd, 131, 515, 515, true);
            float[] x = TestMatrices.randomFloats(rnd, 515);
            float[] s = new float[1];
            assertNoAllocation("W8A8", () -> {
                W8A8.dynamicActScales(s, x, 1, 515);
                k.matmulW8A8(out, x, w8, 1, s);
            });
        }
    }
}
