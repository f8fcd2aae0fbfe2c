package org.jtune.config;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * {@code generation_config.json}: the model author's decoding defaults. Every field is optional;
 * {@code eos_token_id} may be one id or a list (Llama 3 has several stop ids).
 */
public record GenerationConfig(OptionalInt bosTokenId, List<Integer> eosTokenIds, OptionalInt padTokenId,
                               OptionalInt maxLength, OptionalInt maxNewTokens, boolean doSample,
                               OptionalDouble temperature, OptionalInt topK, OptionalDouble topP,
                               OptionalDouble repetitionPenalty) {

    public static final GenerationConfig EMPTY = new GenerationConfig(OptionalInt.empty(), List.of(),
            OptionalInt.empty(), OptionalInt.empty(), OptionalInt.empty(), false, OptionalDouble.empty(),
            OptionalInt.empty(), OptionalDouble.empty(), OptionalDouble.empty());

    /** Reads {@code dir/generation_config.json}, or {@link #EMPTY} when the file is absent. */
    public static GenerationConfig load(Path modelDir) {
        Path file = modelDir.resolve("generation_config.json");
        if (!Files.isRegularFile(file)) {
            return EMPTY;
        }
        return from(HfConfig.loadFile(file));
    }

    public static GenerationConfig from(HfConfig c) {
        return new GenerationConfig(optInt(c, "bos_token_id"), List.copyOf(c.getIntList("eos_token_id")),
                optInt(c, "pad_token_id"), optInt(c, "max_length"), optInt(c, "max_new_tokens"),
                c.getBoolean("do_sample", false), optDouble(c, "temperature"), optInt(c, "top_k"),
                optDouble(c, "top_p"), optDouble(c, "repetition_penalty"));
    }

    private static OptionalInt optInt(HfConfig c, String key) {
        return c.has(key) && c.json().get(key).isIntegralNumber() ? OptionalInt.of(c.requireInt(key)) : OptionalInt.empty();
    }

    private static OptionalDouble optDouble(HfConfig c, String key) {
        return c.has(key) ? OptionalDouble.of(c.requireDouble(key)) : OptionalDouble.empty();
    }
}
