package org.jtune.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads the shared checkpoints and goldens, and rejects every kind of broken file we know of.
 * Expected values were printed while developing by an independent stdlib-only Python reader
 * (json + struct: parse the u64 header length and JSON header, struct.unpack the data at
 * 8 + header_len + begin; bf16 widened by shifting the bits left 16).
 */
class SafetensorsFileTest {
    @TempDir
    Path tmp;

    @Test
    void readsF32CheckpointMatchingAnIndependentReader() {
        try (SafetensorsFile f = SafetensorsFile.open(Shared.path("models/tiny-llama/model.safetensors"))) {
            assertEquals(21, f.tensors().size());
            assertEquals("pt", f.metadata().get("format"));
            TensorInfo lm = f.info("lm_head.weight");
            assertEquals(DType.F32, lm.dtype());
            assertArrayEquals(new long[] {256, 64}, lm.shape());
            assertEquals(0, lm.begin());
            assertEquals(65536, lm.end());
            assertEquals(256 * 64, lm.numel());
            assertEquals(2, lm.rank());
            float[] w = f.readFloats("lm_head.weight");
            assertEquals(256 * 64, w.length);
            assertArrayEquals(new float[] {0.05187388136982918f, 0.09006441384553909f, -0.02340666390955448f,
                    0.1117234155535698f}, java.util.Arrays.copyOf(w, 4));
            float[] norm = f.readFloats("model.norm.weight");
            assertArrayEquals(new float[] {1.0384942293167114f, 0.9447173476219177f, 0.9309905767440796f,
                    0.9731560349464417f}, java.util.Arrays.copyOf(norm, 4));
            double[] d = f.readDoubles("model.norm.weight");
            assertEquals(norm[3], d[3], 0.0);
            // tensors() is ordered by data offset, as the file lays them out.
            long prevBegin = -1;
            for (TensorInfo t : f.tensors().values()) {
                assertTrue(t.begin() > prevBegin, t.name());
                prevBegin = t.begin();
            }
            List<String> first = List.copyOf(f.tensors().keySet()).subList(0, 3);
            assertEquals(List.of("lm_head.weight", "model.embed_tokens.weight",
                    "model.layers.0.input_layernorm.weight"), first);
        }
    }

    @Test
    void readsBf16CheckpointWideningExactly() {
        Path p = Shared.path("models/tiny-llama-bf16-tied-llama3rope/model.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(20, f.tensors().size());
            assertEquals(DType.BF16, f.info("model.embed_tokens.weight").dtype());
            MemorySegment raw = f.data("model.embed_tokens.weight");
            assertEquals(256 * 64 * 2, raw.byteSize());
            assertEquals((short) 0x3d84, raw.get(SafetensorsFile.I16_LE, 0));
            assertEquals((short) 0xbe1a, raw.get(SafetensorsFile.I16_LE, 4));
            float[] w = f.readFloats("model.embed_tokens.weight");
            assertArrayEquals(new float[] {0.064453125f, 0.1767578125f, -0.150390625f, 0.09814453125f},
                    java.util.Arrays.copyOf(w, 4));
            assertArrayEquals(new float[] {1.0859375f, 0.984375f, 0.8671875f, 1.03125f},
                    java.util.Arrays.copyOf(f.readFloats("model.norm.weight"), 4));
        }
    }

    @Test
    void readsF16Checkpoint() {
        Path p = Shared.path("models/tiny-gpt-neox-f16-sequential/model.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(28, f.tensors().size());
            assertEquals(DType.F16, f.info("embed_out.weight").dtype());
            assertArrayEquals(new float[] {0.3994140625f, 0.156982421875f, 0.110595703125f, 0.0228271484375f},
                    java.util.Arrays.copyOf(f.readFloats("embed_out.weight"), 4));
            assertArrayEquals(new double[] {0.982421875, 1.046875, 1.0986328125, 1.0673828125},
                    java.util.Arrays.copyOf(f.readDoubles("gpt_neox.final_layer_norm.weight"), 4));
        }
    }

    @Test
    void readsGoldenIdsLogitsAndMetadata() {
        try (SafetensorsFile f = SafetensorsFile.open(Shared.path("golden/tiny-llama.safetensors"))) {
            assertEquals(DType.I64, f.info("input_ids.0").dtype());
            assertArrayEquals(new long[] {163, 36, 172, 106, 224, 124, 16, 218, 162, 165, 156, 31, 25, 136, 220, 79},
                    f.readLongs("input_ids.0"));
            TensorInfo logits = f.info("logits.0");
            assertArrayEquals(new long[] {16, 256}, logits.shape());
            float[] l = f.readFloats("logits.0");
            assertEquals(-0.5920632481575012f, l[0]);
            assertEquals(1.531139850616455f, l[1]);
            assertEquals(2.009160041809082f, l[2]);
            assertEquals(-1.436509609222412f, l[l.length - 1]);
            assertArrayEquals(new float[] {5.5614447593688965f, 5.852829933166504f, 6.039062023162842f},
                    f.readFloats("loss"));
            assertEquals("llama", f.metadata().get("model_type"));
            assertEquals("3", f.metadata().get("num_sequences"));
            assertTrue(f.metadata().get("sequences").startsWith("[[163, 36, 172"));
        }
    }

    @Test
    void dataSlicesAreReadOnlyAndDieWithTheFile() {
        SafetensorsFile f = SafetensorsFile.open(Shared.path("models/tiny-llama/model.safetensors"));
        MemorySegment s = f.data("model.norm.weight");
        assertTrue(s.isReadOnly());
        assertThrows(IllegalArgumentException.class, () -> s.set(ValueLayout.JAVA_BYTE, 0, (byte) 1));
        f.close();
        f.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> s.get(ValueLayout.JAVA_BYTE, 0));
        assertThrows(IllegalStateException.class, () -> f.data("model.norm.weight"));
    }

    @Test
    void missingTensorNamesTheTensorAndTheFile() {
        Path p = Shared.path("models/tiny-llama/model.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertFalse(f.contains("model.layers.9.mlp.up_proj.weight"));
            assertTrue(f.contains("model.norm.weight"));
            JTuneException e = assertThrows(JTuneException.class, () -> f.info("model.layers.9.mlp.up_proj.weight"));
            assertTrue(e.getMessage().contains("model.layers.9.mlp.up_proj.weight"), e.getMessage());
            assertTrue(e.getMessage().contains(p.toString()), e.getMessage());
        }
    }

    @Test
    void readersRejectTheWrongKindOfDtype() {
        try (SafetensorsFile f = SafetensorsFile.open(Shared.path("golden/tiny-llama.safetensors"))) {
            assertTrue(assertThrows(JTuneException.class, () -> f.readFloats("input_ids.0")).getMessage()
                    .contains("readLongs"));
            assertTrue(assertThrows(JTuneException.class, () -> f.readLongs("loss")).getMessage()
                    .contains("readFloats"));
        }
    }

    @Test
    void readsEmptyAndScalarTensorsAndAnEmptyHeader() {
        Path p = RawSafetensors.write(tmp.resolve("e.safetensors"),
                "{\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                        + "\"scalar\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(0, f.readFloats("empty").length);
            assertEquals(0, f.info("scalar").rank());
            assertArrayEquals(new long[] {0x03020100L}, f.readLongs("scalar"));
            assertTrue(f.metadata().isEmpty());
        }
        try (SafetensorsFile f = SafetensorsFile.open(RawSafetensors.write(tmp.resolve("n.safetensors"), "{}  ", 0))) {
            assertTrue(f.tensors().isEmpty());
        }
    }

    @Test
    void mapsTensorsLargerThan2GbAndRefusesToCopyThemIntoAnArray() throws IOException {
        // A sparse file: the OS stores no data for the 3 GB of zeros, so this test is cheap.
        long big = 3_000_000_000L;
        String json = "{" + entry("huge", "U8", "[" + big + "]", "[0," + big + "]") + "}";
        Path p = header(json, 0);
        try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(p.toFile(), "rw")) {
            raf.setLength(8 + json.getBytes().length + big);
            raf.seek(raf.length() - 1);
            raf.write(7);
        }
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            MemorySegment s = f.data("huge");
            assertEquals(big, s.byteSize());
            assertEquals(7, s.get(ValueLayout.JAVA_BYTE, big - 1));
            assertEquals(0, s.get(ValueLayout.JAVA_BYTE, big / 2));
            JTuneException e = assertThrows(JTuneException.class, () -> f.readLongs("huge"));
            assertTrue(e.getMessage().contains("3000000000 elements") && e.getMessage().contains("data(name)"),
                    e.getMessage());
        }
    }

    // ---- validation: every broken file is refused with the file named, the problem, and a hint ----

    private JTuneException rejects(Path file, String... fragments) {
        JTuneException e = assertThrows(JTuneException.class, () -> SafetensorsFile.open(file).close());
        String m = e.getMessage();
        assertTrue(m.contains(file.toString()), "message should name the file: " + m);
        for (String frag : fragments) {
            assertTrue(m.contains(frag), "message should contain \"" + frag + "\": " + m);
        }
        return e;
    }

    private Path header(String json, int dataBytes) {
        return RawSafetensors.write(tmp.resolve("bad.safetensors"), json, dataBytes);
    }

    private static String entry(String name, String dtype, String shape, String offsets) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
    }

    @Test
    void rejectsFileShorterThanTheLengthPrefix() throws IOException {
        Path p = Files.write(tmp.resolve("short.safetensors"), new byte[] {1, 2, 3});
        rejects(p, "3 bytes", "needs 8");
    }

    @Test
    void rejectsMissingFile() {
        rejects(tmp.resolve("nope.safetensors"), "no such file");
    }

    @Test
    void rejectsHeaderLengthPastTheEndOfFile() {
        Path p = RawSafetensors.write(tmp.resolve("bad.safetensors"), 1000, "{}".getBytes(), 0);
        rejects(p, "header length 1000", "10-byte file", "truncated");
    }

    @Test
    void rejectsInsaneHeaderLength() {
        Path p = RawSafetensors.write(tmp.resolve("bad.safetensors"), 1L << 40, "{}".getBytes(), 0);
        rejects(p, String.valueOf(1L << 40), "sanity bound");
        Path neg = RawSafetensors.write(tmp.resolve("neg.safetensors"), -1L, "{}".getBytes(), 0);
        rejects(neg, "18446744073709551615", "not a safetensors file");
    }

    @Test
    void rejectsHeaderThatIsNotJson() {
        rejects(header("{\"a\": [1, 2", 0), "not valid JSON", "corrupt");
        rejects(header("PK\u0003\u0004garbage", 0), "not valid JSON");
    }

    @Test
    void rejectsHeaderThatIsNotAnObject() {
        rejects(header("[1, 2, 3]", 0), "not a JSON object");
    }

    @Test
    void rejectsEntryMissingAField() {
        rejects(header("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "\"w\"", "missing \"shape\"");
        rejects(header("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "missing \"dtype\"");
        rejects(header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "missing \"data_offsets\"");
    }

    @Test
    void rejectsUnknownDtypeListingTheKnownOnes() {
        rejects(header("{" + entry("w", "F8_E4M3", "[4]", "[0,4]") + "}", 4), "\"w\"", "F8_E4M3", "BF16", "F32");
    }

    @Test
    void rejectsNegativeShape() {
        rejects(header("{" + entry("w", "F32", "[-1, 4]", "[0,16]") + "}", 16), "negative dimension -1");
    }

    @Test
    void rejectsMalformedDataOffsets() {
        rejects(header("{" + entry("w", "U8", "[4]", "[4,0]") + "}", 4), "data_offsets [4,0]", "begin <= end");
        rejects(header("{" + entry("w", "U8", "[4]", "[0]") + "}", 4), "data_offsets [0]");
        rejects(header("{" + entry("w", "U8", "[4]", "[0,4,8]") + "}", 8), "data_offsets [0,4,8]");
        rejects(header("{" + entry("w", "U8", "[4]", "[-4,0]") + "}", 4), "data_offsets [-4,0]");
    }

    @Test
    void rejectsByteRangeThatDisagreesWithDtypeTimesShape() {
        rejects(header("{" + entry("w", "F32", "[2, 3]", "[0,12]") + "}", 12),
                "dtype × shape = byte range", "24 bytes", "span 12 bytes");
    }

    @Test
    void rejectsTruncatedSafetensors() {
        String json = "{" + entry("a", "F32", "[4]", "[0,16]") + "," + entry("b", "F32", "[4]", "[16,32]") + "}";
        Path p = header(json, 20); // 12 bytes of b are missing
        long headerLen = json.getBytes().length;
        rejects(p, "the file is truncated: expected " + (8 + headerLen + 32) + " bytes, found "
                + (8 + headerLen + 20) + "; re-download it");
    }

    @Test
    void rejectsOverlappingTensors() {
        String json = "{" + entry("a", "F32", "[4]", "[0,16]") + "," + entry("b", "F32", "[4]", "[12,28]") + "}";
        rejects(header(json, 28), "\"a\"", "\"b\"", "overlap");
    }

    @Test
    void rejectsDuplicateNames() {
        String json = "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[4,8]") + "}";
        rejects(header(json, 8), "\"a\" appears twice");
    }

    @Test
    void rejectsNonStringMetadata() {
        rejects(header("{\"__metadata__\":{\"step\":3}}", 0), "__metadata__", "step", "must be a string");
    }
}
