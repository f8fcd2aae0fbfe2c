package org.jtune.model;

import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;

/**
 * Ops for generation: each op is a kernel call into the session's buffers, nothing is recorded, and
 * nothing is allocated after the first call (a LoRA scratch buffer grows once).
 */
public final class InferenceOps implements Ops {
    private final Kernels k;
    private float[] loraScratch = new float[0];   // (maxChunk, rank) of an attached LoRA
    private float[] rowScratch = new float[0];    // (cols) one position-table row
    private float[] actScratch = new float[0];    // (tokens) per-token activation scales of a W8A8 layer
    private Matrix[] weightScratch = new Matrix[0]; // the weights of one linears call

    public InferenceOps(Kernels kernels) {
        this.k = kernels;
    }

    public Kernels kernels() {
        return k;
    }

    @Override
    public void embed(float[] out, Matrix table, int[] tokens, int off, int n) {
        Blocks.embed(k, out, table, tokens, off, n);
    }

    @Override
    public void addPositions(float[] x, Matrix positions, int first, int n) {
        int dim = positions.cols();
        if (rowScratch.length < dim) {
            rowScratch = new float[dim];
        }
        for (int t = 0; t < n; t++) {
            k.gatherRow(rowScratch, 0, positions, first + t);
            k.axpy(x, t * dim, 1f, rowScratch, 0, dim);
        }
    }

    @Override
    public void linear(float[] out, float[] x, Linear l, int n) {
        float[] act = l.actScale();
        if (act == null) {
            k.matmul(out, x, l.weight(), n);
        } else {
            matmulW8A8(out, x, l, act, n);
        }
        addBiasAndLora(out, x, l, n);
    }

    /** Linears without W8A8 activation scales share one matmul pass ({@link Kernels#matmulShared}). */
    @Override
    public void linears(float[][] outs, float[] x, Linear[] ls, int n) {
        if (weightScratch.length < ls.length) {
            weightScratch = new Matrix[ls.length];
        }
        for (int i = 0; i < ls.length; i++) {
            if (ls[i].actScale() != null) {
                Ops.super.linears(outs, x, ls, n);
                return;
            }
            weightScratch[i] = ls[i].weight();
        }
        k.matmulShared(outs, x, weightScratch, ls.length, n);
        for (int i = 0; i < ls.length; i++) {
            weightScratch[i] = null;
            addBiasAndLora(outs[i], x, ls[i], n);
        }
    }

    private void matmulW8A8(float[] out, float[] x, Linear l, float[] act, int n) {
        if (act.length == 1) {
            k.matmulW8A8(out, x, l.weight(), n, act);
        } else {
            if (actScratch.length < Math.max(2, n)) {   // length >= 2 always means per-token scales
                actScratch = new float[Math.max(2, n)];
            }
            org.jtune.kernel.W8A8.dynamicActScales(actScratch, x, n, l.inFeatures());
            k.matmulW8A8(out, x, l.weight(), n, actScratch);
        }
    }

    private void addBiasAndLora(float[] out, float[] x, Linear l, int n) {
        float[] bias = l.bias();
        if (bias != null) {
            int d = l.outFeatures();
            for (int t = 0; t < n; t++) {
                k.axpy(out, t * d, 1f, bias, 0, d);
            }
        }
        Linear.Lora lora = l.lora();
        if (lora != null) {
            int r = lora.rank(), d = l.outFeatures();
            if (loraScratch.length < n * r) {
                loraScratch = new float[n * r];
            }
            k.matmul(loraScratch, x, lora.aMatrix(), n);           // u = x A^T
            for (int t = 0; t < n; t++) {                          // out += s * u B^T, one row of u at a time
                for (int j = 0; j < r; j++) {
                    float c = lora.scaling() * loraScratch[t * r + j];
                    if (c != 0f) {
                        axpyColumn(out, t * d, c, lora.b(), j, r, d);
                    }
                }
            }
        }
    }

    /** y[yOff + i] += c * B[i, j] for i < d (B is (d, r) row-major). */
    private static void axpyColumn(float[] y, int yOff, float c, float[] b, int j, int r, int d) {
        for (int i = 0; i < d; i++) {
            y[yOff + i] += c * b[i * r + j];
        }
    }

    @Override
    public void rmsNorm(float[] out, float[] x, float[] weight, float eps, int n, int dim) {
        Blocks.rmsNormRows(k, out, x, weight, eps, n, dim);
    }

    @Override
    public void layerNorm(float[] out, float[] x, float[] weight, float[] bias, float eps, int n, int dim) {
        Blocks.layerNormRows(k, out, x, weight, bias, eps, n, dim);
    }

    @Override
    public void add(float[] out, float[] a, float[] b, int len) {
        if (out != a) {
            System.arraycopy(a, 0, out, 0, len);
        }
        k.axpy(out, 0, 1f, b, 0, len);
    }

    @Override
    public void siluMul(float[] out, float[] gate, float[] up, int len) {
        if (out != gate) {
            System.arraycopy(gate, 0, out, 0, len);
        }
        k.siluMul(out, up, len);
    }

    @Override
    public void activation(float[] out, float[] x, Activation act, int len) {
        if (out != x) {
            System.arraycopy(x, 0, out, 0, len);
        }
        act.apply(out, len);
    }

    @Override
    public void rope(float[] x, int n, int heads, int headDim, int rotDim, float[] cos, float[] sin, int start) {
        int half = rotDim / 2, width = heads * headDim;
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < heads; h++) {
                k.rope(x, t * width + h * headDim, cos, sin, (start + t) * half, rotDim);
            }
        }
    }

    @Override
    public void splitQkv(DecoderState s, DecoderState.LayerActs a, int n, boolean perHead) {
        s.splitQkv(a, n, perHead);
    }

    @Override
    public void attention(DecoderState s, DecoderState.LayerActs a, int layer, int start, int n, float scale) {
        s.appendKv(a, layer, start, n);
        s.attend(a, layer, start, n, scale);
    }

    @Override
    public void copyRows(float[] out, float[] x, int from, int n, int dim) {
        System.arraycopy(x, from * dim, out, 0, n * dim);
    }
}
