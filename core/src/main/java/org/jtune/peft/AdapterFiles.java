package org.jtune.peft;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.SafetensorsWriter;

/**
 * The file plumbing shared by every adapter kind: reading {@code adapter_config.json} with errors
 * that name the file and key, writing it byte-for-byte the way PEFT does ({@code json.dumps(indent=2,
 * sort_keys=True)}), and replacing an adapter directory's two files without ever leaving a
 * mismatched pair behind.
 */
final class AdapterFiles {
    static final String CONFIG = "adapter_config.json";
    static final String WEIGHTS = "adapter_model.safetensors";

    private static final ObjectMapper JSON = new ObjectMapper();

    private AdapterFiles() {}

    static ObjectMapper json() {
        return JSON;
    }

    /** Parses {@code dir/adapter_config.json} into an object node. */
    static ObjectNode readConfig(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new JTuneException("adapter directory " + dir + " does not exist or is not a directory; "
                    + "pass the folder holding adapter_config.json and adapter_model.safetensors");
        }
        Path file = dir.resolve(CONFIG);
        JsonNode node;
        try {
            node = JSON.readTree(Files.readAllBytes(file));
        } catch (NoSuchFileException e) {
            throw new JTuneException("no " + CONFIG + " in " + dir + "; is this a PEFT adapter directory?"
                    + " (PEFT's save_pretrained writes adapter_config.json and adapter_model.safetensors)");
        } catch (JsonProcessingException e) {
            throw new JTuneException(file + " is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new JTuneException("cannot read " + file + ": " + e.getMessage(), e);
        }
        if (!(node instanceof ObjectNode obj)) {
            throw new JTuneException(file + " must hold a JSON object, found " + (node == null ? "nothing" : node.getNodeType()));
        }
        return obj;
    }

    /** The weights file of {@code dir}, with a hint when only PEFT's legacy pickle is there. */
    static Path weightsFile(Path dir) {
        Path file = dir.resolve(WEIGHTS);
        if (!Files.isRegularFile(file)) {
            String hint = Files.exists(dir.resolve("adapter_model.bin"))
                    ? "; only adapter_model.bin (a PyTorch pickle) is there: re-save with PEFT's save_pretrained(safe_serialization=True)"
                    : "; is the adapter directory complete?";
            throw new JTuneException("no " + WEIGHTS + " in " + dir + hint);
        }
        return file;
    }

    static String peftType(ObjectNode config, Path dir) {
        JsonNode t = config.get("peft_type");
        if (t == null || !t.isTextual()) {
            throw new JTuneException(dir.resolve(CONFIG) + " has no peft_type string; is this a PEFT adapter config?");
        }
        return t.asText();
    }

    // ---- typed field access, with errors naming the file and key ----

    static int requiredInt(ObjectNode c, String key, Path dir) {
        JsonNode n = c.get(key);
        if (n == null || n.isNull()) {
            throw new JTuneException(dir.resolve(CONFIG) + " is missing \"" + key + "\"");
        }
        return asInt(n, key, dir);
    }

    static Integer optionalInt(ObjectNode c, String key, Path dir) {
        JsonNode n = c.get(key);
        return n == null || n.isNull() ? null : asInt(n, key, dir);
    }

    private static int asInt(JsonNode n, String key, Path dir) {
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw new JTuneException(dir.resolve(CONFIG) + ": \"" + key + "\" must be an integer, found " + n);
        }
        return n.intValue();
    }

    static double optionalDouble(ObjectNode c, String key, double dflt, Path dir) {
        JsonNode n = c.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isNumber()) {
            throw new JTuneException(dir.resolve(CONFIG) + ": \"" + key + "\" must be a number, found " + n);
        }
        return n.doubleValue();
    }

    static boolean optionalBoolean(ObjectNode c, String key, boolean dflt, Path dir) {
        JsonNode n = c.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isBoolean()) {
            throw new JTuneException(dir.resolve(CONFIG) + ": \"" + key + "\" must be true or false, found " + n);
        }
        return n.booleanValue();
    }

    static String optionalString(ObjectNode c, String key, Path dir) {
        JsonNode n = c.get(key);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isTextual()) {
            throw new JTuneException(dir.resolve(CONFIG) + ": \"" + key + "\" must be a string, found " + n);
        }
        return n.asText();
    }

    /** True when the key is absent, null, false, or an empty object/array: PEFT's "not used" values. */
    static boolean unset(JsonNode n) {
        return n == null || n.isNull() || (n.isBoolean() && !n.booleanValue()) || (n.isContainerNode() && n.isEmpty());
    }

    // ---- writing ----

    /**
     * Writes the pair into {@code dir}. Both files are first written beside their targets under
     * temporary names and fsynced; then the old config is deleted, the weights renamed into place,
     * and the config renamed last. A crash before the delete leaves the old adapter intact; after
     * it, the directory has no config and fails to load with a clear message, never a new config
     * over old weights or the reverse.
     */
    static void writeAdapter(Path dir, ObjectNode config, SafetensorsWriter weights) {
        Path target = dir.toAbsolutePath();
        Path weightsTmp = target.resolve("." + WEIGHTS + ".partial");
        Path configTmp = target.resolve("." + CONFIG + ".partial");
        boolean done = false;
        try {
            Files.createDirectories(target);
            weights.write(weightsTmp);
            try (FileChannel ch = FileChannel.open(configTmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer b = ByteBuffer.wrap(pythonJson(config).getBytes(StandardCharsets.UTF_8));
                while (b.hasRemaining()) {
                    ch.write(b);
                }
                ch.force(true);
            }
            Files.deleteIfExists(target.resolve(CONFIG));
            Files.move(weightsTmp, target.resolve(WEIGHTS), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            Files.move(configTmp, target.resolve(CONFIG), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            syncDirectory(target);
            done = true;
        } catch (IOException e) {
            throw new JTuneException("cannot save adapter to " + target + ": " + e.getMessage()
                    + "; is the disk full or the directory read-only?", e);
        } finally {
            if (!done) {
                deleteQuietly(weightsTmp);
                deleteQuietly(configTmp);
            }
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // the original failure is the one worth reporting
        }
    }

    // Makes the renames durable where the platform lets us open a directory; elsewhere best effort.
    private static void syncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // not supported on this platform/filesystem
        }
    }

    /** Python's {@code json.dumps(node, indent=2, sort_keys=True)}, which is how PEFT writes configs. */
    static String pythonJson(JsonNode node) {
        StringBuilder sb = new StringBuilder();
        append(sb, node, 0);
        return sb.toString();
    }

    private static void append(StringBuilder sb, JsonNode n, int depth) {
        if (n == null || n.isNull() || n.isMissingNode()) {
            sb.append("null");
        } else if (n.isBoolean()) {
            sb.append(n.booleanValue());
        } else if (n.isIntegralNumber()) {
            sb.append(n.bigIntegerValue());
        } else if (n.isNumber()) {
            sb.append(pythonFloat(n.doubleValue()));
        } else if (n.isTextual()) {
            pythonString(sb, n.asText());
        } else if (n.isArray()) {
            if (n.isEmpty()) {
                sb.append("[]");
                return;
            }
            sb.append('[');
            for (int i = 0; i < n.size(); i++) {
                sb.append(i == 0 ? "\n" : ",\n").append("  ".repeat(depth + 1));
                append(sb, n.get(i), depth + 1);
            }
            sb.append('\n').append("  ".repeat(depth)).append(']');
        } else if (n.isObject()) {
            if (n.isEmpty()) {
                sb.append("{}");
                return;
            }
            List<String> keys = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
                keys.add(it.next().getKey());
            }
            keys.sort(null); // Python sorts str keys by code point; UTF-16 order agrees for the BMP
            sb.append('{');
            for (int i = 0; i < keys.size(); i++) {
                sb.append(i == 0 ? "\n" : ",\n").append("  ".repeat(depth + 1));
                pythonString(sb, keys.get(i));
                sb.append(": ");
                append(sb, n.get(keys.get(i)), depth + 1);
            }
            sb.append('\n').append("  ".repeat(depth)).append('}');
        } else {
            throw new IllegalArgumentException("unexpected JSON node " + n.getNodeType());
        }
    }

    /** Python's float repr: shortest round-trip digits, exponent form when exp < -4 or >= 16. */
    static String pythonFloat(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        if (d == 0) {
            return (1 / d < 0) ? "-0.0" : "0.0";
        }
        BigDecimal bd = new BigDecimal(Double.toString(Math.abs(d))).stripTrailingZeros();
        String digits = bd.unscaledValue().toString();
        int exp = digits.length() - 1 - bd.scale();
        String sign = d < 0 ? "-" : "";
        if (exp >= -4 && exp < 16) {
            String plain = bd.toPlainString();
            return sign + (plain.contains(".") ? plain : plain + ".0");
        }
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return sign + mantissa + "e" + (exp < 0 ? "-" : "+") + (Math.abs(exp) < 10 ? "0" : "") + Math.abs(exp);
    }

    private static void pythonString(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7f) { // ensure_ascii=True
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }
}
