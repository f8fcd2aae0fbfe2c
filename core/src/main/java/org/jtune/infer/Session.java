package org.jtune.infer;

import java.util.Arrays;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelState;

/**
 * One conversation with a model: owns the KV cache (preallocated for {@code maxSeq} positions and
 * appended in place), the activation buffers, the token history and the last logits. Feeding tokens
 * runs the prompt in chunks of up to {@code maxChunk} tokens (prefill) or one at a time (decode);
 * neither allocates. Not thread-safe: one session per conversation; many sessions may share a model.
 */
public final class Session implements AutoCloseable {
    public static final int DEFAULT_MAX_CHUNK = 128;

    private final LanguageModel model;
    private final ModelState state;
    private final DType kvCache;
    private final int vocab;
    private final int[] history;      // (maxSeq) tokens whose keys/values are in the cache
    private final float[] logits;     // (vocab) logits after the last fed token
    private float[] chunkLogits;      // (maxChunk, vocab), only for scoring

    public Session(LanguageModel model, int maxSeq) {
        this(model, maxSeq, DEFAULT_MAX_CHUNK);
    }

    public Session(LanguageModel model, int maxSeq, int maxChunk) {
        this(model, maxSeq, maxChunk, DType.F32);
    }

    /** A session whose KV cache holds {@code kvCache}: F32, or BF16 (half the memory; keys and values rounded to bf16). */
    public Session(LanguageModel model, int maxSeq, int maxChunk, DType kvCache) {
        if (maxSeq < 1) {
            throw new JTuneException("context size must be at least 1, got " + maxSeq);
        }
        this.model = model;
        this.state = model.newState(maxSeq, maxChunk, kvCache);
        this.kvCache = kvCache;
        this.vocab = model.info().vocabSize();
        this.history = new int[maxSeq];
        this.logits = new float[vocab];
    }

    /** The precision the KV cache holds keys and values in. */
    public DType kvCache() {
        return kvCache;
    }

    public LanguageModel model() {
        return model;
    }

    /** Number of tokens in the cache. */
    public int length() {
        return state.length();
    }

    public int maxSeq() {
        return state.maxSeq();
    }

    public int remaining() {
        return maxSeq() - length();
    }

    /** The tokens fed so far. */
    public int[] tokens() {
        return Arrays.copyOf(history, length());
    }

    public int token(int i) {
        return history[i];
    }

    /** The live history array (first {@link #length()} entries valid), for the sampler's penalty. */
    int[] historyBuffer() {
        return history;
    }

    /** The logits after the last fed token (a live buffer: the next feed overwrites it). */
    public float[] logits() {
        return logits;
    }

    /** Appends tokens (prompt or chosen tokens) and returns the logits after the last one. */
    public float[] feed(int[] tokens) {
        return feed(tokens, 0, tokens.length);
    }

    public float[] feed(int[] tokens, int off, int n) {
        checkFits(n);
        int chunk = state.maxChunk();
        for (int done = 0; done < n; ) {
            int c = Math.min(chunk, n - done);
            System.arraycopy(tokens, off + done, history, length(), c);
            model.forward(state, tokens, off + done, c, logits, false);
            done += c;
        }
        return logits;
    }

    /** Decode step: appends one token and returns the logits for the next. Allocation-free. */
    public float[] feed(int token) {
        checkFits(1);
        history[length()] = token;
        model.forward(state, history, length(), 1, logits, false);
        return logits;
    }

    /**
     * Appends tokens and writes the logits after every one of them into {@code out} ({@code n *
     * vocab} floats from {@code outOff}): what scoring and perplexity need.
     */
    public void feedAllLogits(int[] tokens, int off, int n, float[] out, int outOff) {
        checkFits(n);
        int chunk = state.maxChunk();
        if (chunkLogits == null) {
            chunkLogits = new float[chunk * vocab];
        }
        for (int done = 0; done < n; ) {
            int c = Math.min(chunk, n - done);
            System.arraycopy(tokens, off + done, history, length(), c);
            model.forward(state, tokens, off + done, c, chunkLogits, true);
            System.arraycopy(chunkLogits, 0, out, outOff + done * vocab, c * vocab);
            done += c;
        }
        System.arraycopy(out, outOff + (n - 1) * vocab, logits, 0, vocab);
    }

    /** Forgets everything from position {@code newLength} on (e.g. to re-use a shared prompt prefix). */
    public void rewind(int newLength) {
        state.cache.truncate(newLength);
    }

    public void reset() {
        rewind(0);
    }

    private void checkFits(int n) {
        if (n > remaining()) {
            throw new ContextOverflowException(length(), n, maxSeq());
        }
    }

    @Override
    public void close() {
        // The model is shared; the session's buffers are plain heap arrays.
    }

    /** Feeding would run past the session's context. */
    public static final class ContextOverflowException extends JTuneException {
        public ContextOverflowException(int length, int n, int maxSeq) {
            super("cannot add " + n + " token(s) to a session holding " + length + " of its " + maxSeq
                    + "-token context; shorten the prompt, start a new conversation, raise the context size"
                    + " (--max-context) or allow truncation (--truncate)");
        }
    }
}
