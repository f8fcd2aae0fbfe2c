package org.jtune.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.infer.Session;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelRegistry;
import org.jtune.testutil.Shared;
import org.jtune.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SmoothQuantTest {
    static final Path REF = Shared.path("models/jtune-ref-llama-13m");

    static List<int[]> calibration(int n) {
        try (Tokenizer tok = Tokenizer.load(REF)) {
            return SmoothQuant.calibrationSamples(Shared.path("data/ref-heldout/heldout.jsonl"), tok, n, 128);
        }
    }

    static float[] logits(LanguageModel m, int[] ids) {
        float[] out = new float[ids.length * m.info().vocabSize()];
        new Session(m, ids.length).feedAllLogits(ids, 0, ids.length, out, 0);
        return out;
    }

    @Test
    void foldingTheSmoothingScalesLeavesTheFloatModelUnchanged(@TempDir Path tmp) {
        List<int[]> samples = calibration(8);
        for (SmoothQuant.Options opt : List.of(SmoothQuant.Options.fixed(0.5), SmoothQuant.Options.auto(SmoothQuant.Criterion.MEAN))) {
            Path out = tmp.resolve("smoothed-" + (Double.isNaN(opt.alpha()) ? "auto" : "fixed"));
            try (LanguageModel base = ModelRegistry.load(REF)) {
                SmoothQuant.Plan plan = SmoothQuant.plan(base, samples, opt);
                assertEquals(4 * 6, plan.alphas().size(), "four groups per layer: " + plan.alphas().keySet());
                plan.alphas().values().forEach(a -> assertTrue(a >= 0.3 - 1e-9 && a <= 0.7 + 1e-9, "alpha " + a));
                SmoothQuant.write(REF, out, base, plan, false, false, "smoothquant");
                int[] ids = samples.get(3);
                float[] a = logits(base, ids);
                try (LanguageModel smoothed = ModelRegistry.load(out)) {
                    float[] b = logits(smoothed, ids);
                    double maxDiff = 0, maxRef = 0;
                    for (int i = 0; i < a.length; i++) {
                        maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
                        maxRef = Math.max(maxRef, Math.abs(a[i]));
                    }
                    assertTrue(maxDiff <= 1e-5 * maxRef, "smoothed vs original: relative " + maxDiff / maxRef);
                }
            }
        }
    }

    @Test
    void badInputIsRefusedClearly(@TempDir Path tmp) throws Exception {
        Path empty = tmp.resolve("empty.jsonl");
        Files.writeString(empty, "\n{\"text\": \"\"}\n   \n");
        try (Tokenizer tok = Tokenizer.load(REF)) {
            JTuneException e = assertThrows(JTuneException.class, () -> SmoothQuant.calibrationSamples(empty, tok, 8, 64));
            assertTrue(e.getMessage().contains("no usable samples"), e.getMessage());
        }
        assertThrows(JTuneException.class, () -> SmoothQuant.Options.fixed(1.5));
        assertThrows(JTuneException.class, () -> SmoothQuant.Options.fixed(-0.1));
    }
}
