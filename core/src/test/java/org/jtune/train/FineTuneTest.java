package org.jtune.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.jtune.infer.Session;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelRegistry;
import org.jtune.peft.LoraAdapter;
import org.jtune.peft.LoraModels;
import org.jtune.testutil.Shared;
import org.jtune.tokenizer.Tokenizer;
import org.jtune.train.report.Metrics;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** End-to-end LoRA fine-tuning on the trained 13M Llama with the shared Alpaca instruction data. */
class FineTuneTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    static FineTuneConfig config(Path out, Map<String, Object> extra) {
        Map<String, Object> base = new java.util.HashMap<>(Map.of(
                "model", Shared.path("models/jtune-ref-llama-13m").toString(),
                "data", Shared.path("data/alpaca/alpaca_5000.json").toString(),
                "output", out.toString(), "maxLength", 96, "batchSize", 4, "valCount", 32, "lr", 1e-3,
                "evalEvery", 1000, "saveEvery", 1000, "seed", 7));
        base.putAll(extra);
        return FineTuneConfig.defaults().with(base);
    }

    @Test
    void loraRunLowersValidationLossAndTheSavedAdapterReproducesIt(@TempDir Path tmp) {
        FineTuneConfig cfg = config(tmp.resolve("run"), Map.of("maxSteps", 16));
        FineTune.Result r = FineTune.run(cfg, false, 0, QUIET);
        assertEquals(16, r.steps());
        assertTrue(r.finalValLoss() < r.initialValLoss(), "validation loss " + r.initialValLoss() + " -> " + r.finalValLoss());
        assertTrue(Files.exists(r.output().resolve("loss.png")) && Files.exists(r.output().resolve("metrics.jsonl")));
        assertEquals(16, Metrics.read(r.output().resolve("metrics.jsonl")).size());

        try (LanguageModel model = ModelRegistry.load(Shared.path("models/jtune-ref-llama-13m"));
             Tokenizer tok = Tokenizer.load(Shared.path("models/jtune-ref-llama-13m"))) {
            FineTune.Data data = FineTune.prepare(cfg, tok);
            double base = FineTune.evaluate(model, data.validation(), cfg.maxLength());
            assertEquals(r.initialValLoss(), base, 1e-9, "the base model's validation loss");
            LoraModels.attach(model, LoraAdapter.load(r.result()));
            double reloaded = FineTune.evaluate(model, data.validation(), cfg.maxLength());
            assertEquals(r.finalValLoss(), reloaded, 1e-9, "the reloaded adapter's validation loss");
        }
    }

    @Test
    void interruptedAndResumedRunEndsExactlyLikeAnUninterruptedOne(@TempDir Path tmp) throws Exception {
        Map<String, Object> settings = Map.of("maxSteps", 6, "saveEvery", 3, "gradAccum", 2, "loraDropout", 0.1,
                "evalEvery", 2, "warmupSteps", 2, "batchSize", 2, "maxLength", 64);
        FineTune.Result straight = FineTune.run(config(tmp.resolve("a"), settings), false, 0, QUIET);
        FineTune.Result first = FineTune.run(config(tmp.resolve("b"), settings), false, 4, QUIET);   // dies after step 4
        assertEquals(4, first.steps());
        FineTune.Result resumed = FineTune.run(config(tmp.resolve("b"), settings), true, 0, QUIET);   // resumes from step 3
        assertEquals(6, resumed.steps());

        try (SafetensorsFile a = SafetensorsFile.open(straight.result().resolve("adapter_model.safetensors"));
             SafetensorsFile b = SafetensorsFile.open(resumed.result().resolve("adapter_model.safetensors"))) {
            assertEquals(a.tensors().keySet(), b.tensors().keySet());
            for (String name : a.tensors().keySet()) {
                assertArrayEquals(a.readFloats(name), b.readFloats(name), name);
            }
        }
        List<Metrics.Entry> ma = Metrics.read(straight.output().resolve("metrics.jsonl"));
        List<Metrics.Entry> mb = Metrics.read(resumed.output().resolve("metrics.jsonl"));
        assertEquals(ma.size(), mb.size());
        for (int i = 0; i < ma.size(); i++) {   // everything but wall-clock figures
            Metrics.Entry x = ma.get(i), y = mb.get(i);
            assertEquals(x.step(), y.step());
            assertEquals(x.loss(), y.loss(), 0.0, "loss at step " + x.step());
            assertEquals(x.lr(), y.lr(), 0.0);
            assertEquals(x.gradNorm(), y.gradNorm(), 0.0);
            assertEquals(x.valLoss(), y.valLoss());
            assertEquals(x.epoch(), y.epoch(), 0.0);
        }
    }

    @Test
    void mergedModelEqualsBasePlusAdapter(@TempDir Path tmp) {
        Path model = Shared.path("models/tiny-llama");
        Path adapterDir = tmp.resolve("adapter");
        try (LanguageModel base = ModelRegistry.load(model)) {
            Map<String, int[]> shapes = new java.util.LinkedHashMap<>();
            base.linearLayers().forEach(l -> shapes.put(l.module(), new int[] {l.outFeatures(), l.inFeatures()}));
            LoraAdapter adapter = LoraAdapter.init(org.jtune.peft.LoraConfig.forModel("llama", 4, 8, model.toString()), shapes, 3);
            java.util.SplittableRandom rnd = new java.util.SplittableRandom(9);
            adapter.modules().values().forEach(w -> {
                for (int i = 0; i < w.b().length; i++) {
                    w.b()[i] = (float) (rnd.nextDouble() - 0.5);   // non-zero B, so the adapter changes the outputs
                }
            });
            adapter.save(adapterDir);
        }
        LoraModels.merge(model, adapterDir, tmp.resolve("merged"));
        int[] ids = {1, 17, 42, 99, 5, 230, 7};
        try (LanguageModel merged = ModelRegistry.load(tmp.resolve("merged"));
             LanguageModel withAdapter = ModelRegistry.load(model);
             LanguageModel base = ModelRegistry.load(model)) {
            LoraModels.attach(withAdapter, LoraAdapter.load(adapterDir));
            int v = merged.info().vocabSize();
            float[] a = new float[ids.length * v], b = new float[ids.length * v], c = new float[ids.length * v];
            new Session(merged, ids.length).feedAllLogits(ids, 0, ids.length, a, 0);
            new Session(withAdapter, ids.length).feedAllLogits(ids, 0, ids.length, b, 0);
            new Session(base, ids.length).feedAllLogits(ids, 0, ids.length, c, 0);
            double maxDiff = 0, maxRef = 0, changed = 0;
            for (int i = 0; i < a.length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
                maxRef = Math.max(maxRef, Math.abs(b[i]));
                changed = Math.max(changed, Math.abs(b[i] - c[i]));
            }
            assertTrue(maxDiff <= 1e-5 * maxRef, "merged vs adapter: " + maxDiff);
            assertTrue(changed > 1e-2 * maxRef, "the adapter must change the outputs for this test to mean anything");
        }
    }
}
