package org.jtune.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.TensorInfo;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AdamWTest {
    static final double LR = 1e-3;

    /** The golden AdamW step: PyTorch in float64 from the stored LoRA weights and gradient. */
    @Test
    void firstStepMatchesPyTorchGolden() {
        Path golden = Shared.path("golden/tiny-llama.safetensors");
        List<Parameter> params = new ArrayList<>();
        List<float[]> expected = new ArrayList<>();
        try (SafetensorsFile f = SafetensorsFile.open(golden)) {
            for (TensorInfo info : f.tensors().values()) {
                if (!info.name().startsWith("lora.")) {
                    continue;
                }
                String key = info.name().substring("lora.".length());
                // One param group with weight_decay 0.01: every LoRA matrix decays (they are 2-D anyway).
                Parameter p = new Parameter(key, info.shape(), f.readFloats(info.name()),
                        f.readFloats("lora_grad." + key), true);
                params.add(p);
                expected.add(f.readFloats("lora_adamw1." + key));
            }
        }
        assertEquals(16, params.size());
        AdamW opt = new AdamW(0.9, 0.999, 1e-8, 0.01);
        opt.step(params, LR);
        double maxRel = 0, maxAbs = 0, maxPureRel = 0;
        for (int k = 0; k < params.size(); k++) {
            float[] got = params.get(k).value(), want = expected.get(k);
            for (int i = 0; i < want.length; i++) {
                double d = Math.abs((double) got[i] - want[i]);
                maxAbs = Math.max(maxAbs, d);
                maxRel = Math.max(maxRel, d / Math.max(Math.abs(want[i]), 1e-3));
                maxPureRel = Math.max(maxPureRel, d / Math.abs(want[i]));
            }
        }
        System.out.printf("AdamW step 1 vs golden: max abs %.3g, max rel %.3g (floor 1e-3), max pure rel %.3g%n",
                maxAbs, maxRel, maxPureRel);
        // float32 compute from float32-rounded inputs vs a float64 reference stored as float32:
        // a few float32 ulps of the weight (floor 1e-3 = lr, the size of the update itself).
        assertTrue(maxRel < 1e-6, "max relative error " + maxRel + " (abs " + maxAbs + ")");
        assertEquals(1, opt.steps());
    }

    /** Float64 transcription of torch.optim.AdamW's update, the independent reference. */
    static final class RefAdamW {
        final double b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
        double[] m, v;
        int t;

        void step(double[] p, double[] g, double lr, boolean decay) {
            if (m == null) {
                m = new double[p.length];
                v = new double[p.length];
            }
            t++;
            double bc1 = 1 - Math.pow(b1, t), bc2 = 1 - Math.pow(b2, t);
            for (int i = 0; i < p.length; i++) {
                if (decay) {
                    p[i] -= lr * wd * p[i];
                }
                m[i] = b1 * m[i] + (1 - b1) * g[i];
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
                p[i] -= (lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
            }
        }
    }

    static float[] gradients(Random r, int n) {
        float[] g = new float[n];
        for (int i = 0; i < n; i++) {
            // magnitudes from 1e-9 (below eps) to 10, both signs, a few exact zeros
            g[i] = i % 17 == 0 ? 0f : (float) ((r.nextBoolean() ? 1 : -1) * Math.pow(10, -9 + 10 * r.nextDouble()));
        }
        return g;
    }

    @Test
    void severalStepsMatchFloat64Reference() {
        Random r = new Random(7);
        int n = 1000;
        float[] init = new float[n];
        for (int i = 0; i < n; i++) {
            init[i] = (float) r.nextGaussian();
        }
        for (boolean decay : new boolean[] {true, false}) {
            Parameter p = new Parameter("w", new long[] {10, 100}, init.clone(), new float[n], decay);
            double[] ref = new double[n];
            for (int i = 0; i < n; i++) {
                ref[i] = init[i];
            }
            AdamW opt = AdamW.withDefaults();
            RefAdamW refOpt = new RefAdamW();
            double[] lrs = {1e-3, 5e-4, 2e-3};
            for (int step = 0; step < 3; step++) {
                float[] g = gradients(r, n);
                System.arraycopy(g, 0, p.grad(), 0, n);
                double[] gd = new double[n];
                for (int i = 0; i < n; i++) {
                    gd[i] = g[i];
                }
                opt.step(List.of(p), lrs[step]);
                refOpt.step(ref, gd, lrs[step], decay);
                for (int i = 0; i < n; i++) {
                    double tol = 1e-6 * Math.max(Math.abs(ref[i]), 1e-3);
                    assertEquals(ref[i], p.value()[i], tol, "step " + (step + 1) + " element " + i + " decay " + decay);
                }
            }
            assertEquals(3, opt.step("w"));
        }
    }

    @Test
    void weightDecayOnlyTouchesDecayingParameters() {
        // Zero gradient: the Adam term is 0 / (0 + eps) = 0, leaving only the decay.
        Parameter w = new Parameter("w", new long[] {2, 2}, new float[] {1, -2, 3, 4});
        Parameter b = new Parameter("b", new long[] {4}, new float[] {1, -2, 3, 4});
        assertTrue(w.decay());
        assertTrue(!b.decay());
        new AdamW(0.9, 0.999, 1e-8, 0.1).step(List.of(w, b), 0.5);
        float f = (float) (1 - 0.5 * 0.1);
        assertArrayEquals(new float[] {1 * f, -2 * f, 3 * f, 4 * f}, w.value());
        assertArrayEquals(new float[] {1, -2, 3, 4}, b.value());
    }

    @Test
    void firstStepMovesEachWeightByLearningRate() {
        // m̂ = g and v̂ = g², so the step is lr·g/(|g|+eps) ≈ lr·sign(g) for |g| >> eps.
        Parameter p = new Parameter("p", new long[] {3}, new float[] {0, 0, 0}, new float[] {5f, -0.25f, 1e-3f}, false);
        new AdamW(0.9, 0.999, 1e-8, 0).step(List.of(p), 0.01);
        assertArrayEquals(new float[] {-0.01f, 0.01f, (float) (-0.01 * 1e-3 / (1e-3 + 1e-8))}, p.value(), 1e-9f);
    }

    @Test
    void savedStateResumesBitExactly(@TempDir Path dir) {
        Random r = new Random(3);
        int[] sizes = {1, 7, 70_000}; // the last one takes the parallel path
        List<Parameter> a = new ArrayList<>();
        List<Parameter> b = new ArrayList<>();
        for (int k = 0; k < sizes.length; k++) {
            float[] v = new float[sizes[k]];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) r.nextGaussian();
            }
            long[] shape = sizes[k] == 1 ? new long[] {1} : new long[] {sizes[k] / 7, 7};
            a.add(new Parameter("layer." + k, shape, v.clone()));
            b.add(new Parameter("layer." + k, shape, v.clone()));
        }
        AdamW optA = new AdamW(0.8, 0.99, 1e-6, 0.05);
        AdamW optB = new AdamW(0.8, 0.99, 1e-6, 0.05);
        for (int step = 0; step < 2; step++) {
            for (int k = 0; k < a.size(); k++) {
                float[] g = gradients(r, sizes[k]);
                System.arraycopy(g, 0, a.get(k).grad(), 0, g.length);
                System.arraycopy(g, 0, b.get(k).grad(), 0, g.length);
            }
            optA.step(a, 1e-2);
            optB.step(b, 1e-2);
        }
        Path file = dir.resolve("optimizer.safetensors");
        optB.save(file);
        AdamW resumed = AdamW.load(file);
        assertEquals(2, resumed.steps());
        assertEquals(0.8, resumed.beta1());
        assertEquals(0.99, resumed.beta2());
        assertEquals(1e-6, resumed.eps());
        assertEquals(0.05, resumed.weightDecay());
        for (int step = 0; step < 2; step++) {
            for (int k = 0; k < a.size(); k++) {
                float[] g = gradients(r, sizes[k]);
                System.arraycopy(g, 0, a.get(k).grad(), 0, g.length);
                System.arraycopy(g, 0, b.get(k).grad(), 0, g.length);
            }
            optA.step(a, 3e-3);
            resumed.step(b, 3e-3);
        }
        for (int k = 0; k < a.size(); k++) {
            String name = a.get(k).name();
            assertArrayEquals(a.get(k).value(), b.get(k).value(), name);
            assertArrayEquals(optA.moments(name)[0], resumed.moments(name)[0]);
            assertArrayEquals(optA.moments(name)[1], resumed.moments(name)[1]);
            assertEquals(4, resumed.step(name));
        }
        assertEquals(4, resumed.steps());
    }

    @Test
    void rejectsStateOfAnotherShape() {
        AdamW opt = AdamW.withDefaults();
        opt.step(List.of(new Parameter("w", new long[] {2, 2}, new float[4])), 1e-3);
        JTuneException e = assertThrows(JTuneException.class,
                () -> opt.step(List.of(new Parameter("w", new long[] {2, 3}, new float[6])), 1e-3));
        assertTrue(e.getMessage().contains("[2, 2]") && e.getMessage().contains("[2, 3]"), e.getMessage());
    }

    @Test
    void rejectsFileThatIsNotOptimizerState() {
        Path golden = Shared.path("golden/tiny-llama.safetensors");
        JTuneException e = assertThrows(JTuneException.class, () -> AdamW.load(golden));
        assertTrue(e.getMessage().contains("not a jtune AdamW state"), e.getMessage());
    }

    @Test
    void zeroGradClearsEveryGradient() {
        Parameter p = new Parameter("p", new long[] {2}, new float[2], new float[] {1, 2}, false);
        AdamW.zeroGrad(List.of(p));
        assertArrayEquals(new float[2], p.grad());
    }
}
