package org.jtune.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.jtune.JTuneException;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsWriterTest {
    @TempDir
    Path tmp;

    @Test
    void roundTripsEveryDtype() {
        float[] fl = {0f, -1.5f, 3.25f, 65504f, -0.0f, 0x1p-20f}; // 2^-20 is an f16 subnormal
        long[] shape = {2, 3};
        SafetensorsWriter w = new SafetensorsWriter()
                .metadata("format", "pt")
                .metadata("note", "round trip")
                .addFloats("f64", DType.F64, shape, fl)
                .addFloats("f32", shape, fl)
                .addFloats("f16", DType.F16, shape, fl)
                .addFloats("bf16", DType.BF16, shape, fl)
                .addLongs("i64", shape, new long[] {Long.MIN_VALUE, -1, 0, 1, 42, Long.MAX_VALUE})
                .addLongs("i32", DType.I32, shape, new long[] {Integer.MIN_VALUE, -1, 0, 1, 42, Integer.MAX_VALUE})
                .addLongs("i16", DType.I16, shape, new long[] {Short.MIN_VALUE, -1, 0, 1, 42, Short.MAX_VALUE})
                .addLongs("i8", DType.I8, shape, new long[] {-128, -1, 0, 1, 42, 127})
                .addLongs("u8", DType.U8, shape, new long[] {0, 1, 2, 128, 200, 255})
                .addLongs("bool", DType.BOOL, shape, new long[] {1, 0, 0, 1, 1, 0});
        Path p = tmp.resolve("all.safetensors");
        w.write(p);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(Map.of("format", "pt", "note", "round trip"), f.metadata());
            assertEquals(List.of("f64", "f32", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "bool"),
                    List.copyOf(f.tensors().keySet()), "laid out in the order added");
            for (TensorInfo t : f.tensors().values()) {
                assertArrayEquals(shape, t.shape(), t.name());
                assertEquals(t.name().toUpperCase(), t.dtype().safetensorsName());
            }
            assertArrayEquals(fl, f.readFloats("f32"));
            assertArrayEquals(fl, f.readFloats("f64"));
            assertArrayEquals(fl, f.readFloats("f16"), "all these values are exact in f16");
            float[] bf = f.readFloats("bf16");
            for (int i = 0; i < fl.length; i++) {
                assertEquals(HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(fl[i])), bf[i]);
            }
            assertEquals(65536f, bf[3], "65504 rounds to 65536 in bf16");
            assertArrayEquals(new long[] {Long.MIN_VALUE, -1, 0, 1, 42, Long.MAX_VALUE}, f.readLongs("i64"));
            assertArrayEquals(new long[] {Integer.MIN_VALUE, -1, 0, 1, 42, Integer.MAX_VALUE}, f.readLongs("i32"));
            assertArrayEquals(new long[] {Short.MIN_VALUE, -1, 0, 1, 42, Short.MAX_VALUE}, f.readLongs("i16"));
            assertArrayEquals(new long[] {-128, -1, 0, 1, 42, 127}, f.readLongs("i8"));
            assertArrayEquals(new long[] {0, 1, 2, 128, 200, 255}, f.readLongs("u8"));
            assertArrayEquals(new long[] {1, 0, 0, 1, 1, 0}, f.readLongs("bool"));
        }
    }

    @Test
    void headerIsSpacePaddedToAMultipleOf8AndTensorsAreContiguous() throws IOException {
        Path p = tmp.resolve("pad.safetensors");
        new SafetensorsWriter().addFloats("a", new long[] {3}, new float[] {1, 2, 3})
                .addLongs("bb", new long[] {1}, new long[] {7}).write(p);
        byte[] bytes = Files.readAllBytes(p);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, n % 8);
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{"));
        assertEquals(header.stripTrailing() + " ".repeat(header.length() - header.stripTrailing().length()), header);
        assertTrue(header.contains("\"data_offsets\":[0,12]") && header.contains("\"data_offsets\":[12,20]"), header);
        assertEquals(8 + n + 20, bytes.length);
    }

    @Test
    void rewritingACheckpointReproducesItsTensors() {
        Path src = Shared.path("models/tiny-llama-bf16-tied-llama3rope/model.safetensors");
        Path out = tmp.resolve("copy.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(src)) {
            SafetensorsWriter w = new SafetensorsWriter();
            f.metadata().forEach(w::metadata);
            for (TensorInfo t : f.tensors().values()) {
                w.add(t.name(), t.dtype(), t.shape(), f.data(t.name())); // straight from the mapping
            }
            w.write(out);
            try (SafetensorsFile g = SafetensorsFile.open(out)) {
                assertEquals(f.tensors().keySet(), g.tensors().keySet());
                assertEquals(f.metadata(), g.metadata());
                for (String name : f.tensors().keySet()) {
                    assertEquals(-1, f.data(name).mismatch(g.data(name)), name);
                }
                // bf16 -> float -> bf16 through addFloats is also bit-exact.
                float[] emb = f.readFloats("model.embed_tokens.weight");
                Path again = tmp.resolve("again.safetensors");
                new SafetensorsWriter().addFloats("e", DType.BF16, f.info("model.embed_tokens.weight").shape(), emb)
                        .write(again);
                try (SafetensorsFile h = SafetensorsFile.open(again)) {
                    assertEquals(-1, h.data("e").mismatch(f.data("model.embed_tokens.weight")));
                }
            }
        }
    }

    @Test
    void shapeThatDisagreesWithTheBytesIsRefusedAndTheOldFileIsUntouched() throws IOException {
        Path p = tmp.resolve("model.safetensors");
        new SafetensorsWriter().addFloats("old", new long[] {1}, new float[] {1f}).write(p);
        byte[] before = Files.readAllBytes(p);
        JTuneException e = assertThrows(JTuneException.class, () -> new SafetensorsWriter()
                .addFloats("ok", new long[] {1}, new float[] {2f})
                .add("bad", DType.F32, new long[] {2, 3}, MemorySegment.ofArray(new byte[20]))
                .write(p));
        assertTrue(e.getMessage().contains("\"bad\"") && e.getMessage().contains("24 bytes")
                && e.getMessage().contains("20 bytes"), e.getMessage());
        assertArrayEquals(before, Files.readAllBytes(p));
        assertEquals(List.of(p), listDir());
    }

    @Test
    void failureMidwayLeavesTheOldFileAndNoTempFile() throws IOException {
        Path p = tmp.resolve("model.safetensors");
        new SafetensorsWriter().addFloats("old", new long[] {1}, new float[] {1f}).write(p);
        byte[] before = Files.readAllBytes(p);
        // The writer reads segments only at write(); a segment whose arena is closed by then fails
        // after the header and the first tensor are already in the temp file.
        Arena arena = Arena.ofConfined();
        MemorySegment dead = arena.allocate(8 << 20);
        SafetensorsWriter w = new SafetensorsWriter()
                .addFloats("first", new long[] {1024}, new float[1024])
                .add("second", DType.U8, new long[] {8 << 20}, dead);
        arena.close();
        assertThrows(IllegalStateException.class, () -> w.write(p));
        assertArrayEquals(before, Files.readAllBytes(p));
        assertEquals(List.of(p), listDir(), "the temp file is cleaned up");

        // And a fresh target is simply never created.
        Path fresh = tmp.resolve("fresh.safetensors");
        assertThrows(IllegalStateException.class, () -> w.write(fresh));
        assertFalse(Files.exists(fresh));
    }

    @Test
    void overwritesAnExistingFileWithTheNewContent() {
        Path p = tmp.resolve("m.safetensors");
        new SafetensorsWriter().addFloats("v", new long[] {1}, new float[] {1f}).write(p);
        new SafetensorsWriter().addFloats("v", new long[] {2}, new float[] {5f, 6f}).write(p);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertArrayEquals(new float[] {5f, 6f}, f.readFloats("v"));
        }
    }

    @Test
    void rejectsBadInputsEarly() {
        SafetensorsWriter w = new SafetensorsWriter().addFloats("a", new long[] {1}, new float[] {1f});
        assertTrue(assertThrows(JTuneException.class, () -> w.addFloats("a", new long[] {1}, new float[] {1f}))
                .getMessage().contains("added twice"));
        assertTrue(assertThrows(JTuneException.class, () -> w.addFloats("b", new long[] {2, 2}, new float[3]))
                .getMessage().contains("4 elements but 3 values"));
        assertTrue(assertThrows(JTuneException.class, () -> w.addFloats("c", new long[] {-1}, new float[0]))
                .getMessage().contains("negative"));
        assertTrue(assertThrows(JTuneException.class, () -> w.addLongs("d", DType.I8, new long[] {1}, new long[] {200}))
                .getMessage().contains("does not fit I8"));
        assertThrows(JTuneException.class, () -> w.addFloats("e", DType.I32, new long[] {1}, new float[1]));
        assertThrows(JTuneException.class, () -> w.addFloats("__metadata__", new long[] {1}, new float[1]));
        JTuneException noDir = assertThrows(JTuneException.class, () -> w.write(tmp.resolve("no/such/dir/x.safetensors")));
        assertTrue(noDir.getMessage().contains("does not exist"), noDir.getMessage());
    }

    private List<Path> listDir() throws IOException {
        try (Stream<Path> s = Files.list(tmp)) {
            return s.sorted().toList();
        }
    }
}
