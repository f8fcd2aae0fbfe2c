package org.jtune.cli;

import java.io.PrintWriter;
import java.util.concurrent.Callable;
import org.jtune.infer.Engine;
import org.jtune.infer.GenerationResult;
import org.jtune.infer.PromptTruncation;
import org.jtune.infer.SamplingParams;
import org.jtune.infer.Session;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code jtune generate}: prompt in, streamed text out. */
@Command(name = "generate", mixinStandardHelpOptions = true, description = "Continue a prompt, streaming the text.")
final class GenerateCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Mixin
    KvCacheOption kvCache;

    @Mixin
    SamplingOptions sampling;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Input input;

    static final class Input {
        @Option(names = {"-p", "--prompt"}, paramLabel = "TEXT", description = "prompt text (encoded with the model's tokenizer, BOS added)")
        String prompt;

        @Option(names = "--ids", paramLabel = "IDS", description = "prompt as comma-separated token ids (models without a tokenizer)")
        String ids;
    }

    @Option(names = "--truncate", description = "drop the oldest prompt tokens when the prompt and --max-new-tokens do not fit the context")
    boolean truncate;

    @Option(names = "--stats", description = "print prefill/decode speed to stderr at the end")
    boolean stats;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        try (Engine engine = Engine.load(modelOptions.model, modelOptions.adapter);
             Session session = engine.newSession(modelOptions.maxContext, kvCache.dtype(engine))) {
            int[] prompt = input.ids != null ? TokenIds.parse(input.ids) : engine.encodePrompt(session, input.prompt);
            SamplingParams params = sampling.resolve(engine.generationConfig(), SamplingParams.greedy(sampling.maxNewTokens));
            if (truncate) {
                prompt = PromptTruncation.keepLast(prompt, session.maxSeq(), params.maxNewTokens(), engine.bosTokenId());
            } else {
                PromptTruncation.requireFits(prompt, session.maxSeq(), params.maxNewTokens());
            }
            GenerationResult r;
            if (engine.tokenizer().isPresent()) {
                if (input.prompt != null) {
                    out.print(input.prompt);
                }
                r = engine.generate(session, prompt, params, piece -> {
                    out.print(piece);
                    out.flush();
                });
                out.println();
            } else {
                r = engine.generate(session, prompt, params, null);
                out.println(java.util.Arrays.stream(r.tokens()).mapToObj(Integer::toString)
                        .collect(java.util.stream.Collectors.joining(",")));
            }
            out.flush();
            if (stats) {
                spec.commandLine().getErr().printf("[%d prompt tokens, %.1f tok/s prefill; %d new tokens, %.1f tok/s decode; stop: %s]%n",
                        r.promptTokens(), r.prefillTokensPerSecond(), r.tokens().length, r.decodeTokensPerSecond(),
                        r.finishReason().name().toLowerCase());
            }
            return 0;
        }
    }
}
