package org.jtune.kernel;

/**
 * The reference implementation of {@link Kernels}: plain loops, one thread, f32 accumulation in
 * index order. It is the specification the fast kernels are tested against, and what
 * {@code -Djtune.kernels=scalar} selects.
 */
public final class ScalarKernels implements Kernels {
    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void matmul(float[] out, float[] x, Matrix w, int tokens) {
        int rows = w.rows(), cols = w.cols();
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < rows; r++) {
                float acc = 0f;
                for (int c = 0; c < cols; c++) {
                    acc += x[t * cols + c] * w.get(r, c);
                }
                out[t * rows + r] = acc;
            }
        }
    }

    @Override
    public void matmulW8A8(float[] out, float[] x, Matrix w, int tokens, float[] actScale) {
        W8A8.reference(out, x, w, tokens, actScale);
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float acc = 0f;
        for (int i = 0; i < n; i++) {
            acc += a[aOff + i] * b[bOff + i];
        }
        return acc;
    }

    @Override
    public void axpy(float[] y, int yOff, float alpha, float[] x, int xOff, int n) {
        for (int i = 0; i < n; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    @Override
    public void rmsNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, float eps, int n) {
        float ss = 0f;
        for (int i = 0; i < n; i++) {
            ss += x[xOff + i] * x[xOff + i];
        }
        float inv = (float) (1.0 / Math.sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) {
            out[outOff + i] = weight[i] * (x[xOff + i] * inv);
        }
    }

    @Override
    public void layerNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, float[] bias, float eps, int n) {
        float mean = 0f;
        for (int i = 0; i < n; i++) {
            mean += x[xOff + i];
        }
        mean /= n;
        float var = 0f;
        for (int i = 0; i < n; i++) {
            float d = x[xOff + i] - mean;
            var += d * d;
        }
        var /= n;
        float inv = (float) (1.0 / Math.sqrt(var + eps));
        for (int i = 0; i < n; i++) {
            float y = (x[xOff + i] - mean) * inv * weight[i];
            out[outOff + i] = bias == null ? y : y + bias[i];
        }
    }

    @Override
    public float softmax(float[] x, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        float inv = 1f / sum;
        for (int i = 0; i < n; i++) {
            x[off + i] *= inv;
        }
        return max + (float) Math.log(sum);
    }

    @Override
    public void siluMul(float[] gate, float[] up, int n) {
        for (int i = 0; i < n; i++) {
            float g = gate[i];
            gate[i] = g / (1f + (float) Math.exp(-g)) * up[i];
        }
    }

    @Override
    public void rope(float[] x, int off, float[] cos, float[] sin, int tableOff, int rotDim) {
        int half = rotDim / 2;
        for (int i = 0; i < half; i++) {
            float a = x[off + i], b = x[off + i + half];
            float c = cos[tableOff + i], s = sin[tableOff + i];
            x[off + i] = a * c - b * s;
            x[off + i + half] = b * c + a * s;
        }
    }
}
