package org.jtune.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.jtune.JTuneException;

/**
 * A Hugging Face {@code config.json}, read with typed accessors that name the file and key in every
 * error. Model families map it explicitly into their own config records (see e.g.
 * {@code LlamaConfig}), stating each default there; this class only parses and type-checks.
 */
public final class HfConfig {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path source;
    private final JsonNode root;

    private HfConfig(Path source, JsonNode root) {
        this.source = source;
        this.root = root;
    }

    /** Reads {@code dir/config.json}. */
    public static HfConfig load(Path modelDir) {
        Path file = modelDir.resolve("config.json");
        if (!Files.isRegularFile(file)) {
            throw new JTuneException("no config.json in " + modelDir
                    + "; a model directory must be a Hugging Face checkpoint (config.json + *.safetensors)");
        }
        return loadFile(file);
    }

    /** Reads any HF-style JSON object file (config.json, generation_config.json, ...). */
    public static HfConfig loadFile(Path file) {
        try {
            return parse(file, Files.readString(file));
        } catch (IOException e) {
            throw new JTuneException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /** Parses JSON text; {@code source} is only used in messages. */
    public static HfConfig parse(Path source, String json) {
        JsonNode node;
        try {
            node = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new JTuneException(source + " is not valid JSON (" + e.getOriginalMessage() + " at line "
                    + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr()
                    + "); fix or re-download the file", e);
        }
        if (node == null || !node.isObject()) {
            throw new JTuneException(source + " must hold a JSON object, found "
                    + (node == null ? "nothing" : node.getNodeType().toString().toLowerCase()));
        }
        return new HfConfig(source, node);
    }

    public Path source() {
        return source;
    }

    public JsonNode json() {
        return root;
    }

    public boolean has(String key) {
        JsonNode n = root.get(key);
        return n != null && !n.isNull();
    }

    /** {@code model_type}, required: it selects the model family. */
    public String modelType() {
        if (!has("model_type")) {
            throw new JTuneException(source + " has no \"model_type\"; it should name the architecture, e.g. \"llama\"");
        }
        return requireString("model_type");
    }

    public String requireString(String key) {
        JsonNode n = require(key);
        if (!n.isTextual()) {
            throw typeError(key, "a string", n);
        }
        return n.asText();
    }

    public String getString(String key, String defaultValue) {
        return has(key) ? requireString(key) : defaultValue;
    }

    public int requireInt(String key) {
        JsonNode n = require(key);
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw typeError(key, "an integer", n);
        }
        return n.asInt();
    }

    public int getInt(String key, int defaultValue) {
        return has(key) ? requireInt(key) : defaultValue;
    }

    /** A positive integer, with a default when absent. */
    public int getPositiveInt(String key, int defaultValue) {
        int v = getInt(key, defaultValue);
        if (v <= 0) {
            throw new JTuneException(source + ": \"" + key + "\" must be positive, got " + v);
        }
        return v;
    }

    public int requirePositiveInt(String key) {
        int v = requireInt(key);
        if (v <= 0) {
            throw new JTuneException(source + ": \"" + key + "\" must be positive, got " + v);
        }
        return v;
    }

    public double requireDouble(String key) {
        JsonNode n = require(key);
        if (!n.isNumber()) {
            throw typeError(key, "a number", n);
        }
        return n.asDouble();
    }

    public double getDouble(String key, double defaultValue) {
        return has(key) ? requireDouble(key) : defaultValue;
    }

    public boolean getBoolean(String key, boolean defaultValue) {
        if (!has(key)) {
            return defaultValue;
        }
        JsonNode n = root.get(key);
        if (!n.isBoolean()) {
            throw typeError(key, "true or false", n);
        }
        return n.asBoolean();
    }

    /** An int or a list of ints (HF allows both for eos_token_id); empty when absent. */
    public List<Integer> getIntList(String key) {
        List<Integer> out = new ArrayList<>();
        if (!has(key)) {
            return out;
        }
        JsonNode n = root.get(key);
        if (n.isIntegralNumber()) {
            out.add(n.asInt());
        } else if (n.isArray()) {
            for (JsonNode e : n) {
                if (!e.isIntegralNumber()) {
                    throw typeError(key, "an integer or a list of integers", n);
                }
                out.add(e.asInt());
            }
        } else {
            throw typeError(key, "an integer or a list of integers", n);
        }
        return out;
    }

    /** A nested object, if present and not null. */
    public Optional<JsonNode> getObject(String key) {
        if (!has(key)) {
            return Optional.empty();
        }
        JsonNode n = root.get(key);
        if (!n.isObject()) {
            throw typeError(key, "an object", n);
        }
        return Optional.of(n);
    }

    /** Fails naming key and value: for configuration values jtune does not implement. */
    public JTuneException unsupported(String key, Object value, String hint) {
        return new JTuneException(source + ": \"" + key + "\" = " + value + " is not supported" + (hint.isEmpty() ? "" : "; " + hint));
    }

    private JsonNode require(String key) {
        if (!has(key)) {
            throw new JTuneException(source + " is missing the required key \"" + key + "\"");
        }
        return root.get(key);
    }

    private JTuneException typeError(String key, String expected, JsonNode got) {
        return new JTuneException(source + ": \"" + key + "\" must be " + expected + ", got " + got);
    }
}
