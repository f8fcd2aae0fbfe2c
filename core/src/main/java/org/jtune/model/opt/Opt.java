package org.jtune.model.opt;

import java.util.Arrays;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.config.HfConfig;
import org.jtune.io.safetensors.WeightFiles;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.WorkerPool;
import org.jtune.model.Activation;
import org.jtune.model.Blocks;
import org.jtune.model.DecoderState;
import org.jtune.model.LanguageModel;
import org.jtune.model.Linear;
import org.jtune.model.ModelInfo;
import org.jtune.model.ModelState;
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
public final class Opt implements LanguageModel {
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
    private final WeightFiles files;
    private final Matrix embedTokens;      // (vocab, wordEmbedProjDim)
    private final Matrix embedPositions;   // (maxPositions + 2, hidden)
    private final Linear projectIn;        // (hidden, wordEmbedProjDim) or null
    private final Linear projectOut;       // (wordEmbedProjDim, hidden) or null
    private final Layer[] layers;
    private final Norm finalNorm;          // null for post-LN
    private final Matrix lmHead;           // (vocab, wordEmbedProjDim)
    private final DecoderState.Dims dims;
    private final ModelInfo info;
    private final java.util.List<WeightLoader.Loaded> matrices;
    private final Kernels kernels = KernelProvider.get();
    private final WorkerPool pool = WorkerPool.shared();

    private Opt(Config cfg, WeightFiles files) {
        this.cfg = cfg;
        this.files = files;
        WeightLoader w = new WeightLoader(files);
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
        matrices = w.loaded();
        w.finish(List.of());
        dims = new DecoderState.Dims(h, cfg.numHeads, cfg.numHeads, cfg.headDim, cfg.ffnDim, 0, cfg.numLayers, e);
        info = new ModelInfo("opt", "OPTForCausalLM", cfg.vocabSize, h, cfg.numLayers, cfg.numHeads, cfg.numHeads,
                cfg.headDim, cfg.maxPositions, w.parameterCount(), w.bytesByDtype());
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

    public static Opt load(HfConfig hf, WeightFiles files) {
        return new Opt(Config.from(hf), files);
    }

    @Override
    public java.util.List<Linear> linearLayers() {
        java.util.List<Linear> all = new java.util.ArrayList<>();
        if (projectIn != null) {
            all.add(projectIn);
            all.add(projectOut);
        }
        for (Layer L : layers) {
            all.addAll(java.util.List.of(L.q, L.k, L.v, L.out, L.fc1, L.fc2));
        }
        return all;
    }

    @Override
    public java.util.List<WeightLoader.Loaded> matrices() {
        return matrices;
    }

    @Override
    public Matrix outputHead() {
        return lmHead;
    }

    @Override
    public ModelInfo info() {
        return info;
    }

    @Override
    public ModelState newState(int maxSeq, int maxChunk) {
        if (maxSeq > cfg.maxPositions) {
            throw new JTuneException("context of " + maxSeq + " tokens exceeds max_position_embeddings " + cfg.maxPositions);
        }
        return new DecoderState(dims, null, maxSeq, Math.max(1, Math.min(maxChunk, maxSeq)), kernels, pool);
    }

    private void layerNorm(DecoderState s, float[] out, float[] x, Norm norm, int n) {
        Blocks.layerNormRows(kernels, out, x, norm.weight, norm.bias, LAYER_NORM_EPS, n, cfg.hiddenSize);
    }

    @Override
    public void forward(ModelState state, int[] tokens, int off, int n, float[] logits, boolean allLogits) {
        DecoderState s = (DecoderState) state;
        Blocks.checkChunk(s, n);
        int start = s.length(), h = cfg.hiddenSize;
        float scale = (float) (1.0 / Math.sqrt(cfg.headDim));
        Blocks.embed(kernels, s.emb, embedTokens, tokens, off, n);
        if (projectIn != null) {
            projectIn.forward(kernels, s.x, s.emb, n);
        }
        Blocks.addPositions(kernels, s.x, s.out, embedPositions, start, POSITION_OFFSET, n);
        for (int l = 0; l < layers.length; l++) {
            Layer L = layers[l];
            float[] attnIn = s.x;
            if (cfg.preLayerNorm) {
                layerNorm(s, s.xn, s.x, L.attnNorm, n);
                attnIn = s.xn;
            }
            L.q.forward(kernels, s.q, attnIn, n);
            L.k.forward(kernels, s.k, attnIn, n);
            L.v.forward(kernels, s.v, attnIn, n);
            s.attend(l, start, n, scale);
            L.out.forward(kernels, s.out, s.att, n);
            Blocks.add(kernels, s.x, s.out, n * h);
            float[] ffIn = s.x;
            if (cfg.preLayerNorm) {
                layerNorm(s, s.xn, s.x, L.ffNorm, n);
                ffIn = s.xn;
            } else {
                layerNorm(s, s.x, s.x, L.attnNorm, n);
            }
            L.fc1.forward(kernels, s.mlp, ffIn, n);
            cfg.activation.apply(s.mlp, n * cfg.ffnDim);
            L.fc2.forward(kernels, s.out, s.mlp, n);
            Blocks.add(kernels, s.x, s.out, n * h);
            if (!cfg.preLayerNorm) {
                layerNorm(s, s.x, s.x, L.ffNorm, n);
            }
        }
        s.cache.advance(n);
        int rows = allLogits ? n : 1, from = allLogits ? 0 : n - 1;
        for (int t = 0; t < rows; t++) {
            if (finalNorm != null) {
                kernels.layerNorm(s.xn, t * h, s.x, (from + t) * h, finalNorm.weight, finalNorm.bias, LAYER_NORM_EPS, h);
            } else {
                System.arraycopy(s.x, (from + t) * h, s.xn, t * h, h);
            }
        }
        float[] head = s.xn;
        if (projectOut != null) {
            projectOut.forward(kernels, s.emb, s.xn, rows);
            head = s.emb;
        }
        kernels.matmul(logits, head, lmHead, rows);
    }

    @Override
    public void close() {
        files.close();
    }
}
