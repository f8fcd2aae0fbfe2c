package org.jtune.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Comparator;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.SafetensorsWriter;

/**
 * Writes a Hugging Face model directory derived from another one (quantized, merged or fine-tuned):
 * the new weights as one {@code model.safetensors}, the source's {@code config.json} (edited when asked)
 * and every other side file of the source (tokenizer, chat template, generation config). The directory
 * is assembled under a temporary sibling and renamed into place, so it appears whole or not at all, and
 * a failure removes the temporary directory and leaves the user's files as they were.
 */
public final class ModelDirWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    private ModelDirWriter() {
    }

    /** Fails when {@code dst} exists: derived models never overwrite anything. */
    public static void requireNew(Path dst) {
        if (Files.exists(dst)) {
            throw new JTuneException("output " + dst + " already exists; choose a new directory (nothing was overwritten)");
        }
    }

    /**
     * Writes {@code weights} and the source's side files to {@code dst}. {@code editConfig} changes a copy
     * of the source's config.json (null: copied as it is). With {@code replace}, an existing {@code dst}
     * (a previous result of the same run) is replaced; otherwise an existing {@code dst} is an error.
     */
    public static void write(Path src, Path dst, SafetensorsWriter weights, Consumer<ObjectNode> editConfig,
                             boolean replace) {
        if (!replace) {
            requireNew(dst);
        }
        Path tmp = null;
        try {
            Path parent = dst.toAbsolutePath().getParent();
            Files.createDirectories(parent);
            tmp = Files.createTempDirectory(parent, "." + dst.getFileName() + ".tmp");
            if (tmp.getFileSystem().supportedFileAttributeViews().contains("posix")) {   // temp dirs are 0700
                Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
            }
            weights.write(tmp.resolve("model.safetensors"));
            Path config = src.resolve("config.json");
            if (editConfig == null) {
                Files.copy(config, tmp.resolve("config.json"));
            } else {
                ObjectNode json = (ObjectNode) JSON.readTree(Files.readString(config));
                editConfig.accept(json);
                Files.writeString(tmp.resolve("config.json"), json.toPrettyString());
            }
            try (Stream<Path> s = Files.list(src)) {
                for (Path p : s.toList()) {
                    String n = p.getFileName().toString();
                    if (Files.isRegularFile(p) && !n.endsWith(".safetensors") && !n.equals("config.json")
                            && !n.equals("model.safetensors.index.json")) {
                        Files.copy(p, tmp.resolve(n));
                    }
                }
            }
            if (replace) {
                deleteRecursively(dst);
            }
            Files.move(tmp, dst, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            deleteRecursively(tmp);
            throw new UncheckedIOException(e);
        } catch (RuntimeException e) {
            deleteRecursively(tmp);
            throw e;
        }
    }

    /** Deletes a directory tree, best effort; null or missing is fine. */
    public static void deleteRecursively(Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // best effort: a leftover temporary directory never replaces the user's files
        }
    }
}
