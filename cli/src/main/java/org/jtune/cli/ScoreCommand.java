package org.jtune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.jtune.infer.Engine;
import org.jtune.infer.Scoring;
import org.jtune.infer.Session;
import org.jtune.io.safetensors.SafetensorsWriter;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code jtune score}: per-token log-probabilities, total NLL and perplexity of a text or id
 * sequence, optionally dumping every logit for comparison with a reference implementation.
 */
@Command(name = "score", mixinStandardHelpOptions = true,
        description = "Score a sequence: per-token log-probabilities, NLL and perplexity; optionally dump all logits.")
final class ScoreCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Mixin
    KvCacheOption kvCache;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Input input;

    static final class Input {
        @Option(names = "--text", paramLabel = "TEXT", description = "text to score (BOS added as the tokenizer does)")
        String text;

        @Option(names = "--ids", paramLabel = "IDS", description = "comma-separated token ids")
        String ids;
    }

    @Option(names = "--dump-logits", paramLabel = "FILE", description = "write all logits as float32 [tokens, vocab], tensor \"logits\", to this .safetensors file")
    Path dumpLogits;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        try (Engine engine = Engine.load(modelOptions.model, modelOptions.adapter)) {
            int[] ids = input.ids != null ? TokenIds.parse(input.ids) : engine.requireTokenizer().encode(input.text, true);
            int context = modelOptions.maxContext > 0 ? modelOptions.maxContext : ids.length;
            try (Session session = engine.newSession(context, kvCache.dtype(engine))) {
                Scoring.Result r = Scoring.score(session, ids);
                out.printf("%5s %8s %12s  %s%n", "pos", "id", "logprob", "token");
                for (int t = 0; t < ids.length; t++) {
                    int id = ids[t];
                    String piece = engine.tokenizer().map(tok -> tok.decode(new int[] {id}, false)).orElse("");
                    out.printf("%5d %8d %12s  %s%n", t, ids[t], t == 0 ? "-" : String.format("%.5f", r.logProbs()[t]),
                            piece.replace("\n", "\\n"));
                }
                out.printf("tokens scored %d, total NLL %.5f, mean NLL %.5f, perplexity %.4f%n", r.scoredTokens(),
                        r.totalNll(), r.meanNll(), r.perplexity());
                if (dumpLogits != null) {
                    new SafetensorsWriter().addFloats("logits", new long[] {ids.length, r.vocabSize()}, r.logits())
                            .metadata("input_ids", java.util.Arrays.toString(ids)).write(dumpLogits);
                    out.println("logits written to " + dumpLogits);
                }
                out.flush();
            }
            return 0;
        }
    }
}
