package org.jtune.model;

import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.HalfFloats;

/**
 * Keys and values of every layer for up to {@code maxSeq} positions, preallocated once and appended
 * in place: a decode step writes one row per layer and never copies the past (the point of a
 * stateful session). Keys are stored after RoPE, as HF's cache does.
 *
 * <p>Each layer's array is head-major, {@code (kvHeads, maxSeq, headDim)}: attention of one head reads
 * its keys and values as two contiguous streams. A position-major layout spread each head's rows at a
 * stride of the whole kv width, and decode attention ran at a fraction of the bandwidth the weight
 * streams get (the weight stream evicts the cache from L3 every token, so these reads come from DRAM).
 *
 * <p>In bf16 ({@link #dtype}) the rows are rounded to nearest-even and packed two per int, element 2m in the
 * low half and 2m + 1 in the high half ({@link #packedKeys}, {@link #packedValues}; {@link #keys} and
 * {@link #values} are then null): half the memory and half the bytes decode's attention reads, for a rounding of
 * every key and value to 8 significant bits. Only inference reads such a cache; training needs f32.
 */
public final class KvCache {
    public final int numLayers;
    public final int maxSeq;
    public final int kvHeads;
    public final int headDim;
    public final DType dtype;
    public final float[][] keys;     // (layers) x (kvHeads, maxSeq, headDim), or null in bf16
    public final float[][] values;   // (layers) x (kvHeads, maxSeq, headDim), or null in bf16
    public final int[][] packedKeys;   // (layers) x (kvHeads, maxSeq, headDim / 2): bf16 pairs, or null in f32
    public final int[][] packedValues; // (layers) x (kvHeads, maxSeq, headDim / 2): bf16 pairs, or null in f32
    private int length;

    public KvCache(int numLayers, int maxSeq, int kvHeads, int headDim) {
        this(numLayers, maxSeq, kvHeads, headDim, DType.F32);
    }

    /** A cache holding its keys and values in {@code dtype}: F32, or BF16 (heads of even width). */
    public KvCache(int numLayers, int maxSeq, int kvHeads, int headDim, DType dtype) {
        if (dtype != DType.F32 && dtype != DType.BF16) {
            throw new IllegalArgumentException("a KV cache holds f32 or bf16, not " + dtype);
        }
        if (dtype == DType.BF16 && headDim % 2 != 0) {
            throw new JTuneException("a bf16 KV cache packs two values per int and needs an even head width; this "
                    + "model's heads are " + headDim + " wide: use an f32 cache (--kv-cache f32)");
        }
        if ((long) maxSeq * kvHeads * headDim > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("KV cache of " + maxSeq + " positions x " + kvHeads * headDim
                    + " features per layer exceeds a Java array; use a shorter context");
        }
        this.numLayers = numLayers;
        this.maxSeq = maxSeq;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.dtype = dtype;
        boolean packed = dtype == DType.BF16;
        int size = maxSeq * kvHeads * headDim;
        this.keys = packed ? null : new float[numLayers][size];
        this.values = packed ? null : new float[numLayers][size];
        this.packedKeys = packed ? new int[numLayers][size / 2] : null;
        this.packedValues = packed ? new int[numLayers][size / 2] : null;
    }

    /** Where position {@code pos} of kv head {@code kvHead} starts in a layer's keys or values (in elements: halve it for the packed arrays). */
    public int index(int kvHead, int pos) {
        return (kvHead * maxSeq + pos) * headDim;
    }

    /**
     * Writes rows {@code (n, kvHeads * headDim)} of k and v (position-major, as the projections produce
     * them) into layer {@code layer} at positions {@code start ..}.
     */
    public void write(int layer, float[] k, float[] v, int start, int n) {
        int kvd = kvHeads * headDim;
        if (dtype == DType.BF16) {
            int[] keysL = packedKeys[layer], valuesL = packedValues[layer];
            for (int t = 0; t < n; t++) {
                for (int h = 0; h < kvHeads; h++) {
                    int dst = index(h, start + t) / 2, src = t * kvd + h * headDim;
                    for (int m = 0; m < headDim / 2; m++) {
                        keysL[dst + m] = packBf16(k[src + 2 * m], k[src + 2 * m + 1]);
                        valuesL[dst + m] = packBf16(v[src + 2 * m], v[src + 2 * m + 1]);
                    }
                }
            }
            return;
        }
        float[] keysL = keys[layer], valuesL = values[layer];
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

    /** Two floats rounded to bf16 and packed: the first in the low half, the second in the high half. */
    static int packBf16(float even, float odd) {
        return (HalfFloats.floatToBf16(even) & 0xFFFF) | (HalfFloats.floatToBf16(odd) << 16);
    }
}
