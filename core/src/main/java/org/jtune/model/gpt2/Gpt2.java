package org.jtune.model.gpt2;

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
import org.jtune.model.SmoothGroup;
import org.jtune.model.WeightLoader;

/**
 * GPT-2 (and DistilGPT2-style checkpoints). Pre-LN blocks:
 * <pre>
 *   h = x + c_proj(attention(split(c_attn(ln_1(x)))));   y = h + mlp.c_proj(act(mlp.c_fc(ln_2(h))))
 * </pre>
 * Input = wte[token] + wpe[position] (learned absolute positions), final ln_f, head tied to wte.
 * HF's Conv1D stores weights {@code [in, out]}; the name table transposes them once at load time,
 * so the forward pass is the same linear layers as every other family. {@code c_attn}'s output is
 * {@code [Q | K | V]}.
 */
public final class Gpt2 extends DecoderModel {
    public static final List<String> MODEL_TYPES = List.of("gpt2");

    // ---- HF weight-name table; {P} = "transformer." or "" (the original checkpoints have no prefix) ----
    static final String WTE = "{P}wte.weight";
    static final String WPE = "{P}wpe.weight";
    static final String LN_1 = "{P}h.{L}.ln_1.";
    static final String C_ATTN = "{P}h.{L}.attn.c_attn.";
    static final String ATTN_C_PROJ = "{P}h.{L}.attn.c_proj.";
    static final String LN_2 = "{P}h.{L}.ln_2.";
    static final String C_FC = "{P}h.{L}.mlp.c_fc.";
    static final String MLP_C_PROJ = "{P}h.{L}.mlp.c_proj.";
    static final String LN_F = "{P}ln_f.";
    static final String LM_HEAD = "lm_head.weight";
    /** Causal-mask buffers older checkpoints carry. */
    static final List<String> IGNORED = List.of("(transformer\\.)?h\\.\\d+\\.attn\\.(bias|masked_bias)");

    /** config.json mapped explicitly; defaults are those of transformers' GPT2Config. */
    public record Config(int vocabSize, int hiddenSize, int numLayers, int numHeads, int headDim, int maxPositions,
                         int innerSize, Activation activation, float layerNormEps, boolean scaleAttnWeights,
                         boolean scaleAttnByInverseLayerIdx, boolean tieWordEmbeddings) {
        public static Config from(HfConfig c) {
            int hidden = c.requirePositiveInt("n_embd");
            int heads = c.requirePositiveInt("n_head");
            if (hidden % heads != 0) {
                throw new JTuneException(c.source() + ": n_embd " + hidden + " is not divisible by n_head " + heads);
            }
            if (c.getBoolean("add_cross_attention", false)) {
                throw c.unsupported("add_cross_attention", true, "jtune runs decoder-only GPT-2");
            }
            return new Config(c.requirePositiveInt("vocab_size"), hidden, c.requirePositiveInt("n_layer"), heads,
                    hidden / heads, c.getPositiveInt("n_positions", 1024),
                    c.has("n_inner") ? c.requirePositiveInt("n_inner") : 4 * hidden,
                    Activation.fromConfig(c, "activation_function", "gelu_new"),
                    (float) c.getDouble("layer_norm_epsilon", 1e-5), c.getBoolean("scale_attn_weights", true),
                    c.getBoolean("scale_attn_by_inverse_layer_idx", false), c.getBoolean("tie_word_embeddings", true));
        }
    }

    record Layer(float[] ln1Weight, float[] ln1Bias, Linear cAttn, Linear attnProj, float[] ln2Weight,
                 float[] ln2Bias, Linear fc, Linear mlpProj) {
    }

    private final Config cfg;
    private final Matrix wte;        // (vocab, hidden)
    private final Matrix wpe;        // (positions, hidden)
    private final Layer[] layers;
    private final float[] lnFWeight, lnFBias;
    private final Matrix lmHead;     // (vocab, hidden)

    private Gpt2(Config cfg, WeightFiles files, WeightLoader.Options options) {
        super(files);
        this.cfg = cfg;
        WeightLoader w = new WeightLoader(files, options);
        String p = files.contains("transformer.wte.weight") ? "transformer." : "";
        int h = cfg.hiddenSize;
        wte = w.matrix(name(WTE, p, 0), cfg.vocabSize, h);
        wpe = w.matrix(name(WPE, p, 0), cfg.maxPositions, h);
        layers = new Layer[cfg.numLayers];
        for (int l = 0; l < cfg.numLayers; l++) {
            layers[l] = new Layer(
                    w.vector(name(LN_1, p, l) + "weight", h), w.vector(name(LN_1, p, l) + "bias", h),
                    Linear.loadConv1D(w, name(C_ATTN, p, l), 3 * h, h),
                    Linear.loadConv1D(w, name(ATTN_C_PROJ, p, l), h, h),
                    w.vector(name(LN_2, p, l) + "weight", h), w.vector(name(LN_2, p, l) + "bias", h),
                    Linear.loadConv1D(w, name(C_FC, p, l), cfg.innerSize, h),
                    Linear.loadConv1D(w, name(MLP_C_PROJ, p, l), h, cfg.innerSize));
        }
        lnFWeight = w.vector(name(LN_F, p, 0) + "weight", h);
        lnFBias = w.vector(name(LN_F, p, 0) + "bias", h);
        if (cfg.tieWordEmbeddings) {
            lmHead = wte;
            w.ignore(LM_HEAD);
        } else {
            lmHead = w.matrix(LM_HEAD, cfg.vocabSize, h);
        }
        finishLoading(w, IGNORED, new Linear("lm_head", lmHead, null),
                new DecoderState.Dims(h, cfg.numHeads, cfg.numHeads, cfg.headDim, cfg.innerSize, 3 * h, cfg.numLayers),
                null, new ModelInfo("gpt2", "GPT2LMHeadModel", cfg.vocabSize, h, cfg.numLayers, cfg.numHeads, cfg.numHeads,
                cfg.headDim, cfg.maxPositions, w.parameterCount(), w.bytesByDtype()));
    }

    private static String name(String pattern, String prefix, int layer) {
        return WeightLoader.layer(pattern.replace("{P}", prefix), layer);
    }

    public static Gpt2 load(HfConfig hf, WeightFiles files, WeightLoader.Options options) {
        return new Gpt2(Config.from(hf), files, options);
    }

    @Override
    public List<Linear> linearLayers() {
        List<Linear> all = new ArrayList<>();
        for (Layer L : layers) {
            all.addAll(List.of(L.cAttn, L.attnProj, L.fc, L.mlpProj));
        }
        return all;
    }

    /**
     * SmoothQuant groups: ln_1 -> c_attn and ln_2 -> c_fc (LayerNorm weight and bias absorb the
     * scales). attn.c_proj reads V through c_attn's fused output and mlp.c_proj follows GELU: neither
     * folds into a single producer here, so they stay unsmoothed.
     */
    @Override
    public List<SmoothGroup> smoothGroups() {
        List<SmoothGroup> groups = new ArrayList<>();
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            groups.add(new SmoothGroup("h." + l + ".ln_1", L.ln1Weight, L.ln1Bias, null, List.of(L.cAttn), null));
            groups.add(new SmoothGroup("h." + l + ".ln_2", L.ln2Weight, L.ln2Bias, null, List.of(L.fc), null));
        }
        return groups;
    }

    @Override
    public void forward(ModelState state, int[] tokens, int off, int n, float[] logits, boolean allLogits) {
        DecoderState s = (DecoderState) state;
        Ops ops = s.ops;
        Blocks.checkChunk(s, n);
        int start = s.length(), h = cfg.hiddenSize;
        float eps = cfg.layerNormEps;
        ops.embed(s.x0(), wte, tokens, off, n);
        ops.addPositions(s.x0(), wpe, start, n);
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            DecoderState.LayerActs a = s.acts(l);
            float scale = cfg.scaleAttnWeights ? (float) (1.0 / Math.sqrt(cfg.headDim)) : 1f;
            if (cfg.scaleAttnByInverseLayerIdx) {
                scale /= (l + 1);
            }
            ops.layerNorm(a.xn1, a.xIn, L.ln1Weight, L.ln1Bias, eps, n, h);
            ops.linear(a.qkv, a.xn1, L.cAttn, n);
            ops.splitQkv(s, a, n, false);
            ops.attention(s, a, l, start, n, scale);
            ops.linear(a.attnOut, a.att, L.attnProj, n);
            ops.add(a.h, a.xIn, a.attnOut, n * h);
            ops.layerNorm(a.xn2, a.h, L.ln2Weight, L.ln2Bias, eps, n, h);
            ops.linear(a.mlpIn, a.xn2, L.fc, n);
            ops.activation(a.mlpAct, a.mlpIn, cfg.activation, n * cfg.innerSize);
            ops.linear(a.mlpOut, a.mlpAct, L.mlpProj, n);
            ops.add(a.xOut, a.h, a.mlpOut, n * h);
        }
        s.cache.advance(n);
        int rows = allLogits ? n : 1;
        float[] last = finalRows(s, n, allLogits, h);
        ops.layerNorm(s.normed, last, lnFWeight, lnFBias, eps, rows, h);
        ops.linear(logits, s.normed, head(), rows);
    }

}
