package org.jtune.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class HalfFloatsTest {

    private static short bf16(float f) {
        return HalfFloats.floatToBf16(f);
    }

    @Test
    void bf16WideningIsTheTopHalfOfAFloat() {
        for (int b = 0; b < 65536; b++) {
            float f = HalfFloats.bf16ToFloat((short) b);
            assertEquals(b << 16, Float.floatToRawIntBits(f), "bits " + Integer.toHexString(b));
        }
    }

    @Test
    void bf16NarrowingRoundTripsEveryNonNanPattern() {
        for (int b = 0; b < 65536; b++) {
            float f = HalfFloats.bf16ToFloat((short) b);
            if (!Float.isNaN(f)) {
                assertEquals((short) b, bf16(f), "bits " + Integer.toHexString(b));
            }
        }
    }

    @Test
    void bf16RoundsHalfwayCasesToEven() {
        // bf16 keeps 7 mantissa bits: around 1.0 the step is 2^-7, so 2^-8 is exactly half a step.
        float step = 0x1p-7f, half = 0x1p-8f;
        assertEquals(bf16(1f), bf16(1f + half), "tie at even mantissa stays down");
        assertEquals(bf16(1f + 2 * step), bf16(1f + step + half), "tie at odd mantissa goes up to even");
        assertEquals(bf16(1f + step), bf16(Math.nextUp(1f + half)), "just above a tie rounds up");
        assertEquals(bf16(1f), bf16(Math.nextDown(1f + half)), "just below a tie rounds down");
        assertEquals((short) 0xBF80, bf16(-1f));
        assertEquals((short) 0xBF80, bf16(-(1f + half)), "ties to even for negatives too");
        // A value whose rounding carries into the exponent.
        assertEquals(2f, HalfFloats.bf16ToFloat(bf16(Math.nextDown(2f))));
    }

    @Test
    void bf16HandlesSpecialValuesLikeTorch() {
        assertEquals((short) 0x7F80, bf16(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xFF80, bf16(Float.NEGATIVE_INFINITY));
        assertEquals((short) 0x0000, bf16(0f));
        assertEquals((short) 0x8000, bf16(-0f));
        // torch's c10::BFloat16 maps every NaN to 0x7FC0; a naive rounding would turn some NaNs into Inf.
        assertEquals((short) 0x7FC0, bf16(Float.NaN));
        assertEquals((short) 0x7FC0, bf16(Float.intBitsToFloat(0x7F80_0001)));
        assertEquals((short) 0x7FC0, bf16(Float.intBitsToFloat(0xFFFF_FFFF)));
        assertTrue(Float.isNaN(HalfFloats.bf16ToFloat((short) 0x7FC0)));
        // The largest float is above bf16's largest finite value by more than half a step: Inf.
        assertEquals((short) 0x7F80, bf16(Float.MAX_VALUE));
        assertEquals((short) 0x7F7F, bf16(HalfFloats.bf16ToFloat((short) 0x7F7F)));
    }

    @Test
    void bf16KeepsSubnormals() {
        // bf16 has float32's exponent range, so float subnormals with high bits survive exactly.
        float smallestBf16Subnormal = Float.intBitsToFloat(0x0001_0000);
        assertEquals((short) 0x0001, bf16(smallestBf16Subnormal));
        assertEquals(smallestBf16Subnormal, HalfFloats.bf16ToFloat((short) 0x0001));
        assertEquals((short) 0x0000, bf16(Float.MIN_VALUE), "below half the smallest bf16 subnormal: zero");
        assertEquals((short) 0x0001, bf16(Float.intBitsToFloat(0x0000_8001)), "above half: rounds up");
        assertEquals((short) 0x0080, bf16(Float.MIN_NORMAL));
    }

    /** binary16 decoded from its definition, independent of the JDK's conversion. */
    private static double f16Reference(int bits) {
        int sign = (bits >> 15) & 1, exp = (bits >> 10) & 0x1F, mant = bits & 0x3FF;
        double mag;
        if (exp == 0x1F) {
            mag = mant == 0 ? Double.POSITIVE_INFINITY : Double.NaN;
        } else if (exp == 0) {
            mag = Math.scalb((double) mant, -24); // subnormal: mant × 2^-14 / 2^10
        } else {
            mag = Math.scalb(1024.0 + mant, exp - 25);
        }
        return sign == 1 ? -mag : mag;
    }

    @Test
    void f16WideningMatchesJdkAndTheFormatDefinitionForAll65536Patterns() {
        for (int b = 0; b < 65536; b++) {
            float ours = HalfFloats.f16ToFloat((short) b);
            float jdk = Float.float16ToFloat((short) b);
            double ref = f16Reference(b);
            String msg = "bits " + Integer.toHexString(b);
            if (Double.isNaN(ref)) {
                assertTrue(Float.isNaN(ours), msg);
                assertTrue(Float.isNaN(jdk), msg);
            } else {
                assertEquals(Float.floatToRawIntBits(jdk), Float.floatToRawIntBits(ours), msg);
                assertEquals(ref, (double) ours, 0.0, msg);
                assertEquals(Double.doubleToRawLongBits(ref) < 0, Float.floatToRawIntBits(ours) < 0, "sign " + msg);
            }
        }
    }

    @Test
    void f16NarrowingMatchesJdkAndRoundTripsForAll65536Patterns() {
        for (int b = 0; b < 65536; b++) {
            float f = (float) f16Reference(b);
            short ours = HalfFloats.floatToF16(f);
            assertEquals(Float.floatToFloat16(f), ours, "bits " + Integer.toHexString(b));
            if (!Float.isNaN(f)) {
                assertEquals((short) b, ours, "round trip of bits " + Integer.toHexString(b));
            }
            // Midpoint between this pattern and the next larger magnitude: must round to the even one.
            int exp = (b >> 10) & 0x1F;
            if (exp < 0x1E || (exp == 0x1E && (b & 0x3FF) != 0x3FF)) {
                double mid = (f16Reference(b) + f16Reference(b + 1)) / 2; // exact in double
                short expected = (short) ((b & 1) == 0 ? b : b + 1);
                assertEquals(expected, HalfFloats.floatToF16((float) mid), "tie above " + Integer.toHexString(b));
            }
        }
    }

    @Test
    void f16OverflowAndUnderflow() {
        assertEquals((short) 0x7C00, HalfFloats.floatToF16(65520f), "half a step above 65504 rounds to Inf");
        assertEquals((short) 0x7BFF, HalfFloats.floatToF16(65519f));
        assertEquals((short) 0x0001, HalfFloats.floatToF16(0x1p-24f), "smallest subnormal");
        assertEquals((short) 0x0000, HalfFloats.floatToF16(0x1p-25f), "tie with zero goes to even (zero)");
        assertEquals((short) 0x8000, HalfFloats.floatToF16(-0f));
        assertTrue(Float.isNaN(HalfFloats.f16ToFloat(HalfFloats.floatToF16(Float.NaN))));
    }
}
