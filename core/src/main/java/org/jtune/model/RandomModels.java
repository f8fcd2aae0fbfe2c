package org.jtune.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsWriter;

/**
 * Random-weight Llama-architecture checkpoints of published shapes, so speed can be measured
 * without downloading weights: the bytes streamed per token and the FLOPs per token depend only on
 * the shapes and dtype, not on the values. Weights are N(0, 0.02) like HF's initializer, norms 1.
 * The output is an ordinary HF model directory (config.json + model.safetensors).
 */
public final class RandomModels {
    /** A Llama-family shape. */
    public record Shape(String name, int vocabSize, int hiddenSize, int intermediateSize, int numLayers, int numHeads,
                        int numKvHeads, int maxPositionEmbeddings, double ropeTheta, boolean tieWordEmbeddings) {
        public long parameterCount() {
            int hd = hiddenSize / numHeads;
            long attn = (long) hiddenSize * numHeads * hd * 2 + (long) hiddenSize * numKvHeads * hd * 2;
            long mlp = 3L * hiddenSize * intermediateSize;
            long layer = attn + mlp + 2L * hiddenSize;
            long emb = (long) vocabSize * hiddenSize;
            return numLayers * layer + emb * (tieWordEmbeddings ? 1 : 2) + hiddenSize;
        }
    }

    public static final Map<String, Shape> PRESETS = Map.of(
            "smollm2-135m", new Shape("smollm2-135m", 49152, 576, 1536, 30, 9, 3, 8192, 100000, true),
            "tinyllama-1.1b", new Shape("tinyllama-1.1b", 32000, 2048, 5632, 22, 32, 4, 2048, 10000, false),
            "llama2-7b", new Shape("llama2-7b", 32000, 4096, 11008, 32, 32, 32, 4096, 10000, false));

    private RandomModels() {
    }

    public static Shape preset(String name) {
        Shape s = PRESETS.get(name);
        if (s == null) {
            throw new JTuneException("unknown shape preset \"" + name + "\"; known: " + PRESETS.keySet());
        }
        return s;
    }

    /** Writes {@code dir/config.json} and {@code dir/model.safetensors} with weights in {@code dtype} (F32, F16 or BF16). */
    public static void write(Shape s, DType dtype, long seed, Path dir) {
        if (!dtype.isFloatingPoint() || dtype == DType.F64) {
            throw new JTuneException("random models are written as F32, F16 or BF16, not " + dtype);
        }
        try {
            Files.createDirectories(dir);
            ObjectNode c = new ObjectMapper().createObjectNode();
            c.putArray("architectures").add("LlamaForCausalLM");
            c.put("model_type", "llama");
            c.put("vocab_size", s.vocabSize);
            c.put("hidden_size", s.hiddenSize);
            c.put("intermediate_size", s.intermediateSize);
            c.put("num_hidden_layers", s.numLayers);
            c.put("num_attention_heads", s.numHeads);
            c.put("num_key_value_heads", s.numKvHeads);
            c.put("max_position_embeddings", s.maxPositionEmbeddings);
            c.put("rms_norm_eps", 1e-5);
            c.put("rope_theta", s.ropeTheta);
            c.put("hidden_act", "silu");
            c.put("tie_word_embeddings", s.tieWordEmbeddings);
            c.put("bos_token_id", 1);
            c.put("eos_token_id", 2);
            c.put("torch_dtype", switch (dtype) {
                case BF16 -> "bfloat16";
                case F16 -> "float16";
                default -> "float32";
            });
            c.put("jtune_random_shape", s.name);
            Files.writeString(dir.resolve("config.json"), c.toPrettyString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        int h = s.hiddenSize, hd = h / s.numHeads, q = s.numHeads * hd, kv = s.numKvHeads * hd, i = s.intermediateSize;
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        w.addFloats("model.embed_tokens.weight", dtype, new long[] {s.vocabSize, h}, normal(rnd, (long) s.vocabSize * h));
        for (int l = 0; l < s.numLayers; l++) {
            String p = "model.layers." + l + ".";
            w.addFloats(p + "input_layernorm.weight", dtype, new long[] {h}, ones(h));
            w.addFloats(p + "self_attn.q_proj.weight", dtype, new long[] {q, h}, normal(rnd, (long) q * h));
            w.addFloats(p + "self_attn.k_proj.weight", dtype, new long[] {kv, h}, normal(rnd, (long) kv * h));
            w.addFloats(p + "self_attn.v_proj.weight", dtype, new long[] {kv, h}, normal(rnd, (long) kv * h));
            w.addFloats(p + "self_attn.o_proj.weight", dtype, new long[] {h, q}, normal(rnd, (long) h * q));
            w.addFloats(p + "post_attention_layernorm.weight", dtype, new long[] {h}, ones(h));
            w.addFloats(p + "mlp.gate_proj.weight", dtype, new long[] {i, h}, normal(rnd, (long) i * h));
            w.addFloats(p + "mlp.up_proj.weight", dtype, new long[] {i, h}, normal(rnd, (long) i * h));
            w.addFloats(p + "mlp.down_proj.weight", dtype, new long[] {h, i}, normal(rnd, (long) h * i));
        }
        w.addFloats("model.norm.weight", dtype, new long[] {h}, ones(h));
        if (!s.tieWordEmbeddings) {
            w.addFloats("lm_head.weight", dtype, new long[] {s.vocabSize, h}, normal(rnd, (long) s.vocabSize * h));
        }
        w.write(dir.resolve("model.safetensors"));
    }

    private static float[] normal(SplittableRandom rnd, long n) {
        float[] v = new float[Math.toIntExact(n)];
        for (int k = 0; k < v.length; k++) {
            // Box-Muller from two uniforms: deterministic for a seed, no shared state
            double u1 = 1.0 - rnd.nextDouble(), u2 = rnd.nextDouble();
            v[k] = (float) (0.02 * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
        }
        return v;
    }

    private static float[] ones(int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, 1f);
        return v;
    }
}
