package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

class VectorMathTest {
    @Test
    void expIsWithinTwoUlpOfMathExpAndVectorEqualsScalarBitForBit() {
        FloatVector.class.getName();
        int lanes = VectorKernels.L;
        float[] x = new float[lanes], out = new float[lanes];
        for (float v = -87f; v < 88f; v += 0.0137f) {
            float expected = (float) Math.exp(v);
            float got = VectorMath.exp(v);
            assertTrue(Math.abs(got - expected) <= 2 * Math.ulp(expected), v + ": " + got + " vs " + expected);
        }
        for (int i = 0; i < 2000; i++) {
            for (int l = 0; l < lanes; l++) {
                x[l] = (float) ((i * lanes + l) * 0.0113 - 100);
            }
            VectorMath.exp(FloatVector.fromArray(VectorKernels.F, x, 0)).intoArray(out, 0);
            for (int l = 0; l < lanes; l++) {
                assertEquals(Float.floatToIntBits(VectorMath.exp(x[l])), Float.floatToIntBits(out[l]), "x=" + x[l]);
            }
        }
        assertEquals(1f, VectorMath.exp(0f));
        assertTrue(VectorMath.exp(-1000f) < 1e-37f && VectorMath.exp(-1000f) >= 0);
    }

    /**
     * The register fold and the merge tree (decode rows, attention scores) must give sumLanes' bits:
     * results may not depend on which of them a kernel uses. Values span magnitudes so that a different
     * order of additions would show.
     */
    @Test
    void foldAndMergeTreeGiveSumLanesBitForBit() {
        int lanes = VectorKernels.L;
        java.util.Random rnd = new java.util.Random(3);
        float[] sc = new float[8 * lanes], out = new float[lanes];
        for (int trial = 0; trial < 500; trial++) {
            for (int i = 0; i < sc.length; i++) {
                sc[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(9) - 4));
            }
            FloatVector[] v = new FloatVector[8];
            for (int k = 0; k < 8; k++) {
                v[k] = FloatVector.fromArray(VectorKernels.F, sc, k * lanes);
                assertEquals(Float.floatToIntBits(VectorMath.sumLanes(sc, k * lanes)), Float.floatToIntBits(VectorMath.sum(v[k])),
                        "sum of vector " + k);
            }
            if (lanes < 8 || lanes > 16) {
                continue;   // attention's eight-key tree runs for 8 and 16 lanes
            }
            FloatVector z = VectorMath.fold8(VectorMath.merge4(
                    VectorMath.merge2(VectorMath.merge1(v[0], v[1]), VectorMath.merge1(v[2], v[3])),
                    VectorMath.merge2(VectorMath.merge1(v[4], v[5]), VectorMath.merge1(v[6], v[7]))));
            z.intoArray(out, 0);
            float[] sums = new float[9], added = new float[10];
            for (int k = 0; k < added.length; k++) {
                added[k] = k * 0.37f - 1f;
            }
            float[] before = added.clone();
            VectorKernels.sum8(sums, 1, sc, false);
            VectorKernels.sum8(added, 1, sc, true);
            for (int k = 0; k < 8; k++) {
                assertEquals(Float.floatToIntBits(VectorMath.sumLanes(sc, k * lanes)), Float.floatToIntBits(out[k]), "lane " + k);
                assertEquals(Float.floatToIntBits(VectorMath.sumLanes(sc, k * lanes)), Float.floatToIntBits(sums[k + 1]), "sum8 " + k);
                assertEquals(Float.floatToIntBits(before[k + 1] + VectorMath.sumLanes(sc, k * lanes)),
                        Float.floatToIntBits(added[k + 1]), "sum8 adding " + k);
            }
            assertEquals(before[0], added[0]);
            assertEquals(before[9], added[9]);
        }
    }
}
