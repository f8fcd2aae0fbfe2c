package org.jtune.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.infer.Sampler;
import org.jtune.infer.Scoring;
import org.jtune.infer.Session;
import org.jtune.io.safetensors.DType;
import org.jtune.model.LanguageModel;
import org.jtune.tokenizer.Tokenizer;

/**
 * LAMBADA last-word accuracy as lm-evaluation-harness computes it for lambada_openai: the target is
 * the passage's last word with its leading space; the continuation's tokens are those of
 * {@code encode(context + target)} after {@code encode(context)}; a passage counts as a hit when
 * greedy decoding reproduces every continuation token. Also reports the mean NLL of the targets.
 */
public final class Lambada {
    /** One passage split into context and target (" word"). */
    public record Item(String context, String target) {
    }

    public record Result(int items, int hits, double meanTargetNll, long tokens) {
        public double accuracy() {
            return items == 0 ? Double.NaN : (double) hits / items;
        }
    }

    private Lambada() {
    }

    /** Reads lambada JSONL: {@code {"text"}} (last word split off) or {@code {"context","continuation"}}. */
    public static List<Item> read(Path file, int limit) {
        ObjectMapper json = new ObjectMapper();
        List<Item> items = new ArrayList<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(file);
        } catch (IOException e) {
            throw new JTuneException("cannot read " + file + ": " + e.getMessage(), e);
        }
        for (int i = 0; i < lines.size() && (limit <= 0 || items.size() < limit); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty()) {
                continue;
            }
            JsonNode n;
            try {
                n = json.readTree(line);
            } catch (IOException e) {
                throw new JTuneException(file + ":" + (i + 1) + " is not valid JSON: " + e.getMessage(), e);
            }
            if (n.hasNonNull("text")) {
                String text = n.get("text").asText();
                int cut = text.lastIndexOf(' ');
                if (cut <= 0) {
                    throw new JTuneException(file + ":" + (i + 1) + " has a one-word text; LAMBADA needs a context and a last word");
                }
                items.add(new Item(text.substring(0, cut), text.substring(cut)));
            } else if (n.hasNonNull("context") && n.hasNonNull("continuation")) {
                String cont = n.get("continuation").asText();
                items.add(new Item(n.get("context").asText(), cont.startsWith(" ") ? cont : " " + cont));
            } else {
                throw new JTuneException(file + ":" + (i + 1) + " has neither \"text\" nor \"context\"+\"continuation\"");
            }
        }
        if (items.isEmpty()) {
            throw new JTuneException(file + " holds no LAMBADA passages");
        }
        return items;
    }

    public static Result evaluate(LanguageModel model, Tokenizer tokenizer, List<Item> items, int maxContext) {
        return evaluate(model, tokenizer, items, maxContext, DType.F32);
    }

    /** {@link #evaluate(LanguageModel, Tokenizer, List, int)} with the sessions' KV cache in {@code kvCache}. */
    public static Result evaluate(LanguageModel model, Tokenizer tokenizer, List<Item> items, int maxContext,
                                  DType kvCache) {
        int hits = 0;
        double nll = 0;
        long tokens = 0;
        int vocab = model.info().vocabSize();
        for (Item item : items) {
            int[] context = tokenizer.encode(item.context(), true);
            int[] whole = tokenizer.encode(item.context() + item.target(), true);
            int common = 0;
            while (common < context.length && common < whole.length && context[common] == whole[common]) {
                common++;
            }
            int[] ids = whole;
            if (ids.length > maxContext) {             // keep the end: the target and the context right before it
                ids = Arrays.copyOfRange(whole, whole.length - maxContext, whole.length);
                common -= whole.length - maxContext;
            }
            if (common < 1 || common >= ids.length) {
                continue;   // target absorbed into the context's tokens or context empty: cannot be scored
            }
            try (Session s = new Session(model, ids.length, Session.DEFAULT_MAX_CHUNK, kvCache)) {
                Scoring.Result r = Scoring.score(s, ids);
                boolean hit = true;
                for (int t = common; t < ids.length; t++) {
                    nll -= r.logProbs()[t];
                    int predicted = Sampler.argmax(Arrays.copyOfRange(r.logits(), (t - 1) * vocab, t * vocab), vocab);
                    hit &= predicted == ids[t];
                }
                hits += hit ? 1 : 0;
                tokens += ids.length;
            }
        }
        return new Result(items.size(), hits, nll / items.size(), tokens);
    }
}
