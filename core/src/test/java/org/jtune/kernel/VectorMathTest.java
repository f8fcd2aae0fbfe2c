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
}
