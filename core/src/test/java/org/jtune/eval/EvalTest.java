package org.jtune.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.infer.Scoring;
import org.jtune.infer.Session;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelRegistry;
import org.jtune.testutil.Shared;
import org.jtune.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EvalTest {
    static final Path REF = Shared.path("models/jtune-ref-llama-13m");

    @Test
    void lambadaReadsBothShapesAndSplitsTheLastWord(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("l.jsonl");
        Files.writeString(f, "{\"text\": \"the cat sat on the mat\"}\n\n{\"context\": \"a b\", \"continuation\": \"c\"}\n");
        List<Lambada.Item> items = Lambada.read(f, 0);
        assertEquals(new Lambada.Item("the cat sat on the", " mat"), items.get(0));
        assertEquals(new Lambada.Item("a b", " c"), items.get(1));
        Files.writeString(f, "{\"text\": \"oneword\"}\n");
        assertThrows(JTuneException.class, () -> Lambada.read(f, 0));
        assertEquals(8, Lambada.read(Shared.path("data/lambada_openai/lambada_openai_small.jsonl"), 0).size());
    }

    @Test
    void lambadaCountsAHitOnlyWhenGreedyReproducesTheTarget() {
        try (LanguageModel m = ModelRegistry.load(REF); Tokenizer tok = Tokenizer.load(REF)) {
            // a target the model certainly predicts: its own greedy continuation of a context
            String context = "The patient was admitted to the";
            int[] ids = tok.encode(context, true);
            Session s = new Session(m, ids.length + 1);
            float[] logits = s.feed(ids);
            String word = tok.decode(new int[] {org.jtune.infer.Sampler.argmax(logits, logits.length)}, true);
            Lambada.Result own = Lambada.evaluate(m, tok, List.of(new Lambada.Item(context, " " + word.strip())), 512);
            Lambada.Result nonsense = Lambada.evaluate(m, tok, List.of(new Lambada.Item(context, " zyxwvut")), 512);
            assertEquals(1, own.hits(), "greedy word \"" + word + "\"");
            assertEquals(0, nonsense.hits());
            assertTrue(nonsense.meanTargetNll() > own.meanTargetNll());
            Lambada.Result real = Lambada.evaluate(m, tok, Lambada.read(Shared.path("data/lambada_openai/lambada_openai_small.jsonl"), 0), 512);
            assertEquals(8, real.items());
            assertTrue(real.accuracy() >= 0 && real.accuracy() <= 1);
        }
    }

    @Test
    void slidingWindowPerplexityEqualsDirectScoringWhenOneWindowCoversTheText() throws Exception {
        try (LanguageModel m = ModelRegistry.load(REF); Tokenizer tok = Tokenizer.load(REF)) {
            String text = Files.readString(Shared.path("data/ref-heldout/heldout.txt")).substring(0, 1500);
            int[] ids = tok.encode(text, true);
            Scoring.Result direct = Scoring.score(new Session(m, ids.length), ids);
            Perplexity.Result one = Perplexity.evaluate(m, ids, ids.length, ids.length);
            assertEquals(ids.length - 1, one.scoredTokens());
            assertEquals(direct.perplexity(), one.perplexity(), 1e-6 * direct.perplexity());
            Perplexity.Result sliding = Perplexity.evaluate(m, ids, 128, 64);
            assertEquals(ids.length - 1, sliding.scoredTokens(), "every token after the first is scored exactly once");
            assertTrue(sliding.perplexity() > 1 && sliding.perplexity() < 10 * direct.perplexity());
        }
    }
}
