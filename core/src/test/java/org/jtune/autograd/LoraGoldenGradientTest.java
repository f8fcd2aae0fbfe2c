package org.jtune.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.kernel.KernelProvider;
import org.jtune.model.LanguageModel;
import org.jtune.model.Linear;
import org.jtune.model.ModelRegistry;
import org.jtune.model.ModelState;
import org.jtune.testutil.Shared;
import org.jtune.train.CausalLmLoss;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The loss and every LoRA gradient, computed by the same forward code that generates text, against
 * the independent PyTorch reference (../shared/golden, float64 reference, float32 engine).
 */
class LoraGoldenGradientTest {
    static final double GRAD_REL_TOL = 1e-3;

    static Stream<String> models() {
        return Stream.of("tiny-llama", "tiny-llama-bf16-tied-llama3rope", "tiny-qwen2", "tiny-gpt2", "tiny-gpt-neox",
                "tiny-gpt-neox-f16-sequential", "tiny-opt", "tiny-opt-postln-proj", "jtune-ref-llama-13m");
    }

    /** PEFT key "base_model.model.X.lora_A.weight" -> module path X. */
    static String module(String peftKey) {
        String k = peftKey.substring("base_model.model.".length());
        return k.substring(0, k.lastIndexOf(".lora_"));
    }

    static int[] ints(SafetensorsFile f, String name) {
        return Arrays.stream(f.readLongs(name)).mapToInt(Math::toIntExact).toArray();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void lossAndLoraGradientsMatchReference(String name) {
        try (LanguageModel model = ModelRegistry.load(Shared.path("models/" + name));
             SafetensorsFile g = SafetensorsFile.open(Shared.path("golden/" + name + ".safetensors"))) {
            Map<String, Linear> linears = new HashMap<>();
            for (Linear l : model.linearLayers()) {
                linears.put(l.module(), l);
            }
            Map<String, float[]> a = new HashMap<>(), b = new HashMap<>();
            for (String key : g.tensors().keySet()) {
                if (key.startsWith("lora.")) {
                    String peft = key.substring(5);
                    (peft.contains(".lora_A.") ? a : b).put(module(peft), g.readFloats(key));
                }
            }
            assertTrue(!a.isEmpty() && a.size() == b.size());
            Map<String, Linear.Lora> attached = new HashMap<>();
            for (String m : a.keySet()) {
                Linear l = linears.keySet().stream().filter(x -> x.equals(m) || m.endsWith("." + x) || x.endsWith("." + m))
                        .findFirst().map(linears::get).orElseThrow(() -> new AssertionError("no layer " + m + " in " + linears.keySet()));
                int r = a.get(m).length / l.inFeatures();
                Linear.Lora lora = Linear.Lora.of(a.get(m), b.get(m), r, l.inFeatures(), l.outFeatures(), 16f / r);
                l.attach(lora);
                attached.put(m, lora);
            }
            int seqs = 0;
            while (g.contains("input_ids." + seqs)) {
                seqs++;
            }
            float[] refLoss = g.readFloats("lora_loss");
            Tape tape = new Tape();
            int vocab = model.info().vocabSize();
            for (int s = 0; s < seqs; s++) {
                int[] ids = ints(g, "input_ids." + s), labels = ints(g, "labels." + s);
                ModelState st = model.newState(ids.length, ids.length, new TrainingOps(KernelProvider.get(), tape));
                float[] logits = new float[ids.length * vocab];
                model.forward(st, ids, 0, ids.length, logits, true);
                double loss = CausalLmLoss.forwardBackward(logits, labels, ids.length, vocab, tape.grad(logits), 1.0 / seqs);
                assertEquals(refLoss[s], loss, 1e-5 * Math.max(1, Math.abs(refLoss[s])), name + " sequence " + s + " loss");
                tape.backward();
                tape.zeroActivationGrads(lora(attached));
            }
            double worst = 0;
            for (String key : g.tensors().keySet()) {
                if (!key.startsWith("lora_grad.")) {
                    continue;
                }
                String peft = key.substring("lora_grad.".length());
                Linear.Lora l = attached.get(module(peft));
                float[] got = tape.grad(peft.contains(".lora_A.") ? l.a() : l.b());
                float[] ref = g.readFloats(key);
                double maxRef = 0, maxDiff = 0;
                for (int i = 0; i < ref.length; i++) {
                    maxRef = Math.max(maxRef, Math.abs(ref[i]));
                    maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
                }
                double rel = maxDiff / Math.max(maxRef, 1e-12);
                worst = Math.max(worst, rel);
                assertTrue(rel <= GRAD_REL_TOL, name + " " + peft + ": relative gradient error " + rel);
            }
            System.out.printf("%s: LoRA gradients, worst relative error %.2e%n", name, worst);
        }
    }

    static java.util.Set<float[]> lora(Map<String, Linear.Lora> attached) {
        java.util.Set<float[]> keep = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Linear.Lora l : attached.values()) {
            keep.add(l.a());
            keep.add(l.b());
        }
        return keep;
    }
}
