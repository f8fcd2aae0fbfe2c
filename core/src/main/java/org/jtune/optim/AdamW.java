package org.jtune.optim;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.io.safetensors.TensorInfo;

/**
 * AdamW with the semantics of {@code torch.optim.AdamW} (single-tensor path: {@code foreach=False},
 * {@code amsgrad=False}, {@code maximize=False}) on float32 parameters. Per element, in this order,
 * each line rounded to float32 as PyTorch's CPU kernels do (scalars are computed in double, then
 * cast to float, as PyTorch casts a Python float to the tensor's dtype):
 * <pre>
 *   p  = p * (float)(1 - lr*wd)                         param.mul_(1 - lr * weight_decay)
 *   m  = fma(w, g - m, m),  w = (float)(1 - beta1)      exp_avg.lerp_(grad, 1 - beta1)
 *   v  = v * (float)beta2;  v = v + ((float)(1-beta2) * g) * g    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2)
 *   d  = sqrt(v) / (float)sqrt(1 - beta2^t) + (float)eps          (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
 *   p  = p + ((float)(-lr / (1 - beta1^t)) * m) / d     param.addcdiv_(exp_avg, denom, value=-step_size)
 * </pre>
 * The lerp uses a fused multiply-add because ATen's vectorized {@code lerp} does ({@code fmadd});
 * the other lines are plain float operations in ATen's order. A PyTorch build whose compiler
 * contracts the {@code addcmul} multiply-add may differ from this in the last bit of {@code v}.
 * <p>
 * Weight decay applies only to parameters with {@link Parameter#decay()} set (the equivalent of
 * a second param group with {@code weight_decay=0}). State (step count, {@code exp_avg},
 * {@code exp_avg_sq}) is fp32 and keyed by parameter name; like PyTorch each parameter counts its
 * own steps, so a parameter first seen later starts its bias correction at t = 1.
 * {@link #save}/{@link #load} keep everything needed to resume bit-exactly.
 */
public final class AdamW {
    /** Written into saved state so a foreign file is rejected rather than misread. */
    static final String FORMAT = "jtune.optim.AdamW";
    static final String VERSION = "1";
    private static final int PARALLEL_CHUNK = 1 << 15;

    private final double beta1;
    private final double beta2;
    private final double eps;
    private final double weightDecay;
    private final Map<String, State> state = new LinkedHashMap<>();
    private long steps; // number of step() calls

    /** Per-parameter moment estimates. */
    private static final class State {
        long step;
        final long[] shape;
        final float[] expAvg; // (numel) first moment m
        final float[] expAvgSq; // (numel) second moment v

        State(long[] shape, int numel) {
            this.shape = shape;
            this.expAvg = new float[numel];
            this.expAvgSq = new float[numel];
        }
    }

    public AdamW(double beta1, double beta2, double eps, double weightDecay) {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new JTuneException("AdamW betas must lie in [0, 1), got beta1=" + beta1 + " beta2=" + beta2);
        }
        if (!(eps >= 0) || !(weightDecay >= 0)) {
            throw new JTuneException("AdamW eps and weight decay must be >= 0, got eps=" + eps
                    + " weight_decay=" + weightDecay);
        }
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
    }

    /** PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
    public static AdamW withDefaults() {
        return new AdamW(0.9, 0.999, 1e-8, 0.01);
    }

    public double beta1() {
        return beta1;
    }

    public double beta2() {
        return beta2;
    }

    public double eps() {
        return eps;
    }

    public double weightDecay() {
        return weightDecay;
    }

    /** How many times {@link #step} has run (restored by {@link #load}). */
    public long steps() {
        return steps;
    }

    /** The step count t of one parameter's state, 0 if it has never been updated. */
    public long step(String name) {
        State s = state.get(name);
        return s == null ? 0 : s.step;
    }

    /** Copies of one parameter's moments {exp_avg, exp_avg_sq}, or null if it has no state. */
    public float[][] moments(String name) {
        State s = state.get(name);
        return s == null ? null : new float[][] {s.expAvg.clone(), s.expAvgSq.clone()};
    }

    /** Names that carry state, in first-update order. */
    public List<String> stateNames() {
        return Collections.unmodifiableList(List.copyOf(state.keySet()));
    }

    /** One AdamW update of every parameter with learning rate {@code lr}; grads are left as they are. */
    public void step(List<Parameter> params, double lr) {
        if (!(lr >= 0) || Double.isInfinite(lr)) {
            throw new JTuneException("learning rate must be finite and >= 0, got " + lr);
        }
        for (Parameter p : params) {
            State s = state.get(p.name());
            if (s == null) {
                s = new State(p.shape(), p.numel());
                state.put(p.name(), s);
            } else if (s.expAvg.length != p.numel()) {
                throw new JTuneException("optimizer state for " + p.name() + " has shape " + Arrays.toString(s.shape)
                        + " but the parameter has shape " + Arrays.toString(p.shape())
                        + "; was the optimizer state saved for another model or adapter configuration?");
            }
        }
        for (Parameter p : params) {
            update(p, state.get(p.name()), lr);
        }
        steps++;
    }

    private void update(Parameter p, State s, double lr) {
        s.step++;
        double bc1 = 1 - Math.pow(beta1, s.step);
        double bc2 = 1 - Math.pow(beta2, s.step);
        boolean decay = p.decay() && weightDecay != 0;
        float decayMul = (float) (1 - lr * weightDecay);
        float lerpW = (float) (1 - beta1);
        float b2 = (float) beta2;
        float oneMinusB2 = (float) (1 - beta2);
        float bc2Sqrt = (float) Math.sqrt(bc2);
        float epsF = (float) eps;
        float negStepSize = (float) -(lr / bc1);
        float[] value = p.value(), grad = p.grad(), m = s.expAvg, v = s.expAvgSq;
        int n = value.length;
        if (n <= PARALLEL_CHUNK) {
            kernel(value, grad, m, v, 0, n, decay, decayMul, lerpW, b2, oneMinusB2, bc2Sqrt, epsF, negStepSize);
        } else {
            // Element-wise, so splitting the range cannot change a single bit of the result.
            int chunks = (n + PARALLEL_CHUNK - 1) / PARALLEL_CHUNK;
            IntStream.range(0, chunks).parallel().forEach(c -> kernel(value, grad, m, v, c * PARALLEL_CHUNK,
                    Math.min(n, (c + 1) * PARALLEL_CHUNK), decay, decayMul, lerpW, b2, oneMinusB2, bc2Sqrt, epsF,
                    negStepSize));
        }
    }

    private static void kernel(float[] value, float[] grad, float[] m, float[] v, int from, int to, boolean decay,
            float decayMul, float lerpW, float b2, float oneMinusB2, float bc2Sqrt, float eps, float negStepSize) {
        boolean smallWeight = Math.abs(lerpW) < 0.5f;
        float lerpCoeff = smallWeight ? lerpW : lerpW - 1f;
        for (int i = from; i < to; i++) {
            float p = value[i];
            if (decay) {
                p = p * decayMul;
            }
            float g = grad[i];
            float mi = m[i];
            // ATen lerp_vec: fmadd(coeff, end - start, small ? start : end)
            mi = Math.fma(lerpCoeff, g - mi, smallWeight ? mi : g);
            float vi = v[i] * b2;
            vi = vi + oneMinusB2 * g * g;
            float denom = (float) Math.sqrt(vi) / bc2Sqrt + eps;
            p = p + negStepSize * mi / denom;
            m[i] = mi;
            v[i] = vi;
            value[i] = p;
        }
    }

    /** Zeroes every parameter's gradient. */
    public static void zeroGrad(List<Parameter> params) {
        for (Parameter p : params) {
            p.zeroGrad();
        }
    }

    /**
     * Writes hyper-parameters, the step count and every parameter's moments to a safetensors file
     * (atomically): {@code exp_avg.<name>}, {@code exp_avg_sq.<name>} F32 in the parameter's shape,
     * {@code step.<name>} I64 [1]; metadata holds the hyper-parameters as round-trip decimal strings.
     */
    public void save(Path file) {
        SafetensorsWriter w = new SafetensorsWriter()
                .metadata("format", FORMAT)
                .metadata("version", VERSION)
                .metadata("beta1", Double.toString(beta1))
                .metadata("beta2", Double.toString(beta2))
                .metadata("eps", Double.toString(eps))
                .metadata("weight_decay", Double.toString(weightDecay))
                .metadata("steps", Long.toString(steps));
        for (Map.Entry<String, State> e : state.entrySet()) {
            State s = e.getValue();
            w.addFloats("exp_avg." + e.getKey(), s.shape, s.expAvg);
            w.addFloats("exp_avg_sq." + e.getKey(), s.shape, s.expAvgSq);
            w.addLongs("step." + e.getKey(), new long[] {1}, new long[] {s.step});
        }
        w.write(file);
    }

    /** Restores an optimizer written by {@link #save}: hyper-parameters, step count and all moments. */
    public static AdamW load(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new JTuneException("optimizer state " + file + " does not exist; pass the optimizer.safetensors of a saved checkpoint");
        }
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Map<String, String> meta = f.metadata();
            if (!FORMAT.equals(meta.get("format"))) {
                throw new JTuneException("file " + file + " is not a jtune AdamW state (metadata format="
                        + meta.get("format") + ", expected " + FORMAT + ")");
            }
            if (!VERSION.equals(meta.get("version"))) {
                throw new JTuneException("AdamW state " + file + " has version " + meta.get("version")
                        + " but this jtune reads version " + VERSION);
            }
            AdamW opt = new AdamW(number(meta, "beta1", file), number(meta, "beta2", file), number(meta, "eps", file),
                    number(meta, "weight_decay", file));
            try {
                opt.steps = Long.parseLong(meta.getOrDefault("steps", "?"));
            } catch (NumberFormatException e) {
                throw new JTuneException("AdamW state " + file + " has no valid 'steps' metadata: " + meta.get("steps"), e);
            }
            for (TensorInfo info : f.tensors().values()) {
                if (!info.name().startsWith("exp_avg.")) {
                    continue;
                }
                String name = info.name().substring("exp_avg.".length());
                String sqName = "exp_avg_sq." + name, stepName = "step." + name;
                if (!f.contains(sqName) || !f.contains(stepName)) {
                    throw new JTuneException("AdamW state " + file + " has exp_avg." + name + " but lacks "
                            + sqName + " or " + stepName + "; the file is incomplete");
                }
                if (info.dtype() != DType.F32 || f.info(sqName).dtype() != DType.F32) {
                    throw new JTuneException("AdamW state " + file + " stores " + name + " as " + info.dtype()
                            + "; expected F32");
                }
                float[] m = f.readFloats(info.name());
                float[] v = f.readFloats(sqName);
                if (m.length != v.length) {
                    throw new JTuneException("AdamW state " + file + ": exp_avg and exp_avg_sq of " + name
                            + " have " + m.length + " and " + v.length + " elements");
                }
                State s = new State(info.shape(), m.length);
                System.arraycopy(m, 0, s.expAvg, 0, m.length);
                System.arraycopy(v, 0, s.expAvgSq, 0, v.length);
                s.step = f.readLongs(stepName)[0];
                opt.state.put(name, s);
            }
            return opt;
        }
    }

    private static double number(Map<String, String> meta, String key, Path file) {
        String s = meta.get(key);
        if (s == null) {
            throw new JTuneException("AdamW state " + file + " lacks metadata '" + key + "'");
        }
        try {
            return Double.parseDouble(s);
        } catch (NumberFormatException e) {
            throw new JTuneException("AdamW state " + file + " has metadata " + key + "='" + s + "', not a number", e);
        }
    }
}
