package org.jtune.peft;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class PrefixAdapterTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static java.util.stream.Stream<String> goldenModels() throws IOException {
        return LoraAdapterTest.goldenModels();
    }

    @ParameterizedTest
    @MethodSource("goldenModels")
    void loadsGoldenPrefixWithTheReferenceValues(String model) throws IOException {
        PrefixAdapter p = PrefixAdapter.load(Shared.path("golden/" + model + "-adapters/prefix"));
        JsonNode cfg = JSON.readTree(Shared.path("models/" + model + "/config.json").toFile());
        int layers = cfg.has("num_hidden_layers") ? cfg.get("num_hidden_layers").intValue() : cfg.get("n_layer").intValue();
        int heads = cfg.has("num_attention_heads") ? cfg.get("num_attention_heads").intValue() : cfg.get("n_head").intValue();
        int hidden = cfg.has("hidden_size") ? cfg.get("hidden_size").intValue() : cfg.get("n_embd").intValue();
        int kvHeads = cfg.has("num_key_value_heads") ? cfg.get("num_key_value_heads").intValue() : heads;
        int headDim = cfg.has("head_dim") ? cfg.get("head_dim").intValue() : hidden / heads;
        assertEquals(4, p.numVirtualTokens());
        assertEquals(layers, p.numLayers());
        assertEquals(kvHeads * headDim, p.tokenDim(), "token_dim is D = kv_heads * head_dim");
        try (SafetensorsFile ref = SafetensorsFile.open(Shared.path("golden/" + model + ".safetensors"))) {
            assertArrayEquals(new long[] {4, p.width()}, ref.info("prefix.prompt_embeddings").shape());
            assertArrayEquals(ref.readFloats("prefix.prompt_embeddings"), p.promptEmbeddings());
        }
    }

    @Test
    void keyAndValueBlocksFollowTheGoldenLayout() {
        int n = 3;
        int layers = 2;
        int d = 4;
        int w = layers * 2 * d;
        float[] e = new float[n * w];
        for (int i = 0; i < e.length; i++) {
            e[i] = i; // value = row * w + column
        }
        PrefixAdapter p = new PrefixAdapter(n, layers, d, 2, null, e);
        for (int l = 0; l < layers; l++) {
            float[] k = p.keyBlock(l);
            float[] v = p.valueBlock(l);
            assertEquals(n * d, k.length);
            for (int row = 0; row < n; row++) {
                for (int j = 0; j < d; j++) {
                    assertEquals(row * w + 2 * l * d + j, k[row * d + j]);
                    assertEquals(row * w + (2 * l + 1) * d + j, v[row * d + j]);
                }
            }
        }
        assertThrows(IndexOutOfBoundsException.class, () -> p.keyBlock(2));
    }

    @Test
    void goldenBlocksSliceTheStoredMatrix() {
        PrefixAdapter p = PrefixAdapter.load(Shared.path("golden/tiny-llama-adapters/prefix"));
        assertEquals(32, p.tokenDim()); // 2 kv heads * 16
        float[] v1 = p.valueBlock(1);
        assertEquals(p.promptEmbeddings()[3 * 32], v1[0]);
        assertEquals(p.promptEmbeddings()[p.width() + 3 * 32 + 31], v1[32 + 31]);
    }

    @Test
    void saveThenLoadIsIdenticalAndConfigHasPeftKeys(@TempDir Path tmp) throws IOException {
        PrefixAdapter p = PrefixAdapter.init(4, 2, 2, 16, "tiny-llama", 7);
        p.save(tmp);
        assertEquals(p, PrefixAdapter.load(tmp));
        assertEquals(p, Adapters.load(tmp));
        JsonNode c = JSON.readTree(tmp.resolve("adapter_config.json").toFile());
        List<String> keys = new ArrayList<>();
        c.fieldNames().forEachRemaining(keys::add);
        assertEquals(List.of("auto_mapping", "base_model_name_or_path", "encoder_hidden_size", "inference_mode",
                "num_attention_heads", "num_layers", "num_transformer_submodules", "num_virtual_tokens", "peft_type",
                "prefix_projection", "revision", "task_type", "token_dim"), keys);
        assertEquals("PREFIX_TUNING", c.get("peft_type").asText());
        assertEquals(32, c.get("token_dim").intValue());
        assertEquals(2, c.get("num_attention_heads").intValue());
        assertEquals(1, c.get("num_transformer_submodules").intValue());
        assertFalse(c.get("prefix_projection").booleanValue());
        try (SafetensorsFile st = SafetensorsFile.open(tmp.resolve("adapter_model.safetensors"))) {
            assertEquals(List.of("prompt_embeddings"), new ArrayList<>(st.tensors().keySet()));
            assertArrayEquals(new long[] {4, 128}, st.info("prompt_embeddings").shape());
            assertEquals(DType.F32, st.info("prompt_embeddings").dtype());
        }
        PrefixAdapter golden = PrefixAdapter.load(Shared.path("golden/tiny-gpt2-adapters/prefix"));
        golden.save(tmp.resolve("g"));
        assertEquals(golden, PrefixAdapter.load(tmp.resolve("g")));
    }

    @Test
    void initIsStandardNormalAndSeeded() {
        PrefixAdapter a = PrefixAdapter.init(8, 4, 2, 32, null, 1);
        float[] e = a.promptEmbeddings();
        assertEquals(8 * 4 * 2 * 64, e.length);
        double sum = 0;
        double sq = 0;
        for (float v : e) {
            sum += v;
            sq += (double) v * v;
        }
        assertEquals(0, sum / e.length, 0.1);
        assertEquals(1, sq / e.length, 0.1);
        assertEquals(a, PrefixAdapter.init(8, 4, 2, 32, null, 1));
        assertNotEquals(a, PrefixAdapter.init(8, 4, 2, 32, null, 2));
    }

    private static void writePrefix(Path dir, String config, long[] shape) throws IOException {
        Files.createDirectories(dir);
        new SafetensorsWriter().addFloats("prompt_embeddings", DType.F32, shape, new float[(int) (shape[0] * shape[1])])
                .write(dir.resolve("adapter_model.safetensors"));
        Files.writeString(dir.resolve("adapter_config.json"), config);
    }

    private static final String CONFIG = "{\"peft_type\":\"PREFIX_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":4,\"num_layers\":2}";

    @Test
    void rejectsBadPrefixAdapters(@TempDir Path tmp) throws IOException {
        writePrefix(tmp, CONFIG, new long[] {4, 128});
        assertEquals(32, PrefixAdapter.load(tmp).tokenDim());

        writePrefix(tmp, CONFIG, new long[] {5, 128});
        String m = assertThrows(JTuneException.class, () -> PrefixAdapter.load(tmp)).getMessage();
        assertTrue(m.contains("[5, 128]") && m.contains("num_virtual_tokens=4"), m);

        writePrefix(tmp, CONFIG.replace("}", ",\"token_dim\":64}"), new long[] {4, 128});
        m = assertThrows(JTuneException.class, () -> PrefixAdapter.load(tmp)).getMessage();
        assertTrue(m.contains("token_dim 64") && m.contains("token_dim 32"), m);

        writePrefix(tmp, CONFIG.replace("}", ",\"prefix_projection\":true}"), new long[] {4, 128});
        assertTrue(assertThrows(JTuneException.class, () -> PrefixAdapter.load(tmp)).getMessage().contains("prefix_projection"));

        writePrefix(tmp, CONFIG.replace("}", ",\"num_transformer_submodules\":2}"), new long[] {4, 128});
        assertTrue(assertThrows(JTuneException.class, () -> PrefixAdapter.load(tmp)).getMessage().contains("num_transformer_submodules"));

        writePrefix(tmp, CONFIG.replace(",\"num_layers\":2", ""), new long[] {4, 128});
        assertTrue(assertThrows(JTuneException.class, () -> PrefixAdapter.load(tmp)).getMessage().contains("num_layers"));

        new SafetensorsWriter().addFloats("prefix_encoder.embedding.weight", DType.F32, new long[] {4, 128}, new float[512])
                .write(tmp.resolve("adapter_model.safetensors"));
        Files.writeString(tmp.resolve("adapter_config.json"), CONFIG);
        m = assertThrows(JTuneException.class, () -> PrefixAdapter.load(tmp)).getMessage();
        assertTrue(m.contains("prefix_encoder.embedding.weight"), m);
    }
}
