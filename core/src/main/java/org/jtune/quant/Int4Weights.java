package org.jtune.quant;

import java.lang.foreign.MemorySegment;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.kernel.Matrix;

/**
 * Round-to-nearest int4 weight quantization, group-wise along each row (output channel), into the packed
 * form of {@link Matrix#int4} (two codes per byte, low nibble = even column).
 *
 * <ul>
 * <li>Symmetric: {@code scale = max|w| / 7}, {@code q = clamp(round(w / scale), -7, 7)}, stored as the nibble
 *     {@code q + 8} (zero point 8, implicit: no zero tensor). The code -8 is never written.
 * <li>Asymmetric: over the group's range widened to include 0 ({@code lo = min(min w, 0)},
 *     {@code hi = max(max w, 0)}, so 0 stays exact and a constant group is representable),
 *     {@code scale = (hi - lo) / 15}, integer zero point {@code z = clamp(round(-lo / scale), 0, 15)},
 *     {@code n = clamp(round(w / scale) + z, 0, 15)}; {@code w ~ (n - z) * scale}.
 * </ul>
 * Either way {@code |w - dequantized| <= scale / 2} (up to float rounding). An all-zero group gets scale 1.
 */
public final class Int4Weights {
    /** Group sizes the quantizer accepts; all are on the vector kernel's fast path. */
    public static final int[] GROUP_SIZES = {32, 64, 128};

    private Int4Weights() {
    }

    /** Checks a group size against {@link #GROUP_SIZES} and the matrix width, with a hint. */
    public static void checkGroupSize(int groupSize, int cols) {
        if (groupSize != 32 && groupSize != 64 && groupSize != 128) {
            throw new JTuneException("int4 group size must be 32, 64 or 128, got " + groupSize);
        }
        if (cols % groupSize != 0) {
            throw new JTuneException("int4 group size " + groupSize + " does not divide the matrix width " + cols
                    + "; choose a group size that divides every layer's input size (32 divides most)");
        }
    }

    /** Quantizes a float matrix (any stored float dtype) into an int4 matrix over heap memory. */
    public static Matrix quantize(Matrix m, int groupSize, boolean symmetric) {
        if (m.dtype() == DType.I8 || m.isInt4()) {
            throw new JTuneException("matrix is already quantized (" + (m.isInt4() ? "int4" : "int8") + ")");
        }
        int rows = m.rows(), cols = m.cols();
        checkGroupSize(groupSize, cols);
        int groups = cols / groupSize;
        byte[] packed = new byte[rows * cols / 2];
        float[] scales = new float[rows * groups];
        float[] zeros = symmetric ? null : new float[rows * groups];
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                int c0 = g * groupSize, c1 = c0 + groupSize;
                float scale;
                int z;
                if (symmetric) {
                    float max = 0;
                    for (int c = c0; c < c1; c++) {
                        max = Math.max(max, Math.abs(m.get(r, c)));
                    }
                    scale = max == 0 ? 1f : max / 7f;
                    z = 8;
                } else {
                    float lo = 0, hi = 0;
                    for (int c = c0; c < c1; c++) {
                        lo = Math.min(lo, m.get(r, c));
                        hi = Math.max(hi, m.get(r, c));
                    }
                    scale = hi == lo ? 1f : (hi - lo) / 15f;
                    z = Math.max(0, Math.min(15, Math.round(-lo / scale)));
                    zeros[r * groups + g] = z;
                }
                scales[r * groups + g] = scale;
                for (int c = c0; c < c1; c++) {
                    int q = Math.round(m.get(r, c) / scale);
                    int n = symmetric ? Math.max(-7, Math.min(7, q)) + 8 : Math.max(0, Math.min(15, q + z));
                    int i = (r * cols + c) >> 1;
                    packed[i] = (byte) ((c & 1) == 0 ? (packed[i] & 0xF0) | n : (packed[i] & 0x0F) | (n << 4));
                }
            }
        }
        return Matrix.int4(MemorySegment.ofArray(packed), rows, cols, scales, groupSize, zeros);
    }
}
