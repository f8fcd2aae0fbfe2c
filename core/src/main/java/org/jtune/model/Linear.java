package org.jtune.model;

import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;

/**
 * A linear layer {@code y = x W^T + b}: weight {@code (out, in)} in its stored dtype, optional f32 bias.
 */
public record Linear(Matrix weight, float[] bias) {
    public int outFeatures() {
        return weight.rows();
    }

    public int inFeatures() {
        return weight.cols();
    }

    /** out (tokens, out) = x (tokens, in) W^T + b. */
    public void forward(Kernels k, float[] out, float[] x, int tokens) {
        k.matmul(out, x, weight, tokens);
        if (bias != null) {
            int d = weight.rows();
            for (int t = 0; t < tokens; t++) {
                k.axpy(out, t * d, 1f, bias, 0, d);
            }
        }
    }

    /** HF {@code nn.Linear} at {@code prefix + "weight"} ({@code [out, in]}) and, if {@code hasBias}, {@code prefix + "bias"}. */
    public static Linear load(WeightLoader w, String prefix, int out, int in, boolean hasBias) {
        return new Linear(w.matrix(prefix + "weight", out, in), hasBias ? w.vector(prefix + "bias", out) : null);
    }

    /** HF {@code Conv1D} (GPT-2): weight stored {@code [in, out]}, transposed once here at load time. */
    public static Linear loadConv1D(WeightLoader w, String prefix, int out, int in) {
        return new Linear(w.matrixTransposed(prefix + "weight", out, in), w.vector(prefix + "bias", out));
    }
}
