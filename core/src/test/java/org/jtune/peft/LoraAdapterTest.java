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
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class LoraAdapterTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Every golden model that ships adapters: the name before "-adapters". */
    static Stream<String> goldenModels() throws IOException {
        Path golden = Shared.path("golden");
        List<String> names = new ArrayList<>();
        try (Stream<Path> s = Files.list(golden)) {
            s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith("-adapters"))
                    .map(n -> n.substring(0, n.length() - "-adapters".length())).sorted().forEach(names::add);
        }
        assertTrue(names.size() >= 5, "expected the golden adapters, found " + names);
        return names.stream();
    }

    @ParameterizedTest
    @MethodSource("goldenModels")
    void loadsGoldenLoraWithTheReferenceValues(String model) {
        LoraAdapter adapter = LoraAdapter.load(Shared.path("golden/" + model + "-adapters/lora"));
        assertEquals(8, adapter.config().r());
        assertEquals(2.0, adapter.config().scaling());
        assertEquals("gpt2".equals(model.replaceFirst("^tiny-", "")), adapter.config().fanInFanOut());
        try (SafetensorsFile ref = SafetensorsFile.open(Shared.path("golden/" + model + ".safetensors"))) {
            Set<String> refKeys = new TreeSet<>();
            for (String k : ref.tensors().keySet()) {
                if (k.startsWith("lora.")) {
                    refKeys.add(k.substring("lora.".length()));
                }
            }
            assertEquals(refKeys.size(), 2 * adapter.modules().size(), "module count");
            Set<String> ours = new TreeSet<>();
            for (Map.Entry<String, LoraWeights> e : adapter.modules().entrySet()) {
                String a = "base_model.model." + e.getKey() + ".lora_A.weight";
                String b = "base_model.model." + e.getKey() + ".lora_B.weight";
                ours.add(a);
                ours.add(b);
                LoraWeights w = e.getValue();
                assertArrayEquals(new long[] {8, w.in()}, ref.info("lora." + a).shape(), a);
                assertArrayEquals(new long[] {w.out(), 8}, ref.info("lora." + b).shape(), b);
                assertArrayEquals(ref.readFloats("lora." + a), w.a(), a);
                assertArrayEquals(ref.readFloats("lora." + b), w.b(), b);
                assertTrue(adapter.config().matches(e.getKey()));
            }
            assertEquals(refKeys, ours);
        }
    }

    @Test
    void gpt2AdapterKeepsPeftShapesForConv1d() {
        LoraAdapter a = LoraAdapter.load(Shared.path("golden/tiny-gpt2-adapters/lora"));
        assertTrue(a.config().fanInFanOut());
        LoraWeights cAttn = a.get("transformer.h.0.attn.c_attn");
        assertEquals(64, cAttn.in());
        assertEquals(192, cAttn.out());
        assertEquals(4, a.modules().size());
    }

    @Test
    void neoxDenseTargetsOnlyAttentionDense() {
        LoraAdapter a = LoraAdapter.load(Shared.path("golden/tiny-gpt-neox-adapters/lora"));
        assertEquals(List.of("gpt_neox.layers.0.attention.dense", "gpt_neox.layers.0.attention.query_key_value",
                "gpt_neox.layers.1.attention.dense", "gpt_neox.layers.1.attention.query_key_value"),
                new ArrayList<>(a.modules().keySet()));
    }

    @Test
    void saveThenLoadIsIdentical(@TempDir Path tmp) throws IOException {
        LoraAdapter original = LoraAdapter.load(Shared.path("golden/tiny-qwen2-adapters/lora"));
        original.save(tmp.resolve("out"));
        LoraAdapter back = LoraAdapter.load(tmp.resolve("out"));
        assertEquals(original, back);
        assertEquals(new ArrayList<>(original.modules().keySet()), new ArrayList<>(back.modules().keySet()));
        // saving over an existing adapter replaces it whole
        LoraAdapter other = LoraAdapter.init(original.config(), Map.of("model.layers.0.self_attn.q_proj", new int[] {64, 64}), 1);
        other.save(tmp.resolve("out"));
        assertEquals(other, LoraAdapter.load(tmp.resolve("out")));
        try (Stream<Path> s = Files.list(tmp.resolve("out"))) {
            assertEquals(Set.of("adapter_config.json", "adapter_model.safetensors"),
                    s.map(p -> p.getFileName().toString()).collect(java.util.stream.Collectors.toSet()), "no temp files left");
        }
    }

    @Test
    void saveIgnoresLeftoversOfACrashedSaveAndFailsCleanly(@TempDir Path tmp) throws IOException {
        LoraAdapter a = LoraAdapter.load(Shared.path("golden/tiny-llama-adapters/lora"));
        Path dir = Files.createDirectories(tmp.resolve("out"));
        Files.writeString(dir.resolve(".adapter_config.json.partial"), "{\"half\":");
        Files.writeString(dir.resolve(".adapter_model.safetensors.partial"), "junk");
        a.save(dir);
        assertEquals(a, LoraAdapter.load(dir));
        assertFalse(Files.exists(dir.resolve(".adapter_config.json.partial")));
        assertFalse(Files.exists(dir.resolve(".adapter_model.safetensors.partial")));

        Path file = Files.writeString(tmp.resolve("a-file"), "x");
        JTuneException e = assertThrows(JTuneException.class, () -> a.save(file.resolve("sub")));
        assertTrue(e.getMessage().contains("cannot save adapter"), e.getMessage());
    }

    @Test
    void savedConfigHasPeftKeys(@TempDir Path tmp) throws IOException {
        LoraAdapter.load(Shared.path("golden/tiny-gpt2-adapters/lora")).save(tmp);
        String text = Files.readString(tmp.resolve("adapter_config.json"));
        JsonNode c = JSON.readTree(text);
        List<String> keys = new ArrayList<>();
        c.fieldNames().forEachRemaining(keys::add);
        assertEquals(List.of("alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out",
                "inference_mode", "init_lora_weights", "layer_replication", "layers_pattern", "layers_to_transform",
                "loftq_config", "lora_alpha", "lora_dropout", "megatron_config", "megatron_core", "modules_to_save",
                "peft_type", "r", "rank_pattern", "revision", "target_modules", "task_type", "use_dora", "use_rslora"), keys,
                "PEFT writes sort_keys=True");
        assertEquals("LORA", c.get("peft_type").asText());
        assertEquals("CAUSAL_LM", c.get("task_type").asText());
        assertEquals(8, c.get("r").intValue());
        assertTrue(c.get("lora_alpha").isIntegralNumber());
        assertEquals(16, c.get("lora_alpha").intValue());
        assertEquals(0.0, c.get("lora_dropout").doubleValue());
        assertTrue(c.get("lora_dropout").isFloatingPointNumber());
        assertTrue(c.get("fan_in_fan_out").booleanValue());
        assertTrue(c.get("inference_mode").booleanValue());
        assertEquals("none", c.get("bias").asText());
        assertEquals("tiny-gpt2", c.get("base_model_name_or_path").asText());
        assertEquals("[\"attn.c_attn\",\"attn.c_proj\"]", c.get("target_modules").toString());
        assertTrue(c.get("rank_pattern").isObject() && c.get("rank_pattern").isEmpty());
        assertTrue(c.get("modules_to_save").isNull());
        assertFalse(c.get("use_rslora").booleanValue());
        assertFalse(c.get("use_dora").booleanValue());
        assertTrue(text.contains("\n  \"lora_dropout\": 0.0,\n"), "python json.dumps(indent=2) layout:\n" + text);
        assertTrue(text.contains("\"target_modules\": [\n    \"attn.c_attn\",\n    \"attn.c_proj\"\n  ],"), text);
    }

    @Test
    void savedTensorKeysAreExactlyPefts(@TempDir Path tmp) {
        LoraAdapter a = LoraAdapter.load(Shared.path("golden/tiny-llama-adapters/lora"));
        a.save(tmp);
        try (SafetensorsFile st = SafetensorsFile.open(tmp.resolve("adapter_model.safetensors"));
             SafetensorsFile golden = SafetensorsFile.open(Shared.path("golden/tiny-llama-adapters/lora/adapter_model.safetensors"))) {
            assertEquals(new TreeSet<>(golden.tensors().keySet()), new TreeSet<>(st.tensors().keySet()));
            for (String k : st.tensors().keySet()) {
                assertEquals(DType.F32, st.info(k).dtype());
                assertArrayEquals(golden.info(k).shape(), st.info(k).shape(), k);
            }
            assertEquals("pt", st.metadata().get("format"));
        }
    }

    @Test
    void initDrawsKaimingUniformAAndZeroB() {
        LoraConfig c = LoraConfig.forModel("llama", 8, 16, null);
        Map<String, int[]> shapes = new LinkedHashMap<>();
        shapes.put("model.layers.0.self_attn.q_proj", new int[] {256, 256});
        shapes.put("model.layers.0.self_attn.k_proj", new int[] {64, 256});
        shapes.put("model.layers.0.mlp.up_proj", new int[] {512, 256}); // not a target
        shapes.put("model.layers.0.self_attn.o_proj", new int[] {256, 100});
        LoraAdapter a = LoraAdapter.init(c, shapes, 42);
        assertEquals(List.of("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.o_proj"),
                new ArrayList<>(a.modules().keySet()));
        for (Map.Entry<String, LoraWeights> e : a.modules().entrySet()) {
            LoraWeights w = e.getValue();
            int[] s = shapes.get(e.getKey());
            assertEquals(s[0], w.out());
            assertEquals(s[1], w.in());
            assertEquals(8, w.r());
            double bound = 1 / Math.sqrt(w.in());
            double sum = 0;
            double sumSq = 0;
            float max = 0;
            for (float v : w.a()) {
                assertTrue(Math.abs(v) <= (float) bound, v + " outside ±" + bound);
                sum += v;
                sumSq += (double) v * v;
                max = Math.max(max, Math.abs(v));
            }
            int n = w.a().length;
            // U(-b, b): mean 0, variance b²/3; with n >= 800 samples these hold by many standard errors
            assertEquals(0, sum / n, 5 * bound / Math.sqrt(3 * n));
            assertEquals(bound * bound / 3, sumSq / n, 0.15 * bound * bound / 3);
            assertTrue(max > 0.9 * bound, "samples should reach near the bound");
            for (float v : w.b()) {
                assertEquals(0f, v);
            }
        }
        assertEquals(a, LoraAdapter.init(c, shapes, 42), "same seed, same values");
        assertNotEquals(a, LoraAdapter.init(c, shapes, 43));
        // a module's values do not depend on which other modules are present
        LoraAdapter alone = LoraAdapter.init(c, Map.of("model.layers.0.self_attn.k_proj", new int[] {64, 256}), 42);
        assertArrayEquals(a.get("model.layers.0.self_attn.k_proj").a(), alone.get("model.layers.0.self_attn.k_proj").a());
        assertFalse(Arrays.equals(a.get("model.layers.0.self_attn.q_proj").a(), alone.get("model.layers.0.self_attn.k_proj").a()));
    }

    @Test
    void initWithNoMatchingModuleFails() {
        JTuneException e = assertThrows(JTuneException.class, () -> LoraAdapter.init(LoraConfig.forModel("opt", 8, 16, null),
                Map.of("model.layers.0.self_attn.o_proj", new int[] {4, 4}), 0));
        assertTrue(e.getMessage().contains("out_proj") && e.getMessage().contains("o_proj"), e.getMessage());
    }

    // ---- PEFT variants ----

    @Test
    void acceptsAdapterNameInsideKeys(@TempDir Path tmp) throws IOException {
        LoraAdapter golden = LoraAdapter.load(Shared.path("golden/tiny-opt-adapters/lora"));
        SafetensorsWriter w = new SafetensorsWriter();
        for (Map.Entry<String, LoraWeights> e : golden.modules().entrySet()) {
            LoraWeights lw = e.getValue();
            w.addFloats("base_model.model." + e.getKey() + ".lora_A.default.weight", DType.F32, new long[] {8, lw.in()}, lw.a());
            w.addFloats("base_model.model." + e.getKey() + ".lora_B.default.weight", DType.F32, new long[] {lw.out(), 8}, lw.b());
        }
        w.write(tmp.resolve("adapter_model.safetensors"));
        Files.copy(Shared.path("golden/tiny-opt-adapters/lora/adapter_config.json"), tmp.resolve("adapter_config.json"));
        assertEquals(golden, LoraAdapter.load(tmp));
    }

    @Test
    void readsRegexTargetsAndRsloraFromConfig(@TempDir Path tmp) throws IOException {
        writeTiny(tmp, "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":4,\"target_modules\":\".*\\\\.q_proj\",\"use_rslora\":true}");
        LoraAdapter a = LoraAdapter.load(tmp);
        assertEquals(".*\\.q_proj", a.config().targetRegex());
        assertEquals(4 / Math.sqrt(2), a.config().scaling(), 1e-12);
        a.save(tmp.resolve("again"));
        assertEquals(a, LoraAdapter.load(tmp.resolve("again")));
        assertEquals(".*\\.q_proj", JSON.readTree(tmp.resolve("again/adapter_config.json").toFile()).get("target_modules").asText());
    }

    // ---- bad input ----

    /** A one-module r=2 adapter for model.layers.0.self_attn.q_proj, in=3, out=4, with the given config. */
    private static void writeTiny(Path dir, String config) throws IOException {
        Files.createDirectories(dir);
        new SafetensorsWriter()
                .addFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", DType.F32, new long[] {2, 3}, new float[6])
                .addFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", DType.F32, new long[] {4, 2}, new float[8])
                .write(dir.resolve("adapter_model.safetensors"));
        Files.writeString(dir.resolve("adapter_config.json"), config);
    }

    private static final String TINY_CONFIG = "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":4,\"target_modules\":[\"q_proj\"],\"bias\":\"none\"}";

    private static String loadError(Path dir) {
        return assertThrows(JTuneException.class, () -> LoraAdapter.load(dir)).getMessage();
    }

    @Test
    void tinyFixtureLoads(@TempDir Path tmp) throws IOException {
        writeTiny(tmp, TINY_CONFIG);
        LoraAdapter a = LoraAdapter.load(tmp);
        assertEquals(3, a.get("model.layers.0.self_attn.q_proj").in());
        assertEquals(4, a.get("model.layers.0.self_attn.q_proj").out());
    }

    @Test
    void rejectsMissingConfig(@TempDir Path tmp) {
        String m = loadError(tmp);
        assertTrue(m.contains("adapter_config.json") && m.contains(tmp.toString()), m);
        assertTrue(loadError(tmp.resolve("nope")).contains("does not exist"));
    }

    @Test
    void rejectsMissingWeights(@TempDir Path tmp) throws IOException {
        Files.writeString(tmp.resolve("adapter_config.json"), TINY_CONFIG);
        Files.writeString(tmp.resolve("adapter_model.bin"), "pickle");
        String m = loadError(tmp);
        assertTrue(m.contains("adapter_model.safetensors") && m.contains("adapter_model.bin"), m);
    }

    @Test
    void rejectsOtherPeftTypeAndBias(@TempDir Path tmp) throws IOException {
        writeTiny(tmp, TINY_CONFIG.replace("\"LORA\"", "\"IA3\""));
        assertTrue(loadError(tmp).contains("IA3"));
        writeTiny(tmp, TINY_CONFIG.replace("\"bias\":\"none\"", "\"bias\":\"all\""));
        String m = loadError(tmp);
        assertTrue(m.contains("\"all\"") && m.contains("adapter_config.json"), m);
        writeTiny(tmp, TINY_CONFIG.replace("\"bias\":\"none\"", "\"use_dora\":true"));
        assertTrue(loadError(tmp).contains("DoRA"));
        writeTiny(tmp, TINY_CONFIG.replace("\"bias\":\"none\"", "\"rank_pattern\":{\"q_proj\":4}"));
        assertTrue(loadError(tmp).contains("rank_pattern"));
        writeTiny(tmp, TINY_CONFIG.replace("\"bias\":\"none\"", "\"init_lora_weights\":\"pissa\""));
        assertTrue(loadError(tmp).contains("pissa"));
    }

    @Test
    void rejectsAWithoutB(@TempDir Path tmp) throws IOException {
        new SafetensorsWriter()
                .addFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", DType.F32, new long[] {2, 3}, new float[6])
                .write(tmp.resolve("adapter_model.safetensors"));
        Files.writeString(tmp.resolve("adapter_config.json"), TINY_CONFIG);
        String m = loadError(tmp);
        assertTrue(m.contains("model.layers.0.self_attn.q_proj") && m.contains("no lora_B"), m);
    }

    @Test
    void rejectsShapeInconsistentWithRank(@TempDir Path tmp) throws IOException {
        writeTiny(tmp, TINY_CONFIG.replace("\"r\":2", "\"r\":3"));
        String m = loadError(tmp);
        assertTrue(m.contains("r=3") && m.contains("[2, 3]"), m);
        new SafetensorsWriter()
                .addFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", DType.F32, new long[] {2, 3}, new float[6])
                .addFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", DType.F32, new long[] {2, 4}, new float[8])
                .write(tmp.resolve("adapter_model.safetensors"));
        Files.writeString(tmp.resolve("adapter_config.json"), TINY_CONFIG);
        m = loadError(tmp);
        assertTrue(m.contains("lora_B [2, 4]") && m.contains("r=2"), m);
    }

    @Test
    void rejectsUnknownTensorKeysNamingThem(@TempDir Path tmp) throws IOException {
        writeTiny(tmp, TINY_CONFIG);
        new SafetensorsWriter()
                .addFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", DType.F32, new long[] {2, 3}, new float[6])
                .addFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", DType.F32, new long[] {4, 2}, new float[8])
                .addFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", DType.F32, new long[] {4}, new float[4])
                .addFloats("model.embed_tokens.weight", DType.F32, new long[] {2}, new float[2])
                .write(tmp.resolve("adapter_model.safetensors"));
        String m = loadError(tmp);
        assertTrue(m.contains("lora_magnitude_vector") && m.contains("model.embed_tokens.weight"), m);
    }

    @Test
    void rejectsModulesOutsideTheTargets(@TempDir Path tmp) throws IOException {
        writeTiny(tmp, TINY_CONFIG.replace("[\"q_proj\"]", "[\"v_proj\"]"));
        String m = loadError(tmp);
        assertTrue(m.contains("model.layers.0.self_attn.q_proj") && m.contains("v_proj"), m);
    }

    @Test
    void rejectsMissingTargetsAndBadJson(@TempDir Path tmp) throws IOException {
        writeTiny(tmp, "{\"peft_type\":\"LORA\",\"r\":2}");
        assertTrue(loadError(tmp).contains("target_modules"));
        writeTiny(tmp, "{\"peft_type\":\"LORA\",");
        assertTrue(loadError(tmp).contains("not valid JSON"));
        writeTiny(tmp, "{\"peft_type\":\"LORA\",\"r\":\"eight\",\"target_modules\":[\"q_proj\"]}");
        assertTrue(loadError(tmp).contains("\"r\""));
    }

    @Test
    void weightsRejectRankMismatchBetweenAAndB() {
        assertThrows(JTuneException.class, () -> new LoraWeights(new float[6], new float[12], 3, 4));
        assertThrows(JTuneException.class, () -> new LoraWeights(new float[7], new float[8], 3, 4));
        assertEquals(new LoraWeights(new float[] {1, 2, 3}, new float[] {4, 5}, 3, 2),
                new LoraWeights(new float[] {1, 2, 3}, new float[] {4, 5}, 3, 2));
        Set<LoraWeights> s = new HashSet<>();
        s.add(new LoraWeights(new float[] {1, 2, 3}, new float[] {4, 5}, 3, 2));
        assertTrue(s.contains(new LoraWeights(new float[] {1, 2, 3}, new float[] {4, 5}, 3, 2)));
    }
}
