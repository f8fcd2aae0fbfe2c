package org.jtune.infer;

/**
 * Log-probabilities of a sequence under the model: position t's logits predict token t+1 (HF's
 * causal-LM convention), so the first token is not scored. Log-softmax in double precision.
 */
public final class Scoring {
    private Scoring() {
    }

    /** logits (tokens, vocab) of the whole sequence; logProbs[t] = log p(ids[t] | ids[..t)), logProbs[0] = NaN. */
    public record Result(float[] logits, int vocabSize, double[] logProbs) {
        public int scoredTokens() {
            return logProbs.length - 1;
        }

        public double totalNll() {
            double s = 0;
            for (int t = 1; t < logProbs.length; t++) {
                s -= logProbs[t];
            }
            return s;
        }

        public double meanNll() {
            return scoredTokens() == 0 ? Double.NaN : totalNll() / scoredTokens();
        }

        public double perplexity() {
            return Math.exp(meanNll());
        }
    }

    /** Feeds {@code ids} into an empty session and scores them. */
    public static Result score(Session session, int[] ids) {
        int vocab = session.model().info().vocabSize();
        float[] logits = new float[Math.multiplyExact(ids.length, vocab)];
        session.feedAllLogits(ids, 0, ids.length, logits, 0);
        double[] lp = new double[ids.length];
        lp[0] = Double.NaN;
        for (int t = 1; t < ids.length; t++) {
            lp[t] = logSoftmaxAt(logits, (t - 1) * vocab, vocab, ids[t]);
        }
        return new Result(logits, vocab, lp);
    }

    /** log softmax(logits[off .. off+n))[index], computed stably in double. */
    public static double logSoftmaxAt(float[] logits, int off, int n, int index) {
        return logits[off + index] - org.jtune.kernel.Kernels.logSumExpExact(logits, off, n);
    }
}
