package org.jtune.model;

/**
 * Keys and values of every layer for up to {@code maxSeq} positions, preallocated once and appended
 * in place: a decode step writes one row per layer and never copies the past (the point of a
 * stateful session). Keys are stored after RoPE, as HF's cache does.
 */
public final class KvCache {
    public final int numLayers;
    public final int maxSeq;
    public final int kvDim;          // kv heads * head dim
    public final float[][] keys;     // (layers) x (maxSeq, kvHeads, headDim)
    public final float[][] values;   // (layers) x (maxSeq, kvHeads, headDim)
    private int length;

    public KvCache(int numLayers, int maxSeq, int kvDim) {
        if ((long) maxSeq * kvDim > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("KV cache of " + maxSeq + " positions x " + kvDim
                    + " features per layer exceeds a Java array; use a shorter context");
        }
        this.numLayers = numLayers;
        this.maxSeq = maxSeq;
        this.kvDim = kvDim;
        this.keys = new float[numLayers][maxSeq * kvDim];
        this.values = new float[numLayers][maxSeq * kvDim];
    }

    /** Number of positions holding valid keys/values. */
    public int length() {
        return length;
    }

    /** Marks {@code n} more positions as filled (after every layer wrote them). */
    public void advance(int n) {
        if (length + n > maxSeq) {
            throw new IllegalStateException("KV cache overflow: " + length + " + " + n + " > " + maxSeq);
        }
        length += n;
    }

    /** Forgets positions from {@code newLength} on; they are overwritten by the next forward. */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate a cache of length " + length + " to " + newLength);
        }
        length = newLength;
    }
}
