package org.jtune.model;

import org.jtune.config.HfConfig;

/**
 * Elementwise activations by their transformers {@code ACT2FN} names. Unknown names fail at load time
 * naming the config key and value, never silently falling back.
 */
public enum Activation {
    /** exact erf GELU (GPT-NeoX / Pythia) */
    GELU,
    /** GPT-2's tanh approximation */
    GELU_NEW,
    GELU_FAST,
    GELU_PYTORCH_TANH,
    RELU,
    SILU;

    public static Activation fromConfig(HfConfig cfg, String key, String defaultName) {
        String name = cfg.getString(key, defaultName);
        return switch (name) {
            case "gelu" -> GELU;
            case "gelu_new" -> GELU_NEW;
            case "gelu_fast" -> GELU_FAST;
            case "gelu_pytorch_tanh" -> GELU_PYTORCH_TANH;
            case "relu" -> RELU;
            case "silu", "swish" -> SILU;
            default -> throw cfg.unsupported(key, "\"" + name + "\"",
                    "supported: gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, relu, silu");
        };
    }

    /** Applies the activation in place to {@code x[0 .. n)}. */
    public void apply(float[] x, int n) {
        for (int i = 0; i < n; i++) {
            x[i] = apply(x[i]);
        }
    }

    public float apply(float v) {
        return switch (this) {
            case GELU -> (float) (0.5 * v * (1 + erf(v / Math.sqrt(2))));
            case GELU_NEW, GELU_PYTORCH_TANH ->
                    (float) (0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))));
            case GELU_FAST -> (float) (0.5 * v * (1 + Math.tanh(v * 0.7978845608 * (1 + 0.044715 * v * v))));
            case RELU -> Math.max(0f, v);
            case SILU -> v / (1f + (float) Math.exp(-v));
        };
    }

    /** d act / dx at v, for the backward pass. */
    public float derivative(float v) {
        return switch (this) {
            case GELU -> (float) (0.5 * (1 + erf(v / Math.sqrt(2))) + v * Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI));
            case GELU_NEW, GELU_PYTORCH_TANH, GELU_FAST -> {
                double k = Math.sqrt(2 / Math.PI), u = k * (v + 0.044715 * v * v * v);
                double t = Math.tanh(u);
                yield (float) (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v));
            }
            case RELU -> v > 0 ? 1f : 0f;
            case SILU -> {
                double sg = 1 / (1 + Math.exp(-v));
                yield (float) (sg * (1 + v * (1 - sg)));
            }
        };
    }

    /** erf with |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev), ample for float32 output. */
    static double erf(double x) {
        double z = Math.abs(x);
        double t = 1 / (1 + 0.5 * z);
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1 - r : r - 1;
    }
}
