package org.jtune.cli;

import java.util.Locale;
import org.jtune.JTuneException;
import org.jtune.infer.Engine;
import org.jtune.io.safetensors.DType;
import picocli.CommandLine.Option;

/** The precision of a session's KV cache (see org.jtune.model.KvCache). */
final class KvCacheOption {
    @Option(names = "--kv-cache", paramLabel = "auto|f32|bf16", defaultValue = "auto",
            description = "precision of the session's KV cache: bf16 (half the memory, and half the bytes decode reads "
                    + "at long contexts; every key and value rounded to bf16), f32, or auto (default): bf16 for a model "
                    + "published in bfloat16 (config.json's torch_dtype), else f32")
    String kvCache;

    DType dtype(Engine engine) {
        return switch (kvCache.toLowerCase(Locale.ROOT)) {
            case "auto" -> engine.defaultKvCache();
            case "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            default -> throw new JTuneException("--kv-cache takes auto, f32 or bf16, got '" + kvCache + "'");
        };
    }
}
