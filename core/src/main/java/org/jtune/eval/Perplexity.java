package org.jtune.eval;

import org.jtune.JTuneException;
import org.jtune.infer.Scoring;
import org.jtune.infer.Session;
import org.jtune.io.safetensors.DType;
import org.jtune.model.LanguageModel;

/**
 * Perplexity of a long token sequence with a sliding window (Hugging Face's recipe): windows of
 * {@code window} tokens advance by {@code stride}; each window scores only the tokens not scored by
 * the previous one, so every token after the first is predicted once, with up to
 * {@code window - stride} tokens of context before the newly scored ones.
 */
public final class Perplexity {
    public record Result(long scoredTokens, double totalNll, int windows) {
        public double meanNll() {
            return totalNll / scoredTokens;
        }

        public double perplexity() {
            return Math.exp(meanNll());
        }
    }

    private Perplexity() {
    }

    public static Result evaluate(LanguageModel model, int[] ids, int window, int stride) {
        return evaluate(model, ids, window, stride, DType.F32);
    }

    /** {@link #evaluate(LanguageModel, int[], int, int)} with the sessions' KV cache in {@code kvCache}. */
    public static Result evaluate(LanguageModel model, int[] ids, int window, int stride, DType kvCache) {
        if (window < 2 || stride < 1 || stride > window) {
            throw new JTuneException("perplexity needs window >= 2 and 1 <= stride <= window; got window " + window
                    + ", stride " + stride);
        }
        if (ids.length < 2) {
            throw new JTuneException("the text has " + ids.length + " token(s); perplexity needs at least 2");
        }
        double total = 0;
        long scored = 0;
        int windows = 0;
        int prevEnd = 0;
        try (Session s = new Session(model, window, Session.DEFAULT_MAX_CHUNK, kvCache)) {
            for (int begin = 0; prevEnd < ids.length; begin += stride) {
                int end = Math.min(begin + window, ids.length);
                int newTokens = end - prevEnd;            // score the tokens this window adds
                int[] chunk = java.util.Arrays.copyOfRange(ids, begin, end);
                s.reset();
                Scoring.Result r = Scoring.score(s, chunk);
                for (int t = Math.max(1, chunk.length - newTokens); t < chunk.length; t++) {
                    total -= r.logProbs()[t];
                    scored++;
                }
                windows++;
                prevEnd = end;
                if (end == ids.length) {
                    break;
                }
            }
        }
        return new Result(scored, total, windows);
    }
}
