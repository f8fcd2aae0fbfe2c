package org.jtune.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.jtune.JTuneException;
import org.jtune.eval.Lambada;
import org.jtune.eval.Perplexity;
import org.jtune.infer.Engine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code jtune eval}: LAMBADA last-word accuracy or sliding-window perplexity of a text file. */
@Command(name = "eval", mixinStandardHelpOptions = true, description = "Evaluate a model: LAMBADA accuracy or perplexity.")
final class EvalCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Mixin
    KvCacheOption kvCache;

    @Option(names = "--task", required = true, paramLabel = "lambada|perplexity") String task;
    @Option(names = "--data", required = true, paramLabel = "FILE", description = "lambada JSONL, or a text file for perplexity") Path data;
    @Option(names = "--limit", defaultValue = "0", description = "use only the first N passages (lambada) or N characters (perplexity); 0 = all") int limit;
    @Option(names = "--window", defaultValue = "512", description = "perplexity window in tokens (default ${DEFAULT-VALUE})") int window;
    @Option(names = "--stride", defaultValue = "256", description = "perplexity stride in tokens (default ${DEFAULT-VALUE})") int stride;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        try (Engine engine = Engine.load(modelOptions.model, modelOptions.adapter)) {
            long t0 = System.nanoTime();
            int context = Math.min(engine.model().info().maxPositionEmbeddings(),
                    modelOptions.maxContext > 0 ? modelOptions.maxContext : Engine.DEFAULT_CONTEXT_CAP);
            switch (task) {
                case "lambada" -> {
                    Lambada.Result r = Lambada.evaluate(engine.model(), engine.requireTokenizer(), Lambada.read(data, limit), context,
                            kvCache.dtype(engine));
                    out.printf("lambada   %d passages: accuracy %.4f (%d hits), mean target NLL %.4f, %.1f s%n", r.items(),
                            r.accuracy(), r.hits(), r.meanTargetNll(), (System.nanoTime() - t0) / 1e9);
                }
                case "perplexity" -> {
                    String text = Files.readString(data);
                    if (limit > 0 && text.length() > limit) {
                        text = text.substring(0, limit);
                    }
                    int[] ids = engine.requireTokenizer().encode(text, true);
                    Perplexity.Result r = Perplexity.evaluate(engine.model(), ids, Math.min(window, context), Math.min(stride, window),
                            kvCache.dtype(engine));
                    out.printf("perplexity %.4f over %d tokens (mean NLL %.4f; window %d, stride %d, %d windows), %.1f s%n",
                            r.perplexity(), r.scoredTokens(), r.meanNll(), Math.min(window, context), stride, r.windows(),
                            (System.nanoTime() - t0) / 1e9);
                }
                default -> throw new JTuneException("unknown --task \"" + task + "\"; use lambada or perplexity");
            }
            out.flush();
            return 0;
        }
    }
}
