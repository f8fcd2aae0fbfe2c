package org.jtune.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import org.jtune.JTuneException;
import org.jtune.infer.ChatSession;
import org.jtune.infer.Engine;
import org.jtune.infer.GenerationResult;
import org.jtune.infer.SamplingParams;
import org.jtune.infer.Session;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code jtune chat}: an interactive conversation using the model's chat template. The session keeps
 * the conversation's KV cache, so each turn only computes the new tokens.
 */
@Command(name = "chat", mixinStandardHelpOptions = true,
        description = {"Chat with a model in the terminal, using its chat template.",
                "Commands: /reset starts over, /exit (or end of input) quits."})
final class ChatCommand implements Callable<Integer> {
    /** Defaults for chat when neither flags nor generation_config.json choose: mild sampling. */
    static final SamplingParams CHAT_DEFAULTS = SamplingParams.greedy(256).withTemperature(0.7).withTopP(0.9)
            .withRepetitionPenalty(1.1);

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    KvCacheOption kvCache;

    @Mixin
    SamplingOptions sampling;

    @Option(names = "--system", paramLabel = "TEXT", description = "system prompt")
    String system;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (Engine engine = Engine.load(modelOptions.model, modelOptions.adapter);
             Session session = engine.newSession(modelOptions.maxContext, kvCache.dtype(engine))) {
            SamplingParams params = sampling.resolve(engine.generationConfig(),
                    CHAT_DEFAULTS.withMaxNewTokens(sampling.maxNewTokens));
            ChatSession chat = new ChatSession(engine, session, system);
            out.println("jtune chat with " + modelOptions.model.getFileName() + " (" + engine.model().info().modelType()
                    + ", context " + session.maxSeq() + " tokens). /reset starts over, /exit quits.");
            while (true) {
                out.print("> ");
                out.flush();
                String line = in.readLine();
                if (line == null || line.strip().equals("/exit") || line.strip().equals("/quit")) {
                    out.println();
                    break;
                }
                if (line.isBlank()) {
                    continue;
                }
                if (line.strip().equals("/reset")) {
                    session.reset();
                    chat = new ChatSession(engine, session, system);
                    out.println("(conversation cleared)");
                    continue;
                }
                try {
                    GenerationResult r = chat.reply(line, params, piece -> {
                        out.print(piece);
                        out.flush();
                    });
                    out.println();
                    if (r.finishReason() == GenerationResult.FinishReason.CONTEXT_FULL) {
                        out.println("(the context is full; /reset to start a new conversation)");
                    }
                } catch (JTuneException e) {
                    out.println();
                    spec.commandLine().getErr().println("jtune: " + e.getMessage());
                }
            }
            return 0;
        }
    }
}
