package org.jtune.quant;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Matrix;
import org.jtune.model.Activation;
import org.jtune.model.DecoderState;
import org.jtune.model.InferenceOps;
import org.jtune.model.Linear;
import org.jtune.model.Ops;

/**
 * Inference ops that also watch every linear layer's input: per input channel the largest |x| seen
 * (SmoothQuant's activation statistics) and up to {@code maxRows} sampled rows (for choosing alpha
 * by output error). A hook on the model's own forward: no second model, no copies of the network.
 */
final class RecordingOps implements Ops {
    /** What one linear layer saw. */
    static final class Inputs {
        final float[] maxAbs;         // (in)
        final List<float[]> rows = new ArrayList<>();

        Inputs(int in) {
            maxAbs = new float[in];
        }
    }

    private final InferenceOps inner = new InferenceOps(KernelProvider.get());
    private final Map<Linear, Inputs> seen = new IdentityHashMap<>();
    private final int maxRows;
    private long rowCounter;

    RecordingOps(int maxRows) {
        this.maxRows = maxRows;
    }

    Map<Linear, Inputs> seen() {
        return seen;
    }

    @Override
    public void linear(float[] out, float[] x, Linear l, int n) {
        int in = l.inFeatures();
        Inputs s = seen.computeIfAbsent(l, k -> new Inputs(in));
        for (int t = 0; t < n; t++) {
            for (int c = 0; c < in; c++) {
                s.maxAbs[c] = Math.max(s.maxAbs[c], Math.abs(x[t * in + c]));
            }
            // keep every k-th row so the sample spans all calibration texts, not just the first
            if (s.rows.size() < maxRows && (rowCounter++ % 3 == 0)) {
                s.rows.add(java.util.Arrays.copyOfRange(x, t * in, (t + 1) * in));
            }
        }
        inner.linear(out, x, l, n);
    }

    @Override
    public void embed(float[] out, Matrix table, int[] tokens, int off, int n) {
        inner.embed(out, table, tokens, off, n);
    }

    @Override
    public void addPositions(float[] x, Matrix positions, int first, int n) {
        inner.addPositions(x, positions, first, n);
    }

    @Override
    public void rmsNorm(float[] out, float[] x, float[] weight, float eps, int n, int dim) {
        inner.rmsNorm(out, x, weight, eps, n, dim);
    }

    @Override
    public void layerNorm(float[] out, float[] x, float[] weight, float[] bias, float eps, int n, int dim) {
        inner.layerNorm(out, x, weight, bias, eps, n, dim);
    }

    @Override
    public void add(float[] out, float[] a, float[] b, int len) {
        inner.add(out, a, b, len);
    }

    @Override
    public void siluMul(float[] out, float[] gate, float[] up, int len) {
        inner.siluMul(out, gate, up, len);
    }

    @Override
    public void activation(float[] out, float[] x, Activation act, int len) {
        inner.activation(out, x, act, len);
    }

    @Override
    public void rope(float[] x, int n, int heads, int headDim, int rotDim, float[] cos, float[] sin, int start) {
        inner.rope(x, n, heads, headDim, rotDim, cos, sin, start);
    }

    @Override
    public void splitQkv(DecoderState s, DecoderState.LayerActs a, int n, boolean perHead) {
        inner.splitQkv(s, a, n, perHead);
    }

    @Override
    public void attention(DecoderState s, DecoderState.LayerActs a, int layer, int start, int n, float scale) {
        inner.attention(s, a, layer, start, n, scale);
    }

    @Override
    public void copyRows(float[] out, float[] x, int from, int n, int dim) {
        inner.copyRows(out, x, from, n, dim);
    }
}
