package org.jtune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.jtune.JTuneException;
import org.jtune.autograd.Tape;
import org.jtune.autograd.TrainingOps;
import org.jtune.kernel.KernelProvider;
import org.jtune.model.LanguageModel;
import org.jtune.model.Linear;
import org.jtune.model.ModelRegistry;
import org.jtune.model.ModelState;
import org.jtune.model.WeightLoader;
import org.jtune.optim.AdamW;
import org.jtune.optim.Parameter;
import org.jtune.peft.LoraAdapter;
import org.jtune.peft.LoraConfig;
import org.jtune.peft.LoraModels;
import org.jtune.peft.LoraWeights;
import org.jtune.train.CausalLmLoss;

/**
 * Training throughput on random token ids (so any model works, tokenizer or not): one optimizer
 * step = forward + backward of {@code batch} sequences of {@code length} tokens + AdamW, exactly the
 * work {@code jtune finetune} does per step, without data loading.
 */
final class TrainingBench {
    private TrainingBench() {
    }

    static void run(Path dir, String method, int batch, int length, int steps, PrintWriter out) {
        boolean lora = method.equals("lora");
        if (!lora && !method.equals("full")) {
            throw new JTuneException("--train must be lora or full, got " + method);
        }
        try (LanguageModel model = ModelRegistry.load(dir, lora ? WeightLoader.Options.INFERENCE : WeightLoader.Options.TRAINABLE)) {
            Tape tape = new Tape();
            TrainingOps ops = new TrainingOps(KernelProvider.get(), tape);
            List<Parameter> params = new ArrayList<>();
            Set<float[]> arrays = Collections.newSetFromMap(new IdentityHashMap<>());
            if (lora) {
                Map<String, int[]> shapes = new LinkedHashMap<>();
                for (Linear l : model.linearLayers()) {
                    shapes.put(l.module(), new int[] {l.outFeatures(), l.inFeatures()});
                }
                LoraAdapter adapter = LoraAdapter.init(LoraConfig.forModel(model.info().modelType(), 8, 16, dir.toString()), shapes, 1);
                LoraModels.attach(model, adapter);
                for (Map.Entry<String, LoraWeights> e : adapter.modules().entrySet()) {
                    LoraWeights w = e.getValue();
                    params.add(new Parameter(e.getKey() + ".lora_A", new long[] {w.r(), w.in()}, w.a(), tape.grad(w.a()), true));
                    params.add(new Parameter(e.getKey() + ".lora_B", new long[] {w.out(), w.r()}, w.b(), tape.grad(w.b()), true));
                }
            } else {
                for (WeightLoader.Loaded m : model.weights().matrices()) {
                    if (arrays.add(m.master())) {
                        params.add(new Parameter(m.name(), new long[] {m.matrix().rows(), m.matrix().cols()}, m.master(),
                                tape.grad(m.master()), true));
                    }
                }
                for (WeightLoader.LoadedVector v : model.weights().vectors()) {
                    if (arrays.add(v.values())) {
                        params.add(new Parameter(v.name(), new long[] {v.values().length}, v.values(), tape.grad(v.values()), false));
                    }
                }
            }
            params.forEach(p -> {
                ops.trainable(p.value());
                arrays.add(p.value());
            });
            long trained = params.stream().mapToLong(Parameter::numel).sum();
            out.printf("model     %s: %,d parameters, training %,d (%s), batch %d x %d tokens%n", dir.getFileName(),
                    model.info().parameterCount(), trained, method, batch, length);
            out.flush();
            int vocab = model.info().vocabSize();
            ModelState st = model.newState(length, length, ops);
            float[] logits = new float[length * vocab];
            SplittableRandom rnd = new SplittableRandom(3);
            AdamW opt = AdamW.withDefaults();
            long best = Long.MAX_VALUE;
            double loss = 0;
            for (int s = 0; s <= steps; s++) {
                ops.step(s + 1);
                long t0 = System.nanoTime();
                for (int b = 0; b < batch; b++) {
                    int[] ids = new int[length];
                    for (int i = 0; i < length; i++) {
                        ids[i] = 3 + rnd.nextInt(vocab - 3);
                    }
                    st.cache.truncate(0);
                    model.forward(st, ids, 0, length, logits, true);
                    loss = CausalLmLoss.forwardBackward(logits, ids, length, vocab, tape.grad(logits), 1.0 / batch);
                    tape.backward();
                    tape.zeroActivationGrads(arrays);
                }
                opt.step(params, 1e-4);
                AdamW.zeroGrad(params);
                long dt = System.nanoTime() - t0;
                if (s > 0) {
                    best = Math.min(best, dt);
                }
                out.printf("step      %d%s: %.2f s, %.1f tokens/s, loss %.3f%n", s, s == 0 ? " (warm-up)" : "", dt / 1e9,
                        batch * length / (dt / 1e9), loss);
                out.flush();
            }
            out.printf("train     %s step of %d x %d tokens: best %.2f s, %.1f tokens/s%n", method, batch, length, best / 1e9,
                    batch * length / (best / 1e9));
        }
    }
}
