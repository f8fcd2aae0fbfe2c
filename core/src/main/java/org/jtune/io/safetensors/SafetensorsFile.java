package org.jtune.io.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jtune.JTuneException;

/**
 * One {@code .safetensors} file, memory-mapped read-only. The format is an 8-byte little-endian
 * header length, a JSON header ({@code name -> {dtype, shape, data_offsets}} plus an optional
 * {@code __metadata__} string map), then the raw little-endian tensor bytes. The whole file is
 * mapped through FFM in a shared arena, so tensors of any size are addressable, weights are paged
 * in lazily and shared between threads, and {@link #data} hands out zero-copy slices. Everything
 * the header claims is checked on {@link #open} so that later reads cannot run off the mapping or
 * silently reinterpret bytes: a broken download fails here, with the file named, not in a kernel.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Headers are a few KB to a few MB in practice; a larger value means a corrupt or foreign file. */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final Arena arena;
    private final MemorySegment dataSection; // the bytes after the header, read-only
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;
    private volatile boolean closed;

    private SafetensorsFile(Path path, Arena arena, MemorySegment dataSection,
                            Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.dataSection = dataSection;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /** Opens, validates and maps {@code file}. The caller closes it; slices die with it. */
    public static SafetensorsFile open(Path file) {
        long fileSize;
        byte[] headerBytes;
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            fileSize = ch.size();
            if (fileSize < 8) {
                throw new JTuneException(file + ": not a safetensors file: it is " + fileSize
                        + " bytes long but even the header-length prefix needs 8; is the download incomplete?");
            }
            ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, prefix, 0);
            long headerLen = prefix.getLong(0);
            if (headerLen < 0 || headerLen > MAX_HEADER_BYTES) {
                throw new JTuneException(file + ": header length " + Long.toUnsignedString(headerLen)
                        + " bytes exceeds the sanity bound of " + MAX_HEADER_BYTES
                        + " bytes; this is not a safetensors file (a PyTorch pickle or a git-lfs pointer?)");
            }
            if (8 + headerLen > fileSize) {
                throw new JTuneException(file + ": header length " + headerLen + " bytes runs past the end of the "
                        + fileSize + "-byte file; the file is truncated or not safetensors; re-download it");
            }
            ByteBuffer hb = ByteBuffer.allocate((int) headerLen);
            readFully(ch, hb, 8);
            headerBytes = hb.array();

            Header header = parseHeader(file, headerBytes, fileSize - 8 - headerLen);
            // Mapping the whole file (rather than only the data section) keeps the file offset
            // page-aligned, which mmap requires.
            MemorySegment mapping = ch.map(FileChannel.MapMode.READ_ONLY, 0, fileSize, arena);
            MemorySegment data = mapping.asSlice(8 + headerLen).asReadOnly();
            return new SafetensorsFile(file, arena, data, header.tensors, header.metadata);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new JTuneException(file + ": no such file; check the model path", e);
        } catch (IOException e) {
            arena.close();
            throw new JTuneException(file + ": cannot read safetensors file: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
        while (buf.hasRemaining()) {
            int n = ch.read(buf, position + buf.position());
            if (n < 0) {
                throw new IOException("unexpected end of file at byte " + (position + buf.position()));
            }
        }
    }

    private record Header(Map<String, TensorInfo> tensors, Map<String, String> metadata) {}

    private static Header parseHeader(Path file, byte[] headerBytes, long dataLen) {
        Map<String, JsonNode> entries = new LinkedHashMap<>();
        // A streaming pass so that duplicate names are an error; a tree parse would keep the last one.
        try (JsonParser p = JSON.getFactory().createParser(headerBytes)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new JTuneException(file + ": the safetensors header is not a JSON object (starts with "
                        + p.currentToken() + "); the file is corrupt or not safetensors");
            }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                p.nextToken();
                JsonNode value = p.readValueAsTree();
                if (entries.put(name, value) != null) {
                    throw new JTuneException(file + ": tensor \"" + name
                            + "\" appears twice in the header; the file was written by a broken tool, re-export it");
                }
            }
            if (t != JsonToken.END_OBJECT) {
                throw new JTuneException(file + ": the safetensors header is malformed JSON (unexpected " + t
                        + "); the file is corrupt");
            }
            if (p.nextToken() != null) {
                throw new JTuneException(file + ": the safetensors header has trailing data after the JSON object ("
                        + p.currentToken() + "); the file is corrupt");
            }
        } catch (JsonProcessingException e) {
            throw new JTuneException(file + ": the safetensors header is not valid JSON (" + e.getOriginalMessage()
                    + "); the file is corrupt or not safetensors; re-download it", e);
        } catch (IOException e) {
            throw new JTuneException(file + ": cannot parse the safetensors header: " + e.getMessage(), e);
        }

        Map<String, String> metadata = Map.of();
        List<TensorInfo> infos = new ArrayList<>(entries.size());
        for (Map.Entry<String, JsonNode> e : entries.entrySet()) {
            if (e.getKey().equals("__metadata__")) {
                metadata = parseMetadata(file, e.getValue());
            } else {
                infos.add(parseEntry(file, e.getKey(), e.getValue()));
            }
        }

        long maxEnd = 0;
        for (TensorInfo info : infos) {
            maxEnd = Math.max(maxEnd, info.end());
        }
        if (maxEnd > dataLen) {
            long headerLen = headerBytes.length;
            throw new JTuneException(file + ": the file is truncated: expected " + (8 + headerLen + maxEnd)
                    + " bytes, found " + (8 + headerLen + dataLen) + "; re-download it");
        }

        infos.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        TensorInfo prev = null;
        for (TensorInfo info : infos) {
            if (info.begin() == info.end()) {
                continue; // an empty tensor occupies no bytes and cannot overlap anything
            }
            if (prev != null && info.begin() < prev.end()) {
                throw new JTuneException(file + ": tensors \"" + prev.name() + "\" [" + prev.begin() + ", " + prev.end()
                        + ") and \"" + info.name() + "\" [" + info.begin() + ", " + info.end()
                        + ") overlap in the data section; the file is corrupt, re-export it");
            }
            prev = info;
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (TensorInfo info : infos) {
            tensors.put(info.name(), info);
        }
        return new Header(Collections.unmodifiableMap(tensors), metadata);
    }

    private static Map<String, String> parseMetadata(Path file, JsonNode node) {
        if (!node.isObject()) {
            throw new JTuneException(file + ": __metadata__ must be a JSON object of strings but is " + node.getNodeType()
                    + "; the file was written by a non-conforming tool");
        }
        Map<String, String> m = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw new JTuneException(file + ": __metadata__[\"" + e.getKey() + "\"] must be a string but is "
                        + e.getValue().getNodeType() + " (" + e.getValue() + "); safetensors metadata values are strings");
            }
            m.put(e.getKey(), e.getValue().textValue());
        }
        return Collections.unmodifiableMap(m);
    }

    private static TensorInfo parseEntry(Path file, String name, JsonNode node) {
        String where = file + ": tensor \"" + name + "\"";
        String hint = "; the header is malformed, re-export the file";
        if (!node.isObject()) {
            throw new JTuneException(where + " is " + node + " instead of {dtype, shape, data_offsets}" + hint);
        }
        for (String field : List.of("dtype", "shape", "data_offsets")) {
            if (!node.has(field)) {
                throw new JTuneException(where + " is missing \"" + field + "\" (has " + fieldNames(node) + ")" + hint);
            }
        }
        JsonNode dt = node.get("dtype");
        DType dtype;
        try {
            dtype = DType.fromSafetensorsName(dt.isTextual() ? dt.textValue() : dt.toString());
        } catch (JTuneException e) {
            throw new JTuneException(where + ": " + e.getMessage(), e);
        }
        JsonNode sh = node.get("shape");
        if (!sh.isArray()) {
            throw new JTuneException(where + ": shape " + sh + " is not an array of dimensions" + hint);
        }
        long[] shape = new long[sh.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong()) {
                throw new JTuneException(where + ": shape " + sh + " has non-integer dimension " + d + hint);
            }
            shape[i] = d.longValue();
            if (shape[i] < 0) {
                throw new JTuneException(where + ": shape " + sh + " has negative dimension " + shape[i] + hint);
            }
        }
        JsonNode off = node.get("data_offsets");
        if (!off.isArray() || off.size() != 2 || !isNonNegativeLong(off.get(0)) || !isNonNegativeLong(off.get(1))
                || off.get(0).longValue() > off.get(1).longValue()) {
            throw new JTuneException(where + ": data_offsets " + off
                    + " must be [begin, end] with 0 <= begin <= end" + hint);
        }
        long begin = off.get(0).longValue();
        long end = off.get(1).longValue();
        long expected;
        try {
            long numel = 1;
            for (long d : shape) {
                numel = Math.multiplyExact(numel, d);
            }
            expected = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new JTuneException(where + ": shape " + Arrays.toString(shape) + " overflows a 64-bit size" + hint, e);
        }
        if (end - begin != expected) {
            throw new JTuneException(where + ": dtype × shape = byte range does not hold: " + dtype + " × "
                    + Arrays.toString(shape) + " = " + expected + " bytes but data_offsets [" + begin + ", " + end
                    + "] span " + (end - begin) + " bytes" + hint);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    private static boolean isNonNegativeLong(JsonNode n) {
        return n != null && n.isIntegralNumber() && n.canConvertToLong() && n.longValue() >= 0;
    }

    private static String fieldNames(JsonNode node) {
        List<String> names = new ArrayList<>();
        node.fieldNames().forEachRemaining(names::add);
        return names.toString();
    }

    public Path path() {
        return path;
    }

    /** All tensors, ordered by their position in the data section. Unmodifiable. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** The header's {@code __metadata__} map (empty if absent). Unmodifiable. */
    public Map<String, String> metadata() {
        return metadata;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new JTuneException("tensor \"" + name + "\" is not in " + path + " (it has " + tensors.size()
                    + " tensors" + sampleNames() + "); is this the right checkpoint?");
        }
        return info;
    }

    private String sampleNames() {
        if (tensors.isEmpty()) {
            return "";
        }
        List<String> names = new ArrayList<>(tensors.keySet());
        return ", e.g. " + String.join(", ", names.subList(0, Math.min(5, names.size())));
    }

    /** A read-only, zero-copy view of exactly the tensor's bytes (little endian, possibly unaligned). */
    public MemorySegment data(String name) {
        checkOpen();
        TensorInfo info = info(name);
        return dataSection.asSlice(info.begin(), info.byteSize());
    }

    /** Copies a floating-point tensor into a new float[], widening bf16/f16 and narrowing f64. */
    public float[] readFloats(String name) {
        TensorInfo info = info(name);
        MemorySegment s = data(name);
        int n = heapLength(info);
        float[] out = new float[n];
        switch (info.dtype()) {
            case F32 -> MemorySegment.copy(s, F32_LE, 0, out, 0, n);
            case F64 -> { for (int i = 0; i < n; i++) out[i] = (float) s.getAtIndex(F64_LE, i); }
            case BF16 -> { for (int i = 0; i < n; i++) out[i] = HalfFloats.bf16ToFloat(s.getAtIndex(I16_LE, i)); }
            case F16 -> { for (int i = 0; i < n; i++) out[i] = HalfFloats.f16ToFloat(s.getAtIndex(I16_LE, i)); }
            default -> throw notFloat(info, "readFloats");
        }
        return out;
    }

    /** Copies a floating-point tensor into a new double[] (exact for every floating dtype). */
    public double[] readDoubles(String name) {
        TensorInfo info = info(name);
        MemorySegment s = data(name);
        int n = heapLength(info);
        double[] out = new double[n];
        switch (info.dtype()) {
            case F64 -> MemorySegment.copy(s, F64_LE, 0, out, 0, n);
            case F32 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(F32_LE, i); }
            case BF16 -> { for (int i = 0; i < n; i++) out[i] = HalfFloats.bf16ToFloat(s.getAtIndex(I16_LE, i)); }
            case F16 -> { for (int i = 0; i < n; i++) out[i] = HalfFloats.f16ToFloat(s.getAtIndex(I16_LE, i)); }
            default -> throw notFloat(info, "readDoubles");
        }
        return out;
    }

    /** Copies an integer (or BOOL, as 0/1) tensor into a new long[]; U8 is read unsigned. */
    public long[] readLongs(String name) {
        TensorInfo info = info(name);
        MemorySegment s = data(name);
        int n = heapLength(info);
        long[] out = new long[n];
        switch (info.dtype()) {
            case I64 -> MemorySegment.copy(s, I64_LE, 0, out, 0, n);
            case I32 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(I32_LE, i); }
            case I16 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(I16_LE, i); }
            case I8 -> { for (int i = 0; i < n; i++) out[i] = s.get(ValueLayout.JAVA_BYTE, i); }
            case U8 -> { for (int i = 0; i < n; i++) out[i] = s.get(ValueLayout.JAVA_BYTE, i) & 0xFF; }
            case BOOL -> { for (int i = 0; i < n; i++) out[i] = s.get(ValueLayout.JAVA_BYTE, i) != 0 ? 1 : 0; }
            default -> throw new JTuneException("tensor \"" + info.name() + "\" in " + path + " is " + info.dtype()
                    + ", not an integer type; use readFloats or readDoubles");
        }
        return out;
    }

    private int heapLength(TensorInfo info) {
        long n = info.numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new JTuneException("tensor \"" + info.name() + "\" in " + path + " has " + n
                    + " elements, more than a Java array can hold (" + (Integer.MAX_VALUE - 8)
                    + "); read it through data(name) as a MemorySegment instead");
        }
        return (int) n;
    }

    private JTuneException notFloat(TensorInfo info, String method) {
        return new JTuneException("tensor \"" + info.name() + "\" in " + path + " is " + info.dtype()
                + ", not a floating-point type, so " + method + " cannot read it; use readLongs");
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException(path + " is closed; its tensor slices are no longer valid");
        }
    }

    /** Unmaps the file; every segment handed out by {@link #data} becomes inaccessible. Idempotent. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + path + ", " + tensors.size() + " tensors]";
    }
}
