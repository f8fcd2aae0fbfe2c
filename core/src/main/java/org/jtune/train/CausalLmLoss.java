package org.jtune.train;

import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.WorkerPool;

/**
 * Hugging Face's causal-LM loss: row t's logits predict {@code labels[t+1]}; labels equal to
 * {@link #IGNORE} (-100) are skipped; the loss is the mean negative log-likelihood over the
 * remaining targets. Each row's log-sum-exp is accumulated in double ({@link Kernels#logSumExp}).
 */
public final class CausalLmLoss {
    public static final int IGNORE = -100;

    private CausalLmLoss() {
    }

    /** Number of scored targets: labels[1..n) that are not ignored. */
    public static int targets(int[] labels, int n) {
        int c = 0;
        for (int t = 1; t < n; t++) {
            if (labels[t] != IGNORE) {
                c++;
            }
        }
        return c;
    }

    /**
     * Returns the mean NLL of a sequence and, if {@code dLogits} is not null, adds
     * {@code scale * d(loss)/d(logits)} into it ({@code (softmax - onehot) / targets} per scored row).
     */
    public static double forwardBackward(float[] logits, int[] labels, int n, int vocab, float[] dLogits, double scale) {
        int count = targets(labels, n);
        if (count == 0) {
            return Double.NaN;
        }
        for (int t = 1; t < n; t++) {
            if (labels[t] != IGNORE && (labels[t] < 0 || labels[t] >= vocab)) {
                throw new org.jtune.JTuneException("label " + labels[t] + " at position " + t + " is outside the vocabulary [0, "
                        + vocab + ")");
            }
        }
        // rows in parallel, each row's loss kept apart and summed in order, so the result does not depend on the threads
        double[] rowLoss = new double[n];
        double c = scale / count;
        Kernels k = KernelProvider.get();
        WorkerPool.shared().run(n - 1, (from, to) -> {
            for (int t = from; t < to; t++) {
                int target = labels[t + 1];
                if (target != IGNORE) {
                    rowLoss[t] = rowNll(k, logits, t * vocab, vocab, target, dLogits, c);
                }
            }
        });
        double total = 0;
        for (int t = 0; t + 1 < n; t++) {
            total += rowLoss[t];
        }
        return total / count;
    }

    /** One row's NLL of {@code target}; adds {@code c * (softmax - onehot)} into dLogits when it is not null. */
    private static double rowNll(Kernels k, float[] logits, int o, int vocab, int target, float[] dLogits, double c) {
        double logZ = k.logSumExp(logits, o, vocab);
        if (dLogits != null) {
            k.addSoftmax(dLogits, o, logits, o, vocab, logZ, c);
            dLogits[o + target] -= (float) c;
        }
        return logZ - logits[o + target];
    }
}
