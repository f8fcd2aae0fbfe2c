package org.jtune.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;

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

    /** {@code out[off + i] = sumLanes(sc, i * L)} for {@code i < n}; with {@code add}, added to out instead. */
    static void sumRows(float[] out, int off, float[] sc, int n, boolean add) {
        for (int i = 0; i < n; i++) {
            float s = sumLanes(sc, i * L);
            out[off + i] = add ? out[off + i] + s : s;
        }
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

    /*
     * The same tree in registers. Level h (1, 2, 4, ..) adds each lane to lane i ^ h, so after the levels
     * below L every lane holds the sum of sumLanes' tree (IEEE addition commutes exactly, so the bits
     * match). merge folds two vectors at one level into one: lanes with bit h clear from x, set from y,
     * so k rows folded level by level end up row i in lane i. A 16-lane sum is four shuffles and four
     * adds against about thirty-five operations and a store-to-load round trip for intoArray/sumLanes:
     * +10-15 % on a bf16 decode row of 576 columns, and attention scores eight keys in one tree.
     * Used where the caller is small enough for C2 to inline them (a fold left as a call boxes its
     * vectors); the int8 row-pair kernel, past that budget, goes through {@link VectorKernels#sum8}.
     */
    private static VectorShuffle<Float> xorShuffle(int h) {
        return VectorShuffle.fromOp(VectorKernels.F, i -> h < L ? i ^ h : i);
    }

    private static VectorMask<Float> bitMask(int h) {
        return VectorMask.fromLong(VectorKernels.F, h < L ? bitLanes(h) : 0);
    }

    private static long bitLanes(int h) {
        long bits = 0;
        for (int i = 0; i < L; i++) {
            if ((i & h) != 0) {
                bits |= 1L << i;
            }
        }
        return bits;
    }

    private static final VectorShuffle<Float> X1 = xorShuffle(1), X2 = xorShuffle(2), X4 = xorShuffle(4),
            X8 = xorShuffle(8), X16 = xorShuffle(16), X32 = xorShuffle(32);
    private static final VectorMask<Float> M1 = bitMask(1), M2 = bitMask(2), M4 = bitMask(4);

    // Each helper stays under C2's 35-byte inlining limit for call sites it does not count as hot (once per
    // row is not): a helper that is not inlined takes its vectors boxed, and decode would allocate.

    /** The lane sum of v; for up to 16 lanes bit for bit sumLanes of v's lanes. */
    static float sum(FloatVector v) {
        return fold32(fold16(fold8(fold4(fold2(fold1(v)))))).lane(0);
    }

    static FloatVector fold1(FloatVector v) {
        return L > 1 ? v.add(v.rearrange(X1)) : v;
    }

    static FloatVector fold2(FloatVector v) {
        return L > 2 ? v.add(v.rearrange(X2)) : v;
    }

    static FloatVector fold4(FloatVector v) {
        return L > 4 ? v.add(v.rearrange(X4)) : v;
    }

    static FloatVector fold8(FloatVector v) {
        return L > 8 ? v.add(v.rearrange(X8)) : v;
    }

    static FloatVector fold16(FloatVector v) {
        return L > 16 ? v.add(v.rearrange(X16)) : v;
    }

    static FloatVector fold32(FloatVector v) {
        return L > 32 ? v.add(v.rearrange(X32)) : v;
    }

    /** Level-1 folds of x and y merged: even lanes x's pair sums, odd lanes y's. */
    static FloatVector merge1(FloatVector x, FloatVector y) {
        return fold1(x).blend(fold1(y), M1);
    }

    /** Level-2 folds of x and y merged (lanes with bit 1 from y). */
    static FloatVector merge2(FloatVector x, FloatVector y) {
        return fold2(x).blend(fold2(y), M2);
    }

    /** Level-4 folds of x and y merged (lanes with bit 2 from y). */
    static FloatVector merge4(FloatVector x, FloatVector y) {
        return fold4(x).blend(fold4(y), M4);
    }


    static FloatVector row(float[] sc, int i) {
        return FloatVector.fromArray(VectorKernels.F, sc, i * L);
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
