package org.jtune.autograd;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.WorkerPool;
import org.jtune.model.Activation;
import org.jtune.model.DecoderState;
import org.jtune.model.InferenceOps;
import org.jtune.model.Linear;
import org.jtune.model.Ops;

/**
 * Ops that compute exactly what {@link InferenceOps} computes and record each op's backward on a
 * {@link Tape}, forward and backward side by side. Which parameters get gradients is decided by
 * {@link #trainable}: LoRA factors of attached adapters always do; base weights, norms, biases and
 * embedding tables only when registered (full fine-tuning, with f32 master copies). Frozen
 * parameters get no gradient buffers. Activations keep one buffer per layer (see
 * {@link DecoderState}), so backward reads the values the forward produced.
 */
public final class TrainingOps implements Ops {
    private final Kernels k;
    private final InferenceOps forward;
    private final Tape tape;
    private final Set<float[]> trainable = Collections.newSetFromMap(new IdentityHashMap<>());

    public TrainingOps(Kernels kernels, Tape tape) {
        this.k = kernels;
        this.forward = new InferenceOps(kernels);
        this.tape = tape;
    }

    public Tape tape() {
        return tape;
    }

    private float loraDropout;
    private long dropoutSeed;
    private long step;
    private long call;

    /**
     * Dropout on the LoRA branch's input, as PEFT applies it. Masks are a hash of (seed, step, call,
     * element), not a stateful RNG, so a resumed run draws exactly the masks it would have drawn.
     */
    public void loraDropout(double p, long seed) {
        this.loraDropout = (float) p;
        this.dropoutSeed = seed;
    }

    /** Tells the ops which optimizer step the next forwards belong to (dropout masks). */
    public void step(long s) {
        this.step = s;
        this.call = 0;
    }

    /** Elements per pool item in elementwise backward loops. */
    private static final int ELEMENTWISE_CHUNK = 1 << 14;

    /** Rows per pool item in the norms' backward. */
    private static final int NORM_ROWS = 16;

    /** A norm's backward over rows {@code [t0, t1)}: its weight and bias gradients into pw / pb at po (either may be null). */
    private interface NormRows {
        void run(int t0, int t1, float[] pw, float[] pb, int po);
    }

    /**
     * A norm's backward over the pool, {@link #NORM_ROWS} rows an item (on one thread it was about 1.5 % of a LoRA
     * step). Each item sums its rows' weight and bias gradients apart; they are added into dW and dB in item
     * order, so the bits do not depend on the threads.
     */
    private void normRows(int n, int dim, float[] dW, float[] dB, NormRows body) {
        int items = (n + NORM_ROWS - 1) / NORM_ROWS;
        float[] pw = dW == null ? null : new float[items * dim], pb = dB == null ? null : new float[items * dim];
        WorkerPool.shared().run(items, (from, to) -> {
            for (int it = from; it < to; it++) {
                body.run(it * NORM_ROWS, Math.min(n, (it + 1) * NORM_ROWS), pw, pb, it * dim);
            }
        });
        for (int it = 0; it < items; it++) {
            if (dW != null) {
                k.axpy(dW, 0, 1f, pw, it * dim, dim);
            }
            if (dB != null) {
                k.axpy(dB, 0, 1f, pb, it * dim, dim);
            }
        }
    }

    /** Per-element input scale of the LoRA branch: 0 (dropped) or 1/(1-p); null without dropout. */
    private float[] dropoutMask(int len) {
        if (loraDropout <= 0) {
            return null;
        }
        long id = call++;
        float keep = 1f / (1f - loraDropout);
        float[] m = new float[len];
        for (int i = 0; i < len; i++) {
            long h = mix(dropoutSeed * 0x9E3779B97F4A7C15L + step * 0xBF58476D1CE4E5B9L + id * 0x94D049BB133111EBL + i);
            m[i] = (h >>> 40) * 0x1p-24f < loraDropout ? 0f : keep;
        }
        return m;
    }

    private static long mix(long z) {   // splitmix64 finalizer
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Registers a parameter array (norm weight, bias, or the f32 master behind a weight matrix) as trainable. */
    public void trainable(float[] param) {
        trainable.add(param);
    }

    private boolean isTrainable(float[] p) {
        return p != null && trainable.contains(p);
    }

    /** The f32 array behind a matrix, when it is a registered trainable master copy. */
    private float[] master(Matrix m) {
        Object base = m.data().heapBase().orElse(null);
        return base instanceof float[] f && trainable.contains(f) ? f : null;
    }

    @Override
    public boolean keepsActivations() {
        return true;
    }

    @Override
    public void embed(float[] out, Matrix table, int[] tokens, int off, int n) {
        forward.embed(out, table, tokens, off, n);
        float[] w = master(table);
        if (w != null) {
            int[] ids = java.util.Arrays.copyOfRange(tokens, off, off + n);
            int dim = table.cols();
            tape.record(() -> {
                float[] dOut = tape.grad(out), dW = tape.grad(w);
                for (int t = 0; t < n; t++) {
                    k.axpy(dW, ids[t] * dim, 1f, dOut, t * dim, dim);
                }
            });
        }
    }

    @Override
    public void addPositions(float[] x, Matrix positions, int first, int n) {
        forward.addPositions(x, positions, first, n);
        float[] w = master(positions);
        if (w != null) {
            int dim = positions.cols();
            tape.record(() -> {
                float[] dX = tape.grad(x), dW = tape.grad(w);
                for (int t = 0; t < n; t++) {
                    k.axpy(dW, (first + t) * dim, 1f, dX, t * dim, dim);
                }
            });
        }
        // x is updated in place and x_out = x_in + const, so dx passes through unchanged
    }

    @Override
    public void linear(float[] out, float[] x, Linear l, int n) {
        Linear.Lora lora = l.lora();
        int in = l.inFeatures(), outF = l.outFeatures();
        float[] u = lora == null ? null : new float[n * lora.rank()];
        // forward: base, bias, then the LoRA path with u = x A^T kept for backward
        k.matmul(out, x, l.weight(), n);
        if (l.bias() != null) {
            for (int t = 0; t < n; t++) {
                k.axpy(out, t * outF, 1f, l.bias(), 0, outF);
            }
        }
        float[] mask = lora == null ? null : dropoutMask(n * in);
        float[] xl = x;   // the LoRA branch's input: x, or x with dropout
        if (mask != null) {
            xl = new float[n * in];
            for (int i = 0; i < xl.length; i++) {
                xl[i] = x[i] * mask[i];
            }
        }
        final float[] loraIn = xl;
        if (lora != null) {
            k.matmul(u, loraIn, lora.aMatrix(), n);
            float[] delta = new float[n * outF];
            k.matmul(delta, u, lora.bMatrix(), n);
            k.axpy(out, 0, lora.scaling(), delta, 0, n * outF);
        }
        float[] w = master(l.weight());
        float[] bias = l.bias();
        tape.record(() -> {
            float[] dOut = tape.grad(out);
            float[] dX = tape.grad(x);
            k.matmulBackwardInput(dX, dOut, l.weight(), n);
            if (w != null) {
                k.matmulBackwardWeight(tape.grad(w), dOut, x, n, outF, in);   // dW += dOut^T x
            }
            if (isTrainable(bias)) {
                float[] dB = tape.grad(bias);
                for (int t = 0; t < n; t++) {
                    k.axpy(dB, 0, 1f, dOut, t * outF, outF);
                }
            }
            if (lora != null) {
                int r = lora.rank();
                float s = lora.scaling();
                float[] dU = new float[n * r];
                k.matmulBackwardInput(dU, dOut, lora.bMatrix(), n);                      // dU = dOut B
                for (int i = 0; i < dU.length; i++) {
                    dU[i] *= s;
                }
                float[] scaledU = new float[u.length];
                for (int i = 0; i < u.length; i++) {
                    scaledU[i] = s * u[i];
                }
                k.matmulBackwardWeight(tape.grad(lora.b()), dOut, scaledU, n, outF, r);   // dB += dOut^T (s u)
                k.matmulBackwardWeight(tape.grad(lora.a()), dU, loraIn, n, r, in);         // dA += dU^T x
                if (mask == null) {
                    k.matmulBackwardInput(dX, dU, lora.aMatrix(), n);                        // dX += dU A
                } else {
                    float[] dXl = new float[n * in];
                    k.matmulBackwardInput(dXl, dU, lora.aMatrix(), n);
                    for (int i = 0; i < dXl.length; i++) {
                        dX[i] += dXl[i] * mask[i];
                    }
                }
            }
        });
    }

    @Override
    public void rmsNorm(float[] out, float[] x, float[] weight, float eps, int n, int dim) {
        forward.rmsNorm(out, x, weight, eps, n, dim);
        tape.record(() -> {
            float[] dOut = tape.grad(out), dX = tape.grad(x);
            float[] dW = isTrainable(weight) ? tape.grad(weight) : null;
            normRows(n, dim, dW, null, (t0, t1, pw, pb, po) -> {
                for (int t = t0; t < t1; t++) {
                    int o = t * dim;
                    double ss = 0;
                    for (int i = 0; i < dim; i++) {
                        ss += (double) x[o + i] * x[o + i];
                    }
                    float inv = (float) (1.0 / Math.sqrt((float) (ss / dim) + eps));
                    double dot = 0;                       // sum_i g_i x_i with g = dy * w
                    for (int i = 0; i < dim; i++) {
                        dot += (double) dOut[o + i] * weight[i] * x[o + i];
                    }
                    float c = (float) (dot / dim) * inv * inv;
                    for (int i = 0; i < dim; i++) {
                        float g = dOut[o + i] * weight[i];
                        dX[o + i] += inv * (g - x[o + i] * c);
                        if (pw != null) {
                            pw[po + i] += dOut[o + i] * x[o + i] * inv;
                        }
                    }
                }
            });
        });
    }

    @Override
    public void layerNorm(float[] out, float[] x, float[] weight, float[] bias, float eps, int n, int dim) {
        forward.layerNorm(out, x, weight, bias, eps, n, dim);
        tape.record(() -> {
            float[] dOut = tape.grad(out), dX = tape.grad(x);
            float[] dW = isTrainable(weight) ? tape.grad(weight) : null;
            float[] dB = isTrainable(bias) ? tape.grad(bias) : null;
            normRows(n, dim, dW, dB, (t0, t1, pw, pb, po) -> {
                float[] xhat = new float[dim];
                for (int t = t0; t < t1; t++) {
                    int o = t * dim;
                    double mean = 0;
                    for (int i = 0; i < dim; i++) {
                        mean += x[o + i];
                    }
                    mean /= dim;
                    double var = 0;
                    for (int i = 0; i < dim; i++) {
                        double d = x[o + i] - mean;
                        var += d * d;
                    }
                    float inv = (float) (1.0 / Math.sqrt(var / dim + eps));
                    double meanG = 0, meanGx = 0;
                    for (int i = 0; i < dim; i++) {
                        xhat[i] = (float) ((x[o + i] - mean) * inv);
                        float g = dOut[o + i] * weight[i];
                        meanG += g;
                        meanGx += (double) g * xhat[i];
                    }
                    meanG /= dim;
                    meanGx /= dim;
                    for (int i = 0; i < dim; i++) {
                        float g = dOut[o + i] * weight[i];
                        dX[o + i] += (float) (inv * (g - meanG - xhat[i] * meanGx));
                        if (pw != null) {
                            pw[po + i] += dOut[o + i] * xhat[i];
                        }
                        if (pb != null) {
                            pb[po + i] += dOut[o + i];
                        }
                    }
                }
            });
        });
    }

    @Override
    public void add(float[] out, float[] a, float[] b, int len) {
        forward.add(out, a, b, len);
        tape.record(() -> {
            float[] dOut = tape.grad(out);
            k.axpy(tape.grad(a), 0, 1f, dOut, 0, len);
            k.axpy(tape.grad(b), 0, 1f, dOut, 0, len);
        });
    }

    @Override
    public void siluMul(float[] out, float[] gate, float[] up, int len) {
        forward.siluMul(out, gate, up, len);
        tape.record(() -> {
            float[] dOut = tape.grad(out), dG = tape.grad(gate), dU = tape.grad(up);
            WorkerPool.shared().run((len + ELEMENTWISE_CHUNK - 1) / ELEMENTWISE_CHUNK, (from, to) -> {
                int i = from * ELEMENTWISE_CHUNK;
                k.siluMulBackward(dG, dU, dOut, gate, up, i, Math.min(len, to * ELEMENTWISE_CHUNK) - i);
            });
        });
    }

    @Override
    public void activation(float[] out, float[] x, Activation act, int len) {
        forward.activation(out, x, act, len);
        tape.record(() -> {
            float[] dOut = tape.grad(out), dX = tape.grad(x);
            for (int i = 0; i < len; i++) {
                dX[i] += dOut[i] * act.derivative(x[i]);
            }
        });
    }

    @Override
    public void rope(float[] x, int n, int heads, int headDim, int rotDim, float[] cos, float[] sin, int start) {
        forward.rope(x, n, heads, headDim, rotDim, cos, sin, start);
        // In place: x's gradient array holds d(rotated) until this step turns it into d(unrotated) (R^T).
        tape.record(() -> {
            float[] g = tape.grad(x);
            int half = rotDim / 2, width = heads * headDim;
            for (int t = 0; t < n; t++) {
                int table = (start + t) * half;
                for (int h = 0; h < heads; h++) {
                    int o = t * width + h * headDim;
                    for (int i = 0; i < half; i++) {
                        float ga = g[o + i], gb = g[o + i + half], c = cos[table + i], s = sin[table + i];
                        g[o + i] = ga * c + gb * s;
                        g[o + i + half] = gb * c - ga * s;
                    }
                }
            }
        });
    }

    @Override
    public void splitQkv(DecoderState s, DecoderState.LayerActs a, int n, boolean perHead) {
        forward.splitQkv(s, a, n, perHead);
        DecoderState.Dims d = s.dims;
        tape.record(() -> {
            float[] dQkv = tape.grad(a.qkv), dQ = tape.grad(a.q), dK = tape.grad(a.k), dV = tape.grad(a.v);
            int hd = d.headDim(), qd = d.qDim(), kvd = d.kvDim(), w = d.fusedQkv();
            for (int t = 0; t < n; t++) {
                int base = t * w;
                if (perHead) {
                    for (int h = 0; h < d.numHeads(); h++) {
                        int src = base + h * 3 * hd;
                        k.axpy(dQkv, src, 1f, dQ, t * qd + h * hd, hd);
                        k.axpy(dQkv, src + hd, 1f, dK, t * kvd + h * hd, hd);
                        k.axpy(dQkv, src + 2 * hd, 1f, dV, t * kvd + h * hd, hd);
                    }
                } else {
                    k.axpy(dQkv, base, 1f, dQ, t * qd, qd);
                    k.axpy(dQkv, base + qd, 1f, dK, t * kvd, kvd);
                    k.axpy(dQkv, base + qd + kvd, 1f, dV, t * kvd, kvd);
                }
            }
        });
    }

    @Override
    public void attention(DecoderState s, DecoderState.LayerActs a, int layer, int start, int n, float scale) {
        forward.attention(s, a, layer, start, n, scale);
        DecoderState.Dims d = s.dims;
        float[] keys = s.cache.keys[layer], values = s.cache.values[layer];
        tape.record(() -> {
            int kvd = d.kvDim();
            float[] dAtt = tape.grad(a.att), dQ = tape.grad(a.q);
            float[] dKeys = tape.grad(keys), dValues = tape.grad(values);
            // parallel over kv heads: each owns its query heads' dQ columns and its own dK/dV columns; within one,
            // its query heads' rows in blocks of the kernels' size, the probabilities recomputed
            int hd = d.headDim(), group = d.queriesPerKvHead(), qd = d.qDim(), block = k.causalBlockRows();
            WorkerPool.shared().run(d.numKvHeads(), (from, to) -> {
                float[] scratch = new float[k.causalBlockBackwardScratch(start + n, hd)];
                for (int kvHead = from; kvHead < to; kvHead++) {
                    for (int head = kvHead * group; head < (kvHead + 1) * group; head++) {
                        for (int t0 = 0; t0 < n; t0 += block) {
                            int off = t0 * qd + head * hd;
                            k.attendCausalBlockBackward(a.q, off, qd, dAtt, off, dQ, Math.min(block, n - t0), keys, values,
                                    dKeys, dValues, s.cache.index(kvHead, 0), hd, start + t0 + 1, hd, scale, scratch);
                        }
                    }
                }
            });
            // the append: new rows of the cache came from k and v (see KvCache.write)
            float[] dK = tape.grad(a.k), dV = tape.grad(a.v);
            for (int t = 0; t < n; t++) {
                for (int h = 0; h < d.numKvHeads(); h++) {
                    int src = s.cache.index(h, start + t);
                    k.axpy(dK, t * kvd + h * d.headDim(), 1f, dKeys, src, d.headDim());
                    k.axpy(dV, t * kvd + h * d.headDim(), 1f, dValues, src, d.headDim());
                }
            }
        });
    }

    @Override
    public void copyRows(float[] out, float[] x, int from, int n, int dim) {
        forward.copyRows(out, x, from, n, dim);
        tape.record(() -> k.axpy(tape.grad(x), from * dim, 1f, tape.grad(out), 0, n * dim));
    }
}
