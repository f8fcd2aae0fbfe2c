package org.jtune.peft;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.io.safetensors.TensorInfo;

/**
 * A LoRA adapter: its {@link LoraConfig} and, per wrapped module path (model order), the A/B
 * factors. Reads and writes exactly PEFT's format: tensors
 * {@code base_model.model.<module>.lora_A.weight} [r, in] and {@code .lora_B.weight} [out, r], F32 on
 * save (bf16/f16 widened on load), plus the adapter-name variant {@code .lora_A.<name>.weight} that
 * some PEFT versions write. The config lists every key PEFT 0.13's {@code LoraConfig.to_dict()}
 * produces, so PEFT loads the result with no warnings.
 */
public final class LoraAdapter implements Adapter {
    public static final String PEFT_TYPE = "LORA";
    static final String KEY_PREFIX = "base_model.model.";

    // <module>.lora_A.weight or <module>.lora_A.<adapter name>.weight
    private static final Pattern KEY = Pattern.compile("(.+)\\.lora_([AB])(?:\\.([^.]+))?\\.weight");

    /**
     * Config keys whose non-default value changes what the weights mean; jtune refuses them rather
     * than computing something else. Everything else PEFT writes is informational here.
     */
    private static final Map<String, String> UNSUPPORTED = orderedMap(
            "use_dora", "DoRA (use_dora)",
            "rank_pattern", "per-module ranks (rank_pattern)",
            "alpha_pattern", "per-module alphas (alpha_pattern)",
            "layers_to_transform", "layer selection (layers_to_transform)",
            "modules_to_save", "fully trained extra modules (modules_to_save)",
            "layer_replication", "layer replication",
            "lora_bias", "a LoRA bias on lora_B (lora_bias)",
            "use_qalora", "QA-LoRA (use_qalora)",
            "trainable_token_indices", "trainable token indices",
            "target_parameters", "parameter targets (target_parameters)");

    private static final Pattern RESIDUAL_INITS = Pattern.compile("(?i)(pissa|olora|loftq|corda)");

    private final LoraConfig config;
    private final Map<String, LoraWeights> modules; // module path -> factors, model order

    public LoraAdapter(LoraConfig config, Map<String, LoraWeights> modules) {
        this.config = java.util.Objects.requireNonNull(config, "config");
        if (modules.isEmpty()) {
            throw new JTuneException("a LoRA adapter needs at least one module; none of the model's layers matched "
                    + config.describeTargets());
        }
        for (Map.Entry<String, LoraWeights> e : modules.entrySet()) {
            String path = e.getKey();
            LoraWeights w = e.getValue();
            if (!config.matches(path)) {
                throw new JTuneException("LoRA module " + path + " does not match target_modules " + config.describeTargets()
                        + "; is adapter_config.json from another adapter?");
            }
            if (w.r() != config.r()) {
                throw new JTuneException("LoRA module " + path + " has rank " + w.r() + " but the config says r=" + config.r()
                        + "; is adapter_config.json from another adapter?");
            }
        }
        this.modules = Collections.unmodifiableMap(new LinkedHashMap<>(modules));
    }

    public LoraConfig config() {
        return config;
    }

    /** Module path (e.g. {@code model.layers.0.self_attn.q_proj}) to factors, in model order. Unmodifiable. */
    public Map<String, LoraWeights> modules() {
        return modules;
    }

    /** The factors for {@code modulePath}, or null when that module is not adapted. */
    public LoraWeights get(String modulePath) {
        return modules.get(modulePath);
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public String baseModelNameOrPath() {
        return config.baseModelNameOrPath();
    }

    /**
     * A fresh adapter as PEFT initialises one: A ~ kaiming_uniform(a=√5) over fan_in = in, i.e.
     * gain = sqrt(2 / (1 + a²)) = sqrt(1/3), bound = gain · sqrt(3 / in) = 1/√in, so U(−1/√in, 1/√in);
     * B = 0, so the adapted model starts equal to the base. Every module of {@code moduleShapes}
     * (path → {out, in}, model order) matching the targets is wrapped; the others are skipped.
     * Each module draws from its own stream seeded by (seed, path), so values do not depend on
     * which other modules are present.
     */
    public static LoraAdapter init(LoraConfig config, Map<String, int[]> moduleShapes, long seed) {
        Map<String, LoraWeights> out = new LinkedHashMap<>();
        for (Map.Entry<String, int[]> e : moduleShapes.entrySet()) {
            String path = e.getKey();
            if (!config.matches(path)) {
                continue;
            }
            int[] shape = e.getValue();
            if (shape.length != 2 || shape[0] <= 0 || shape[1] <= 0) {
                throw new JTuneException("module " + path + " shape " + Arrays.toString(shape) + " must be {out, in}, both positive");
            }
            int nOut = shape[0];
            int nIn = shape[1];
            SplittableRandom rng = new SplittableRandom(seed ^ (0x9E3779B97F4A7C15L * (path.hashCode() + 1L)));
            double bound = 1.0 / Math.sqrt(nIn);
            float[] a = new float[Math.multiplyExact(config.r(), nIn)];
            for (int i = 0; i < a.length; i++) {
                // rng.nextDouble(-b, b) is in [-b, b); the float rounding may land on ±b, still in range
                a[i] = (float) rng.nextDouble(-bound, bound);
            }
            out.put(path, new LoraWeights(a, new float[Math.multiplyExact(nOut, config.r())], nIn, nOut));
        }
        if (out.isEmpty()) {
            throw new JTuneException("no module matched LoRA target_modules " + config.describeTargets() + " among "
                    + moduleShapes.size() + " modules" + sample(moduleShapes.keySet())
                    + "; check the names (PEFT matches the full path or a \".\"-separated suffix)");
        }
        return new LoraAdapter(config, out);
    }

    private static String sample(java.util.Collection<String> names) {
        List<String> l = new ArrayList<>(names);
        return l.isEmpty() ? "" : " (e.g. " + String.join(", ", l.subList(0, Math.min(4, l.size()))) + ")";
    }

    // ---- save ----

    /** PEFT 0.13's adapter_config.json for this config: every key {@code LoraConfig.to_dict()} writes. */
    public ObjectNode configJson() {
        ObjectNode c = AdapterFiles.json().createObjectNode();
        c.putObject("alpha_pattern");
        c.putNull("auto_mapping");
        c.put("base_model_name_or_path", config.baseModelNameOrPath());
        c.put("bias", config.bias());
        c.put("fan_in_fan_out", config.fanInFanOut());
        c.put("inference_mode", true);
        c.put("init_lora_weights", true);
        c.putNull("layer_replication");
        c.putNull("layers_pattern");
        c.putNull("layers_to_transform");
        c.putObject("loftq_config");
        double alpha = config.loraAlpha();
        if (alpha == Math.rint(alpha) && Math.abs(alpha) < 1e15) {
            c.put("lora_alpha", (long) alpha); // PEFT declares lora_alpha: int
        } else {
            c.put("lora_alpha", alpha);
        }
        c.put("lora_dropout", config.loraDropout());
        c.putNull("megatron_config");
        c.put("megatron_core", "megatron.core");
        c.putNull("modules_to_save");
        c.put("peft_type", PEFT_TYPE);
        c.put("r", config.r());
        c.putObject("rank_pattern");
        c.putNull("revision");
        if (config.targetRegex() != null) {
            c.put("target_modules", config.targetRegex());
        } else {
            ArrayNode t = c.putArray("target_modules");
            config.targetModules().forEach(t::add);
        }
        c.put("task_type", config.taskType());
        c.put("use_dora", false);
        c.put("use_rslora", config.useRslora());
        return c;
    }

    /** Writes {@code adapter_config.json} and {@code adapter_model.safetensors} into {@code dir}, PEFT-loadable. */
    @Override
    public void save(Path dir) {
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        for (Map.Entry<String, LoraWeights> e : modules.entrySet()) {
            LoraWeights lw = e.getValue();
            String base = KEY_PREFIX + e.getKey();
            w.addFloats(base + ".lora_A.weight", DType.F32, new long[] {lw.r(), lw.in()}, lw.a());
            w.addFloats(base + ".lora_B.weight", DType.F32, new long[] {lw.out(), lw.r()}, lw.b());
        }
        AdapterFiles.writeAdapter(dir, configJson(), w);
    }

    // ---- load ----

    /** Reads a PEFT LoRA adapter directory, validating config and tensors against each other. */
    public static LoraAdapter load(Path dir) {
        ObjectNode json = AdapterFiles.readConfig(dir);
        String type = AdapterFiles.peftType(json, dir);
        if (!type.equals(PEFT_TYPE)) {
            throw new JTuneException(dir.resolve(AdapterFiles.CONFIG) + " has peft_type \"" + type + "\", not " + PEFT_TYPE
                    + "; use Adapters.load to read any supported adapter");
        }
        LoraConfig config = parseConfig(json, dir);
        return new LoraAdapter(config, readWeights(AdapterFiles.weightsFile(dir), config));
    }

    static LoraConfig parseConfig(ObjectNode c, Path dir) {
        Path file = dir.resolve(AdapterFiles.CONFIG);
        for (Map.Entry<String, String> u : UNSUPPORTED.entrySet()) {
            JsonNode n = c.get(u.getKey());
            if (!AdapterFiles.unset(n)) {
                throw new JTuneException(file + " uses " + u.getValue() + " = " + n + ", which jtune does not support;"
                        + " retrain without it or merge the adapter in PEFT first");
            }
        }
        JsonNode init = c.get("init_lora_weights");
        if (init != null && init.isTextual() && RESIDUAL_INITS.matcher(init.asText()).lookingAt()) {
            // these initialisations subtract B·A from the base weights; such an adapter only works on that modified base
            throw new JTuneException(file + " has init_lora_weights \"" + init.asText() + "\", which expects base weights"
                    + " modified at initialisation; save it from PEFT with path_initial_model_for_weight_conversion"
                    + " so it applies to the original model");
        }
        int r = AdapterFiles.requiredInt(c, "r", dir);
        double alpha = AdapterFiles.optionalDouble(c, "lora_alpha", 8, dir); // PEFT's default
        double dropout = AdapterFiles.optionalDouble(c, "lora_dropout", 0.0, dir);
        JsonNode t = c.get("target_modules");
        List<String> targets = null;
        String regex = null;
        if (t == null || t.isNull()) {
            throw new JTuneException(file + " has no target_modules; PEFT fills them from the model type when training,"
                    + " so a saved adapter always names them; is the config hand-written?");
        } else if (t.isTextual()) {
            regex = t.asText();
        } else if (t.isArray()) {
            targets = new ArrayList<>();
            for (JsonNode e : t) {
                if (!e.isTextual()) {
                    throw new JTuneException(file + ": target_modules entries must be strings, found " + e);
                }
                targets.add(e.asText());
            }
        } else {
            throw new JTuneException(file + ": target_modules must be a list of names or a regex string, found " + t);
        }
        try {
            return new LoraConfig(r, alpha, dropout, targets, regex,
                    AdapterFiles.optionalBoolean(c, "fan_in_fan_out", false, dir),
                    AdapterFiles.optionalString(c, "bias", dir),
                    AdapterFiles.optionalBoolean(c, "use_rslora", false, dir),
                    AdapterFiles.optionalString(c, "base_model_name_or_path", dir),
                    AdapterFiles.optionalString(c, "task_type", dir));
        } catch (JTuneException e) {
            throw new JTuneException(file + ": " + e.getMessage(), e);
        }
    }

    private static Map<String, LoraWeights> readWeights(Path file, LoraConfig config) {
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            Map<String, String[]> keys = new LinkedHashMap<>(); // module -> {A key, B key}
            TreeSet<String> unknown = new TreeSet<>();
            String adapterName = null;
            for (String name : st.tensors().keySet()) {
                Matcher m = name.startsWith(KEY_PREFIX) ? KEY.matcher(name.substring(KEY_PREFIX.length())) : null;
                if (m == null || !m.matches()) {
                    unknown.add(name);
                    continue;
                }
                String an = m.group(3) == null ? "" : m.group(3);
                if (adapterName == null) {
                    adapterName = an;
                } else if (!adapterName.equals(an)) {
                    throw new JTuneException(file + " mixes adapter names \"" + adapterName + "\" and \"" + an
                            + "\" (in " + name + "); jtune reads one adapter per directory");
                }
                String[] pair = keys.computeIfAbsent(m.group(1), k -> new String[2]);
                int slot = m.group(2).equals("A") ? 0 : 1;
                if (pair[slot] != null) {
                    throw new JTuneException(file + " holds both " + pair[slot] + " and " + name + " for one matrix");
                }
                pair[slot] = name;
            }
            if (!unknown.isEmpty()) {
                throw new JTuneException(file + " has tensors that are not LoRA A/B weights: " + abbreviate(unknown)
                        + "; expected base_model.model.<module>.lora_A.weight / .lora_B.weight"
                        + " (embedding LoRA, DoRA magnitudes, biases and modules_to_save are not supported)");
            }
            Map<String, LoraWeights> out = new LinkedHashMap<>();
            for (Map.Entry<String, String[]> e : keys.entrySet()) {
                String module = e.getKey();
                String aKey = e.getValue()[0];
                String bKey = e.getValue()[1];
                if (aKey == null || bKey == null) {
                    throw new JTuneException(file + ": module " + module + " has " + (aKey == null ? "lora_B but no lora_A" : "lora_A but no lora_B")
                            + "; the adapter file is incomplete");
                }
                TensorInfo a = st.info(aKey);
                TensorInfo b = st.info(bKey);
                if (a.rank() != 2 || b.rank() != 2) {
                    throw new JTuneException(file + ": " + module + " lora_A " + Arrays.toString(a.shape()) + " and lora_B "
                            + Arrays.toString(b.shape()) + " must both be matrices");
                }
                if (a.dim(0) != config.r() || b.dim(1) != config.r()) {
                    throw new JTuneException(file + ": " + module + " lora_A has shape " + Arrays.toString(a.shape())
                            + " and lora_B " + Arrays.toString(b.shape()) + " but r=" + config.r()
                            + " needs [" + config.r() + ", in] and [out, " + config.r() + "]; is adapter_config.json from another adapter?");
                }
                if (!a.dtype().isFloatingPoint() || !b.dtype().isFloatingPoint()) {
                    throw new JTuneException(file + ": " + module + " LoRA weights must be floating point, found "
                            + a.dtype() + " / " + b.dtype());
                }
                out.put(module, new LoraWeights(st.readFloats(aKey), st.readFloats(bKey),
                        Math.toIntExact(a.dim(1)), Math.toIntExact(b.dim(0))));
            }
            if (out.isEmpty()) {
                throw new JTuneException(file + " holds no LoRA weights");
            }
            return out;
        }
    }

    private static String abbreviate(java.util.Collection<String> names) {
        List<String> l = new ArrayList<>(names);
        return l.size() <= 5 ? l.toString() : l.subList(0, 5) + " and " + (l.size() - 5) + " more";
    }

    private static Map<String, String> orderedMap(String... kv) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return Collections.unmodifiableMap(m);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LoraAdapter l && config.equals(l.config) && modules.equals(l.modules);
    }

    @Override
    public int hashCode() {
        return 31 * config.hashCode() + modules.hashCode();
    }

    @Override
    public String toString() {
        return "LoraAdapter[r=" + config.r() + ", alpha=" + config.loraAlpha() + ", " + modules.size() + " modules, targets="
                + config.describeTargets() + "]";
    }
}
