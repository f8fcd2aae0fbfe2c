package org.jtune.model.neox;

import java.util.ArrayList;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.config.HfConfig;
import org.jtune.io.safetensors.WeightFiles;
import org.jtune.kernel.Matrix;
import org.jtune.model.Activation;
import org.jtune.model.Blocks;
import org.jtune.model.DecoderState;
import org.jtune.model.DecoderModel;
import org.jtune.model.Linear;
import org.jtune.model.Ops;
import org.jtune.model.ModelInfo;
import org.jtune.model.ModelState;
import org.jtune.model.Rope;
import org.jtune.model.SmoothGroup;
import org.jtune.model.WeightLoader;

/**
 * GPT-NeoX (Pythia, GPT-NeoX-20B). Per layer, with LayerNorms ln1 = input_layernorm and
 * ln2 = post_attention_layernorm:
 * <pre>
 *   use_parallel_residual (Pythia):  y = x + attn(ln1(x)) + mlp(ln2(x))
 *   sequential:                      h = x + attn(ln1(x));  y = h + mlp(ln2(h))
 * </pre>
 * The fused {@code query_key_value} output is laid out per head as {@code [q_h | k_h | v_h]}; only
 * the first {@code int(head_dim * rotary_pct)} features of q and k rotate. Exact-erf GELU by default,
 * untied {@code embed_out}.
 */
public final class GptNeoX extends DecoderModel {
    public static final List<String> MODEL_TYPES = List.of("gpt_neox");

    // ---- HF weight-name table ----
    static final String EMBED_IN = "gpt_neox.embed_in.weight";
    static final String LN_1 = "gpt_neox.layers.{L}.input_layernorm.";
    static final String QKV = "gpt_neox.layers.{L}.attention.query_key_value.";
    static final String DENSE = "gpt_neox.layers.{L}.attention.dense.";
    static final String LN_2 = "gpt_neox.layers.{L}.post_attention_layernorm.";
    static final String H_TO_4H = "gpt_neox.layers.{L}.mlp.dense_h_to_4h.";
    static final String FOURH_TO_H = "gpt_neox.layers.{L}.mlp.dense_4h_to_h.";
    static final String FINAL_LN = "gpt_neox.final_layer_norm.";
    static final String EMBED_OUT = "embed_out.weight";
    /** Buffers older checkpoints carry (causal masks, cached rotary frequencies). */
    static final List<String> IGNORED = List.of(
            "gpt_neox\\.layers\\.\\d+\\.attention\\.(bias|masked_bias|rotary_emb\\.inv_freq)");

    /** config.json mapped explicitly; defaults are those of transformers' GPTNeoXConfig. */
    public record Config(int vocabSize, int hiddenSize, int intermediateSize, int numLayers, int numHeads, int headDim,
                         int rotaryDims, double ropeTheta, int maxPositions, float layerNormEps, Activation activation,
                         boolean parallelResidual, boolean tieWordEmbeddings, boolean attentionBias) {
        public static Config from(HfConfig c) {
            int hidden = c.requirePositiveInt("hidden_size");
            int heads = c.requirePositiveInt("num_attention_heads");
            if (hidden % heads != 0) {
                throw new JTuneException(c.source() + ": hidden_size " + hidden + " is not divisible by num_attention_heads " + heads);
            }
            int headDim = hidden / heads;
            double pct = c.getDouble("rotary_pct", 0.25);
            if (pct < 0 || pct > 1) {
                throw c.unsupported("rotary_pct", pct, "it must be in [0, 1]");
            }
            int rot = (int) (headDim * pct);
            if (rot % 2 != 0) {
                throw c.unsupported("rotary_pct", pct, "head_dim * rotary_pct = " + rot + " must be even");
            }
            double theta = c.has("rotary_emb_base") ? c.requireDouble("rotary_emb_base") : c.getDouble("rope_theta", 10000);
            return new Config(c.requirePositiveInt("vocab_size"), hidden,
                    c.getPositiveInt("intermediate_size", 4 * hidden), c.requirePositiveInt("num_hidden_layers"), heads,
                    headDim, rot, theta, c.getPositiveInt("max_position_embeddings", 2048),
                    (float) c.getDouble("layer_norm_eps", 1e-5), Activation.fromConfig(c, "hidden_act", "gelu"),
                    c.getBoolean("use_parallel_residual", true), c.getBoolean("tie_word_embeddings", false),
                    c.getBoolean("attention_bias", true));
        }
    }

    record Layer(float[] ln1Weight, float[] ln1Bias, Linear qkv, Linear dense, float[] ln2Weight, float[] ln2Bias,
                 Linear up, Linear down) {
    }

    private final Config cfg;
    private final Matrix embedIn;    // (vocab, hidden)
    private final Layer[] layers;
    private final float[] finalWeight, finalBias;
    private final Matrix embedOut;   // (vocab, hidden)

    private GptNeoX(Config cfg, HfConfig hf, WeightFiles files, WeightLoader.Options options) {
        super(files);
        this.cfg = cfg;
        WeightLoader w = new WeightLoader(files, options);
        int h = cfg.hiddenSize;
        embedIn = w.matrix(EMBED_IN, cfg.vocabSize, h);
        layers = new Layer[cfg.numLayers];
        for (int l = 0; l < cfg.numLayers; l++) {
            layers[l] = new Layer(
                    w.vector(WeightLoader.layer(LN_1, l) + "weight", h), w.vector(WeightLoader.layer(LN_1, l) + "bias", h),
                    Linear.load(w, WeightLoader.layer(QKV, l), 3 * h, h, cfg.attentionBias),
                    Linear.load(w, WeightLoader.layer(DENSE, l), h, h, cfg.attentionBias),
                    w.vector(WeightLoader.layer(LN_2, l) + "weight", h), w.vector(WeightLoader.layer(LN_2, l) + "bias", h),
                    Linear.load(w, WeightLoader.layer(H_TO_4H, l), cfg.intermediateSize, h, true),
                    Linear.load(w, WeightLoader.layer(FOURH_TO_H, l), h, cfg.intermediateSize, true));
        }
        finalWeight = w.vector(FINAL_LN + "weight", h);
        finalBias = w.vector(FINAL_LN + "bias", h);
        if (cfg.tieWordEmbeddings) {
            embedOut = embedIn;
            w.ignore(EMBED_OUT);
        } else {
            embedOut = w.matrix(EMBED_OUT, cfg.vocabSize, h);
        }
        finishLoading(w, IGNORED, new Linear("embed_out", embedOut, null),
                new DecoderState.Dims(h, cfg.numHeads, cfg.numHeads, cfg.headDim, cfg.intermediateSize, 3 * h, cfg.numLayers),
                cfg.rotaryDims > 0 ? Rope.fromConfig(hf, cfg.rotaryDims, cfg.ropeTheta) : null, new ModelInfo("gpt_neox", "GPTNeoXForCausalLM", cfg.vocabSize, h, cfg.numLayers, cfg.numHeads,
                cfg.numHeads, cfg.headDim, cfg.maxPositions, w.parameterCount(), w.bytesByDtype()));
    }

    public static GptNeoX load(HfConfig hf, WeightFiles files, WeightLoader.Options options) {
        return new GptNeoX(Config.from(hf), hf, files, options);
    }

    @Override
    public List<Linear> linearLayers() {
        List<Linear> all = new ArrayList<>();
        for (Layer L : layers) {
            all.addAll(List.of(L.qkv, L.dense, L.up, L.down));
        }
        return all;
    }

    /**
     * SmoothQuant groups: input_layernorm -> query_key_value, post_attention_layernorm ->
     * dense_h_to_4h. attention.dense reads V through the fused per-head projection and dense_4h_to_h
     * follows GELU: they stay unsmoothed.
     */
    @Override
    public List<SmoothGroup> smoothGroups() {
        List<SmoothGroup> groups = new ArrayList<>();
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            String p = "gpt_neox.layers." + l + ".";
            groups.add(new SmoothGroup(p + "input_layernorm", L.ln1Weight, L.ln1Bias, null, List.of(L.qkv), null));
            groups.add(new SmoothGroup(p + "post_attention_layernorm", L.ln2Weight, L.ln2Bias, null,
                    List.of(L.up), null));
        }
        return groups;
    }

    @Override
    public void forward(ModelState state, int[] tokens, int off, int n, float[] logits, boolean allLogits) {
        DecoderState s = (DecoderState) state;
        Ops ops = s.ops;
        Blocks.checkChunk(s, n);
        int start = s.length(), h = cfg.hiddenSize, hd = cfg.headDim;
        float eps = cfg.layerNormEps, scale = (float) (1.0 / Math.sqrt(hd));
        ops.embed(s.x0(), embedIn, tokens, off, n);
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            DecoderState.LayerActs a = s.acts(l);
            ops.layerNorm(a.xn1, a.xIn, L.ln1Weight, L.ln1Bias, eps, n, h);
            ops.linear(a.qkv, a.xn1, L.qkv, n);
            ops.splitQkv(s, a, n, true);
            if (cfg.rotaryDims > 0) {
                ops.rope(a.q, n, cfg.numHeads, hd, cfg.rotaryDims, s.cos, s.sin, start);
                ops.rope(a.k, n, cfg.numHeads, hd, cfg.rotaryDims, s.cos, s.sin, start);
            }
            ops.attention(s, a, l, start, n, scale);
            ops.linear(a.attnOut, a.att, L.dense, n);
            if (cfg.parallelResidual) {
                // y = x + attn(ln1(x)) + mlp(ln2(x)): ln2 reads x before the attention output is added
                ops.layerNorm(a.xn2, a.xIn, L.ln2Weight, L.ln2Bias, eps, n, h);
                ops.add(a.h, a.xIn, a.attnOut, n * h);
            } else {
                ops.add(a.h, a.xIn, a.attnOut, n * h);
                ops.layerNorm(a.xn2, a.h, L.ln2Weight, L.ln2Bias, eps, n, h);
            }
            ops.linear(a.mlpIn, a.xn2, L.up, n);
            ops.activation(a.mlpAct, a.mlpIn, cfg.activation, n * cfg.intermediateSize);
            ops.linear(a.mlpOut, a.mlpAct, L.down, n);
            ops.add(a.xOut, a.h, a.mlpOut, n * h);
        }
        s.cache.advance(n);
        int rows = allLogits ? n : 1;
        float[] last = finalRows(s, n, allLogits, h);
        ops.layerNorm(s.normed, last, finalWeight, finalBias, eps, rows, h);
        ops.linear(logits, s.normed, head(), rows);
    }

}
