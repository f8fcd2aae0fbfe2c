package org.jtune.model;

/**
 * Keys and values of every layer for up to {@code maxSeq} positions, preallocated once and appended
 * in place: a decode step writes one row per layer and never copies the past (the point of a
 * stateful session). Keys are stored after RoPE, as HF's cache does.
 *
 * <p>Each layer's array is head-major, {@code (kvHeads, maxSeq, headDim)}: attention of one head reads
 * its keys and values as two contiguous streams. A position-major layout spread each head's rows at a
 * stride of the whole kv width, and decode attention ran at a fraction of the bandwidth the weight
 * streams get (the weight stream evicts the cache from L3 every token, so these reads come from DRAM).
 */
public final class KvCache {
    public final int numLayers;
    public final int maxSeq;
    public final int kvHeads;
    public final int headDim;
    public final float[][] keys;     // (layers) x (kvHeads, maxSeq, headDim)
    public final float[][] values;   // (layers) x (kvHeads, maxSeq, headDim)
    private int length;

    public KvCache(int numLayers, int maxSeq, int kvHeads, int headDim) {
        if ((long) maxSeq * kvHeads * headDim > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("KV cache of " + maxSeq + " positions x " + kvHeads * headDim
                    + " features per layer exceeds a Java array; use a shorter context");
        }
        this.numLayers = numLayers;
        this.maxSeq = maxSeq;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.keys = new float[numLayers][maxSeq * kvHeads * headDim];
        this.values = new float[numLayers][maxSeq * kvHeads * headDim];
    }

    /** Where position {@code pos} of kv head {@code kvHead} starts in a layer's keys or values. */
    public int index(int kvHead, int pos) {
        return (kvHead * maxSeq + pos) * headDim;
    }

    /**
     * Writes rows {@code (n, kvHeads * headDim)} of k and v (position-major, as the projections produce
     * them) into layer {@code layer} at positions {@code start ..}.
     */
    public void write(int layer, float[] k, float[] v, int start, int n) {
        float[] keysL = keys[layer], valuesL = values[layer];
        int kvd = kvHeads * headDim;
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < kvHeads; h++) {
                int dst = index(h, start + t);
                System.arraycopy(k, t * kvd + h * headDim, keysL, dst, headDim);
                System.arraycopy(v, t * kvd + h * headDim, valuesL, dst, headDim);
            }
        }
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
