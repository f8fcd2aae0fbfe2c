package org.jtune.io.safetensors;

/**
 * Conversions between float32 and the two 16-bit float formats checkpoints use, kept in one place
 * so every loader, kernel and writer rounds the same way. bf16 is the top half of a float32;
 * narrowing rounds to nearest-even and maps every NaN to 0x7FC0, exactly as PyTorch's
 * {@code c10::BFloat16} does, so a tensor saved by jtune matches one saved by torch bit for bit.
 * f16 (IEEE binary16) delegates to the JDK, whose conversions are intrinsified (F16C on x86).
 */
public final class HalfFloats {
    private HalfFloats() {}

    /** Widens bf16 bits to float32; exact. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** Narrows float32 to bf16 with round-to-nearest-even; overflow becomes infinity. */
    public static short floatToBf16(float f) {
        if (Float.isNaN(f)) {
            return (short) 0x7FC0; // torch's canonical quiet NaN; rounding could otherwise turn a NaN into Inf
        }
        int bits = Float.floatToRawIntBits(f);
        int lsb = (bits >>> 16) & 1;
        return (short) ((bits + 0x7FFF + lsb) >>> 16);
    }

    /** Widens IEEE binary16 bits to float32; exact. */
    public static float f16ToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** Narrows float32 to IEEE binary16 with round-to-nearest-even; overflow becomes infinity. */
    public static short floatToF16(float f) {
        return Float.floatToFloat16(f);
    }
}
