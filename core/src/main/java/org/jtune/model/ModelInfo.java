package org.jtune.model;

import java.util.Map;

/**
 * What {@code jtune info} prints and what sessions need to size themselves: the architecture's
 * shape, the parameter count, and the bytes of weights by stored dtype.
 */
public record ModelInfo(String modelType, String architecture, int vocabSize, int hiddenSize, int numLayers,
                        int numHeads, int numKvHeads, int headDim, int maxPositionEmbeddings, long parameterCount,
                        Map<String, Long> weightBytesByDtype) {
    public long weightBytes() {
        return weightBytesByDtype.values().stream().mapToLong(Long::longValue).sum();
    }

    /** Bytes of an f32 KV cache for {@code seq} positions. */
    public long kvCacheBytes(int seq) {
        return 2L * numLayers * seq * numKvHeads * headDim * Float.BYTES;
    }
}
