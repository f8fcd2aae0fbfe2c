package org.jtune.peft;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;
import java.util.Random;
import java.util.TreeSet;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.io.safetensors.TensorInfo;

/**
 * A PEFT PREFIX_TUNING adapter without the reparametrisation MLP ({@code prefix_projection=false},
 * "P-tuning v2"): one learned matrix {@code prompt_embeddings} that acts as an initial KV cache.
 * Layout (PEFT's {@code get_prompt}): row n is virtual token n; the columns hold, per layer l, the
 * key block [2l·D, (2l+1)·D) then the value block [(2l+1)·D, (2l+2)·D), each viewed
 * [kvHeads, headDim]. {@code tokenDim} is PEFT's {@code token_dim}: D = kvHeads · headDim per key
 * (or value) block; PEFT rewrites it that way for grouped-query models, so the stored matrix is
 * [N, numLayers · 2 · tokenDim]. Keys are post-RoPE: the model must not rotate them.
 */
public final class PrefixAdapter implements Adapter {
    public static final String PEFT_TYPE = "PREFIX_TUNING";
    static final String TENSOR = "prompt_embeddings";

    private final int numVirtualTokens;
    private final int numLayers;
    private final int tokenDim;               // D = kvHeads * headDim
    private final Integer numAttentionHeads;  // PEFT's num_attention_heads = kv heads; null when unknown
    private final String baseModelNameOrPath; // may be null
    private final float[] promptEmbeddings;   // (numVirtualTokens, numLayers * 2 * tokenDim), held not copied

    public PrefixAdapter(int numVirtualTokens, int numLayers, int tokenDim, Integer numAttentionHeads,
                         String baseModelNameOrPath, float[] promptEmbeddings) {
        if (numVirtualTokens <= 0 || numLayers <= 0 || tokenDim <= 0) {
            throw new JTuneException("prefix tuning needs positive num_virtual_tokens, num_layers and token_dim; got "
                    + numVirtualTokens + ", " + numLayers + ", " + tokenDim);
        }
        if (numAttentionHeads != null && (numAttentionHeads <= 0 || tokenDim % numAttentionHeads != 0)) {
            throw new JTuneException("prefix token_dim " + tokenDim + " is not a multiple of num_attention_heads "
                    + numAttentionHeads + "; token_dim must be kv_heads * head_dim");
        }
        long expected = (long) numVirtualTokens * numLayers * 2 * tokenDim;
        if (promptEmbeddings.length != expected) {
            throw new JTuneException("prompt_embeddings has " + promptEmbeddings.length + " values but [num_virtual_tokens, num_layers*2*token_dim] = ["
                    + numVirtualTokens + ", " + numLayers + "*2*" + tokenDim + "] needs " + expected);
        }
        this.numVirtualTokens = numVirtualTokens;
        this.numLayers = numLayers;
        this.tokenDim = tokenDim;
        this.numAttentionHeads = numAttentionHeads;
        this.baseModelNameOrPath = baseModelNameOrPath;
        this.promptEmbeddings = promptEmbeddings;
    }

    /**
     * A fresh prefix as PEFT initialises one: {@code nn.Embedding} default, N(0, 1) per value,
     * deterministic by {@code seed}.
     */
    public static PrefixAdapter init(int numVirtualTokens, int numLayers, int numKvHeads, int headDim,
                                     String baseModelNameOrPath, long seed) {
        if (numKvHeads <= 0 || headDim <= 0) {
            throw new JTuneException("prefix tuning needs positive kv heads and head_dim, got " + numKvHeads + ", " + headDim);
        }
        int tokenDim = Math.multiplyExact(numKvHeads, headDim);
        float[] e = new float[Math.toIntExact((long) numVirtualTokens * numLayers * 2 * tokenDim)];
        Random rng = new Random(seed);
        for (int i = 0; i < e.length; i++) {
            e[i] = (float) rng.nextGaussian();
        }
        return new PrefixAdapter(numVirtualTokens, numLayers, tokenDim, numKvHeads, baseModelNameOrPath, e);
    }

    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    public int numLayers() {
        return numLayers;
    }

    /** D = kvHeads · headDim: the width of one layer's key (or value) block; PEFT's token_dim. */
    public int tokenDim() {
        return tokenDim;
    }

    /** numLayers · 2 · tokenDim: the stored matrix's column count. */
    public int width() {
        return numLayers * 2 * tokenDim;
    }

    /** PEFT's num_attention_heads (the model's kv heads), or null when the config did not record it. */
    public Integer numAttentionHeads() {
        return numAttentionHeads;
    }

    @Override
    public String baseModelNameOrPath() {
        return baseModelNameOrPath;
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    /** The trainable matrix, (numVirtualTokens, width()) row-major; shared, not copied. */
    public float[] promptEmbeddings() {
        return promptEmbeddings;
    }

    /** Layer {@code layer}'s prefix keys, a new (numVirtualTokens, tokenDim) array: columns [2l·D, (2l+1)·D). */
    public float[] keyBlock(int layer) {
        return block(layer, 2 * layer);
    }

    /** Layer {@code layer}'s prefix values, a new (numVirtualTokens, tokenDim) array: columns [(2l+1)·D, (2l+2)·D). */
    public float[] valueBlock(int layer) {
        return block(layer, 2 * layer + 1);
    }

    private float[] block(int layer, int blockIndex) {
        Objects.checkIndex(layer, numLayers);
        int w = width();
        float[] out = new float[numVirtualTokens * tokenDim];
        for (int n = 0; n < numVirtualTokens; n++) {
            System.arraycopy(promptEmbeddings, n * w + blockIndex * tokenDim, out, n * tokenDim, tokenDim);
        }
        return out;
    }

    // ---- save / load ----

    /** PEFT 0.13's PrefixTuningConfig.to_dict() for this adapter. */
    public ObjectNode configJson() {
        ObjectNode c = AdapterFiles.json().createObjectNode();
        c.putNull("auto_mapping");
        c.put("base_model_name_or_path", baseModelNameOrPath);
        c.put("encoder_hidden_size", tokenDim); // PEFT's default; unused without prefix_projection
        c.put("inference_mode", true);
        c.put("num_attention_heads", numAttentionHeads);
        c.put("num_layers", numLayers);
        c.put("num_transformer_submodules", 1);
        c.put("num_virtual_tokens", numVirtualTokens);
        c.put("peft_type", PEFT_TYPE);
        c.put("prefix_projection", false);
        c.putNull("revision");
        c.put("task_type", LoraConfig.CAUSAL_LM);
        c.put("token_dim", tokenDim);
        return c;
    }

    @Override
    public void save(Path dir) {
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt")
                .addFloats(TENSOR, DType.F32, new long[] {numVirtualTokens, width()}, promptEmbeddings);
        AdapterFiles.writeAdapter(dir, configJson(), w);
    }

    /** Reads a PEFT prefix-tuning adapter directory; token_dim may be absent (it is then read off the matrix). */
    public static PrefixAdapter load(Path dir) {
        ObjectNode c = AdapterFiles.readConfig(dir);
        Path file = dir.resolve(AdapterFiles.CONFIG);
        String type = AdapterFiles.peftType(c, dir);
        if (!type.equals(PEFT_TYPE)) {
            throw new JTuneException(file + " has peft_type \"" + type + "\", not " + PEFT_TYPE
                    + "; use Adapters.load to read any supported adapter");
        }
        if (AdapterFiles.optionalBoolean(c, "prefix_projection", false, dir)) {
            throw new JTuneException(file + " has prefix_projection true (an MLP reparametrisation); jtune supports"
                    + " prefix tuning without projection only");
        }
        Integer submodules = AdapterFiles.optionalInt(c, "num_transformer_submodules", dir);
        if (submodules != null && submodules != 1) {
            throw new JTuneException(file + " has num_transformer_submodules " + submodules
                    + " (an encoder-decoder prefix); jtune supports decoder-only models (1)");
        }
        String task = AdapterFiles.optionalString(c, "task_type", dir);
        if (task != null && !task.equals(LoraConfig.CAUSAL_LM)) {
            throw new JTuneException(file + " has task_type \"" + task + "\"; jtune supports " + LoraConfig.CAUSAL_LM);
        }
        JsonNode mts = c.get("modules_to_save");
        if (!AdapterFiles.unset(mts)) {
            throw new JTuneException(file + " uses modules_to_save = " + mts + ", which jtune does not support");
        }
        int n = AdapterFiles.requiredInt(c, "num_virtual_tokens", dir);
        int layers = AdapterFiles.requiredInt(c, "num_layers", dir);
        Integer tokenDim = AdapterFiles.optionalInt(c, "token_dim", dir);
        Integer heads = AdapterFiles.optionalInt(c, "num_attention_heads", dir);
        String base = AdapterFiles.optionalString(c, "base_model_name_or_path", dir);
        Path weights = AdapterFiles.weightsFile(dir);
        try (SafetensorsFile st = SafetensorsFile.open(weights)) {
            TreeSet<String> unknown = new TreeSet<>(st.tensors().keySet());
            unknown.remove(TENSOR);
            if (!unknown.isEmpty()) {
                throw new JTuneException(weights + " has tensors other than " + TENSOR + ": " + unknown
                        + "; is this a prefix-tuning adapter without projection?");
            }
            if (!st.contains(TENSOR)) {
                throw new JTuneException(weights + " has no " + TENSOR + " tensor; the adapter file is incomplete");
            }
            TensorInfo info = st.info(TENSOR);
            long[] shape = info.shape();
            if (shape.length != 2 || shape[0] != n || shape[1] % (2L * layers) != 0) {
                throw new JTuneException(weights + ": " + TENSOR + " has shape " + Arrays.toString(shape)
                        + " but the config needs [num_virtual_tokens=" + n + ", num_layers*2*token_dim] with num_layers=" + layers
                        + "; is adapter_config.json from another adapter?");
            }
            int stored = Math.toIntExact(shape[1] / (2L * layers));
            if (tokenDim != null && tokenDim != stored) {
                throw new JTuneException(weights + ": " + TENSOR + " has shape " + Arrays.toString(shape) + ", i.e. token_dim "
                        + stored + " per layer and key/value, but the config says token_dim " + tokenDim
                        + " (expected [" + n + ", " + (2L * layers * tokenDim) + "])");
            }
            if (!info.dtype().isFloatingPoint()) {
                throw new JTuneException(weights + ": " + TENSOR + " must be floating point, found " + info.dtype());
            }
            try {
                return new PrefixAdapter(n, layers, stored, heads, base, st.readFloats(TENSOR));
            } catch (JTuneException e) {
                throw new JTuneException(file + ": " + e.getMessage(), e);
            }
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PrefixAdapter p && numVirtualTokens == p.numVirtualTokens && numLayers == p.numLayers
                && tokenDim == p.tokenDim && Objects.equals(numAttentionHeads, p.numAttentionHeads)
                && Objects.equals(baseModelNameOrPath, p.baseModelNameOrPath)
                && Arrays.equals(promptEmbeddings, p.promptEmbeddings);
    }

    @Override
    public int hashCode() {
        return Objects.hash(numVirtualTokens, numLayers, tokenDim, numAttentionHeads, baseModelNameOrPath)
                * 31 + Arrays.hashCode(promptEmbeddings);
    }

    @Override
    public String toString() {
        return "PrefixAdapter[numVirtualTokens=" + numVirtualTokens + ", numLayers=" + numLayers + ", tokenDim=" + tokenDim + "]";
    }
}
