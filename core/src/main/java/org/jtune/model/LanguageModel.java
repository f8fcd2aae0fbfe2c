package org.jtune.model;

/**
 * A loaded causal language model: the weights (memory-mapped, or copied into the decode layout; read-only,
 * shareable across threads and sessions) and the forward pass of its architecture. Everything per conversation (KV cache,
 * activation buffers) lives in a {@link ModelState} made by {@link #newState}, owned by an
 * {@code org.jtune.infer.Session}.
 */
public interface LanguageModel extends AutoCloseable {
    ModelInfo info();

    /** Preallocates a KV cache for {@code maxSeq} positions and buffers for chunks of up to {@code maxChunk} tokens. */
    default ModelState newState(int maxSeq, int maxChunk) {
        return newState(maxSeq, maxChunk, new InferenceOps(org.jtune.kernel.KernelProvider.get()));
    }

    /** {@link #newState(int, int)} with the KV cache in {@code kvCache}: F32, or BF16 (half the memory, keys and values rounded). */
    default ModelState newState(int maxSeq, int maxChunk, org.jtune.io.safetensors.DType kvCache) {
        return newState(maxSeq, maxChunk, new InferenceOps(org.jtune.kernel.KernelProvider.get()), kvCache);
    }

    /**
     * A state whose forward runs through {@code ops}: inference ops share one activation set across
     * layers; ops that keep activations (training) get one set per layer.
     */
    default ModelState newState(int maxSeq, int maxChunk, Ops ops) {
        return newState(maxSeq, maxChunk, ops, org.jtune.io.safetensors.DType.F32);
    }

    /** {@link #newState(int, int, Ops)} with the KV cache in {@code kvCache} (training needs F32). */
    ModelState newState(int maxSeq, int maxChunk, Ops ops, org.jtune.io.safetensors.DType kvCache);

    /**
     * Runs {@code tokens[off .. off+n)} at positions {@code state.length() ..}, appends their keys and
     * values to the state's cache in place, and writes logits: for every token ({@code allLogits},
     * {@code logits} holds {@code n * vocab}) or for the last one only ({@code vocab}). Requires
     * {@code n <= state.maxChunk()} and {@code state.length() + n <= state.maxSeq()}.
     */
    void forward(ModelState state, int[] tokens, int off, int n, float[] logits, boolean allLogits);

    /** Every linear layer of the decoder stack, each applied once per token (what decode streams from memory). */
    java.util.List<Linear> linearLayers();

    /** Every tensor with its checkpoint name, as loaded (what quantization rewrites and full fine-tuning trains). */
    WeightLoader.Inventory weights();

    /**
     * The groups of linear layers SmoothQuant may smooth, with what each smoothing folds into; empty
     * for families where it is not implemented (they are quantized without smoothing).
     */
    default java.util.List<SmoothGroup> smoothGroups() {
        return java.util.List.of();
    }

    /** The output projection (vocab, hidden-or-embed), applied to the tokens whose logits are wanted. */
    org.jtune.kernel.Matrix outputHead();

    @Override
    void close();
}
