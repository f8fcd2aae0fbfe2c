package org.jtune.autograd;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.WorkerPool;
import org.jtune.model.Activation;
import org.jtune.model.DecoderState;
import org.jtune.model.Linear;
import org.jtune.model.Rope;
import org.jtune.train.CausalLmLoss;
import org.junit.jupiter.api.Test;

/**
 * Every op's backward against central finite differences on small, odd shapes. The objective is
 * {@code L = sum_i c_i * out_i} with random c, accumulated in double; inputs are perturbed by
 * {@link #EPS} (the ops compute in float32, so the check tolerates {@link #TOL} relative error).
 */
class OpsGradientCheckTest {
    static final float EPS = 1e-2f;
    static final double TOL = 2e-3;
    final SplittableRandom rnd = new SplittableRandom(42);
    final Kernels k = KernelProvider.get();

    float[] random(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    /** Runs {@code forward} on fresh training ops, returning L = sum c * out. */
    static double objective(Consumer<TrainingOps> forward, float[] out, float[] c) {
        TrainingOps ops = new TrainingOps(KernelProvider.get(), new Tape());
        forward.accept(ops);
        double l = 0;
        for (int i = 0; i < c.length; i++) {
            l += (double) c[i] * out[i];
        }
        return l;
    }

    /** Analytic gradients of every input in {@code inputs} via the tape, compared with finite differences. */
    void check(String what, Consumer<TrainingOps> forward, float[] out, float[][] inputs, float[]... trainables) {
        float[] c = random(out.length);
        Tape tape = new Tape();
        TrainingOps ops = new TrainingOps(k, tape);
        for (float[] t : trainables) {
            ops.trainable(t);
        }
        forward.accept(ops);
        System.arraycopy(c, 0, tape.grad(out), 0, c.length);
        tape.backward();
        for (int which = 0; which < inputs.length; which++) {
            float[] x = inputs[which];
            float[] analytic = tape.grad(x).clone();
            double maxErr = 0, maxG = 1e-3;
            for (int i = 0; i < x.length; i++) {
                float keep = x[i];
                x[i] = keep + EPS;
                double plus = objective(forward, out, c);
                x[i] = keep - EPS;
                double minus = objective(forward, out, c);
                x[i] = keep;
                double numeric = (plus - minus) / (2 * EPS);
                maxErr = Math.max(maxErr, Math.abs(numeric - analytic[i]));
                maxG = Math.max(maxG, Math.abs(numeric));
            }
            assertTrue(maxErr / maxG <= TOL, what + " input " + which + ": relative error " + maxErr / maxG);
        }
    }

    @Test
    void linearWithBiasMasterWeightAndLora() {
        int n = 3, in = 7, out = 5, r = 2;
        float[] x = random(n * in), w = random(out * in), b = random(out), a = random(r * in), bl = random(out * r);
        float[] y = new float[n * out];
        Linear l = new Linear("test", Linear.f32View(w, out, in), b);
        l.attach(Linear.Lora.of(a, bl, r, in, out, 1.5f));
        check("linear", ops -> ops.linear(y, x, l, n), y, new float[][] {x, w, b, a, bl}, w, b);
    }

    @Test
    void norms() {
        for (int n : new int[] {3, 37}) {   // 37 rows: three pool items, their weight gradients summed apart
            int dim = 9;
            float[] x = random(n * dim), w = random(dim), b = random(dim), y = new float[n * dim];
            check("rmsNorm n=" + n, ops -> ops.rmsNorm(y, x, w, 1e-5f, n, dim), y, new float[][] {x, w}, w);
            check("layerNorm n=" + n, ops -> ops.layerNorm(y, x, w, b, 1e-5f, n, dim), y, new float[][] {x, w, b}, w, b);
        }
    }

    @Test
    void elementwise() {
        int len = 13;
        float[] a = random(len), b = random(len), y = new float[len];
        check("add", ops -> ops.add(y, a, b, len), y, new float[][] {a, b});
        check("siluMul", ops -> ops.siluMul(y, a, b, len), y, new float[][] {a, b});
        for (Activation act : Activation.values()) {
            float[] x = random(len);
            for (int i = 0; i < len; i++) {
                if (Math.abs(x[i]) < 2 * EPS) {
                    x[i] += 0.1f;   // keep ReLU's kink out of the finite-difference window
                }
            }
            check(act.name(), ops -> ops.activation(y, x, act, len), y, new float[][] {x});
        }
    }

    @Test
    void embeddingsAndPositions() {
        int vocab = 6, dim = 5, n = 4;
        float[] table = random(vocab * dim), pos = random(8 * dim), y = new float[n * dim];
        int[] ids = {3, 1, 3, 5};
        Matrix t = Linear.f32View(table, vocab, dim), p = Linear.f32View(pos, 8, dim);
        check("embed+positions", ops -> {
            ops.embed(y, t, ids, 0, n);
            ops.addPositions(y, p, 2, n);
        }, y, new float[][] {table, pos}, table, pos);
    }

    @Test
    void ropeAndCopyRows() {
        int n = 3, heads = 2, hd = 8, rot = 4;
        Rope rope = new Rope(rot, new float[] {1f, 0.1f});
        float[][] tables = rope.tables(16);
        float[] x = random(n * heads * hd), y = new float[2 * heads * hd];
        check("rope (partial) + copyRows", ops -> {
            float[] work = x.clone();
            ops.copyRows(work, x, 0, n, heads * hd);
            ops.rope(work, n, heads, hd, rot, tables[0], tables[1], 5);
            ops.copyRows(y, work, 1, 2, heads * hd);
        }, y, new float[][] {x});
    }

    @Test
    void fusedQkvSplitAndCausalAttentionWithGqaAndAPrefix() {
        for (boolean perHead : new boolean[] {false, true}) {
            int heads = 4, kvHeads = perHead ? 4 : 2, hd = 3, n = 5, prefix = 2;
            DecoderState.Dims d = new DecoderState.Dims(heads * hd, heads, kvHeads, hd, 4, heads * hd + 2 * kvHeads * hd, 1);
            float[] qkv = random(n * d.fusedQkv()), prefixK = random(prefix * d.kvDim()), prefixV = random(prefix * d.kvDim());
            float[] att = new float[n * d.qDim()];
            Consumer<TrainingOps> forward = ops -> {
                DecoderState s = new DecoderState(d, null, prefix + n, n, k, WorkerPool.shared(), ops);
                DecoderState.LayerActs a = s.acts(0);
                s.cache.write(0, prefixK, prefixV, 0, prefix);
                System.arraycopy(qkv, 0, a.qkv, 0, qkv.length);
                // recorded first, so it runs last: routes the state's gradients back to the test's inputs
                Tape tape = ops.tape();
                tape.record(() -> {
                    k.axpy(tape.grad(qkv), 0, 1f, tape.grad(a.qkv), 0, qkv.length);
                    for (int t = 0; t < prefix; t++) {
                        for (int h = 0; h < kvHeads; h++) {
                            int at = s.cache.index(h, t), row = t * d.kvDim() + h * hd;
                            k.axpy(tape.grad(prefixK), row, 1f, tape.grad(s.cache.keys[0]), at, hd);
                            k.axpy(tape.grad(prefixV), row, 1f, tape.grad(s.cache.values[0]), at, hd);
                        }
                    }
                });
                ops.splitQkv(s, a, n, perHead);
                ops.attention(s, a, 0, prefix, n, 0.7f);
                ops.copyRows(att, a.att, 0, n, d.qDim());
            };
            check("attention perHead=" + perHead, forward, att, new float[][] {qkv, prefixK, prefixV});
        }
    }

    @Test
    void causalLmLossGradient() {
        causalLmLossGradient(7);    // shorter than a vector: the kernels' scalar tails
        causalLmLossGradient(37);   // whole vectors of f32 exps, then a tail
    }

    private void causalLmLossGradient(int vocab) {
        int n = 4;
        float[] logits = random(n * vocab);
        int[] labels = {-100, 3, -100, 6};
        float[] d = new float[logits.length];
        CausalLmLoss.forwardBackward(logits, labels, n, vocab, d, 1.0);
        for (int i = 0; i < logits.length; i++) {
            float keep = logits[i];
            logits[i] = keep + EPS;
            double plus = CausalLmLoss.forwardBackward(logits, labels, n, vocab, null, 1);
            logits[i] = keep - EPS;
            double minus = CausalLmLoss.forwardBackward(logits, labels, n, vocab, null, 1);
            logits[i] = keep;
            double numeric = (plus - minus) / (2 * EPS);
            assertTrue(Math.abs(numeric - d[i]) <= 1e-4, "vocab " + vocab + " logit " + i + ": " + numeric + " vs " + d[i]);
        }
    }
}
