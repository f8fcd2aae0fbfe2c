package org.jtune.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
import org.jtune.model.WeightLoader;
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

    /** Every family with smoothing groups: folding keeps the float model's logits (random calibration ids: no tokenizer). */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"tiny-llama", "tiny-qwen2", "tiny-llama-bf16-tied-llama3rope",
            "tiny-gpt2", "tiny-gpt-neox", "tiny-gpt-neox-f16-sequential", "tiny-opt"})
    void foldingIsExactInEveryFamily(String name, @TempDir Path tmp) {
        Path dir = Shared.path("models/" + name);
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(5);
        List<int[]> samples = new java.util.ArrayList<>();
        for (int i = 0; i < 6; i++) {
            samples.add(rnd.ints(24, 3, 250).toArray());
        }
        try (LanguageModel base = ModelRegistry.load(dir)) {
            SmoothQuant.Plan plan = SmoothQuant.plan(base, samples, SmoothQuant.Options.auto(SmoothQuant.Criterion.MAX));
            assertTrue(!plan.alphas().isEmpty());
            SmoothQuant.write(dir, tmp.resolve("s"), base, plan, false, false, "smoothquant");
            float[] a = logits(base, samples.get(2));
            try (LanguageModel smoothed = ModelRegistry.load(tmp.resolve("s"))) {
                float[] b = logits(smoothed, samples.get(2));
                double maxDiff = 0, maxRef = 0;
                for (int i = 0; i < a.length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
                    maxRef = Math.max(maxRef, Math.abs(a[i]));
                }
                assertTrue(maxDiff <= 1e-5 * maxRef, name + ": relative " + maxDiff / maxRef);
            }
        }
    }

    @Test
    void postLayerNormOptHasNothingToSmoothAndSaysSo() {
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/tiny-opt-postln-proj"))) {
            JTuneException e = assertThrows(JTuneException.class,
                    () -> SmoothQuant.plan(m, List.of(new int[] {5, 6, 7, 8}), SmoothQuant.Options.fixed(0.5)));
            assertTrue(e.getMessage().contains("--method w8a8"), e.getMessage());
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

    /** W8A8 with and without smoothing, static and dynamic activations: loads, runs, stays close to the float model. */
    @Test
    void w8a8ModelsLoadAndStayCloseToTheFloatModel(@TempDir Path tmp) {
        List<int[]> samples = calibration(16);
        int[] ids = samples.get(5);
        try (LanguageModel base = ModelRegistry.load(REF)) {
            float[] ref = logits(base, ids);
            String[][] variants = {{"w8a8", "static"}, {"w8a8", "dynamic"}, {"smoothquant", "static"}};
            for (String[] v : variants) {
                SmoothQuant.Options opt = v[0].equals("w8a8") ? SmoothQuant.Options.noSmoothing() : SmoothQuant.Options.fixed(0.5);
                Path out = tmp.resolve(v[0] + "-" + v[1]);
                SmoothQuant.write(REF, out, base, SmoothQuant.plan(base, samples, opt), true, v[1].equals("dynamic"), v[0]);
                try (LanguageModel q = ModelRegistry.load(out)) {
                    assertTrue(q.linearLayers().stream().allMatch(l -> l.actScale() != null), "every layer W8A8");
                    float[] got = logits(q, ids);
                    double maxDiff = 0, maxRef = 0;
                    for (int i = 0; i < ref.length; i++) {
                        maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
                        maxRef = Math.max(maxRef, Math.abs(ref[i]));
                    }
                    System.out.printf("%s %s: relative logits error %.3e%n", v[0], v[1], maxDiff / maxRef);
                    assertTrue(maxDiff / maxRef < 0.1, v[0] + " " + v[1] + ": " + maxDiff / maxRef);
                    try (LanguageModel d = ModelRegistry.load(out, WeightLoader.Options.DECODE)) {   // as Engine loads it
                        assertArrayEquals(got, logits(d, ids), v[0] + " " + v[1] + " in the decode layout");
                    }
                }
                JTuneException again = assertThrows(JTuneException.class,
                        () -> SmoothQuant.write(out, tmp.resolve("again"), base, SmoothQuant.plan(base, samples, opt), true, false, "w8a8"));
                assertTrue(again.getMessage().contains("already quantized"), again.getMessage());
            }
        }
    }
}
