package org.jtune.model.opt;

import java.util.Arrays;
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
 * OPT (facebook/opt-125m ... 66b; opt-350m's post-LN variant with embedding projections).
 * Input = project_in(embed_tokens[token]) + embed_positions[position + 2] (the learned table has two
 * extra leading rows).
 * <pre>
 *   do_layer_norm_before (pre-LN):  h = x + out_proj(attn(ln_sa(x)));  y = h + fc2(relu(fc1(ln_ff(h))))
 *   post-LN (opt-350m):             h = ln_sa(x + out_proj(attn(x)));  y = ln_ff(h + fc2(relu(fc1(h))))
 * </pre>
 * Pre-LN models end with final_layer_norm; project_out maps back to word_embed_proj_dim when it
 * differs from hidden_size; lm_head is tied to embed_tokens.
 */
public final class Opt extends DecoderModel {
    public static final List<String> MODEL_TYPES = List.of("opt");
    static final int POSITION_OFFSET = 2;
    static final float LAYER_NORM_EPS = 1e-5f;   // hard-coded in transformers' OPT

    // ---- HF weight-name table; {P} = "model." or "" (checkpoints saved from OPTModel lack it) ----
    static final String EMBED_TOKENS = "{P}decoder.embed_tokens.weight";
    static final String EMBED_POSITIONS = "{P}decoder.embed_positions.weight";
    static final String PROJECT_IN = "{P}decoder.project_in.weight";
    static final String PROJECT_OUT = "{P}decoder.project_out.weight";
    static final String Q = "{P}decoder.layers.{L}.self_attn.q_proj.";
    static final String K = "{P}decoder.layers.{L}.self_attn.k_proj.";
    static final String V = "{P}decoder.layers.{L}.self_attn.v_proj.";
    static final String OUT = "{P}decoder.layers.{L}.self_attn.out_proj.";
    static final String LN_SA = "{P}decoder.layers.{L}.self_attn_layer_norm.";
    static final String FC1 = "{P}decoder.layers.{L}.fc1.";
    static final String FC2 = "{P}decoder.layers.{L}.fc2.";
    static final String LN_FF = "{P}decoder.layers.{L}.final_layer_norm.";
    static final String FINAL_LN = "{P}decoder.final_layer_norm.";
    static final String LM_HEAD = "lm_head.weight";

    /** config.json mapped explicitly; defaults are those of transformers' OPTConfig. */
    public record Config(int vocabSize, int hiddenSize, int ffnDim, int numLayers, int numHeads, int headDim,
                         int maxPositions, int wordEmbedProjDim, boolean preLayerNorm, boolean finalLayerNorm,
                         Activation activation, boolean bias, boolean layerNormAffine, boolean tieWordEmbeddings) {
        public static Config from(HfConfig c) {
            int hidden = c.requirePositiveInt("hidden_size");
            int heads = c.requirePositiveInt("num_attention_heads");
            if (hidden % heads != 0) {
                throw new JTuneException(c.source() + ": hidden_size " + hidden + " is not divisible by num_attention_heads " + heads);
            }
            boolean pre = c.getBoolean("do_layer_norm_before", true);
            return new Config(c.requirePositiveInt("vocab_size"), hidden, c.requirePositiveInt("ffn_dim"),
                    c.requirePositiveInt("num_hidden_layers"), heads, hidden / heads,
                    c.getPositiveInt("max_position_embeddings", 2048), c.getPositiveInt("word_embed_proj_dim", hidden),
                    pre, pre && !c.getBoolean("_remove_final_layer_norm", false),
                    Activation.fromConfig(c, "activation_function", "relu"), c.getBoolean("enable_bias", true),
                    c.getBoolean("layer_norm_elementwise_affine", true), c.getBoolean("tie_word_embeddings", true));
        }

        boolean projects() {
            return wordEmbedProjDim != hiddenSize;
        }
    }

    record Norm(float[] weight, float[] bias) {
    }

    record Layer(Linear q, Linear k, Linear v, Linear out, Norm attnNorm, Linear fc1, Linear fc2, Norm ffNorm) {
    }

    private final Config cfg;
    private final Matrix embedTokens;      // (vocab, wordEmbedProjDim)
    private final Matrix embedPositions;   // (maxPositions + 2, hidden)
    private final Linear projectIn;        // (hidden, wordEmbedProjDim) or null
    private final Linear projectOut;       // (wordEmbedProjDim, hidden) or null
    private final Layer[] layers;
    private final Norm finalNorm;          // null for post-LN
    private final Matrix lmHead;           // (vocab, wordEmbedProjDim)

    private Opt(Config cfg, WeightFiles files, WeightLoader.Options options) {
        super(files);
        this.cfg = cfg;
        WeightLoader w = new WeightLoader(files, options);
        String p = files.contains("decoder.embed_tokens.weight") ? "" : "model.";
        int h = cfg.hiddenSize, e = cfg.wordEmbedProjDim;
        embedTokens = w.matrix(name(EMBED_TOKENS, p, 0), cfg.vocabSize, e);
        embedPositions = w.matrix(name(EMBED_POSITIONS, p, 0), cfg.maxPositions + POSITION_OFFSET, h);
        projectIn = cfg.projects() ? Linear.load(w, name(PROJECT_IN, p, 0).replace("weight", ""), h, e, false) : null;
        projectOut = cfg.projects() ? Linear.load(w, name(PROJECT_OUT, p, 0).replace("weight", ""), e, h, false) : null;
        layers = new Layer[cfg.numLayers];
        for (int l = 0; l < cfg.numLayers; l++) {
            layers[l] = new Layer(
                    Linear.load(w, name(Q, p, l), h, h, cfg.bias), Linear.load(w, name(K, p, l), h, h, cfg.bias),
                    Linear.load(w, name(V, p, l), h, h, cfg.bias), Linear.load(w, name(OUT, p, l), h, h, cfg.bias),
                    norm(w, name(LN_SA, p, l)),
                    Linear.load(w, name(FC1, p, l), cfg.ffnDim, h, cfg.bias),
                    Linear.load(w, name(FC2, p, l), h, cfg.ffnDim, cfg.bias),
                    norm(w, name(LN_FF, p, l)));
        }
        finalNorm = cfg.finalLayerNorm ? norm(w, name(FINAL_LN, p, 0)) : null;
        if (cfg.tieWordEmbeddings) {
            lmHead = embedTokens;
            w.ignore(LM_HEAD);
        } else {
            lmHead = w.matrix(LM_HEAD, cfg.vocabSize, e);
        }
        finishLoading(w, List.of(), new Linear("lm_head", lmHead, null),
                new DecoderState.Dims(h, cfg.numHeads, cfg.numHeads, cfg.headDim, cfg.ffnDim, 0, cfg.numLayers, e),
                null, new ModelInfo("opt", "OPTForCausalLM", cfg.vocabSize, h, cfg.numLayers, cfg.numHeads, cfg.numHeads,
                cfg.headDim, cfg.maxPositions, w.parameterCount(), w.bytesByDtype()));
    }

    private Norm norm(WeightLoader w, String prefix) {
        int h = cfg.hiddenSize;
        if (!cfg.layerNormAffine) {
            float[] ones = new float[h];
            Arrays.fill(ones, 1f);
            return new Norm(ones, null);
        }
        return new Norm(w.vector(prefix + "weight", h), w.vector(prefix + "bias", h));
    }

    private static String name(String pattern, String prefix, int layer) {
        return WeightLoader.layer(pattern.replace("{P}", prefix), layer);
    }

    public static Opt load(HfConfig hf, WeightFiles files, WeightLoader.Options options) {
        return new Opt(Config.from(hf), files, options);
    }

    @Override
    public List<Linear> linearLayers() {
        List<Linear> all = new ArrayList<>();
        if (projectIn != null) {
            all.add(projectIn);
            all.add(projectOut);
        }
        for (Layer L : layers) {
            all.addAll(List.of(L.q, L.k, L.v, L.out, L.fc1, L.fc2));
        }
        return all;
    }

    /**
     * SmoothQuant groups of pre-LN OPT: self_attn_layer_norm -> q,k,v; v_proj -> out_proj (attention
     * averages values linearly); final_layer_norm -> fc1. fc2 follows ReLU and stays unsmoothed; in
     * post-LN OPT (opt-350m) no norm precedes a projection, so nothing is smoothed.
     */
    @Override
    public List<SmoothGroup> smoothGroups() {
        List<SmoothGroup> groups = new ArrayList<>();
        if (!cfg.preLayerNorm() || !cfg.layerNormAffine()) {
            return groups;   // post-LN, or norms without weights to absorb the scales
        }
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            String p = "decoder.layers." + l + ".";
            groups.add(new SmoothGroup(p + "self_attn_layer_norm", L.attnNorm.weight, L.attnNorm.bias, null,
                    List.of(L.q, L.k, L.v), null));
            groups.add(new SmoothGroup(p + "self_attn.v_proj->out_proj", null, null, L.v,
                    List.of(L.out), null));
            groups.add(new SmoothGroup(p + "final_layer_norm", L.ffNorm.weight, L.ffNorm.bias, null,
                    List.of(L.fc1), null));
        }
        return groups;
    }

    @Override
    public void forward(ModelState state, int[] tokens, int off, int n, float[] logits, boolean allLogits) {
        DecoderState s = (DecoderState) state;
        Ops ops = s.ops;
        Blocks.checkChunk(s, n);
        int start = s.length(), h = cfg.hiddenSize;
        float scale = (float) (1.0 / Math.sqrt(cfg.headDim));
        ops.embed(s.emb, embedTokens, tokens, off, n);
        if (projectIn != null) {
            ops.linear(s.x0(), s.emb, projectIn, n);
        }
        ops.addPositions(s.x0(), embedPositions, start + POSITION_OFFSET, n);
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            DecoderState.LayerActs a = s.acts(l);
            float[] attnIn = a.xIn;
            if (cfg.preLayerNorm) {
                ops.layerNorm(a.xn1, a.xIn, L.attnNorm.weight, L.attnNorm.bias, LAYER_NORM_EPS, n, h);
                attnIn = a.xn1;
            }
            ops.linear(a.q, attnIn, L.q, n);
            ops.linear(a.k, attnIn, L.k, n);
            ops.linear(a.v, attnIn, L.v, n);
            ops.attention(s, a, l, start, n, scale);
            ops.linear(a.attnOut, a.att, L.out, n);
            ops.add(a.h, a.xIn, a.attnOut, n * h);
            if (cfg.preLayerNorm) {
                // h = x + attn(ln_sa(x));  y = h + fc2(act(fc1(ln_ff(h))))
                ops.layerNorm(a.xn2, a.h, L.ffNorm.weight, L.ffNorm.bias, LAYER_NORM_EPS, n, h);
                ops.linear(a.mlpIn, a.xn2, L.fc1, n);
                ops.activation(a.mlpAct, a.mlpIn, cfg.activation, n * cfg.ffnDim);
                ops.linear(a.mlpOut, a.mlpAct, L.fc2, n);
                ops.add(a.xOut, a.h, a.mlpOut, n * h);
            } else {
                // post-LN: hn = ln_sa(x + attn(x));  y = ln_ff(hn + fc2(act(fc1(hn))))
                ops.layerNorm(a.hn, a.h, L.attnNorm.weight, L.attnNorm.bias, LAYER_NORM_EPS, n, h);
                ops.linear(a.mlpIn, a.hn, L.fc1, n);
                ops.activation(a.mlpAct, a.mlpIn, cfg.activation, n * cfg.ffnDim);
                ops.linear(a.mlpOut, a.mlpAct, L.fc2, n);
                ops.add(a.xn2, a.hn, a.mlpOut, n * h);
                ops.layerNorm(a.xOut, a.xn2, L.ffNorm.weight, L.ffNorm.bias, LAYER_NORM_EPS, n, h);
            }
        }
        s.cache.advance(n);
        int rows = allLogits ? n : 1;
        float[] last = finalRows(s, n, allLogits, h);
        float[] normed = last;
        if (finalNorm != null) {
            ops.layerNorm(s.normed, last, finalNorm.weight, finalNorm.bias, LAYER_NORM_EPS, rows, h);
            normed = s.normed;
        }
        float[] headIn = normed;
        if (projectOut != null) {
            ops.linear(s.headIn, normed, projectOut, rows);
            headIn = s.headIn;
        }
        ops.linear(logits, headIn, head(), rows);
    }

}
