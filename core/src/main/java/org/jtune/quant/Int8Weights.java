package org.jtune.quant;

import java.lang.foreign.MemorySegment;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.kernel.Matrix;

/**
 * Round-to-nearest, symmetric int8 weight quantization: each row (output channel) is cut into
 * groups of {@code groupSize} consecutive input features, and each group gets the scale
 * {@code max|w| / 127}, so {@code q = round(w / scale)} lies in [-127, 127] and
 * {@code |w - q * scale| <= scale / 2}. {@code groupSize == cols} is per-channel quantization.
 */
public final class Int8Weights {
    private Int8Weights() {
    }

    /** Quantizes a float matrix (any stored dtype) into an I8 matrix over heap memory. */
    public static Matrix quantize(Matrix m, int groupSize) {
        if (m.dtype() == DType.I8) {
            throw new JTuneException("matrix is already int8");
        }
        int rows = m.rows(), cols = m.cols();
        if (groupSize <= 0 || cols % groupSize != 0) {
            throw new JTuneException("group size " + groupSize + " does not divide the matrix width " + cols
                    + "; choose a group size that divides every layer's input size, or per-channel quantization");
        }
        int groups = cols / groupSize;
        byte[] q = new byte[rows * cols];
        float[] scales = new float[rows * groups];
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                float max = 0;
                for (int c = g * groupSize; c < (g + 1) * groupSize; c++) {
                    max = Math.max(max, Math.abs(m.get(r, c)));
                }
                float scale = max == 0 ? 1f : max / 127f;
                scales[r * groups + g] = scale;
                for (int c = g * groupSize; c < (g + 1) * groupSize; c++) {
                    q[r * cols + c] = (byte) Math.max(-127, Math.min(127, Math.round(m.get(r, c) / scale)));
                }
            }
        }
        return new Matrix(MemorySegment.ofArray(q), DType.I8, rows, cols, scales, groupSize);
    }
}
