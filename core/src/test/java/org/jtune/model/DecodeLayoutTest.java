package org.jtune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.jtune.infer.Session;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;

/**
 * The decode layout of inference sessions (WeightLoader.Options.DECODE): on a model whose matrices are too
 * narrow for strips it is the stored layout in other memory, so the logits are the stored layout's bit for
 * bit; {@code -Djtune.weights=mapped} keeps the weights memory-mapped.
 */
class DecodeLayoutTest {
    static final int[] IDS = {1, 450, 4996, 17354, 1701, 432, 29871, 13, 263, 11203};

    static float[] logits(LanguageModel m) {
        float[] out = new float[IDS.length * m.info().vocabSize()];
        new Session(m, IDS.length, 4).feedAllLogits(IDS, 0, IDS.length, out, 0);
        return out;
    }

    @Test
    void copiedWeightsGiveTheStoredLayoutsLogitsAndMappedOnesStayMapped() {
        float[] stored;
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/jtune-ref-llama-13m"))) {
            stored = logits(m);
        }
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/jtune-ref-llama-13m"), WeightLoader.Options.DECODE)) {
            assertTrue(m.linearLayers().stream().noneMatch(l -> l.weight().data().isMapped()), "copied");
            assertArrayEquals(stored, logits(m));
        }
        System.setProperty("jtune.weights", "mapped");
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/jtune-ref-llama-13m"), WeightLoader.Options.DECODE)) {
            assertTrue(m.linearLayers().stream().allMatch(l -> l.weight().data().isMapped()), "mapped");
            assertArrayEquals(stored, logits(m));
        } finally {
            System.clearProperty("jtune.weights");
        }
    }
}
