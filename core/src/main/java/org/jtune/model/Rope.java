package org.jtune.model;

import com.fasterxml.jackson.databind.JsonNode;
import org.jtune.config.HfConfig;

/**
 * Rotary position embedding tables with Hugging Face's conventions: {@code inv_freq[i] =
 * 1/theta^(2i/rotDim)} computed in float32, angles {@code position * inv_freq} in float32, and the
 * rotate-half pairing (feature i with i + rotDim/2). Scaling types: none/default, {@code linear}
 * (positions divided by factor) and {@code llama3} (frequency-dependent, Llama 3.1). Tables are
 * precomputed for every position up to the session's context.
 */
public final class Rope {
    public final int rotDim;
    public final float[] invFreq;   // (rotDim/2)

    public Rope(int rotDim, float[] invFreq) {
        this.rotDim = rotDim;
        this.invFreq = invFreq;
    }

    /** From config keys {@code rope_theta} and {@code rope_scaling}; unknown scaling types fail naming the value. */
    public static Rope fromConfig(HfConfig cfg, int rotDim, double theta) {
        float[] inv = new float[rotDim / 2];
        for (int i = 0; i < inv.length; i++) {
            float exponent = (float) (2 * i) / rotDim;               // float32 like torch.arange(...).float() / dim
            inv[i] = (float) (1.0 / (float) Math.pow(theta, exponent));
        }
        JsonNode scaling = cfg.getObject("rope_scaling").orElse(null);
        if (scaling != null) {
            String type = scaling.has("rope_type") ? scaling.get("rope_type").asText()
                    : scaling.has("type") ? scaling.get("type").asText() : "default";
            switch (type) {
                case "default" -> { }
                case "linear" -> {
                    float factor = (float) required(cfg, scaling, "factor");
                    for (int i = 0; i < inv.length; i++) {
                        inv[i] = inv[i] / factor;
                    }
                }
                case "llama3" -> llama3(cfg, scaling, inv);
                default -> throw cfg.unsupported("rope_scaling.rope_type", "\"" + type + "\"",
                        "supported: default, linear, llama3");
            }
        }
        return new Rope(rotDim, inv);
    }

    private static double required(HfConfig cfg, JsonNode scaling, String key) {
        JsonNode n = scaling.get(key);
        if (n == null || !n.isNumber()) {
            throw new org.jtune.JTuneException(cfg.source() + ": rope_scaling needs a number \"" + key + "\", got " + n);
        }
        return n.asDouble();
    }

    // HF _compute_llama3_parameters, elementwise in float32 as torch does it.
    private static void llama3(HfConfig cfg, JsonNode s, float[] inv) {
        float factor = (float) required(cfg, s, "factor");
        float low = (float) required(cfg, s, "low_freq_factor");
        float high = (float) required(cfg, s, "high_freq_factor");
        float oldCtx = (float) required(cfg, s, "original_max_position_embeddings");
        float lowWavelen = oldCtx / low;
        float highWavelen = oldCtx / high;
        for (int i = 0; i < inv.length; i++) {
            float f = inv[i];
            float wavelen = (float) (2 * Math.PI) / f;
            float scaled = wavelen > lowWavelen ? f / factor : f;
            boolean medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
            if (medium) {
                float smooth = (oldCtx / wavelen - low) / (high - low);
                scaled = (1 - smooth) * scaled / factor + smooth * scaled;
            }
            inv[i] = scaled;
        }
    }

    /** cos/sin tables {@code (positions, rotDim/2)} for positions 0 .. positions-1. */
    public float[][] tables(int positions) {
        int half = rotDim / 2;
        float[] cos = new float[positions * half];
        float[] sin = new float[positions * half];
        for (int p = 0; p < positions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * invFreq[i];
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        return new float[][] {cos, sin};
    }
}
