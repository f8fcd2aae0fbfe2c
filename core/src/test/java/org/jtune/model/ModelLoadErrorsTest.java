package org.jtune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Predicate;
import org.jtune.JTuneException;
import org.jtune.infer.Session;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.io.safetensors.TensorInfo;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad model directories fail at load time with a message that says what is wrong. */
class ModelLoadErrorsTest {
    @TempDir
    Path dir;

    /** Copies tiny-llama into the temp dir, keeping tensors that pass {@code keep}, with config edited by {@code edit}. */
    private Path tinyLlama(Predicate<String> keep, java.util.function.UnaryOperator<String> edit, String extraTensor) throws IOException {
        Path src = Shared.path("models/tiny-llama");
        Files.writeString(dir.resolve("config.json"), edit.apply(Files.readString(src.resolve("config.json"))));
        try (SafetensorsFile f = SafetensorsFile.open(src.resolve("model.safetensors"))) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (TensorInfo t : f.tensors().values()) {
                if (keep.test(t.name())) {
                    w.add(t.name(), t.dtype(), t.shape(), f.data(t.name()));
                }
            }
            if (extraTensor != null) {
                w.addFloats(extraTensor, new long[] {2}, new float[] {1, 2});
            }
            w.write(dir.resolve("model.safetensors"));
        }
        return dir;
    }

    private static String message(Path d) {
        return assertThrows(JTuneException.class, () -> ModelRegistry.load(d).close()).getMessage();
    }

    @Test
    void loadsTheUnmodifiedCopy() throws IOException {
        try (LanguageModel m = ModelRegistry.load(tinyLlama(n -> true, c -> c, null))) {
            assertEquals("llama", m.info().modelType());
        }
    }

    @Test
    void rejectsUnknownModelType() throws IOException {
        String msg = message(tinyLlama(n -> true, c -> c.replace("\"llama\"", "\"mamba\""), null));
        assertTrue(msg.contains("unknown model_type \"mamba\"") && msg.contains("llama"), msg);
    }

    @Test
    void rejectsShapeThatDisagreesWithConfig() throws IOException {
        String msg = message(tinyLlama(n -> true, c -> c.replaceFirst("\"intermediate_size\": *\\d+", "\"intermediate_size\": 100"), null));
        assertTrue(msg.contains("but config says") && msg.contains("mlp"), msg);
    }

    @Test
    void rejectsMissingTensor() throws IOException {
        String msg = message(tinyLlama(n -> !n.equals("model.layers.1.mlp.up_proj.weight"), c -> c, null));
        assertTrue(msg.contains("model.layers.1.mlp.up_proj.weight"), msg);
    }

    @Test
    void rejectsAWeightOfTheWrongDtype() throws IOException {
        Path d = tinyLlama(n -> true, c -> c, null);
        Path src = d.resolve("model.safetensors");
        Path copy = dir.resolve("rewritten.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(src)) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (TensorInfo t : f.tensors().values()) {
                DType dtype = t.name().equals("model.layers.0.mlp.up_proj.weight") ? DType.I32 : t.dtype();
                w.add(t.name(), dtype, t.shape(), f.data(t.name()));
            }
            w.write(copy);
        }
        Files.move(copy, src, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        String msg = message(d);
        assertTrue(msg.contains("up_proj") && msg.contains("I32"), msg);
    }

    @Test
    void rejectsAnActivationWeDoNotImplementNamingKeyAndValue() throws IOException {
        Path src = Shared.path("models/tiny-gpt2");
        Files.writeString(dir.resolve("config.json"), Files.readString(src.resolve("config.json"))
                .replace("\"gelu_new\"", "\"quick_gelu\""));
        Files.copy(src.resolve("model.safetensors"), dir.resolve("model.safetensors"));
        String msg = message(dir);
        assertTrue(msg.contains("activation_function") && msg.contains("quick_gelu"), msg);
    }

    @Test
    void rejectsUnknownRopeScalingType() throws IOException {
        String msg = message(tinyLlama(n -> true, c -> c.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}"), null));
        assertTrue(msg.contains("rope_scaling") && msg.contains("yarn"), msg);
    }

    @Test
    void rejectsTensorsTheArchitectureDoesNotUse() throws IOException {
        String msg = message(tinyLlama(n -> true, c -> c, "transformer.h.0.attn.bias"));
        assertTrue(msg.contains("transformer.h.0.attn.bias"), msg);
    }

    @Test
    void rejectsUnsupportedActivation() throws IOException {
        String msg = message(tinyLlama(n -> true, c -> c.replace("\"silu\"", "\"gelu\""), null));
        assertTrue(msg.contains("hidden_act") && msg.contains("gelu"), msg);
    }

    @Test
    void rejectsPickleOnlyDirectory() throws IOException {
        Files.copy(Shared.path("models/tiny-llama/config.json"), dir.resolve("config.json"));
        Files.write(dir.resolve("pytorch_model.bin"), new byte[] {(byte) 0x80, 2});
        String msg = message(dir);
        assertTrue(msg.contains("arbitrary code"), msg);
    }

    @Test
    void refusesPromptLongerThanTheContext() throws IOException {
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/tiny-llama"))) {
            Session s = new Session(m, 8);
            JTuneException e = assertThrows(JTuneException.class, () -> s.feed(new int[9]));
            assertTrue(e.getMessage().contains("8-token context"), e.getMessage());
            assertEquals(0, s.length());
        }
    }

    @Test
    void refusesTokenIdsOutsideTheVocabulary() throws IOException {
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/tiny-llama"))) {
            Session s = new Session(m, 8);
            JTuneException e = assertThrows(JTuneException.class, () -> s.feed(new int[] {1, 999999}));
            assertTrue(e.getMessage().contains("999999"), e.getMessage());
        }
    }
}
