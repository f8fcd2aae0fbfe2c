package org.jtune.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.jtune.JTuneException;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WeightFilesTest {
    @TempDir
    Path tmp;

    private static final String INDEX = """
            {"metadata": {"total_size": 40},
             "weight_map": {"model.a": "model-00001-of-00002.safetensors",
                            "model.b": "model-00001-of-00002.safetensors",
                            "model.c": "model-00002-of-00002.safetensors"}}
            """;

    private Path twoShards() throws IOException {
        new SafetensorsWriter().addFloats("model.a", new long[] {2}, new float[] {1f, 2f})
                .addFloats("model.b", DType.BF16, new long[] {2, 2}, new float[] {3f, 4f, 5f, 6f})
                .write(tmp.resolve("model-00001-of-00002.safetensors"));
        new SafetensorsWriter().addFloats("model.c", DType.F16, new long[] {3}, new float[] {7f, 8f, 9f})
                .write(tmp.resolve("model-00002-of-00002.safetensors"));
        Files.writeString(tmp.resolve("model.safetensors.index.json"), INDEX);
        return tmp;
    }

    @Test
    void readsTheSharedSingleFileModel() {
        try (WeightFiles w = WeightFiles.open(Shared.path("models/tiny-llama"))) {
            assertEquals(21, w.names().size());
            assertTrue(w.contains("model.norm.weight"));
            assertArrayEquals(new long[] {64}, w.info("model.norm.weight").shape());
            assertEquals(1.0384942293167114f, w.readFloats("model.norm.weight")[0]); // see SafetensorsFileTest
            assertEquals(256 * 64 * 4, w.data("lm_head.weight").byteSize());
        }
    }

    @Test
    void readsTensorsFromBothShardsThroughTheIndex() throws IOException {
        try (WeightFiles w = WeightFiles.open(twoShards())) {
            assertEquals(List.of("model.a", "model.b", "model.c"), List.copyOf(w.names()));
            assertArrayEquals(new float[] {1f, 2f}, w.readFloats("model.a"));
            assertArrayEquals(new float[] {3f, 4f, 5f, 6f}, w.readFloats("model.b"));
            assertArrayEquals(new float[] {7f, 8f, 9f}, w.readFloats("model.c"));
            assertEquals(DType.F16, w.info("model.c").dtype());
            assertEquals(6, w.data("model.c").byteSize());
            assertFalse(w.contains("model.d"));
            JTuneException e = assertThrows(JTuneException.class, () -> w.info("model.d"));
            assertTrue(e.getMessage().contains("model.d") && e.getMessage().contains(tmp.toString()), e.getMessage());
        }
    }

    @Test
    void withoutAnIndexOpensEverySafetensorsFile() throws IOException {
        twoShards();
        Files.delete(tmp.resolve("model.safetensors.index.json"));
        try (WeightFiles w = WeightFiles.open(tmp)) {
            assertEquals(Set.of("model.a", "model.b", "model.c"), w.names());
            assertArrayEquals(new float[] {7f, 8f, 9f}, w.readFloats("model.c"));
        }
    }

    @Test
    void acceptsASingleSafetensorsFilePath() throws IOException {
        twoShards();
        try (WeightFiles w = WeightFiles.open(tmp.resolve("model-00002-of-00002.safetensors"))) {
            assertEquals(Set.of("model.c"), w.names());
        }
    }

    @Test
    void indexNamingAMissingShardNamesTheShard() throws IOException {
        twoShards();
        Files.delete(tmp.resolve("model-00002-of-00002.safetensors"));
        JTuneException e = assertThrows(JTuneException.class, () -> WeightFiles.open(tmp));
        assertTrue(e.getMessage().contains("model-00002-of-00002.safetensors")
                && e.getMessage().contains("missing"), e.getMessage());
    }

    @Test
    void indexDisagreeingWithTheShardsIsRefused() throws IOException {
        twoShards();
        Files.writeString(tmp.resolve("model.safetensors.index.json"),
                INDEX.replace("\"model.c\": \"model-00002", "\"model.zzz\": \"model-00002"));
        JTuneException e = assertThrows(JTuneException.class, () -> WeightFiles.open(tmp));
        assertTrue(e.getMessage().contains("model.zzz") && e.getMessage().contains("no shard has it"), e.getMessage());
    }

    @Test
    void tensorInTwoShardsIsRefused() throws IOException {
        twoShards();
        new SafetensorsWriter().addFloats("model.c", new long[] {1}, new float[] {0f}).addFloats("model.a",
                new long[] {1}, new float[] {0f}).write(tmp.resolve("model-00002-of-00002.safetensors"));
        JTuneException e = assertThrows(JTuneException.class, () -> WeightFiles.open(tmp));
        assertTrue(e.getMessage().contains("\"model.a\"") && e.getMessage().contains("model-00001-of-00002")
                && e.getMessage().contains("model-00002-of-00002"), e.getMessage());

        Files.delete(tmp.resolve("model.safetensors.index.json"));
        assertThrows(JTuneException.class, () -> WeightFiles.open(tmp), "also without an index");
    }

    @Test
    void refusesPickleCheckpointsExplainingWhyAndHowToConvert() throws IOException {
        for (String name : List.of("pytorch_model.bin", "pytorch_model-00001-of-00002.bin", "model.pt",
                "weights.pth", "last.ckpt")) {
            Path dir = Files.createDirectory(tmp.resolve("m-" + name));
            Files.write(dir.resolve(name), new byte[] {(byte) 0x80, 2}); // pickle protocol 2 opcode
            Files.writeString(dir.resolve("config.json"), "{}");
            JTuneException e = assertThrows(JTuneException.class, () -> WeightFiles.open(dir));
            String m = e.getMessage();
            assertTrue(m.contains(name), m);
            assertTrue(m.contains("never unpickles") && m.contains("arbitrary code"), m);
            assertTrue(m.contains("safe_serialization=True") && m.contains(dir.toString()), m);
        }
    }

    @Test
    void missingDirectoryIsAnError() {
        JTuneException e = assertThrows(JTuneException.class, () -> WeightFiles.open(tmp.resolve("nope")));
        assertTrue(e.getMessage().contains("nope") && e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void directoryWithoutWeightsIsAnError() throws IOException {
        Files.writeString(tmp.resolve("config.json"), "{}");
        JTuneException e = assertThrows(JTuneException.class, () -> WeightFiles.open(tmp));
        assertTrue(e.getMessage().contains("no weights") && e.getMessage().contains("model.safetensors"), e.getMessage());
    }
}
