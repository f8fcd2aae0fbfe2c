package org.jtune.model;

import org.jtune.kernel.Kernels;
import org.jtune.kernel.RangeTask;
import org.jtune.kernel.WorkerPool;

/**
 * The per-session buffers of a decoder-only transformer, shared by every family: all sized once for
 * chunks of up to {@code maxChunk} tokens, so decoding allocates nothing. Also runs causal
 * attention over the cache for a chunk, parallel over (token, head) pairs, without ever forming a
 * (seq, seq) matrix.
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
    }

    public final Dims dims;
    public final float[] x;        // (chunk, hidden) residual stream
    public final float[] xn;       // (chunk, hidden) normalized input of a sublayer
    public final float[] q;        // (chunk, heads * headDim)
    public final float[] k;        // (chunk, kvHeads * headDim)
    public final float[] v;        // (chunk, kvHeads * headDim)
    public final float[] qkv;      // (chunk, fusedQkv) or empty
    public final float[] att;      // (chunk, heads * headDim)
    public final float[] out;      // (chunk, hidden) sublayer output
    public final float[] out2;     // (chunk, hidden) second sublayer output (parallel residual)
    public final float[] mlp;      // (chunk, mlpHidden)
    public final float[] mlp2;     // (chunk, mlpHidden) second MLP input projection (SwiGLU's up)
    public final float[] emb;      // (chunk, embedDim) token embeddings before an input projection (OPT)
    public final float[] cos;      // (maxSeq, rotDim / 2) or empty
    public final float[] sin;      // (maxSeq, rotDim / 2) or empty
    private final float[][] scores; // (threads) x (maxSeq): probabilities of one (token, head)
    private final AttentionTask attention;

    public DecoderState(Dims d, Rope rope, int maxSeq, int maxChunk, Kernels kernels, WorkerPool pool) {
        super(new KvCache(d.numLayers, maxSeq, d.kvDim()), maxChunk);
        this.dims = d;
        x = new float[maxChunk * d.hidden];
        xn = new float[maxChunk * d.hidden];
        q = new float[maxChunk * d.qDim()];
        k = new float[maxChunk * d.kvDim()];
        v = new float[maxChunk * d.kvDim()];
        qkv = new float[maxChunk * d.fusedQkv];
        att = new float[maxChunk * d.qDim()];
        out = new float[maxChunk * d.hidden];
        out2 = new float[maxChunk * d.hidden];
        mlp = new float[maxChunk * d.mlpHidden];
        mlp2 = new float[maxChunk * d.mlpHidden];
        emb = d.embedDim == d.hidden ? x : new float[maxChunk * d.embedDim];
        if (rope != null) {
            float[][] t = rope.tables(maxSeq);
            cos = t[0];
            sin = t[1];
        } else {
            cos = sin = new float[0];
        }
        scores = new float[pool.threads()][maxSeq];
        attention = new AttentionTask(kernels, pool);
    }

    /**
     * Splits the fused projection in {@code qkv} into q, k and v: laid out {@code [Q | K | V]} per
     * token (GPT-2), or {@code [q_h | k_h | v_h]} per head (GPT-NeoX) when {@code perHead}.
     */
    public void splitQkv(int n, boolean perHead) {
        int hd = dims.headDim, qd = dims.qDim(), kvd = dims.kvDim(), w = dims.fusedQkv;
        for (int t = 0; t < n; t++) {
            int base = t * w;
            if (perHead) {
                for (int h = 0; h < dims.numHeads; h++) {
                    int src = base + h * 3 * hd;
                    System.arraycopy(qkv, src, q, t * qd + h * hd, hd);
                    System.arraycopy(qkv, src + hd, k, t * kvd + h * hd, hd);
                    System.arraycopy(qkv, src + 2 * hd, v, t * kvd + h * hd, hd);
                }
            } else {
                System.arraycopy(qkv, base, q, t * qd, qd);
                System.arraycopy(qkv, base + qd, k, t * kvd, kvd);
                System.arraycopy(qkv, base + qd + kvd, v, t * kvd, kvd);
            }
        }
    }

    /**
     * Rotates the first {@code rotDim} features of every q and k head of the chunk starting at
     * position {@code start} (HF rotate-half pairing).
     */
    public void applyRope(Kernels kernels, int start, int n, int rotDim) {
        int half = rotDim / 2, hd = dims.headDim, qd = dims.qDim(), kvd = dims.kvDim();
        for (int t = 0; t < n; t++) {
            int table = (start + t) * half;
            for (int h = 0; h < dims.numHeads; h++) {
                kernels.rope(q, t * qd + h * hd, cos, sin, table, rotDim);
            }
            for (int h = 0; h < dims.numKvHeads; h++) {
                kernels.rope(k, t * kvd + h * hd, cos, sin, table, rotDim);
            }
        }
    }

    /**
     * Appends the chunk's k and v rows to layer {@code layer}'s cache at positions {@code start ..}
     * (in place), then computes {@code att} = causal attention of the chunk's queries over positions
     * {@code 0 .. start+t}. Query head h reads kv head h / (heads / kvHeads).
     */
    public void attend(int layer, int start, int n, float scale) {
        int kvd = dims.kvDim();
        System.arraycopy(k, 0, cache.keys[layer], start * kvd, n * kvd);
        System.arraycopy(v, 0, cache.values[layer], start * kvd, n * kvd);
        AttentionTask a = attention;
        a.state = this;
        a.layer = layer;
        a.start = start;
        a.tokens = n;
        a.scale = scale;
        a.pool.run(n * dims.numHeads, a);
    }

    private static final class AttentionTask implements RangeTask {
        final Kernels kernels;
        final WorkerPool pool;
        DecoderState state;
        int layer, start, tokens;
        float scale;

        AttentionTask(Kernels kernels, WorkerPool pool) {
            this.kernels = kernels;
            this.pool = pool;
        }

        @Override
        public void run(int from, int to) {
            DecoderState s = state;
            Dims d = s.dims;
            int heads = d.numHeads, hd = d.headDim, group = heads / d.numKvHeads, qd = d.qDim();
            float[] sc = s.scores[pool.rangeIndex(tokens * heads, from)];
            float[] keys = s.cache.keys[layer], values = s.cache.values[layer];
            for (int i = from; i < to; i++) {
                int t = i / heads, head = i % heads;
                int off = t * qd + head * hd;
                kernels.attend(s.att, off, s.q, off, keys, values, (head / group) * hd, d.kvDim(), start + t + 1, hd,
                        scale, sc);
            }
        }
    }
}
