package org.jtune.cli;

import java.util.Locale;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import picocli.CommandLine.Option;

/** The precision of a session's KV cache (see org.jtune.model.KvCache). */
final class KvCacheOption {
    @Option(names = "--kv-cache", paramLabel = "f32|bf16", defaultValue = "f32",
            description = "precision of the session's KV cache: f32 (default), or bf16: half its memory and half the "
                    + "bytes decode reads at long contexts, every key and value rounded to bf16")
    String kvCache;

    DType dtype() {
        return switch (kvCache.toLowerCase(Locale.ROOT)) {
            case "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            default -> throw new JTuneException("--kv-cache takes f32 or bf16, got '" + kvCache + "'");
        };
    }
}
