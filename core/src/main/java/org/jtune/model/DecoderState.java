package org.jtune.model;

import org.jtune.io.safetensors.DType;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.RangeTask;
import org.jtune.kernel.WorkerPool;

/**
 * The per-session (or per-training-step) buffers of a decoder-only transformer, shared by every
 * family. Each layer's activations live in a {@link LayerActs}: for inference one set serves all
 * layers and the residual stream is updated in place, so memory is one layer's worth and decoding
 * allocates nothing; for training every layer has its own set (each layer's output array is the
 * next layer's input array), because backward needs them all. The family's forward is the same
 * code either way; the {@link Ops} decide whether a tape records it.
 */
public final class DecoderState extends ModelState {
    /** The sizes a family's forward needs. {@code fusedQkv} = width of a fused q/k/v projection (0: none). */
    public record Dims(int hidden, int numHeads, int numKvHeads, int headDim, int mlpHidden, int fusedQkv,
                       int numLayers, int embedDim) {
        /** Dims of a model whose token embeddings are {@code hidden} wide. */
        public Dims(int hidden, int numHeads, int numKvHeads, int headDim, int mlpHidden, int fusedQkv, int numLayers) {
            this(hidden, numHeads, numKvHeads, headDim, mlpHidden, fusedQkv, numLayers, hidden);
        }

        public int qDim() {
            return numHeads * headDim;
        }

        public int kvDim() {
            return numKvHeads * headDim;
        }

        /** Query heads per kv head (grouped-query attention; 1 for multi-head): head h reads kv head h / this. */
        public int queriesPerKvHead() {
            return numHeads / numKvHeads;
        }
    }

    /**
     * One layer's activations, each {@code (chunk, width)}. Names follow a pre-norm block; families
     * use the subset they need: xIn → xn1 → q,k,v (or qkv) → att → attnOut → h = xIn + attnOut → (hn)
     * → xn2 → mlpIn (gate), up → mlpAct → mlpOut → y/xOut.
     */
    public static final class LayerActs {
        public final float[] xIn, xn1, qkv, q, k, v, att, attnOut, h, hn, xn2, mlpIn, up, mlpAct, mlpOut, xOut;
        /** {q, k, v} and {mlpIn, up}: the outputs of one {@link Ops#linears} call each. */
        public final float[][] qkvOuts, gateUpOuts;

        LayerActs(Dims d, int chunk, float[] xIn, boolean shareResidual) {
            int hid = chunk * d.hidden;
            this.xIn = xIn;
            xn1 = new float[hid];
            qkv = new float[chunk * d.fusedQkv];
            q = new float[chunk * d.qDim()];
            k = new float[chunk * d.kvDim()];
            v = new float[chunk * d.kvDim()];
            att = new float[chunk * d.qDim()];
            attnOut = new float[hid];
            h = shareResidual ? xIn : new float[hid];
            hn = shareResidual ? xIn : new float[hid];
            xn2 = new float[hid];
            mlpIn = new float[chunk * d.mlpHidden];
            up = new float[chunk * d.mlpHidden];
            mlpAct = shareResidual ? mlpIn : new float[chunk * d.mlpHidden];
            mlpOut = new float[hid];
            xOut = shareResidual ? xIn : new float[hid];
            qkvOuts = new float[][] {q, k, v};
            gateUpOuts = new float[][] {mlpIn, up};
        }
    }

    public final Dims dims;
    public final Ops ops;
    public final float[] emb;      // (chunk, embedDim) token embeddings (== layer 0's xIn when embedDim == hidden)
    public final float[] hFinal;   // (chunk, hidden) input of the final norm (inference: the last row only)
    public final float[] normed;   // (chunk, hidden) after the final norm
    public final float[] headIn;   // (chunk, embedDim) after an output projection (OPT), else == normed
    public final float[] cos;      // (maxSeq, rotDim / 2) or empty
    public final float[] sin;      // (maxSeq, rotDim / 2) or empty
    private final LayerActs[] acts;
    private final float[][] scores; // (threads) x (group x maxSeq): probabilities of one (token, kv head)'s query heads,
                                    // then a bf16 cache's kernel workspace (Kernels#attendGroupBf16); or a block's
                                    // workspace (Kernels#causalBlockScratch), whichever is larger
    private final AttentionTask attention;
    /**
     * Most parts a kv head's positions are split into for one token (see {@link #attend}), so that a decode step
     * has about {@link #ATTENTION_ITEMS} (kv head, part) items; with {@code partOut} (parts x qDim, each kv
     * head's parts together) and {@code partLse} (parts x heads) the parts' outputs and log-sum-exps.
     */
    private final int maxParts;
    private final float[] partOut, partLse;
    /**
     * A bf16 cache's keys and values widened to f32 for a prompt chunk (as the f32 cache lays them out), so that
     * the chunk's queries read them with the f32 kernel instead of each widening every key again; null for an f32
     * cache or single-token chunks.
     */
    private final float[] widenedKeys, widenedValues;
    private final WidenTask widen;
    private int partPositions = ATTENTION_PART;
    /** Tokens per {@link Kernels#attendCausalBlock} call in a prompt chunk, or 1: each token on its own. */
    private int blockRows;
    private final int maxBlockRows;
    private final boolean perLayer;

    /** Items a decode step's attention is split into when the context is long enough: several per thread. */
    static final int ATTENTION_ITEMS = 16;
    /** Fewest positions per part: below this, joining the parts costs more than the balance gains. */
    public static final int ATTENTION_PART = 256;

    /** A state running its forward through {@code ops}; one activation set per layer when the ops keep activations. */
    public DecoderState(Dims d, Rope rope, int maxSeq, int maxChunk, Kernels kernels, WorkerPool pool, Ops ops) {
        this(d, rope, maxSeq, maxChunk, kernels, pool, ops, DType.F32);
    }

    /** The same with the KV cache in {@code kvCache}: F32, or BF16 for inference ({@link KvCache}). */
    public DecoderState(Dims d, Rope rope, int maxSeq, int maxChunk, Kernels kernels, WorkerPool pool, Ops ops,
                        DType kvCache) {
        super(new KvCache(d.numLayers, maxSeq, d.numKvHeads, d.headDim, kvCache), maxChunk);
        if (kvCache != DType.F32 && ops.keepsActivations()) {
            throw new IllegalArgumentException("training reads the KV cache in f32; a " + kvCache + " cache is for inference");
        }
        this.dims = d;
        this.ops = ops;
        this.perLayer = ops.keepsActivations();
        float[] x0 = new float[maxChunk * d.hidden];
        emb = d.embedDim == d.hidden ? x0 : new float[maxChunk * d.embedDim];
        acts = new LayerActs[perLayer ? d.numLayers : 1];
        float[] in = x0;
        for (int l = 0; l < acts.length; l++) {
            acts[l] = new LayerActs(d, maxChunk, in, !perLayer);
            in = acts[l].xOut;
        }
        hFinal = new float[maxChunk * d.hidden];
        normed = new float[maxChunk * d.hidden];
        headIn = d.embedDim == d.hidden ? normed : new float[maxChunk * d.embedDim];
        if (rope != null) {
            float[][] t = rope.tables(maxSeq);
            cos = t[0];
            sin = t[1];
        } else {
            cos = sin = new float[0];
        }
        int group = d.queriesPerKvHead();
        maxBlockRows = blockRows = maxChunk >= kernels.causalBlockRows() ? kernels.causalBlockRows() : 1;
        int scratch = group * maxSeq + (kvCache == DType.F32 ? 0 : Math.max(4096, 2 * d.headDim));
        if (blockRows > 1) {
            scratch = Math.max(scratch, kernels.causalBlockScratch(maxSeq, d.headDim));
        }
        scores = new float[pool.threads()][scratch];
        attention = new AttentionTask(kernels, pool);
        maxParts = Math.max(1, (ATTENTION_ITEMS + d.numKvHeads - 1) / d.numKvHeads);
        partOut = new float[maxParts > 1 ? maxParts * d.qDim() : 0];
        partLse = new float[maxParts > 1 ? maxParts * d.numHeads : 0];
        boolean widened = kvCache == DType.BF16 && maxChunk > 1;
        widenedKeys = widened ? new float[maxSeq * d.kvDim()] : null;
        widenedValues = widened ? new float[maxSeq * d.kvDim()] : null;
        widen = widened ? new WidenTask(kernels, pool) : null;
    }

    /**
     * Fewest positions per part when one token's attention is split ({@link #attend}); {@link #ATTENTION_PART}
     * unless changed, {@code Integer.MAX_VALUE} never splits (to measure or test either path).
     */
    public void attentionPartPositions(int positions) {
        if (positions < 1) {
            throw new IllegalArgumentException("positions per attention part must be at least 1, got " + positions);
        }
        partPositions = positions;
    }

    /**
     * Whether a prompt chunk's attention runs in blocks of consecutive tokens ({@link Kernels#attendCausalBlock},
     * where the kernels have a block kernel and chunks are long enough; the default) or token by token (to
     * measure or test either path).
     */
    public void causalBlocks(boolean on) {
        blockRows = on ? maxBlockRows : 1;
    }

    /** The activations of layer l. */
    public LayerActs acts(int layer) {
        return acts[perLayer ? layer : 0];
    }

    /** Layer 0's input: where the embeddings (or their projection) go. */
    public float[] x0() {
        return acts[0].xIn;
    }

    /** The last layer's output. */
    public float[] xLast() {
        return acts[acts.length - 1].xOut;
    }

    public boolean perLayer() {
        return perLayer;
    }

    /** Copies a.qkv into a.q/k/v: {@code [Q | K | V]} per token (GPT-2) or {@code [q_h | k_h | v_h]} per head (GPT-NeoX). */
    public void splitQkv(LayerActs a, int n, boolean perHead) {
        int hd = dims.headDim, qd = dims.qDim(), kvd = dims.kvDim(), w = dims.fusedQkv;
        for (int t = 0; t < n; t++) {
            int base = t * w;
            if (perHead) {
                for (int h = 0; h < dims.numHeads; h++) {
                    int src = base + h * 3 * hd;
                    System.arraycopy(a.qkv, src, a.q, t * qd + h * hd, hd);
                    System.arraycopy(a.qkv, src + hd, a.k, t * kvd + h * hd, hd);
                    System.arraycopy(a.qkv, src + 2 * hd, a.v, t * kvd + h * hd, hd);
                }
            } else {
                System.arraycopy(a.qkv, base, a.q, t * qd, qd);
                System.arraycopy(a.qkv, base + qd, a.k, t * kvd, kvd);
                System.arraycopy(a.qkv, base + qd + kvd, a.v, t * kvd, kvd);
            }
        }
    }

    /** Writes the chunk's k and v rows into layer {@code layer}'s cache at positions {@code start ..}, in place. */
    public void appendKv(LayerActs a, int layer, int start, int n) {
        cache.write(layer, a.k, a.v, start, n);
    }

    /**
     * a.att = causal attention of the chunk's queries over cache positions {@code 0 .. start+t},
     * parallel over (token, kv head) pairs; query head h reads kv head h / (heads / kvHeads), and a kv
     * head's query heads are attended together ({@link Kernels#attendGroup}), so its rows are read once.
     * A single token with a long context has too few kv heads to keep the threads evenly busy (SmolLM2's
     * three on two threads, one on any number for multi-query): its positions are then split into parts of at
     * least {@link #attentionPartPositions} each, attended in parallel and joined by their log-sum-exps
     * ({@link Kernels#combineAttention}). The split depends on the context length only, never on the thread
     * count, so the result does not either. Over a bf16 cache a single token reads the packed rows
     * ({@link Kernels#attendGroupBf16}: half the bytes), and a chunk of several reads them widened once for
     * all its queries. A chunk of at least {@link Kernels#causalBlockRows} tokens (where the kernels have a block
     * kernel) runs over (block of that many consecutive tokens, query head) items instead
     * ({@link Kernels#attendCausalBlock}: a block's rows share every key and value read; a kv head's rows, read
     * again by each of its query heads, come from L2 by then).
     */
    public void attend(LayerActs a, int layer, int start, int n, float scale) {
        AttentionTask task = attention;
        int parts = n == 1 ? Math.max(1, Math.min(maxParts, (start + 1) / partPositions)) : 1;
        int block = n >= blockRows ? blockRows : 1;
        task.state = this;
        task.acts = a;
        task.layer = layer;
        task.start = start;
        task.tokens = n;
        task.scale = scale;
        task.parts = parts;
        task.block = block;
        task.widened = n > 1 && widenedKeys != null;
        if (task.widened) {   // a bf16 cache and a chunk of queries: widen the positions they read once for all of them
            widen.state = this;
            widen.layer = layer;
            widen.positions = start + n;
            widen.pool.run(2 * dims.numKvHeads, widen);
        }
        int items = block > 1 ? (n + block - 1) / block * dims.numHeads : n * dims.numKvHeads * parts;
        task.pool.run(items, task);
        task.acts = null;
        if (parts > 1) {
            int hd = dims.headDim, group = dims.queriesPerKvHead();
            for (int h = 0; h < dims.numHeads; h++) {
                int kv = h / group, g = h % group;
                task.kernels.combineAttention(a.att, h * hd, partOut, kv * parts * group * hd + g * hd, group * hd,
                        partLse, kv * parts * group + g, group, parts, hd);
            }
        }
    }

    private static final class AttentionTask implements RangeTask {
        final Kernels kernels;
        final WorkerPool pool;
        DecoderState state;
        LayerActs acts;
        int layer, start, tokens, parts, block;
        boolean widened;
        float scale;

        AttentionTask(Kernels kernels, WorkerPool pool) {
            this.kernels = kernels;
            this.pool = pool;
        }

        @Override
        public void run(int from, int to) {
            DecoderState s = state;
            Dims d = s.dims;
            int kvHeads = d.numKvHeads, hd = d.headDim, group = d.queriesPerKvHead(), qd = d.qDim();
            float[] sc = s.scores[pool.threadIndex()];
            KvCache c = s.cache;
            boolean packed = c.dtype == DType.BF16 && !widened;
            float[] keys = widened ? s.widenedKeys : packed ? null : c.keys[layer];
            float[] values = widened ? s.widenedValues : packed ? null : c.values[layer];
            int[] packedKeys = packed ? c.packedKeys[layer] : null, packedValues = packed ? c.packedValues[layer] : null;
            if (parts > 1) {   // one token, item = (kv head, part): part p of the positions 0 .. start
                int len = start + 1;
                for (int i = from; i < to; i++) {
                    int kv = i / parts, p = i % parts;
                    int p0 = (int) ((long) len * p / parts), p1 = (int) ((long) len * (p + 1) / parts);
                    attendGroup(s.partOut, i * group * hd, kv * group * hd, group, keys, values, packedKeys,
                            packedValues, c.index(kv, p0), p1 - p0, hd, sc, s.partLse, i * group);
                }
                return;
            }
            if (block > 1) {   // item = (block of tokens, query head): small items, as later blocks read more
                int heads = d.numHeads;
                for (int i = from; i < to; i++) {
                    int t0 = i / heads * block, h = i % heads, rows = Math.min(block, tokens - t0);
                    int off = t0 * qd + h * hd;
                    kernels.attendCausalBlock(acts.att, off, qd, acts.q, off, qd, rows, keys, values,
                            c.index(h / group, 0), hd, start + t0 + 1, hd, scale, sc);
                }
                return;
            }
            for (int i = from; i < to; i++) {
                int t = i / kvHeads, kv = i % kvHeads;
                int off = t * qd + kv * group * hd;
                attendGroup(acts.att, off, off, group, keys, values, packedKeys, packedValues, c.index(kv, 0),
                        start + t + 1, hd, sc, null, 0);
            }
        }

        /** One kv head's group over {@code len} positions from {@code kvOff}, from whichever cache there is. */
        private void attendGroup(float[] out, int outOff, int qOff, int group, float[] keys, float[] values,
                                 int[] packedKeys, int[] packedValues, int kvOff, int len, int hd, float[] sc, float[] lse,
                                 int lseOff) {
            if (keys != null) {
                kernels.attendGroup(out, outOff, acts.q, qOff, group, keys, values, kvOff, hd, len, hd, scale, sc, lse,
                        lseOff);
            } else {
                kernels.attendGroupBf16(out, outOff, acts.q, qOff, group, packedKeys, packedValues, kvOff, hd, len, hd,
                        scale, sc, lse, lseOff);
            }
        }
    }

    /** Item i: kv head i / 2's keys (i even) or values (odd), positions 0 .. positions, widened from the bf16 cache. */
    private static final class WidenTask implements RangeTask {
        final Kernels kernels;
        final WorkerPool pool;
        DecoderState state;
        int layer, positions;

        WidenTask(Kernels kernels, WorkerPool pool) {
            this.kernels = kernels;
            this.pool = pool;
        }

        @Override
        public void run(int from, int to) {
            KvCache c = state.cache;
            for (int i = from; i < to; i++) {
                int at = c.index(i / 2, 0);
                boolean keys = i % 2 == 0;
                kernels.widenBf16(keys ? state.widenedKeys : state.widenedValues, at,
                        keys ? c.packedKeys[layer] : c.packedValues[layer], at / 2, positions * c.headDim);
            }
        }
    }
}
