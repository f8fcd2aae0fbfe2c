package org.jtune.cli;

import java.util.ArrayList;
import java.util.List;
import org.jtune.config.GenerationConfig;
import org.jtune.infer.SamplingParams;
import picocli.CommandLine.Option;

/** Sampling flags shared by generate and chat; unset flags fall back to the given defaults. */
final class SamplingOptions {
    @Option(names = {"-n", "--max-new-tokens"}, paramLabel = "N", description = "tokens to generate at most (default ${DEFAULT-VALUE})", defaultValue = "256")
    int maxNewTokens;

    @Option(names = {"-t", "--temperature"}, paramLabel = "T", description = "0 = greedy")
    Double temperature;

    @Option(names = "--top-k", paramLabel = "K", description = "keep the K most likely tokens (0 = off)")
    Integer topK;

    @Option(names = "--top-p", paramLabel = "P", description = "nucleus sampling mass (1 = off)")
    Double topP;

    @Option(names = "--min-p", paramLabel = "P", description = "drop tokens below P x the top probability (0 = off)")
    Double minP;

    @Option(names = "--repetition-penalty", paramLabel = "R", description = "HF/CTRL repetition penalty (1 = off)")
    Double repetitionPenalty;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "42", description = "random seed (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--stop", paramLabel = "TEXT", description = "stop when this text appears (repeatable)")
    List<String> stop = new ArrayList<>();

    @Option(names = "--ignore-eos", description = "keep generating past end-of-sequence tokens")
    boolean ignoreEos;

    /**
     * Flags given on the command line win; otherwise the model's generation_config.json when it
     * asks for sampling; otherwise {@code fallback}.
     */
    SamplingParams resolve(GenerationConfig gen, SamplingParams fallback) {
        SamplingParams base = fallback;
        if (gen.doSample()) {
            base = base.withTemperature(gen.temperature().orElse(1.0)).withTopK(gen.topK().orElse(0))
                    .withTopP(gen.topP().orElse(1.0));
        }
        if (gen.repetitionPenalty().isPresent()) {
            base = base.withRepetitionPenalty(gen.repetitionPenalty().getAsDouble());
        }
        if (temperature != null) {
            base = base.withTemperature(temperature);
        }
        if (topK != null) {
            base = base.withTopK(topK);
        }
        if (topP != null) {
            base = base.withTopP(topP);
        }
        if (minP != null) {
            base = base.withMinP(minP);
        }
        if (repetitionPenalty != null) {
            base = base.withRepetitionPenalty(repetitionPenalty);
        }
        return base.withSeed(seed).withMaxNewTokens(maxNewTokens).withStopStrings(stop).withIgnoreEos(ignoreEos);
    }
}
