package org.jtune.infer;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Chooses the next token from logits. All buffers are sized to the vocabulary once, so sampling
 * allocates nothing per token. Candidates for top-k/top-p are ordered by packing (probability bits,
 * token id) into longs and sorting those: probabilities are non-negative floats, whose bit patterns
 * order like the values.
 */
public final class Sampler {
    private final SamplingParams params;
    private final SplittableRandom random;
    private final float[] probs;
    private final long[] keys;
    private final int[] penalized;   // stamp per token id: penalize each distinct id once
    private int stamp;

    public Sampler(SamplingParams params, int vocabSize) {
        this.params = params;
        this.random = new SplittableRandom(params.seed());
        this.probs = new float[vocabSize];
        this.keys = new long[vocabSize];
        this.penalized = new int[vocabSize];
    }

    /**
     * Picks a token. {@code logits} is modified in place (penalty, temperature). {@code history}
     * holds {@code historyLen} previous tokens for the repetition penalty (HF: prompt included).
     */
    public int sample(float[] logits, int[] history, int historyLen) {
        int v = probs.length;
        if (params.repetitionPenalty() != 1.0) {
            float p = (float) params.repetitionPenalty();
            stamp++;
            for (int i = 0; i < historyLen; i++) {
                int id = history[i];
                if (id >= 0 && id < v && penalized[id] != stamp) {
                    penalized[id] = stamp;
                    logits[id] = logits[id] > 0 ? logits[id] / p : logits[id] * p;
                }
            }
        }
        if (params.temperature() == 0) {
            return argmax(logits, v);
        }
        float invT = (float) (1.0 / params.temperature());
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < v; i++) {
            max = Math.max(max, logits[i] * invT);
        }
        double sum = 0;
        for (int i = 0; i < v; i++) {
            float e = (float) Math.exp(logits[i] * invT - max);
            probs[i] = e;
            sum += e;
        }
        float maxProb = 0;
        for (int i = 0; i < v; i++) {
            probs[i] = (float) (probs[i] / sum);
            maxProb = Math.max(maxProb, probs[i]);
        }
        boolean filtered = params.topK() > 0 || params.topP() < 1 || params.minP() > 0;
        if (!filtered) {
            return draw(v, 1.0);
        }
        float minProb = (float) (params.minP() * maxProb);
        int n = 0;
        for (int i = 0; i < v; i++) {
            if (probs[i] > 0 && probs[i] >= minProb) {
                keys[n++] = ((long) Float.floatToRawIntBits(probs[i]) << 32) | i;
            }
        }
        Arrays.sort(keys, 0, n);   // ascending: best candidate last
        int keep = params.topK() > 0 ? Math.min(params.topK(), n) : n;
        if (params.topP() < 1) {
            // Smallest set of most likely tokens whose mass reaches top_p (always at least one).
            double mass = 0, total = 0;
            for (int j = n - 1; j >= n - keep; j--) {
                total += Float.intBitsToFloat((int) (keys[j] >>> 32));
            }
            int kept = 0;
            for (int j = n - 1; j >= n - keep; j--) {
                mass += Float.intBitsToFloat((int) (keys[j] >>> 32));
                kept++;
                if (mass >= params.topP() * total) {
                    break;
                }
            }
            keep = kept;
        }
        double total = 0;
        for (int j = n - 1; j >= n - keep; j--) {
            total += Float.intBitsToFloat((int) (keys[j] >>> 32));
        }
        double r = random.nextDouble() * total;
        for (int j = n - 1; j >= n - keep; j--) {
            r -= Float.intBitsToFloat((int) (keys[j] >>> 32));
            if (r < 0) {
                return (int) keys[j];
            }
        }
        return (int) keys[n - keep];
    }

    private int draw(int v, double total) {
        double r = random.nextDouble() * total;
        int last = 0;
        for (int i = 0; i < v; i++) {
            if (probs[i] > 0) {
                last = i;
                r -= probs[i];
                if (r < 0) {
                    return i;
                }
            }
        }
        return last;   // rounding left a sliver of mass: take the last possible token
    }

    public static int argmax(float[] logits, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }
}
