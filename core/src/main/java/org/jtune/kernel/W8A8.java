package org.jtune.kernel;

import org.jtune.io.safetensors.DType;

/**
 * Shared pieces of the W8A8 integer matmul ({@link Kernels#matmulW8A8}): activation scales, the
 * activation quantizer both implementations use (so their int8 codes are identical), argument checks and
 * the scalar reference. Weights are I8 with one f32 scale per output channel; activations are quantized
 * symmetrically to [-127, 127] with one scale per tensor or per token. The dot product is exact int32:
 * with |q_x| <= 127 and |q_w| <= 128 (the kernel accepts any int8, the quantizers write [-127, 127]),
 * {@code |acc| <= 128 * 127 * cols}, which stays below 2^31 for {@code cols <= } {@value #MAX_COLS}
 * (1,065,353,216); wider matrices are rejected.
 */
public final class W8A8 {
    /** The widest matrix whose int32 dot products cannot overflow (see the class comment). */
    public static final int MAX_COLS = 65536;

    /** Quantized activations of the calling thread, grown on demand (never per call once large enough). */
    private static final ThreadLocal<int[][]> QX = ThreadLocal.withInitial(() -> new int[1][0]);

    private W8A8() {
    }

    /** Per-token dynamic scales {@code max|x_t| / 127} (1 for an all-zero row), a new array of {@code tokens}. */
    public static float[] dynamicActScales(float[] x, int tokens, int cols) {
        float[] s = new float[tokens];
        dynamicActScales(s, x, tokens, cols);
        return s;
    }

    /** Like {@link #dynamicActScales(float[], int, int)} into {@code scales[0 .. tokens)}: allocates nothing. */
    public static void dynamicActScales(float[] scales, float[] x, int tokens, int cols) {
        for (int t = 0; t < tokens; t++) {
            float max = 0f;
            for (int c = 0; c < cols; c++) {
                max = Math.max(max, Math.abs(x[t * cols + c]));
            }
            scales[t] = max == 0f ? 1f : max / 127f;
        }
    }

    /** The int8 code of one activation: {@code clamp(round(v / s), -127, 127)}, round half up (Math.round). */
    public static int quantize(float v, float s) {
        return Math.max(-127, Math.min(127, Math.round(v / s)));
    }

    /** Validates the arguments of {@link Kernels#matmulW8A8}. */
    static void check(float[] out, float[] x, Matrix w, int tokens, float[] actScale) {
        int rows = w.rows(), cols = w.cols();
        if (w.dtype() != DType.I8 || w.groupSize() != cols) {
            throw new IllegalArgumentException("W8A8 matmul needs an I8 matrix with one scale per output channel "
                    + "(group size == cols); got " + w.dtype() + " " + rows + "x" + cols + " with group size " + w.groupSize()
                    + "; quantize with group size 0 (per channel)");
        }
        if (w.rowPairs() || w.strip() != 0) {
            throw new IllegalArgumentException("W8A8 matmul reads its I8 matrix row-major; got " + rows + "x" + cols
                    + (w.rowPairs() ? " row pairs" : "") + (w.strip() != 0 ? " in strips of " + w.strip() : ""));
        }
        if (cols > MAX_COLS) {
            throw new IllegalArgumentException("W8A8 matmul supports up to " + MAX_COLS + " input features (int32 "
                    + "accumulation would overflow beyond), got " + cols);
        }
        if (tokens < 0 || (long) tokens * cols > x.length || (long) tokens * rows > out.length) {
            throw new IllegalArgumentException("W8A8 matmul of " + tokens + " tokens with a " + rows + "x" + cols
                    + " matrix needs x.length >= " + (long) tokens * cols + " and out.length >= "
                    + (long) tokens * rows + ", got " + x.length + " and " + out.length);
        }
        if (actScale == null || (actScale.length != 1 && actScale.length < tokens)) {
            throw new IllegalArgumentException("actScale must hold 1 (per tensor) or tokens = " + tokens
                    + " (per token) scales, got " + (actScale == null ? "null" : actScale.length));
        }
        for (int i = 0; i < (actScale.length == 1 ? 1 : tokens); i++) {
            float s = actScale[i];
            if (!(s > 0f) || Float.isInfinite(s)) {
                throw new IllegalArgumentException("activation scales must be positive and finite, got " + s);
            }
        }
    }

    /** Quantizes x (tokens, cols) into the calling thread's buffer and returns it. */
    static int[] quantizeActivations(float[] x, int tokens, int cols, float[] actScale) {
        int[][] holder = QX.get();
        if (holder[0].length < tokens * cols) {
            holder[0] = new int[tokens * cols];
        }
        int[] q = holder[0];
        for (int t = 0; t < tokens; t++) {
            float s = actScale[actScale.length == 1 ? 0 : t];
            for (int c = 0; c < cols; c++) {
                q[t * cols + c] = quantize(x[t * cols + c], s);
            }
        }
        return q;
    }

    /** {@code out[t, r] = acc * actScale[t or 0] * wScale[r]}, the one float expression both kernels use. */
    static float output(int acc, float actScale, float wScale) {
        return (float) acc * actScale * wScale;
    }

    /** The scalar specification: int32 dot products in index order. */
    static void reference(float[] out, float[] x, Matrix w, int tokens, float[] actScale) {
        check(out, x, w, tokens, actScale);
        int rows = w.rows(), cols = w.cols();
        int[] q = quantizeActivations(x, tokens, cols, actScale);
        for (int t = 0; t < tokens; t++) {
            float as = actScale[actScale.length == 1 ? 0 : t];
            for (int r = 0; r < rows; r++) {
                int acc = 0;
                for (int c = 0; c < cols; c++) {
                    acc += q[t * cols + c] * w.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) r * cols + c);
                }
                out[t * rows + r] = output(acc, as, w.scales()[r]);
            }
        }
    }
}
