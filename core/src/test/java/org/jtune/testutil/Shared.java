package org.jtune.testutil;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Locates the shared test data (real tokenizers, reference models, golden outputs) that lives
 * outside the repository. Surefire sets {@code jtune.shared}; running a test from an IDE falls
 * back to {@code ../shared} or {@code ../../shared} relative to the working directory.
 */
public final class Shared {
    private Shared() {}

    public static Path root() {
        String prop = System.getProperty("jtune.shared");
        if (prop != null && Files.isDirectory(Path.of(prop))) {
            return Path.of(prop).toAbsolutePath().normalize();
        }
        for (String candidate : new String[] {"../shared", "../../shared"}) {
            Path p = Path.of(candidate);
            if (Files.isDirectory(p)) {
                return p.toAbsolutePath().normalize();
            }
        }
        throw new IllegalStateException("shared test data not found: set -Djtune.shared=/path/to/shared"
                + " (tried property " + prop + ", ../shared, ../../shared from "
                + Path.of("").toAbsolutePath() + ")");
    }

    public static Path path(String relative) {
        return root().resolve(relative);
    }
}
