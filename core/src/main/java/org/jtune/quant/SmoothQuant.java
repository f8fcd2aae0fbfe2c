package org.jtune.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jtune.JTuneException;

import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.model.LanguageModel;
import org.jtune.model.Linear;
import org.jtune.model.ModelState;
import org.jtune.model.SmoothGroup;
import org.jtune.tokenizer.Tokenizer;

/**
 * SmoothQuant (Xiao et al.): activations have a few huge channels that per-tensor int8 cannot
 * represent, weights are easy to quantize; scaling input channel j by {@code 1/s_j} and the matching
 * weight column by {@code s_j}, with {@code s_j = max|X_j|^alpha / max|W_j|^(1-alpha)}, moves the
 * difficulty from activations to weights without changing the function — the scales fold into the
 * norm in front or into the producing linear layer (see {@link SmoothGroup}). Alpha is fixed, or
 * chosen per layer as Intel Neural Compressor does: for each candidate alpha, quantize-dequantize
 * the weights per output channel and the calibration activations per tensor, and keep the alpha with
 * the smallest mean-squared error of the layer's output; layers sharing one norm combine their best
 * alphas by a criterion (mean, max or min).
 */
public final class SmoothQuant {
    public enum Criterion { MEAN, MAX, MIN }

    /**
     * @param alpha     fixed alpha in [0, 1], or NaN for the per-layer search
     * @param smooth    false: plain W8A8 (statistics only, no smoothing)
     */
    public record Options(double alpha, double alphaMin, double alphaMax, double alphaStep, Criterion criterion,
                          boolean smooth) {
        public Options {
            if (!Double.isNaN(alpha) && (alpha < 0 || alpha > 1)) {
                throw new JTuneException("alpha must be in [0, 1] (or auto), got " + alpha);
            }
            if (!(alphaMin >= 0 && alphaMax <= 1 && alphaMin <= alphaMax && alphaStep > 0)) {
                throw new JTuneException("alpha search range [" + alphaMin + ", " + alphaMax + "] step " + alphaStep
                        + " is invalid; it must lie in [0, 1] with a positive step");
            }
        }

        public static Options fixed(double alpha) {
            return new Options(alpha, 0.3, 0.7, 0.05, Criterion.MEAN, true);
        }

        public static Options auto(Criterion c) {
            return new Options(Double.NaN, 0.3, 0.7, 0.05, c, true);
        }

        public static Options noSmoothing() {
            return new Options(0.5, 0.3, 0.7, 0.05, Criterion.MEAN, false);
        }
    }

    /** Smoothed f32 weights by tensor name, per-layer static activation scales, and the alpha chosen per group. */
    public record Plan(Map<Linear, float[]> weights, Map<float[], float[]> vectors, Map<Linear, Float> actMax,
                       Map<String, Double> alphas) {
    }

    private SmoothQuant() {
    }

    /**
     * Calibration texts: JSONL ({@code {"text"}} or any object with string values, joined) or plain
     * text (one sample per non-blank line), tokenized with BOS and cut to {@code maxLength}.
     */
    public static List<int[]> calibrationSamples(Path file, Tokenizer tok, int samples, int maxLength) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file);
        } catch (IOException e) {
            throw new JTuneException("cannot read calibration file " + file + ": " + e.getMessage(), e);
        }
        ObjectMapper json = new ObjectMapper();
        List<int[]> out = new ArrayList<>();
        for (String line : lines) {
            if (out.size() >= samples) {
                break;
            }
            String text = line.strip();
            if (text.startsWith("{")) {
                try {
                    JsonNode n = json.readTree(text);
                    StringBuilder sb = new StringBuilder();
                    n.properties().forEach(e -> {
                        if (e.getValue().isTextual()) {
                            sb.append(sb.isEmpty() ? "" : "\n").append(e.getValue().asText());
                        }
                    });
                    text = sb.toString();
                } catch (IOException e) {
                    continue;   // not JSON after all: use the line as text
                }
            }
            if (text.isBlank()) {
                continue;
            }
            int[] ids = tok.encode(text, true);
            if (ids.length >= 2) {
                out.add(ids.length > maxLength ? java.util.Arrays.copyOf(ids, maxLength) : ids);
            }
        }
        if (out.isEmpty()) {
            throw new JTuneException("calibration file " + file + " has no usable samples (blank, or texts of fewer than 2 tokens);"
                    + " give a JSONL file with {\"text\": ...} lines or a plain text file");
        }
        return out;
    }

    /** Runs the samples through the model's own forward, recording every linear layer's input statistics. */
    static Map<Linear, RecordingOps.Inputs> calibrate(LanguageModel model, List<int[]> samples, int maxRows) {
        RecordingOps ops = new RecordingOps(maxRows);
        int longest = samples.stream().mapToInt(s -> s.length).max().orElse(1);
        ModelState st = model.newState(longest, longest, ops);
        float[] logits = new float[model.info().vocabSize()];
        for (int[] ids : samples) {
            st.cache.truncate(0);
            model.forward(st, ids, 0, ids.length, logits, false);
        }
        return ops.seen();
    }

    /** Computes the smoothing (or none) and each layer's activation range. */
    public static Plan plan(LanguageModel model, List<int[]> samples, Options opt) {
        Map<Linear, RecordingOps.Inputs> stats = calibrate(model, samples, 256);
        Kernels k = KernelProvider.get();
        Map<Linear, float[]> weights = new IdentityHashMap<>();
        Map<float[], float[]> vectors = new IdentityHashMap<>();
        Map<Linear, Float> actMax = new IdentityHashMap<>();
        Map<String, Double> alphas = new LinkedHashMap<>();
        for (Linear l : model.linearLayers()) {
            RecordingOps.Inputs in = stats.get(l);
            if (in != null) {
                actMax.put(l, max(in.maxAbs));
            }
        }
        if (!opt.smooth()) {
            return new Plan(weights, vectors, actMax, alphas);
        }
        List<SmoothGroup> groups = model.smoothGroups();
        if (groups.isEmpty()) {
            throw new JTuneException("no projection of this " + model.info().modelType() + " model has an input the"
                    + " smoothing scales can fold into exactly (e.g. post-LN OPT); quantize it with --method w8a8");
        }
        for (SmoothGroup g : groups) {
            int ch = g.channels();
            float[] actCh = new float[ch], wCh = new float[ch];
            for (Linear c : g.consumers()) {
                float[] a = stats.get(c).maxAbs;
                Matrix w = c.weight();
                for (int col = 0; col < c.inFeatures(); col++) {
                    int j = g.channel(col);
                    actCh[j] = Math.max(actCh[j], a[col]);
                    for (int r = 0; r < w.rows(); r++) {
                        wCh[j] = Math.max(wCh[j], Math.abs(w.get(r, col)));
                    }
                }
            }
            double alpha;
            if (!Double.isNaN(opt.alpha())) {
                alpha = opt.alpha();
            } else {
                List<Double> best = new ArrayList<>();
                for (Linear c : g.consumers()) {
                    best.add(bestAlpha(k, g, c, stats.get(c), actCh, wCh, opt));
                }
                alpha = switch (opt.criterion()) {
                    case MEAN -> best.stream().mapToDouble(Double::doubleValue).average().orElse(0.5);
                    case MAX -> best.stream().mapToDouble(Double::doubleValue).max().orElse(0.5);
                    case MIN -> best.stream().mapToDouble(Double::doubleValue).min().orElse(0.5);
                };
            }
            alphas.put(g.name(), alpha);
            float[] s = scales(actCh, wCh, alpha);
            // fold: consumers' columns * s, and 1/s into the norm or the producer's rows
            for (Linear c : g.consumers()) {
                float[] w = weights.computeIfAbsent(c, SmoothQuant::f32);
                int in = c.inFeatures();
                for (int r = 0; r < c.outFeatures(); r++) {
                    for (int col = 0; col < in; col++) {
                        w[r * in + col] *= s[g.channel(col)];
                    }
                }
                float[] a = stats.get(c).maxAbs;
                float m = 0;
                for (int col = 0; col < in; col++) {
                    m = Math.max(m, a[col] / s[g.channel(col)]);
                }
                actMax.put(c, m);
            }
            if (g.normWeight() != null) {
                divide(vectors.computeIfAbsent(g.normWeight(), float[]::clone), s);
                if (g.normBias() != null) {
                    divide(vectors.computeIfAbsent(g.normBias(), float[]::clone), s);
                }
            } else {
                Linear p = g.producer();
                float[] w = weights.computeIfAbsent(p, SmoothQuant::f32);
                int in = p.inFeatures();
                for (int r = 0; r < p.outFeatures(); r++) {
                    for (int col = 0; col < in; col++) {
                        w[r * in + col] /= s[r];
                    }
                }
                if (p.bias() != null) {
                    divide(vectors.computeIfAbsent(p.bias(), float[]::clone), s);
                }
            }
        }
        return new Plan(weights, vectors, actMax, alphas);
    }

    static float[] scales(float[] act, float[] w, double alpha) {
        float[] s = new float[act.length];
        for (int j = 0; j < s.length; j++) {
            double v = act[j] > 0 && w[j] > 0 ? Math.pow(act[j], alpha) / Math.pow(w[j], 1 - alpha) : 1.0;
            s[j] = (float) Math.min(1e5, Math.max(1e-5, v));
        }
        return s;
    }

    /** The alpha in the search grid whose smoothing gives this layer the smallest W8A8 output error on the sampled rows. */
    static double bestAlpha(Kernels k, SmoothGroup g, Linear c, RecordingOps.Inputs in, float[] actCh, float[] wCh, Options opt) {
        int rows = in.rows.size(), n = c.inFeatures(), out = c.outFeatures();
        float[] x = new float[rows * n];
        for (int t = 0; t < rows; t++) {
            System.arraycopy(in.rows.get(t), 0, x, t * n, n);
        }
        float[] w = f32(c);
        float[] ref = new float[rows * out];
        k.matmul(ref, x, Linear.f32View(w, out, n), rows);
        double bestErr = Double.MAX_VALUE, best = opt.alphaMin();
        float[] xs = new float[x.length], ws = new float[w.length], y = new float[ref.length];
        for (double a = opt.alphaMin(); a <= opt.alphaMax() + 1e-9; a += opt.alphaStep()) {
            float[] s = scales(actCh, wCh, a);
            float xMax = 0;
            for (int col = 0; col < n; col++) {
                xMax = Math.max(xMax, in.maxAbs[col] / s[g.channel(col)]);
            }
            for (int t = 0; t < rows; t++) {
                for (int col = 0; col < n; col++) {
                    xs[t * n + col] = x[t * n + col] / s[g.channel(col)];
                }
            }
            for (int r = 0; r < out; r++) {
                for (int col = 0; col < n; col++) {
                    ws[r * n + col] = w[r * n + col] * s[g.channel(col)];
                }
            }
            fakeQuantPerTensor(xs, xMax);
            fakeQuantPerRow(ws, out, n);
            k.matmul(y, xs, Linear.f32View(ws, out, n), rows);
            double err = 0;
            for (int i = 0; i < y.length; i++) {
                double d = y[i] - ref[i];
                err += d * d;
            }
            if (err < bestErr) {
                bestErr = err;
                best = a;
            }
        }
        return Math.round(best * 1000) / 1000.0;
    }

    /** Quantize-dequantize with one scale max/127 for the whole tensor (static activation quantization). */
    static void fakeQuantPerTensor(float[] x, float max) {
        float scale = max > 0 ? max / 127f : 1f;
        for (int i = 0; i < x.length; i++) {
            x[i] = Math.max(-127, Math.min(127, Math.round(x[i] / scale))) * scale;
        }
    }

    /** Quantize-dequantize with one scale per row (per output channel weights). */
    static void fakeQuantPerRow(float[] w, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            float max = 0;
            for (int c = 0; c < cols; c++) {
                max = Math.max(max, Math.abs(w[r * cols + c]));
            }
            float scale = max > 0 ? max / 127f : 1f;
            for (int c = 0; c < cols; c++) {
                w[r * cols + c] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c] / scale))) * scale;
            }
        }
    }

    static float[] f32(Linear l) {
        Matrix m = l.weight();
        float[] w = new float[m.rows() * m.cols()];
        for (int r = 0; r < m.rows(); r++) {
            for (int c = 0; c < m.cols(); c++) {
                w[r * m.cols() + c] = m.get(r, c);
            }
        }
        return w;
    }

    private static void divide(float[] v, float[] s) {
        for (int i = 0; i < v.length; i++) {
            v[i] /= s[i];
        }
    }

    private static float max(float[] a) {
        float m = 0;
        for (float v : a) {
            m = Math.max(m, v);
        }
        return m;
    }


    /**
     * Writes the model with the plan applied: W8A8 ({@code quantize}: per-output-channel int8 weights
     * for every decoder linear layer, with a static per-tensor activation scale {@code <module>.act_scale}
     * unless {@code dynamic}) or, without {@code quantize}, the smoothed model in f32 (the function is
     * unchanged; a check of the folding). Embeddings and the output head keep their dtype.
     */
    public static void write(Path src, Path dst, LanguageModel model, Plan plan, boolean quantize, boolean dynamic,
                             String method) {
        Map<String, Linear> linears = new java.util.HashMap<>();
        model.linearLayers().forEach(l -> linears.put(l.module() + ".weight", l));
        Map<String, float[]> vectorOverrides = new java.util.HashMap<>();
        model.weights().vectors().forEach(v -> {
            float[] o = plan.vectors().get(v.values());
            if (o != null) {
                vectorOverrides.put(v.name(), o);
            }
        });
        ModelQuantizer.write(src, dst, model, method, (w, name, info, loaded) -> {
            Linear l = linears.get(name);
            if (l != null && (quantize || plan.weights().containsKey(l))) {
                float[] values = plan.weights().containsKey(l) ? plan.weights().get(l) : f32(l);
                int rows = l.outFeatures(), cols = l.inFeatures();
                boolean transposed = loaded.transposedOnDisk();
                if (quantize) {
                    Matrix q = Int8Weights.quantize(Linear.f32View(values, rows, cols), cols);
                    w.add(name, org.jtune.io.safetensors.DType.I8, info.shape(),
                            transposed ? ModelQuantizer.transpose(q.data(), rows, cols) : q.data());
                    w.addFloats(name + org.jtune.model.WeightLoader.SCALE_SUFFIX, new long[] {rows, 1}, q.scales());
                    if (!dynamic) {
                        w.addFloats(l.module() + ".act_scale", new long[] {1}, new float[] {plan.actMax().getOrDefault(l, 1f) / 127f});
                    }
                } else {
                    w.addFloats(name, info.shape(), transposed ? transposeF(values, rows, cols) : values);
                }
                return true;
            }
            float[] vec = vectorOverrides.get(name);
            if (vec != null) {
                w.addFloats(name, info.shape(), vec);
                return true;
            }
            return false;
        }, !quantize ? null : qc -> {
            qc.put("bits", 8);
            qc.put("group_size", 0);
            qc.put("activations", dynamic ? "dynamic" : "static");
            com.fasterxml.jackson.databind.node.ObjectNode a = qc.putObject("alpha");
            plan.alphas().forEach(a::put);
        });
    }

    /** Fails at once when {@code src} is already quantized or {@code dst} exists (check before a long calibration). */
    public static void requireQuantizable(Path src, Path dst) {
        ModelQuantizer.requireQuantizable(src, dst);
    }

    private static float[] transposeF(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }
}
