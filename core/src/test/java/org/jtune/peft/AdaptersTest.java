package org.jtune.peft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.jtune.JTuneException;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AdaptersTest {

    @Test
    void dispatchesOnPeftType() {
        Adapter lora = Adapters.load(Shared.path("golden/tiny-llama-adapters/lora"));
        assertInstanceOf(LoraAdapter.class, lora);
        assertEquals("LORA", lora.peftType());
        assertEquals("tiny-llama", lora.baseModelNameOrPath());
        Adapter prefix = Adapters.load(Shared.path("golden/tiny-llama-adapters/prefix"));
        assertInstanceOf(PrefixAdapter.class, prefix);
        assertEquals("PREFIX_TUNING", prefix.peftType());
    }

    @Test
    void rejectsOtherPeftTypesNamingTheSupportedOnes(@TempDir Path tmp) throws IOException {
        Files.writeString(tmp.resolve("adapter_config.json"), "{\"peft_type\":\"IA3\",\"target_modules\":[\"k_proj\"]}");
        JTuneException e = assertThrows(JTuneException.class, () -> Adapters.load(tmp));
        assertTrue(e.getMessage().startsWith("IA3 adapters are not supported"), e.getMessage());
        assertTrue(e.getMessage().contains("jtune reads LORA and PREFIX_TUNING"), e.getMessage());

        Files.writeString(tmp.resolve("adapter_config.json"), "{\"r\":8}");
        assertTrue(assertThrows(JTuneException.class, () -> Adapters.load(tmp)).getMessage().contains("peft_type"));
    }

    @Test
    void rejectsMissingDirectoryAndConfig(@TempDir Path tmp) {
        assertTrue(assertThrows(JTuneException.class, () -> Adapters.load(tmp)).getMessage().contains("no adapter_config.json"));
        assertTrue(assertThrows(JTuneException.class, () -> Adapters.load(tmp.resolve("missing"))).getMessage()
                .contains("does not exist"));
    }

    @Test
    void writesJsonLikePythonJsonDumps() throws IOException {
        var node = new ObjectMapper().readTree(
                "{\"b\":[1,\"x\\u00e9\"],\"a\":{},\"c\":[],\"d\":{\"z\":null,\"y\":true},\"e\":0.05,\"f\":1e-05,\"g\":16.0,\"h\":1e20}");
        assertEquals("{\n  \"a\": {},\n  \"b\": [\n    1,\n    \"x\\u00e9\"\n  ],\n  \"c\": [],\n  \"d\": {\n    \"y\": true,\n"
                + "    \"z\": null\n  },\n  \"e\": 0.05,\n  \"f\": 1e-05,\n  \"g\": 16.0,\n  \"h\": 1e+20\n}", AdapterFiles.pythonJson(node));
        assertEquals("0.1", AdapterFiles.pythonFloat(0.1));
        assertEquals("-2.5e-07", AdapterFiles.pythonFloat(-2.5e-7));
        assertEquals("1234567.0", AdapterFiles.pythonFloat(1234567));
        assertEquals("0.0001", AdapterFiles.pythonFloat(1e-4));
    }
}
