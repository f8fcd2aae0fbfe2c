package org.jtune.cli;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.jtune.JTuneException;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelRegistry;
import org.jtune.quant.ModelQuantizer;
import org.jtune.quant.SmoothQuant;
import org.jtune.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code jtune quantize}: write a quantized copy of a model that generate/chat/score/eval/bench load directly. */
@Command(name = "quantize", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Quantize a model's weight matrices and write a new model directory.")
final class QuantizeCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "DIR")
    Path model;

    @Option(names = "--method", required = true, paramLabel = "METHOD",
            description = "int8-weight, int4-weight, w8a8 (int8 weights and activations, no smoothing) or smoothquant")
    String method;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR", description = "new model directory (must not exist)")
    Path output;

    @Option(names = "--group-size", defaultValue = "32", paramLabel = "N",
            description = "int8/int4-weight: input features sharing one scale (default ${DEFAULT-VALUE}, like llama.cpp's Q8_0); int8 also takes 0 = per output channel, int4 32, 64 or 128")
    int groupSize;

    @Option(names = "--asymmetric", description = "int4-weight: per-group zero points (default symmetric)")
    boolean asymmetric;

    @Option(names = "--alpha", defaultValue = "0.5", paramLabel = "A|auto",
            description = "smoothquant: migration strength in [0, 1], or auto to search it per layer (default ${DEFAULT-VALUE})")
    String alpha;

    @Option(names = "--alpha-range", defaultValue = "0.3,0.7,0.05", paramLabel = "MIN,MAX,STEP", description = "auto alpha search grid (default ${DEFAULT-VALUE})")
    String alphaRange;

    @Option(names = "--alpha-criterion", defaultValue = "mean", paramLabel = "mean|max|min",
            description = "auto alpha for layers sharing one norm: combine their best alphas by (default ${DEFAULT-VALUE})")
    String criterion;

    @Option(names = "--calib", paramLabel = "FILE", description = "w8a8/smoothquant: calibration texts (JSONL {\"text\"} or plain text lines)")
    Path calib;

    @Option(names = "--samples", defaultValue = "64", paramLabel = "N", description = "calibration samples (default ${DEFAULT-VALUE})")
    int samples;

    @Option(names = "--calib-length", defaultValue = "256", paramLabel = "N", description = "tokens per calibration sample at most (default ${DEFAULT-VALUE})")
    int calibLength;

    @Option(names = "--activations", defaultValue = "static", paramLabel = "static|dynamic",
            description = "w8a8/smoothquant activation scales: static per tensor from calibration, or dynamic per token (default ${DEFAULT-VALUE})")
    String activations;

    @Override
    public Integer call() {
        switch (method) {
            case "int8-weight" -> {
                if (groupSize < 0) {
                    throw new JTuneException("--group-size must be 0 (per channel) or positive, got " + groupSize);
                }
                ModelQuantizer.int8Weights(model, output, groupSize);
            }
            case "int4-weight" -> ModelQuantizer.int4Weights(model, output, groupSize, !asymmetric);
            case "w8a8", "smoothquant" -> smoothQuant();
            default -> throw new JTuneException("unknown --method \"" + method + "\"; supported: int8-weight, int4-weight, w8a8, smoothquant");
        }
        System.out.println("wrote " + output);
        return 0;
    }

    private void smoothQuant() {
        if (calib == null) {
            throw new JTuneException("--method " + method + " needs calibration data: --calib FILE (JSONL or text)");
        }
        if (!activations.equals("static") && !activations.equals("dynamic")) {
            throw new JTuneException("--activations must be static or dynamic, got " + activations);
        }
        SmoothQuant.Options opt;
        if (method.equals("w8a8")) {
            opt = SmoothQuant.Options.noSmoothing();
        } else {
            String[] r = alphaRange.split(",");
            if (r.length != 3) {
                throw new JTuneException("--alpha-range must be MIN,MAX,STEP, got " + alphaRange);
            }
            double a;
            try {
                a = alpha.equals("auto") ? Double.NaN : Double.parseDouble(alpha);
            } catch (NumberFormatException e) {
                throw new JTuneException("--alpha must be a number in [0, 1] or auto, got " + alpha);
            }
            opt = new SmoothQuant.Options(a, Double.parseDouble(r[0]), Double.parseDouble(r[1]), Double.parseDouble(r[2]),
                    SmoothQuant.Criterion.valueOf(criterion.toUpperCase(Locale.ROOT)), true);
        }
        SmoothQuant.requireQuantizable(model, output);   // before calibrating, not after
        try (LanguageModel m = ModelRegistry.load(model); Tokenizer tok = Tokenizer.load(model)) {
            SmoothQuant.Plan plan = SmoothQuant.plan(m, SmoothQuant.calibrationSamples(calib, tok, samples, calibLength), opt);
            if (!plan.alphas().isEmpty()) {
                System.out.println("alpha per smoothing group:");
                plan.alphas().forEach((g, a) -> System.out.printf("  %-55s %.2f%n", g, a));
            }
            SmoothQuant.write(model, output, m, plan, true, activations.equals("dynamic"), method);
        }
    }
}
