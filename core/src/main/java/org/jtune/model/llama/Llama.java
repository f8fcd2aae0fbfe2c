package org.jtune.model.llama;

import java.util.Arrays;
import java.util.List;
import org.jtune.config.HfConfig;
import org.jtune.io.safetensors.WeightFiles;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.RangeTask;
import org.jtune.kernel.WorkerPool;
import org.jtune.model.KvCache;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelInfo;
import org.jtune.model.ModelState;
import org.jtune.model.Rope;
import org.jtune.model.WeightLoader;

/**
 * The Llama family: Llama 1/2/3, TinyLlama, SmolLM, Mistral (sliding window only up to the window),
 * Qwen2 (bias on q/k/v). Pre-norm decoder layers:
 * <pre>
 *   h = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = RMSNorm(x)
 *   y = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))                        n2 = RMSNorm(h)
 * </pre>
 * then a final RMSNorm and lm_head (tied to embed_tokens when tie_word_embeddings). Grouped-query
 * attention: query head h reads kv head h / (heads / kvHeads).
 */
public final class Llama implements LanguageModel {
    public static final List<String> MODEL_TYPES = List.of("llama", "mistral", "qwen2");

    // ---- HF weight-name table ({L} = layer index) ----
    static final String EMBED = "model.embed_tokens.weight";
    static final String INPUT_NORM = "model.layers.{L}.input_layernorm.weight";
    static final String Q = "model.layers.{L}.self_attn.q_proj.";
    static final String K = "model.layers.{L}.self_attn.k_proj.";
    static final String V = "model.layers.{L}.self_attn.v_proj.";
    static final String O = "model.layers.{L}.self_attn.o_proj.";
    static final String POST_NORM = "model.layers.{L}.post_attention_layernorm.weight";
    static final String GATE = "model.layers.{L}.mlp.gate_proj.";
    static final String UP = "model.layers.{L}.mlp.up_proj.";
    static final String DOWN = "model.layers.{L}.mlp.down_proj.";
    static final String FINAL_NORM = "model.norm.weight";
    static final String LM_HEAD = "lm_head.weight";
    /** Tensors some checkpoints carry that we deliberately do not use. */
    static final List<String> IGNORED = List.of("model\\.layers\\.\\d+\\.self_attn\\.rotary_emb\\.inv_freq");

    /** config.json mapped explicitly; defaults are those of transformers' LlamaConfig. */
    public record Config(String modelType, int vocabSize, int hiddenSize, int intermediateSize, int numLayers,
                         int numHeads, int numKvHeads, int headDim, int maxPositionEmbeddings, float rmsNormEps,
                         double ropeTheta, boolean tieWordEmbeddings, boolean qkvBias, boolean oBias, boolean mlpBias,
                         int maxContext) {
        public static Config from(HfConfig c) {
            String type = c.modelType();
            int hidden = c.requirePositiveInt("hidden_size");
            int heads = c.requirePositiveInt("num_attention_heads");
            int kvHeads = c.getPositiveInt("num_key_value_heads", heads);              // default: MHA
            if (heads % kvHeads != 0) {
                throw new org.jtune.JTuneException(c.source() + ": num_attention_heads (" + heads
                        + ") must be a multiple of num_key_value_heads (" + kvHeads + ")");
            }
            if (hidden % heads != 0 && !c.has("head_dim")) {
                throw new org.jtune.JTuneException(c.source() + ": hidden_size " + hidden
                        + " is not divisible by num_attention_heads " + heads + " and there is no head_dim");
            }
            int headDim = c.getPositiveInt("head_dim", hidden / heads);
            String act = c.getString("hidden_act", "silu");
            if (!act.equals("silu") && !act.equals("swish")) {
                throw c.unsupported("hidden_act", "\"" + act + "\"", "the Llama family is implemented with SiLU (SwiGLU) only");
            }
            int maxPos = c.getPositiveInt("max_position_embeddings", 2048);
            boolean qkvBias, oBias;
            if (type.equals("qwen2")) {                                                  // Qwen2Attention: q/k/v bias only
                qkvBias = true;
                oBias = false;
            } else {
                qkvBias = oBias = c.getBoolean("attention_bias", false);
            }
            // Within the window, sliding-window attention equals full attention: cap the context there.
            int maxContext = maxPos;
            boolean sliding = type.equals("qwen2") ? c.getBoolean("use_sliding_window", false) : c.has("sliding_window");
            if (sliding && c.has("sliding_window")) {
                maxContext = Math.min(maxPos, c.requirePositiveInt("sliding_window"));
            }
            int rotDim = headDim;
            if (rotDim % 2 != 0) {
                throw new org.jtune.JTuneException(c.source() + ": head_dim " + headDim + " must be even for RoPE");
            }
            return new Config(type, c.requirePositiveInt("vocab_size"), hidden, c.requirePositiveInt("intermediate_size"),
                    c.requirePositiveInt("num_hidden_layers"), heads, kvHeads, headDim, maxPos,
                    (float) c.getDouble("rms_norm_eps", 1e-6), c.getDouble("rope_theta", 10000.0),
                    c.getBoolean("tie_word_embeddings", false), qkvBias, oBias, c.getBoolean("mlp_bias", false),
                    maxContext);
        }

        int qDim() {
            return numHeads * headDim;
        }

        int kvDim() {
            return numKvHeads * headDim;
        }
    }

    record Layer(float[] inputNorm, Matrix q, float[] qBias, Matrix k, float[] kBias, Matrix v, float[] vBias,
                 Matrix o, float[] oBias, float[] postNorm, Matrix gate, float[] gateBias, Matrix up, float[] upBias,
                 Matrix down, float[] downBias) {
    }

    private final Config cfg;
    private final WeightFiles files;
    private final Matrix embed;       // (vocab, hidden)
    private final Layer[] layers;
    private final float[] finalNorm;  // (hidden)
    private final Matrix lmHead;      // (vocab, hidden); == embed when tied
    private final Rope rope;
    private final ModelInfo info;
    private final Kernels kernels;
    private final WorkerPool pool;

    private Llama(Config cfg, HfConfig hf, WeightFiles files) {
        this.cfg = cfg;
        this.files = files;
        this.kernels = KernelProvider.get();
        this.pool = WorkerPool.shared();
        WeightLoader w = new WeightLoader(files);
        int h = cfg.hiddenSize, inter = cfg.intermediateSize;
        embed = w.matrix(EMBED, cfg.vocabSize, h);
        layers = new Layer[cfg.numLayers];
        for (int l = 0; l < cfg.numLayers; l++) {
            layers[l] = new Layer(
                    w.vector(WeightLoader.layer(INPUT_NORM, l), h),
                    w.matrix(WeightLoader.layer(Q, l) + "weight", cfg.qDim(), h), bias(w, Q, l, cfg.qDim(), cfg.qkvBias),
                    w.matrix(WeightLoader.layer(K, l) + "weight", cfg.kvDim(), h), bias(w, K, l, cfg.kvDim(), cfg.qkvBias),
                    w.matrix(WeightLoader.layer(V, l) + "weight", cfg.kvDim(), h), bias(w, V, l, cfg.kvDim(), cfg.qkvBias),
                    w.matrix(WeightLoader.layer(O, l) + "weight", h, cfg.qDim()), bias(w, O, l, h, cfg.oBias),
                    w.vector(WeightLoader.layer(POST_NORM, l), h),
                    w.matrix(WeightLoader.layer(GATE, l) + "weight", inter, h), bias(w, GATE, l, inter, cfg.mlpBias),
                    w.matrix(WeightLoader.layer(UP, l) + "weight", inter, h), bias(w, UP, l, inter, cfg.mlpBias),
                    w.matrix(WeightLoader.layer(DOWN, l) + "weight", h, inter), bias(w, DOWN, l, h, cfg.mlpBias));
        }
        finalNorm = w.vector(FINAL_NORM, h);
        if (cfg.tieWordEmbeddings) {
            lmHead = embed;
            w.ignore(LM_HEAD);   // HF overwrites a stored lm_head with the embedding when tied
        } else {
            lmHead = w.matrix(LM_HEAD, cfg.vocabSize, h);
        }
        w.finish(IGNORED);
        rope = Rope.fromConfig(hf, cfg.headDim, cfg.ropeTheta);
        info = new ModelInfo(cfg.modelType, "LlamaForCausalLM", cfg.vocabSize, h, cfg.numLayers, cfg.numHeads,
                cfg.numKvHeads, cfg.headDim, cfg.maxContext, w.parameterCount(), w.bytesByDtype());
    }

    private static float[] bias(WeightLoader w, String prefix, int layer, int n, boolean expected) {
        String name = WeightLoader.layer(prefix, layer) + "bias";
        return expected ? w.vector(name, n) : null;
    }

    /** Loads a Llama-family model from a parsed config and opened weights; takes ownership of the files. */
    public static Llama load(HfConfig hf, WeightFiles files) {
        return new Llama(Config.from(hf), hf, files);
    }

    public Config config() {
        return cfg;
    }

    @Override
    public ModelInfo info() {
        return info;
    }

    @Override
    public ModelState newState(int maxSeq, int maxChunk) {
        if (maxSeq > cfg.maxContext) {
            throw new org.jtune.JTuneException("context of " + maxSeq + " tokens exceeds what this model supports ("
                    + cfg.maxContext + ", from max_position_embeddings/sliding_window); use a smaller context");
        }
        return new State(this, maxSeq, Math.max(1, Math.min(maxChunk, maxSeq)));
    }

    @Override
    public void close() {
        files.close();
    }

    /** The session-owned buffers; sized once for {@code maxChunk} tokens so no step allocates. */
    static final class State extends ModelState {
        final float[] x;        // (chunk, hidden) residual stream
        final float[] xn;       // (chunk, hidden) normalized input of a sublayer
        final float[] q;        // (chunk, heads * headDim)
        final float[] k;        // (chunk, kvHeads * headDim)
        final float[] v;        // (chunk, kvHeads * headDim)
        final float[] att;      // (chunk, heads * headDim)
        final float[] out;      // (chunk, hidden) sublayer output
        final float[] gate;     // (chunk, intermediate)
        final float[] up;       // (chunk, intermediate)
        final float[] cos;      // (maxSeq, headDim / 2)
        final float[] sin;      // (maxSeq, headDim / 2)
        final float[][] scores; // (threads) x (maxSeq): attention probabilities of one (token, head)
        final AttentionTask attention;

        State(Llama m, int maxSeq, int maxChunk) {
            super(new KvCache(m.cfg.numLayers, maxSeq, m.cfg.kvDim()), maxChunk);
            Config c = m.cfg;
            x = new float[maxChunk * c.hiddenSize];
            xn = new float[maxChunk * c.hiddenSize];
            q = new float[maxChunk * c.qDim()];
            k = new float[maxChunk * c.kvDim()];
            v = new float[maxChunk * c.kvDim()];
            att = new float[maxChunk * c.qDim()];
            out = new float[maxChunk * c.hiddenSize];
            gate = new float[maxChunk * c.intermediateSize];
            up = new float[maxChunk * c.intermediateSize];
            float[][] t = m.rope.tables(maxSeq);
            cos = t[0];
            sin = t[1];
            scores = new float[m.pool.threads()][maxSeq];
            attention = new AttentionTask(m, this);
        }
    }

    /** Attention of every (new token, head) pair over the cache, parallel over pairs. */
    static final class AttentionTask implements RangeTask {
        private final Llama m;
        private final State s;
        int layer, start, tokens;

        AttentionTask(Llama m, State s) {
            this.m = m;
            this.s = s;
        }

        @Override
        public void run(int from, int to) {
            Config c = m.cfg;
            int heads = c.numHeads, hd = c.headDim, group = heads / c.numKvHeads;
            float[] scores = s.scores[m.pool.rangeIndex(tokens * heads, from)];
            float scale = (float) (1.0 / Math.sqrt(hd));
            float[] keys = s.cache.keys[layer], values = s.cache.values[layer];
            for (int i = from; i < to; i++) {
                int t = i / heads, head = i % heads;
                int off = t * c.qDim() + head * hd;
                m.kernels.attend(s.att, off, s.q, off, keys, values, (head / group) * hd, c.kvDim(),
                        start + t + 1, hd, scale, scores);
            }
        }
    }

    @Override
    public void forward(ModelState state, int[] tokens, int off, int n, float[] logits, boolean allLogits) {
        State s = (State) state;
        Config c = cfg;
        int start = s.length();
        if (n < 1 || n > s.maxChunk() || start + n > s.maxSeq()) {
            throw new IllegalArgumentException("chunk of " + n + " tokens at position " + start
                    + " does not fit (maxChunk " + s.maxChunk() + ", maxSeq " + s.maxSeq() + ")");
        }
        int h = c.hiddenSize, qd = c.qDim(), kvd = c.kvDim(), hd = c.headDim, inter = c.intermediateSize;
        for (int t = 0; t < n; t++) {
            int id = tokens[off + t];
            if (id < 0 || id >= c.vocabSize) {
                throw new org.jtune.JTuneException("token id " + id + " is outside the vocabulary [0, " + c.vocabSize + ")");
            }
            kernels.gatherRow(s.x, t * h, embed, id);
        }
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            for (int t = 0; t < n; t++) {
                kernels.rmsNorm(s.xn, t * h, s.x, t * h, L.inputNorm, c.rmsNormEps, h);
            }
            linear(s.q, s.xn, L.q, L.qBias, n);
            linear(s.k, s.xn, L.k, L.kBias, n);
            linear(s.v, s.xn, L.v, L.vBias, n);
            float[] keys = s.cache.keys[l], values = s.cache.values[l];
            int half = hd / 2;
            for (int t = 0; t < n; t++) {
                int pos = start + t;
                for (int head = 0; head < c.numHeads; head++) {
                    kernels.rope(s.q, t * qd + head * hd, s.cos, s.sin, pos * half, hd);
                }
                for (int head = 0; head < c.numKvHeads; head++) {
                    kernels.rope(s.k, t * kvd + head * hd, s.cos, s.sin, pos * half, hd);
                }
                System.arraycopy(s.k, t * kvd, keys, pos * kvd, kvd);     // append in place
                System.arraycopy(s.v, t * kvd, values, pos * kvd, kvd);
            }
            AttentionTask a = s.attention;
            a.layer = l;
            a.start = start;
            a.tokens = n;
            pool.run(n * c.numHeads, a);
            linear(s.out, s.att, L.o, L.oBias, n);
            add(s.x, s.out, n * h);
            for (int t = 0; t < n; t++) {
                kernels.rmsNorm(s.xn, t * h, s.x, t * h, L.postNorm, c.rmsNormEps, h);
            }
            linear(s.gate, s.xn, L.gate, L.gateBias, n);
            linear(s.up, s.xn, L.up, L.upBias, n);
            kernels.siluMul(s.gate, s.up, n * inter);
            linear(s.out, s.gate, L.down, L.downBias, n);
            add(s.x, s.out, n * h);
        }
        s.cache.advance(n);
        if (allLogits) {
            for (int t = 0; t < n; t++) {
                kernels.rmsNorm(s.xn, t * h, s.x, t * h, finalNorm, c.rmsNormEps, h);
            }
            kernels.matmul(logits, s.xn, lmHead, n);
        } else {
            kernels.rmsNorm(s.xn, 0, s.x, (n - 1) * h, finalNorm, c.rmsNormEps, h);
            kernels.matmul(logits, s.xn, lmHead, 1);
        }
    }

    private void linear(float[] out, float[] x, Matrix w, float[] bias, int n) {
        kernels.matmul(out, x, w, n);
        if (bias != null) {
            int d = w.rows();
            for (int t = 0; t < n; t++) {
                kernels.axpy(out, t * d, 1f, bias, 0, d);
            }
        }
    }

    private void add(float[] y, float[] x, int n) {
        kernels.axpy(y, 0, 1f, x, 0, n);
    }

    @Override
    public String toString() {
        return "Llama" + Arrays.asList(cfg.modelType, cfg.numLayers + " layers", cfg.hiddenSize + " hidden");
    }
}
