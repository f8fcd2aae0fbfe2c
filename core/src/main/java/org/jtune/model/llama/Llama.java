package org.jtune.model.llama;

import java.util.Arrays;
import java.util.ArrayList;
import java.util.List;
import org.jtune.config.HfConfig;
import org.jtune.io.safetensors.WeightFiles;
import org.jtune.kernel.Matrix;
import org.jtune.model.Blocks;
import org.jtune.model.DecoderState;
import org.jtune.model.Linear;
import org.jtune.model.Ops;
import org.jtune.model.DecoderModel;
import org.jtune.model.ModelInfo;
import org.jtune.model.ModelState;
import org.jtune.model.Rope;
import org.jtune.model.SmoothGroup;
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
public final class Llama extends DecoderModel {
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

    record Layer(float[] inputNorm, Linear q, Linear k, Linear v, Linear o, float[] postNorm, Linear gate,
                 Linear up, Linear down, Linear[] qkv, Linear[] gateUp) {
        Layer(float[] inputNorm, Linear q, Linear k, Linear v, Linear o, float[] postNorm, Linear gate, Linear up,
              Linear down) {
            this(inputNorm, q, k, v, o, postNorm, gate, up, down, new Linear[] {q, k, v}, new Linear[] {gate, up});
        }
    }

    private final Config cfg;
    private final Matrix embed;       // (vocab, hidden)
    private final Layer[] layers;
    private final float[] finalNorm;  // (hidden)
    private final Matrix lmHead;      // (vocab, hidden); == embed when tied

    private Llama(Config cfg, HfConfig hf, WeightFiles files, WeightLoader.Options options) {
        super(files);
        this.cfg = cfg;
        WeightLoader w = new WeightLoader(files, options);
        int h = cfg.hiddenSize, inter = cfg.intermediateSize;
        embed = w.matrix(EMBED, cfg.vocabSize, h);
        layers = new Layer[cfg.numLayers];
        for (int l = 0; l < cfg.numLayers; l++) {
            layers[l] = new Layer(
                    w.vector(WeightLoader.layer(INPUT_NORM, l), h),
                    Linear.load(w, WeightLoader.layer(Q, l), cfg.qDim(), h, cfg.qkvBias),
                    Linear.load(w, WeightLoader.layer(K, l), cfg.kvDim(), h, cfg.qkvBias),
                    Linear.load(w, WeightLoader.layer(V, l), cfg.kvDim(), h, cfg.qkvBias),
                    Linear.load(w, WeightLoader.layer(O, l), h, cfg.qDim(), cfg.oBias),
                    w.vector(WeightLoader.layer(POST_NORM, l), h),
                    Linear.load(w, WeightLoader.layer(GATE, l), inter, h, cfg.mlpBias),
                    Linear.load(w, WeightLoader.layer(UP, l), inter, h, cfg.mlpBias),
                    Linear.load(w, WeightLoader.layer(DOWN, l), h, inter, cfg.mlpBias));
        }
        finalNorm = w.vector(FINAL_NORM, h);
        if (cfg.tieWordEmbeddings) {
            lmHead = embed;
            w.ignore(LM_HEAD);   // HF overwrites a stored lm_head with the embedding when tied
        } else {
            lmHead = w.matrix(LM_HEAD, cfg.vocabSize, h);
        }
        finishLoading(w, IGNORED, new Linear(LM_HEAD.replace(".weight", ""), lmHead, null),
                new DecoderState.Dims(h, cfg.numHeads, cfg.numKvHeads, cfg.headDim, inter, 0, cfg.numLayers),
                Rope.fromConfig(hf, cfg.headDim, cfg.ropeTheta), new ModelInfo(cfg.modelType, "LlamaForCausalLM", cfg.vocabSize, h, cfg.numLayers, cfg.numHeads,
                cfg.numKvHeads, cfg.headDim, cfg.maxContext, w.parameterCount(), w.bytesByDtype()));
    }

    /** Loads a Llama-family model from a parsed config and opened weights; takes ownership of the files. */
    public static Llama load(HfConfig hf, WeightFiles files, WeightLoader.Options options) {
        return new Llama(Config.from(hf), hf, files, options);
    }

    public Config config() {
        return cfg;
    }

    @Override
    public List<Linear> linearLayers() {
        List<Linear> all = new ArrayList<>();
        for (Layer L : layers) {
            all.addAll(List.of(L.q, L.k, L.v, L.o, L.gate, L.up, L.down));
        }
        return all;
    }

    /**
     * Per layer: input norm -> q,k,v; v_proj -> o_proj (attention averages values linearly; query
     * head h reads kv head h / group); post-attention norm -> gate, up; up_proj -> down_proj (the
     * SwiGLU product is linear in up). All four fold exactly.
     */
    @Override
    public List<SmoothGroup> smoothGroups() {
        List<SmoothGroup> groups = new ArrayList<>();
        int hd = cfg.headDim, group = cfg.numHeads / cfg.numKvHeads;
        int[] headToKv = new int[cfg.qDim()];
        for (int c = 0; c < headToKv.length; c++) {
            headToKv[c] = (c / hd / group) * hd + c % hd;
        }
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            String p = "model.layers." + l + ".";
            groups.add(new SmoothGroup(p + "input_layernorm", L.inputNorm, null, null,
                    List.of(L.q, L.k, L.v), null));
            groups.add(new SmoothGroup(p + "self_attn.v_proj->o_proj", null, null, L.v,
                    List.of(L.o), headToKv));
            groups.add(new SmoothGroup(p + "post_attention_layernorm", L.postNorm, null, null,
                    List.of(L.gate, L.up), null));
            groups.add(new SmoothGroup(p + "mlp.up_proj->down_proj", null, null, L.up,
                    List.of(L.down), null));
        }
        return groups;
    }

    @Override
    public void forward(ModelState state, int[] tokens, int off, int n, float[] logits, boolean allLogits) {
        DecoderState s = (DecoderState) state;
        Ops ops = s.ops;
        Blocks.checkChunk(s, n);
        int start = s.length(), h = cfg.hiddenSize, hd = cfg.headDim;
        float eps = cfg.rmsNormEps, scale = (float) (1.0 / Math.sqrt(hd));
        ops.embed(s.x0(), embed, tokens, off, n);
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            DecoderState.LayerActs a = s.acts(l);
            ops.rmsNorm(a.xn1, a.xIn, L.inputNorm, eps, n, h);
            ops.linears(a.qkvOuts, a.xn1, L.qkv, n);
            ops.rope(a.q, n, cfg.numHeads, hd, hd, s.cos, s.sin, start);
            ops.rope(a.k, n, cfg.numKvHeads, hd, hd, s.cos, s.sin, start);
            ops.attention(s, a, l, start, n, scale);
            ops.linear(a.attnOut, a.att, L.o, n);
            ops.add(a.h, a.xIn, a.attnOut, n * h);
            ops.rmsNorm(a.xn2, a.h, L.postNorm, eps, n, h);
            ops.linears(a.gateUpOuts, a.xn2, L.gateUp, n);
            ops.siluMul(a.mlpAct, a.mlpIn, a.up, n * cfg.intermediateSize);
            ops.linear(a.mlpOut, a.mlpAct, L.down, n);
            ops.add(a.xOut, a.h, a.mlpOut, n * h);
        }
        s.cache.advance(n);
        int rows = allLogits ? n : 1;
        float[] last = finalRows(s, n, allLogits, h);
        ops.rmsNorm(s.normed, last, finalNorm, eps, rows, h);
        ops.linear(logits, s.normed, head(), rows);
    }

    @Override
    public String toString() {
        return "Llama" + Arrays.asList(cfg.modelType, cfg.numLayers + " layers", cfg.hiddenSize + " hidden");
    }
}
