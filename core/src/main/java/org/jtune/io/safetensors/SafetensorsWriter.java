package org.jtune.io.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.jtune.JTuneException;

/**
 * Builds and writes one {@code .safetensors} file: checkpoints, merged weights, adapters, goldens.
 * The file appears atomically: bytes go to a temp file in the target's directory, are fsynced, and
 * the temp file is renamed over the target with ATOMIC_MOVE, so a crash or an exception mid-write
 * leaves either the old file or the new one, never half of one. The header JSON is padded with
 * spaces to a multiple of 8 bytes so the data section (and every 8-byte-multiple tensor) starts
 * aligned; tensors are laid out contiguously in the order they were added. Segments passed to
 * {@link #add} are not copied, only read during {@link #write}, so merging a large model does not
 * hold a second copy of it on the heap; they must stay alive until then.
 */
public final class SafetensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int COPY_CHUNK = 4 << 20;

    private record Entry(String name, DType dtype, long[] shape, MemorySegment bytes) {}

    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final List<Entry> entries = new ArrayList<>();
    private final Set<String> names = new HashSet<>();

    public SafetensorsWriter() {}

    /** Adds a {@code __metadata__} string entry (e.g. {@code format=pt}). */
    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(Objects.requireNonNull(key, "key"), Objects.requireNonNull(value, "value"));
        return this;
    }

    /** Adds a tensor given its raw little-endian bytes; their size must equal numel × dtype size. */
    public SafetensorsWriter add(String name, DType dtype, long[] shape, MemorySegment bytes) {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(bytes, "bytes");
        long numel = checkNameAndShape(name, shape);
        long expected = Math.multiplyExact(numel, dtype.byteSize());
        if (bytes.byteSize() != expected) {
            throw new JTuneException("tensor \"" + name + "\": dtype × shape = " + dtype + " × " + Arrays.toString(shape)
                    + " = " + expected + " bytes but " + bytes.byteSize()
                    + " bytes were given; is the shape or the dtype wrong?");
        }
        entries.add(new Entry(name, dtype, shape.clone(), bytes));
        names.add(name);
        return this;
    }

    /** Adds an F32 tensor. */
    public SafetensorsWriter addFloats(String name, long[] shape, float[] values) {
        return addFloats(name, DType.F32, shape, values);
    }

    /** Adds a floating-point tensor stored as {@code dtype} (F64, F32, F16 or BF16; narrowing rounds to nearest-even). */
    public SafetensorsWriter addFloats(String name, DType dtype, long[] shape, float[] values) {
        Objects.requireNonNull(values, "values");
        checkCount(name, shape, values.length);
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(values.length, dtype.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> b.asFloatBuffer().put(values);
            case F64 -> { for (float v : values) b.putDouble(v); }
            case BF16 -> { for (float v : values) b.putShort(HalfFloats.floatToBf16(v)); }
            case F16 -> { for (float v : values) b.putShort(HalfFloats.floatToF16(v)); }
            default -> throw new JTuneException("tensor \"" + name + "\": addFloats cannot store " + dtype
                    + "; use F32, F16, BF16 or F64, or addLongs for integer types");
        }
        return add(name, dtype, shape, MemorySegment.ofArray(b.array()));
    }

    /** Adds an I64 tensor. */
    public SafetensorsWriter addLongs(String name, long[] shape, long[] values) {
        return addLongs(name, DType.I64, shape, values);
    }

    /** Adds an integer tensor stored as {@code dtype}; values outside the dtype's range are an error, not wrapped. */
    public SafetensorsWriter addLongs(String name, DType dtype, long[] shape, long[] values) {
        Objects.requireNonNull(values, "values");
        checkCount(name, shape, values.length);
        long min, max;
        switch (dtype) {
            case I64 -> { min = Long.MIN_VALUE; max = Long.MAX_VALUE; }
            case I32 -> { min = Integer.MIN_VALUE; max = Integer.MAX_VALUE; }
            case I16 -> { min = Short.MIN_VALUE; max = Short.MAX_VALUE; }
            case I8 -> { min = Byte.MIN_VALUE; max = Byte.MAX_VALUE; }
            case U8 -> { min = 0; max = 255; }
            case BOOL -> { min = 0; max = 1; }
            default -> throw new JTuneException("tensor \"" + name + "\": addLongs cannot store " + dtype
                    + "; use an integer dtype, or addFloats for floating-point types");
        }
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(values.length, dtype.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < values.length; i++) {
            long v = values[i];
            if (v < min || v > max) {
                throw new JTuneException("tensor \"" + name + "\": value " + v + " at index " + i + " does not fit "
                        + dtype + " [" + min + ", " + max + "]; choose a wider dtype");
            }
            switch (dtype.byteSize()) {
                case 8 -> b.putLong(v);
                case 4 -> b.putInt((int) v);
                case 2 -> b.putShort((short) v);
                default -> b.put((byte) v);
            }
        }
        return add(name, dtype, shape, MemorySegment.ofArray(b.array()));
    }

    private long checkNameAndShape(String name, long[] shape) {
        Objects.requireNonNull(shape, "shape");
        if (name == null || name.isEmpty() || name.equals("__metadata__")) {
            throw new JTuneException("invalid tensor name \"" + name + "\"; names must be non-empty and not __metadata__");
        }
        if (names.contains(name)) {
            throw new JTuneException("tensor \"" + name + "\" was added twice; safetensors names must be unique");
        }
        long numel = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new JTuneException("tensor \"" + name + "\": shape " + Arrays.toString(shape)
                        + " has a negative dimension");
            }
            numel = Math.multiplyExact(numel, d);
        }
        return numel;
    }

    private void checkCount(String name, long[] shape, int count) {
        long numel = checkNameAndShape(name, shape);
        if (numel != count) {
            throw new JTuneException("tensor \"" + name + "\": shape " + Arrays.toString(shape) + " holds " + numel
                    + " elements but " + count + " values were given");
        }
    }

    /** The header bytes, already padded to a multiple of 8; package-private for tests. */
    byte[] headerBytes() {
        Map<String, Object> header = new LinkedHashMap<>();
        if (!metadata.isEmpty()) {
            header.put("__metadata__", metadata);
        }
        long offset = 0;
        for (Entry e : entries) {
            long end = offset + e.bytes.byteSize();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("dtype", e.dtype.safetensorsName());
            m.put("shape", e.shape);
            m.put("data_offsets", new long[] {offset, end});
            header.put(e.name, m);
            offset = end;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException ex) {
            throw new IllegalStateException("cannot serialise a map of strings and arrays", ex);
        }
        int padded = (json.length + 7) & ~7;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    /** Writes everything added so far to {@code file}, atomically replacing any existing file. */
    public void write(Path file) {
        Path target = file.toAbsolutePath();
        Path dir = target.getParent();
        if (!Files.isDirectory(dir)) {
            throw new JTuneException("cannot write " + target + ": directory " + dir + " does not exist; create it first");
        }
        byte[] header = headerBytes();
        Path tmp;
        try {
            tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", ".tmp");
        } catch (IOException e) {
            throw new JTuneException("cannot create a temp file in " + dir + " to write " + target.getFileName()
                    + ": " + e.getMessage() + "; is the directory writable?", e);
        }
        boolean done = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
                writeFully(ch, prefix);
                writeFully(ch, ByteBuffer.wrap(header));
                // Staging through a byte[] works for any segment (native, mapped, or backed by a
                // float[] that asByteBuffer refuses) and for tensors over 2 GB.
                byte[] chunk = new byte[COPY_CHUNK];
                MemorySegment chunkSeg = MemorySegment.ofArray(chunk);
                for (Entry e : entries) {
                    long size = e.bytes.byteSize();
                    for (long off = 0; off < size; off += COPY_CHUNK) {
                        int n = (int) Math.min(COPY_CHUNK, size - off);
                        MemorySegment.copy(e.bytes, off, chunkSeg, 0, n);
                        writeFully(ch, ByteBuffer.wrap(chunk, 0, n));
                    }
                }
                ch.force(true);
            }
            readableByAll(tmp);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            done = true;
        } catch (IOException e) {
            throw new JTuneException("cannot write " + target + ": " + e.getMessage()
                    + "; is the disk full or the directory read-only? (any previous file is untouched)", e);
        } finally {
            if (!done) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // the original failure is the one worth reporting
                }
            }
        }
        syncDirectory(dir);
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    // Makes the rename itself durable. Not every platform can open a directory; then the rename is
    // still atomic, just possibly not yet on disk after a power cut.
    private static void syncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // best effort, see above
        }
    }

    /** Temp files are created owner-only (0600); the finished file gets the usual 0644 where POSIX permissions exist. */
    static void readableByAll(Path file) throws IOException {
        if (file.getFileSystem().supportedFileAttributeViews().contains("posix")) {
            Files.setPosixFilePermissions(file, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        }
    }
}
