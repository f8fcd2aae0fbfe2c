package org.jtune.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.reflect.RecordComponent;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.jtune.JTuneException;
import org.yaml.snakeyaml.Yaml;

/**
 * Every setting of a fine-tuning run, with its default. A run is configured by a JSON or YAML file
 * and/or command-line flags (flags win); keys may be written camelCase, kebab-case or snake_case
 * ({@code max-length}, {@code max_length}, {@code maxLength}). Unknown keys are errors, so a typo
 * never silently falls back to a default. The effective configuration is saved with every run.
 */
public record FineTuneConfig(
        String model, String data, String output, String method,
        int epochs, long maxSteps, int batchSize, int gradAccum, int maxLength, boolean pack,
        Double lr, String schedule, long warmupSteps, double minLrRatio,
        double weightDecay, double beta1, double beta2, double eps, double maxGradNorm,
        int loraR, double loraAlpha, double loraDropout, List<String> targetModules,
        double valFraction, int valCount, int evalEvery, int saveEvery, int logEvery,
        long seed, boolean trainOnPrompt, boolean skipMalformed, String promptFormat) {

    private static final ObjectMapper JSON = new ObjectMapper();

    public static FineTuneConfig defaults() {
        return new FineTuneConfig(null, null, null, "lora",
                1, -1, 4, 1, 256, false,
                null, "cosine", 0, 0.0,
                0.01, 0.9, 0.999, 1e-8, 1.0,
                8, 16, 0.0, null,
                0.05, 0, 50, 100, 1,
                42, false, false, "auto");
    }

    @com.fasterxml.jackson.annotation.JsonIgnore
    public boolean isLora() {
        return method.equals("lora");
    }

    /** Learning rate: as set, else 2e-4 for LoRA and 2e-5 for full fine-tuning. */
    public double learningRate() {
        return lr != null ? lr : isLora() ? 2e-4 : 2e-5;
    }

    /** Reads a JSON or YAML file (by extension; .yml/.yaml are YAML) of settings. */
    public static Map<String, Object> readFile(Path file) {
        try {
            String text = Files.readString(file);
            String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
            Object parsed = name.endsWith(".yaml") || name.endsWith(".yml") ? new Yaml().load(text)
                    : JSON.readValue(text, Object.class);
            if (!(parsed instanceof Map<?, ?> map)) {
                throw new JTuneException(file + " must hold a mapping of settings (key: value), found " + parsed);
            }
            Map<String, Object> out = new LinkedHashMap<>();
            map.forEach((k, v) -> out.put(String.valueOf(k), v));
            return out;
        } catch (IOException e) {
            throw new JTuneException("cannot read config file " + file + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            if (e instanceof JTuneException je) {
                throw je;
            }
            throw new JTuneException("config file " + file + " is not valid " + (file.toString().endsWith("json") ? "JSON" : "YAML")
                    + ": " + e.getMessage(), e);
        }
    }

    /** This configuration with {@code settings} applied over it; keys are matched ignoring case, '-' and '_'. */
    public FineTuneConfig with(Map<String, ?> settings) {
        ObjectNode node = JSON.valueToTree(this);
        Map<String, String> names = new LinkedHashMap<>();
        for (RecordComponent c : FineTuneConfig.class.getRecordComponents()) {
            names.put(normalize(c.getName()), c.getName());
        }
        for (Map.Entry<String, ?> e : settings.entrySet()) {
            String name = names.get(normalize(e.getKey()));
            if (name == null) {
                throw new JTuneException("unknown fine-tuning setting \"" + e.getKey() + "\"; known settings: "
                        + String.join(", ", names.values()));
            }
            node.set(name, JSON.valueToTree(e.getValue()));
        }
        try {
            return JSON.treeToValue(node, FineTuneConfig.class).validated();
        } catch (IOException e) {
            throw new JTuneException("invalid fine-tuning settings: " + e.getMessage(), e);
        }
    }

    private static String normalize(String key) {
        return key.replace("-", "").replace("_", "").toLowerCase(Locale.ROOT);
    }

    /** Checks ranges and required settings, naming the setting in each error. */
    public FineTuneConfig validated() {
        require(method.equals("lora") || method.equals("full"), "method", method, "lora or full");
        require(epochs >= 1, "epochs", epochs, "at least 1");
        require(batchSize >= 1, "batch-size", batchSize, "at least 1");
        require(gradAccum >= 1, "grad-accum", gradAccum, "at least 1");
        require(maxLength >= 2, "max-length", maxLength, "at least 2");
        require(lr == null || lr > 0, "lr", lr, "positive");
        require(loraR >= 1, "lora-r", loraR, "at least 1");
        require(loraDropout >= 0 && loraDropout < 1, "lora-dropout", loraDropout, "in [0, 1)");
        require(valFraction >= 0 && valFraction < 1, "val-fraction", valFraction, "in [0, 1)");
        require(maxGradNorm >= 0, "max-grad-norm", maxGradNorm, "0 (off) or positive");
        require(promptFormat.equals("auto") || promptFormat.equals("chat") || promptFormat.equals("alpaca"),
                "prompt-format", promptFormat, "auto, chat or alpaca");
        return this;
    }

    private static void require(boolean ok, String key, Object value, String expected) {
        if (!ok) {
            throw new JTuneException("fine-tuning setting " + key + " = " + value + " is invalid; it must be " + expected);
        }
    }

    /** The effective settings as JSON (saved next to the run's outputs). */
    public JsonNode toJson() {
        return JSON.valueToTree(this);
    }
}
