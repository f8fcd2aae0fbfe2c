package org.jtune.testutil;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Finds the shared test data (models, goldens, tokenizers) that lives beside the checkout rather
 * than in it. Surefire passes {@code -Djtune.shared}; an IDE run falls back to {@code ../shared}
 * or {@code ../../shared} from the working directory (the repo root or a module). A missing
 * directory fails loudly: a golden test that silently skips proves nothing.
 */
public final class Shared {
    private Shared() {}

    public static Path root() {
        List<Path> tried = new ArrayList<>();
        String prop = System.getProperty("jtune.shared");
        if (prop != null && !prop.isBlank()) {
            tried.add(Path.of(prop));
        }
        tried.add(Path.of("../shared"));
        tried.add(Path.of("../../shared"));
        for (Path p : tried) {
            if (Files.isDirectory(p)) {
                return p.toAbsolutePath().normalize();
            }
        }
        throw new IllegalStateException("shared test data not found; tried " + tried + " from "
                + Path.of("").toAbsolutePath() + "; pass -Djtune.shared=/path/to/shared");
    }

    /** {@code root().resolve(relative)}, failing if it does not exist. */
    public static Path path(String relative) {
        Path p = root().resolve(relative);
        if (!Files.exists(p)) {
            throw new IllegalStateException("shared test file " + p + " is missing; is the shared directory complete?");
        }
        return p;
    }
}
