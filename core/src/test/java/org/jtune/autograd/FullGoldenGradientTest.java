package org.jtune.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.kernel.KernelProvider;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelRegistry;
import org.jtune.model.ModelState;
import org.jtune.model.WeightLoader;
import org.jtune.testutil.Shared;
import org.jtune.train.CausalLmLoss;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Full fine-tuning: the gradient of every parameter against the PyTorch reference's full_grad.* tensors. */
class FullGoldenGradientTest {
    static final double GRAD_REL_TOL = 1e-3;

    /** The models whose golden file provides full fine-tuning gradients. */
    static Stream<String> models() {
        return LoraGoldenGradientTest.models().filter(m -> {
            try (SafetensorsFile g = SafetensorsFile.open(Shared.path("golden/" + m + ".safetensors"))) {
                return g.tensors().keySet().stream().anyMatch(k -> k.startsWith("full_grad."));
            }
        });
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void everyParameterGradientMatchesReference(String name) {
        try (LanguageModel model = ModelRegistry.load(Shared.path("models/" + name), WeightLoader.Options.TRAINABLE);
             SafetensorsFile g = SafetensorsFile.open(Shared.path("golden/" + name + ".safetensors"))) {
            Tape tape = new Tape();
            TrainingOps ops = new TrainingOps(KernelProvider.get(), tape);
            Set<float[]> params = Collections.newSetFromMap(new IdentityHashMap<>());
            Map<String, float[]> byName = new HashMap<>();
            Map<String, WeightLoader.Loaded> matrices = new HashMap<>();
            for (WeightLoader.Loaded m : model.weights().matrices()) {
                assertNotNull(m.master(), m.name() + " should have an f32 master copy");
                params.add(m.master());
                byName.put(m.name(), m.master());
                matrices.put(m.name(), m);
            }
            for (WeightLoader.LoadedVector v : model.weights().vectors()) {
                params.add(v.values());
                byName.put(v.name(), v.values());
            }
            params.forEach(ops::trainable);
            int seqs = 0;
            while (g.contains("input_ids." + seqs)) {
                seqs++;
            }
            int vocab = model.info().vocabSize();
            for (int s = 0; s < seqs; s++) {
                int[] ids = LoraGoldenGradientTest.ints(g, "input_ids." + s), labels = LoraGoldenGradientTest.ints(g, "labels." + s);
                ModelState st = model.newState(ids.length, ids.length, ops);
                float[] logits = new float[ids.length * vocab];
                model.forward(st, ids, 0, ids.length, logits, true);
                double loss = CausalLmLoss.forwardBackward(logits, labels, ids.length, vocab, tape.grad(logits), 1.0 / seqs);
                assertEquals(g.readFloats("loss")[s], loss, 1e-5 * Math.max(1, loss), name + " loss " + s);
                tape.backward();
                tape.zeroActivationGrads(params);
            }
            // Some gradients are exactly zero in exact arithmetic (the k-projection bias: softmax ignores a
            // constant added to every score); both sides return rounding noise there. So each tensor's error
            // is relative to its own largest gradient, floored at 1 % of the model's largest gradient.
            double globalMax = 0;
            for (String key : g.tensors().keySet()) {
                if (key.startsWith("full_grad.")) {
                    for (float v : g.readFloats(key)) {
                        globalMax = Math.max(globalMax, Math.abs(v));
                    }
                }
            }
            int checked = 0;
            double worst = 0;
            for (String key : g.tensors().keySet()) {
                if (!key.startsWith("full_grad.")) {
                    continue;
                }
                String param = key.substring("full_grad.".length());
                float[] value = byName.get(param);
                assertNotNull(value, name + ": the reference has a gradient for " + param + ", which jtune did not load");
                float[] got = tape.grad(value);
                WeightLoader.Loaded m = matrices.get(param);
                if (m != null && m.transposedOnDisk()) {       // GPT-2 Conv1D: the reference is [in, out]
                    got = transpose(got, m.matrix().rows(), m.matrix().cols());
                }
                float[] ref = g.readFloats(key);
                assertEquals(ref.length, got.length, param);
                double maxRef = 0, maxDiff = 0;
                for (int i = 0; i < ref.length; i++) {
                    maxRef = Math.max(maxRef, Math.abs(ref[i]));
                    maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
                }
                double rel = maxDiff / Math.max(maxRef, 0.01 * globalMax);
                worst = Math.max(worst, rel);
                assertTrue(rel <= GRAD_REL_TOL, name + " " + param + ": relative gradient error " + rel);
                checked++;
            }
            assertTrue(checked > 0, "no full_grad tensors in the golden file");
            System.out.printf("%s: %d full fine-tuning gradients, worst relative error %.2e%n", name, checked, worst);
        }
    }

    static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }
}
