package org.jtune.model;

import java.util.List;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.WeightFiles;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.WorkerPool;

/**
 * What every decoder-only family shares once its weights are loaded: the checkpoint files it keeps
 * mapped, its shape ({@link DecoderState.Dims}, rotary tables), its output head, the inventory of
 * loaded tensors, and sessions sized within its context. A family file holds only its config, its
 * weight-name table and its forward.
 */
public abstract class DecoderModel implements LanguageModel {
    protected final WeightFiles files;
    protected final Kernels kernels = KernelProvider.get();
    protected final WorkerPool pool = WorkerPool.shared();
    private Linear head;
    private DecoderState.Dims dims;
    private Rope rope;
    private ModelInfo info;
    private WeightLoader.Inventory weights;

    protected DecoderModel(WeightFiles files) {
        this.files = files;
    }

    /**
     * Ends loading: fails on checkpoint tensors the name table does not know (except {@code ignored}
     * patterns) and records the model's shape. {@code rope} is null for families without rotary
     * embeddings; {@code info.maxPositionEmbeddings()} bounds every session's context.
     */
    protected final void finishLoading(WeightLoader w, List<String> ignored, Linear head, DecoderState.Dims dims,
                                       Rope rope, ModelInfo info) {
        this.weights = w.inventory();
        w.finish(ignored);
        this.head = head;
        this.dims = dims;
        this.rope = rope;
        this.info = info;
    }

    /** The output projection as a layer (logits = final hidden states times its weight). */
    protected final Linear head() {
        return head;
    }

    @Override
    public final ModelInfo info() {
        return info;
    }

    @Override
    public final WeightLoader.Inventory weights() {
        return weights;
    }

    @Override
    public final Matrix outputHead() {
        return head.weight();
    }

    @Override
    public final ModelState newState(int maxSeq, int maxChunk, Ops ops, org.jtune.io.safetensors.DType kvCache) {
        if (maxSeq > info.maxPositionEmbeddings()) {
            throw new JTuneException("context of " + maxSeq + " tokens exceeds what this " + info.modelType()
                    + " model supports (" + info.maxPositionEmbeddings() + "); use a smaller context");
        }
        return new DecoderState(dims, rope, maxSeq, Math.max(1, Math.min(maxChunk, maxSeq)), kernels, pool, ops, kvCache);
    }

    /**
     * The rows the final norm reads: every row of the last layer's output (scoring, training) or a
     * copy of the last one (generation needs only the next token's logits).
     */
    protected static float[] finalRows(DecoderState s, int n, boolean allLogits, int hidden) {
        if (allLogits) {
            return s.xLast();
        }
        s.ops.copyRows(s.hFinal, s.xLast(), n - 1, 1, hidden);
        return s.hFinal;
    }

    @Override
    public void close() {
        files.close();
    }
}
