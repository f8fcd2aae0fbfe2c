package org.jtune.model;

/**
 * Per-session state of one model: the KV cache plus the activation buffers its forward pass needs,
 * all allocated up front so that decoding allocates nothing. Each family subclasses it with its own
 * buffers.
 */
public abstract class ModelState {
    public final KvCache cache;
    private final int maxChunk;

    protected ModelState(KvCache cache, int maxChunk) {
        this.cache = cache;
        this.maxChunk = maxChunk;
    }

    public int length() {
        return cache.length();
    }

    public int maxSeq() {
        return cache.maxSeq;
    }

    public int maxChunk() {
        return maxChunk;
    }
}
