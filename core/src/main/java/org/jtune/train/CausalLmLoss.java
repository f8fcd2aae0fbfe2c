package org.jtune.train;

/**
 * Hugging Face's causal-LM loss: row t's logits predict {@code labels[t+1]}; labels equal to
 * {@link #IGNORE} (-100) are skipped; the loss is the mean negative log-likelihood over the
 * remaining targets. Log-softmax in double precision.
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
        double total = 0;
        for (int t = 0; t + 1 < n; t++) {
            int target = labels[t + 1];
            if (target == IGNORE) {
                continue;
            }
            if (target < 0 || target >= vocab) {
                throw new org.jtune.JTuneException("label " + target + " at position " + (t + 1) + " is outside the vocabulary [0, " + vocab + ")");
            }
            int o = t * vocab;
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < vocab; i++) {
                max = Math.max(max, logits[o + i]);
            }
            double sum = 0;
            for (int i = 0; i < vocab; i++) {
                sum += Math.exp(logits[o + i] - max);
            }
            double logZ = max + Math.log(sum);
            total += logZ - logits[o + target];
            if (dLogits != null) {
                double c = scale / count;
                for (int i = 0; i < vocab; i++) {
                    dLogits[o + i] += (float) (c * Math.exp(logits[o + i] - logZ));
                }
                dLogits[o + target] -= (float) c;
            }
        }
        return total / count;
    }
}
