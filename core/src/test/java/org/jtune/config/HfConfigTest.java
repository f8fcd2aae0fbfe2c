package org.jtune.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HfConfigTest {
    @TempDir
    Path dir;

    @Test
    void rejectsMalformedJsonNamingTheFileAndLine() throws IOException {
        Files.writeString(dir.resolve("config.json"), "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 64,,\n}");
        JTuneException e = assertThrows(JTuneException.class, () -> HfConfig.load(dir));
        assertTrue(e.getMessage().contains("config.json is not valid JSON"), e.getMessage());
        assertTrue(e.getMessage().contains("line 3"), e.getMessage());
    }

    @Test
    void rejectsWrongTypesNamingTheKey() {
        HfConfig c = HfConfig.parse(dir.resolve("config.json"), "{\"hidden_size\": \"big\"}");
        JTuneException e = assertThrows(JTuneException.class, () -> c.requireInt("hidden_size"));
        assertTrue(e.getMessage().contains("\"hidden_size\" must be an integer"), e.getMessage());
    }

    @Test
    void rejectsAMissingConfigAndANonObject() throws IOException {
        assertThrows(JTuneException.class, () -> HfConfig.load(dir));
        Files.writeString(dir.resolve("config.json"), "[1, 2]");
        assertThrows(JTuneException.class, () -> HfConfig.load(dir));
    }

    @Test
    void eosTokenIdMayBeAListInGenerationConfig() throws IOException {
        Files.writeString(dir.resolve("generation_config.json"),
                "{\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128009], \"do_sample\": true, \"temperature\": 0.6, \"top_p\": 0.9}");
        GenerationConfig g = GenerationConfig.load(dir);
        assertEquals(List.of(128001, 128009), g.eosTokenIds());
        assertEquals(128000, g.bosTokenId().getAsInt());
        assertTrue(g.doSample());
        assertEquals(0.9, g.topP().getAsDouble());
    }

    @Test
    void missingGenerationConfigMeansNoDefaults() {
        assertEquals(GenerationConfig.EMPTY, GenerationConfig.load(dir));
    }
}
