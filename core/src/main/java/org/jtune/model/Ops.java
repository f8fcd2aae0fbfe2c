package org.jtune.model;

import org.jtune.kernel.Matrix;

/**
 * The vocabulary every family's forward pass is written in. {@link InferenceOps} runs each op on
 * the kernels into preallocated buffers; {@code org.jtune.autograd.TrainingOps} runs the same op and
 * records its backward on a tape. So a family has exactly one forward, used both to generate and to
 * train. Arrays are row-major {@code (rows, features)}; outputs come first. Unless noted, an output
 * may alias an input only for elementwise ops ({@link #add}, {@link #siluMul}, {@link #activation},
 * the norms).
 */
public interface Ops {
    /** True when backward needs every layer's activations (the state then keeps one set per layer). */
    default boolean keepsActivations() {
        return false;
    }

    /** out (n, table.cols) = table rows of {@code tokens[off .. off+n)}. */
    void embed(float[] out, Matrix table, int[] tokens, int off, int n);

    /** x (n, cols) += rows {@code first .. first+n} of a learned position table. */
    void addPositions(float[] x, Matrix positions, int first, int n);

    /** out (n, out) = x (n, in) W^T + b (+ the attached LoRA). */
    void linear(float[] out, float[] x, Linear l, int n);

    /** {@code outs[i]} = {@link #linear} of {@code ls[i]} for each i: linears of one width reading the same x. */
    default void linears(float[][] outs, float[] x, Linear[] ls, int n) {
        for (int i = 0; i < ls.length; i++) {
            linear(outs[i], x, ls[i], n);
        }
    }

    void rmsNorm(float[] out, float[] x, float[] weight, float eps, int n, int dim);

    /** bias may be null. */
    void layerNorm(float[] out, float[] x, float[] weight, float[] bias, float eps, int n, int dim);

    /** out = a + b over {@code len} elements. */
    void add(float[] out, float[] a, float[] b, int len);

    /** out = silu(gate) * up. */
    void siluMul(float[] out, float[] gate, float[] up, int len);

    void activation(float[] out, float[] x, Activation act, int len);

    /** Rotates, in place, the first rotDim features of each of the {@code heads} heads of n rows at positions start.. */
    void rope(float[] x, int n, int heads, int headDim, int rotDim, float[] cos, float[] sin, int start);

    /** Splits {@code a.qkv} into a.q, a.k, a.v ({@code [Q|K|V]} per token, or per head when {@code perHead}). */
    void splitQkv(DecoderState s, DecoderState.LayerActs a, int n, boolean perHead);

    /**
     * Appends a.k and a.v to layer {@code layer}'s cache at positions {@code start ..} and computes
     * a.att = causal attention of a.q over positions {@code 0 .. start+t} for each row t.
     */
    void attention(DecoderState s, DecoderState.LayerActs a, int layer, int start, int n, float scale);

    /** out (n, dim) = rows {@code from .. from+n} of x. */
    void copyRows(float[] out, float[] x, int from, int n, int dim);
}
