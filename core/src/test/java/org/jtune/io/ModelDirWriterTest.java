package org.jtune.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelDirWriterTest {
    @TempDir
    Path dir;

    private Path source() throws IOException {
        Path src = Files.createDirectories(dir.resolve("src"));
        Files.writeString(src.resolve("config.json"), "{\"model_type\": \"llama\", \"torch_dtype\": \"bfloat16\"}");
        Files.writeString(src.resolve("tokenizer.json"), "{}");
        Files.writeString(src.resolve("model.safetensors"), "old weights, not copied");
        Files.writeString(src.resolve("model.safetensors.index.json"), "{}");
        return src;
    }

    private static SafetensorsWriter weights(float v) {
        return new SafetensorsWriter().addFloats("w", new long[] {1, 2}, new float[] {v, v});
    }

    private List<String> names(Path p) throws IOException {
        try (Stream<Path> s = Files.list(p)) {
            return s.map(q -> q.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void writesWeightsEditedConfigAndSideFilesAndRefusesAnExistingOutput() throws IOException {
        Path src = source(), dst = dir.resolve("out");
        ModelDirWriter.write(src, dst, weights(1f), c -> c.put("torch_dtype", "float32"), false);
        assertEquals(List.of("config.json", "model.safetensors", "tokenizer.json"), names(dst));
        assertTrue(Files.readString(dst.resolve("config.json")).contains("float32"));
        try (SafetensorsFile f = SafetensorsFile.open(dst.resolve("model.safetensors"))) {
            assertEquals(1f, f.readFloats("w")[0]);
        }
        JTuneException e = assertThrows(JTuneException.class,
                () -> ModelDirWriter.write(src, dst, weights(2f), null, false));
        assertTrue(e.getMessage().contains("already exists"), e.getMessage());
        assertTrue(Files.readString(dst.resolve("config.json")).contains("float32"), "the first output is untouched");
        assertEquals(List.of("out", "src"), names(dir), "no temporary directory left");
    }

    @Test
    void replaceSwapsInTheNewDirectoryAndAFailureLeavesTheOldOneAndNoTemporaryDirectory() throws IOException {
        Path src = source(), dst = dir.resolve("model");
        ModelDirWriter.write(src, dst, weights(1f), null, true);
        assertEquals(Files.readString(src.resolve("config.json")), Files.readString(dst.resolve("config.json")),
                "an unedited config is copied byte for byte");
        ModelDirWriter.write(src, dst, weights(2f), c -> c.put("step", 2), true);
        assertTrue(Files.readString(dst.resolve("config.json")).contains("\"step\""));
        assertThrows(RuntimeException.class, () -> ModelDirWriter.write(src, dst, weights(3f), c -> {
            throw new IllegalStateException("config edit failed");
        }, true));
        assertTrue(Files.readString(dst.resolve("config.json")).contains("\"step\""), "the previous result survives");
        assertEquals(List.of("model", "src"), names(dir), "no temporary directory left");
        assertFalse(Files.exists(dir.resolve(".model.tmp")));
    }
}
