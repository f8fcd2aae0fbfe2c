package org.jtune.io.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.jtune.JTuneException;
import org.jtune.io.AnonymousMemory;

/**
 * All the weights of a Hugging Face model directory behind one name lookup, whichever way they are
 * stored: a single {@code model.safetensors}; shards listed by {@code model.safetensors.index.json}
 * ({@code {"weight_map": {name: file}}}); or, with neither, every {@code *.safetensors} in the
 * directory. Model code asks for tensors by HF name and never learns about shards. PyTorch pickle
 * checkpoints are refused outright: unpickling can run arbitrary code, and a weights loader must
 * be safe to point at a file from the internet.
 */
public final class WeightFiles implements AutoCloseable {
    static final String SINGLE = "model.safetensors";
    static final String INDEX = "model.safetensors.index.json";

    private static final java.util.logging.Logger LOG = java.util.logging.Logger.getLogger(WeightFiles.class.getName());

    private final Path dir;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> byName;
    private Arena copiesArena;            // owns the decode copies, if any (closed with the files)
    private SegmentAllocator copies;      // slices of one AnonymousMemory region
    private boolean copiesRefused;

    private WeightFiles(Path dir, List<SafetensorsFile> files, Map<String, SafetensorsFile> byName) {
        this.dir = dir;
        this.files = files;
        this.byName = byName;
    }

    /** Opens the weights in {@code modelDir} (a single {@code .safetensors} file is accepted too). */
    public static WeightFiles open(Path modelDir) {
        if (Files.isRegularFile(modelDir) && modelDir.getFileName().toString().endsWith(".safetensors")) {
            return openAll(modelDir.toAbsolutePath().getParent(), List.of(modelDir), null);
        }
        if (!Files.isDirectory(modelDir)) {
            throw new JTuneException("model directory " + modelDir + " does not exist"
                    + (Files.exists(modelDir) ? " (it is a file, not a directory)" : "")
                    + "; pass the directory holding config.json and the .safetensors weights");
        }
        Path index = modelDir.resolve(INDEX);
        if (Files.isRegularFile(index)) {
            return openIndexed(modelDir, index);
        }
        Path single = modelDir.resolve(SINGLE);
        if (Files.isRegularFile(single)) {
            return openAll(modelDir, List.of(single), null);
        }
        List<Path> shards = list(modelDir, "*.safetensors");
        if (!shards.isEmpty()) {
            return openAll(modelDir, shards, null);
        }
        List<Path> pickles = new ArrayList<>();
        for (String glob : List.of("*.bin", "*.pt", "*.pth", "*.ckpt")) {
            pickles.addAll(list(modelDir, glob));
        }
        if (!pickles.isEmpty()) {
            throw new JTuneException(modelDir + " holds only PyTorch pickle weights (" + names(pickles)
                    + "); jtune never unpickles PyTorch files because loading a pickle can execute arbitrary code. "
                    + "Convert them to safetensors once, in an environment you trust: python -c \"from transformers "
                    + "import AutoModelForCausalLM as M; M.from_pretrained('" + modelDir + "').save_pretrained('"
                    + modelDir + "-safetensors', safe_serialization=True)\" and point jtune at the new directory");
        }
        throw new JTuneException("no weights in " + modelDir + ": expected " + SINGLE + ", " + INDEX
                + " with its shards, or other *.safetensors files; is this a Hugging Face model directory?");
    }

    private static WeightFiles openIndexed(Path dir, Path index) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(index.toFile());
        } catch (IOException e) {
            throw new JTuneException(index + " is not valid JSON (" + e.getMessage() + "); re-download it", e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new JTuneException(index + " has no \"weight_map\" object mapping tensor names to shard files;"
                    + " re-download it");
        }
        Map<String, String> weightMap = new LinkedHashMap<>();
        Set<String> shardNames = new LinkedHashSet<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            if (!e.getValue().isTextual()) {
                throw new JTuneException(index + ": weight_map[\"" + e.getKey() + "\"] is " + e.getValue()
                        + ", not a shard file name; re-download it");
            }
            weightMap.put(e.getKey(), e.getValue().textValue());
            shardNames.add(e.getValue().textValue());
        }
        List<Path> shards = new ArrayList<>();
        for (String s : shardNames) {
            Path p = dir.resolve(s).normalize();
            if (!p.startsWith(dir.normalize())) {
                throw new JTuneException(index + " names shard \"" + s + "\" outside the model directory; refusing");
            }
            if (!Files.isRegularFile(p)) {
                throw new JTuneException(index + " names shard \"" + s + "\" but " + p
                        + " is missing; the download is incomplete, fetch that file");
            }
            shards.add(p);
        }
        return openAll(dir, shards, weightMap);
    }

    private static WeightFiles openAll(Path dir, List<Path> paths, Map<String, String> weightMap) {
        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            Map<String, SafetensorsFile> byName = new LinkedHashMap<>();
            for (Path p : paths) {
                SafetensorsFile f = SafetensorsFile.open(p);
                opened.add(f);
                for (String name : f.tensors().keySet()) {
                    SafetensorsFile other = byName.putIfAbsent(name, f);
                    if (other != null) {
                        throw new JTuneException("tensor \"" + name + "\" is in both " + other.path().getFileName()
                                + " and " + f.path().getFileName() + " in " + dir
                                + "; mixed shards from two exports? keep one set");
                    }
                }
            }
            if (weightMap != null) {
                for (Map.Entry<String, String> e : weightMap.entrySet()) {
                    SafetensorsFile f = byName.get(e.getKey());
                    if (f == null || !f.path().equals(dir.resolve(e.getValue()).normalize())) {
                        throw new JTuneException(dir.resolve(INDEX) + " says tensor \"" + e.getKey() + "\" is in "
                                + e.getValue() + " but " + (f == null ? "no shard has it" : "it is in " + f.path().getFileName())
                                + "; the index and shards are from different exports, re-download them");
                    }
                }
            }
            return new WeightFiles(dir, List.copyOf(opened), Collections.unmodifiableMap(byName));
        } catch (RuntimeException e) {
            for (SafetensorsFile f : opened) {
                f.close();
            }
            throw e;
        }
    }

    private static List<Path> list(Path dir, String glob) {
        List<Path> out = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, glob)) {
            for (Path p : ds) {
                if (Files.isRegularFile(p)) {
                    out.add(p);
                }
            }
        } catch (IOException e) {
            throw new JTuneException("cannot list " + dir + ": " + e.getMessage(), e);
        }
        out.sort(null); // directory order is arbitrary; shard order should not be
        return out;
    }

    private static String names(List<Path> paths) {
        List<String> n = new ArrayList<>();
        for (Path p : paths) {
            n.add(p.getFileName().toString());
        }
        return String.join(", ", n);
    }

    /** The directory the weights came from. */
    public Path dir() {
        return dir;
    }

    /** Every tensor name, in shard order then data-offset order. Unmodifiable. */
    public Set<String> names() {
        return byName.keySet();
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    public TensorInfo info(String name) {
        return file(name).info(name);
    }

    /** A read-only zero-copy view of the tensor's little-endian bytes. */
    public MemorySegment data(String name) {
        return file(name).data(name);
    }

    public float[] readFloats(String name) {
        return file(name).readFloats(name);
    }

    /** The file holding {@code name}; JTuneException if none does. */
    public SafetensorsFile file(String name) {
        SafetensorsFile f = byName.get(name);
        if (f == null) {
            throw new JTuneException("tensor \"" + name + "\" is not in the weights of " + dir + " (" + byName.size()
                    + " tensors in " + files.size() + " file(s)); is this the right model for this architecture?");
        }
        return f;
    }

    /**
     * Where inference sessions keep copies of the weights ({@code WeightLoader.Options#decodeStrip}): one
     * region of anonymous memory on huge pages ({@link AnonymousMemory}) as large as all the tensors, taken
     * the first time it is asked for and freed by {@link #close}. Null, and the weights stay memory-mapped,
     * with {@code -Djtune.weights=mapped} (say, to share the page cache between processes) or when the
     * machine's available memory would not hold a copy with 1 GiB to spare: the page cache can evict mapped
     * weights, so a model larger than memory still runs.
     */
    public synchronized SegmentAllocator decodeCopies() {
        if (copies == null && !copiesRefused && "mapped".equals(System.getProperty("jtune.weights"))) {
            copiesRefused = true;
        }
        if (copies == null && !copiesRefused) {
            long total = 0;
            for (SafetensorsFile f : files) {
                for (TensorInfo t : f.tensors().values()) {
                    total += (t.byteSize() + 63) & ~63L;
                }
            }
            long available = AnonymousMemory.availableBytes();
            if (total + (1L << 30) > available) {
                copiesRefused = true;
                long need = total;
                LOG.info(() -> String.format("weights of %s stay memory-mapped: a copy of %.1f GiB would not fit in the "
                        + "%.1f GiB available (decode reads mapped weights more slowly)", dir, need / 1073741824.0,
                        available / 1073741824.0));
            } else {
                copiesArena = Arena.ofShared();
                copies = SegmentAllocator.slicingAllocator(AnonymousMemory.allocate(copiesArena, Math.max(64, total)));
            }
        }
        return copies;
    }

    /** Unmaps every shard and frees the decode copies. Idempotent. */
    @Override
    public synchronized void close() {
        for (SafetensorsFile f : files) {
            f.close();
        }
        if (copiesArena != null) {
            copiesArena.close();
            copiesArena = null;
            copies = null;
        }
    }
}
