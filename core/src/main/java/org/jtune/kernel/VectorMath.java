package org.jtune.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * exp(x) in plain float arithmetic (Cephes expf: Cody-Waite reduction by ln 2 and a degree-6
 * polynomial, within 2 ulp), with a vector and a scalar version computing the same operations. The
 * Vector API's EXP is an intrinsic in C2 but a different Java fallback in the interpreter, so its
 * last bits change with the JIT tier; results that must be reproducible (a resumed training run,
 * a reloaded model) need the same bits every time. The same goes for lane sums. Kept out of
 * VectorKernels so C2 may inline it.
 */
final class VectorMath {
    private static final int L = VectorKernels.L;
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float MAX = 88.3762626647949f;
    private static final float MIN = -87.3365478515625f;
    private static final float ROUND = 12582912f;   // 1.5 * 2^23: adding and subtracting it rounds to an integer
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
            P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    private VectorMath() {
    }

    /**
     * A per-thread buffer for lane sums. reduceLanes(ADD) may add lanes in any order ("the result
     * may vary") and the interpreter and C2 do differ, which breaks bit-exact resumption of training;
     * so kernels store their accumulators here ({@code intoArray}, one intrinsic, never boxed) and
     * add the lanes left to right with {@link #sumLanes}.
     */
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[16 * L]);

    static float[] scratch() {
        return SCRATCH.get();
    }

    /**
     * The L lanes at {@code sc[off..]} summed as a balanced tree in a fixed order (((0+1)+(2+3))+...):
     * four dependent adds at 16 lanes instead of fifteen. A decode row of 576 columns is only 36
     * vectors, and the left-to-right chain's latency was a visible share of each row's time.
     */
    static float sumLanes(float[] sc, int off) {
        if (L == 16) {
            float a = (sc[off] + sc[off + 1]) + (sc[off + 2] + sc[off + 3]);
            float b = (sc[off + 4] + sc[off + 5]) + (sc[off + 6] + sc[off + 7]);
            float c = (sc[off + 8] + sc[off + 9]) + (sc[off + 10] + sc[off + 11]);
            float d = (sc[off + 12] + sc[off + 13]) + (sc[off + 14] + sc[off + 15]);
            return (a + b) + (c + d);
        } else if (L == 8) {
            return ((sc[off] + sc[off + 1]) + (sc[off + 2] + sc[off + 3]))
                    + ((sc[off + 4] + sc[off + 5]) + (sc[off + 6] + sc[off + 7]));
        } else if (L == 4) {
            return (sc[off] + sc[off + 1]) + (sc[off + 2] + sc[off + 3]);
        }
        float s = sc[off];
        for (int i = 1; i < L; i++) {
            s += sc[off + i];
        }
        return s;
    }

    static FloatVector exp(FloatVector x) {
        x = x.max(MIN).min(MAX);
        FloatVector k = x.mul(LOG2E).add(ROUND).sub(ROUND);
        FloatVector r = x.sub(k.mul(LN2_HI)).sub(k.mul(LN2_LO));
        FloatVector r2 = r.mul(r);
        FloatVector p = r.mul(P0).add(P1).mul(r).add(P2).mul(r).add(P3).mul(r).add(P4).mul(r).add(P5)
                .mul(r2).add(r).add(1f);
        IntVector bits = ((IntVector) k.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
        return p.mul(bits.reinterpretAsFloats());
    }

    static float exp(float x) {
        x = Math.min(Math.max(x, MIN), MAX);
        float k = x * LOG2E + ROUND - ROUND;
        float r = x - k * LN2_HI - k * LN2_LO;
        float r2 = r * r;
        float p = ((((((r * P0 + P1) * r + P2) * r + P3) * r + P4) * r + P5) * r2 + r) + 1f;
        return p * Float.intBitsToFloat(((int) k + 127) << 23);
    }
}
