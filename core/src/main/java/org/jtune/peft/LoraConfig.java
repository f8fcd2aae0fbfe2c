package org.jtune.peft;

import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.jtune.JTuneException;

/**
 * The part of a Hugging Face PEFT {@code LoraConfig} that jtune understands, field for field in
 * Java case. Targets follow PEFT's {@code check_target_module_exists}: a list of names matches a
 * module path that equals a name or ends with {@code "." + name}; a single string (PEFT's
 * {@code target_modules: str}) is a regular expression that must match the whole path. Exactly one
 * of {@code targetModules} and {@code targetRegex} is set. Options that would change the maths
 * (a trained bias, per-module ranks, DoRA...) are rejected here rather than silently ignored.
 *
 * @param r                   LoRA rank: A is [r, in], B is [out, r]
 * @param loraAlpha           scaling numerator (PEFT stores an int; floats occur in the wild)
 * @param loraDropout         dropout on the LoRA input during training, in [0, 1)
 * @param targetModules       module-name suffixes, or null when {@code targetRegex} is used
 * @param targetRegex         full-match regex over module paths, or null
 * @param fanInFanOut         the base layer stores W as [in, out] (GPT-2 Conv1D); A/B shapes are unchanged
 * @param bias                only "none": jtune trains no biases
 * @param useRslora           scaling = alpha / sqrt(r) instead of alpha / r
 * @param baseModelNameOrPath the model the adapter was trained on (informational), may be null
 * @param taskType            only "CAUSAL_LM"
 */
public record LoraConfig(int r, double loraAlpha, double loraDropout, List<String> targetModules,
                         String targetRegex, boolean fanInFanOut, String bias, boolean useRslora,
                         String baseModelNameOrPath, String taskType) {

    public static final String CAUSAL_LM = "CAUSAL_LM";

    public LoraConfig {
        if (r <= 0) {
            throw new JTuneException("LoRA rank r must be positive, got " + r);
        }
        if (!(loraAlpha > 0) || Double.isInfinite(loraAlpha)) {
            throw new JTuneException("lora_alpha must be a positive number, got " + loraAlpha);
        }
        if (!(loraDropout >= 0 && loraDropout < 1)) {
            throw new JTuneException("lora_dropout must be in [0, 1), got " + loraDropout);
        }
        if ((targetModules == null) == (targetRegex == null)) {
            throw new JTuneException("a LoRA config needs exactly one of target_modules as a list of names or as a regex string; got "
                    + (targetModules == null ? "neither" : "both"));
        }
        if (targetModules != null) {
            targetModules = List.copyOf(targetModules);
            if (targetModules.isEmpty()) {
                throw new JTuneException("target_modules is empty; name at least one module, e.g. "
                        + defaultTargets("llama"));
            }
            for (String t : targetModules) {
                if (t.isBlank()) {
                    throw new JTuneException("target_modules " + targetModules + " contains a blank name");
                }
            }
        } else {
            try {
                Pattern.compile(targetRegex);
            } catch (PatternSyntaxException e) {
                throw new JTuneException("target_modules regex \"" + targetRegex + "\" is not a valid regular expression: "
                        + e.getDescription(), e);
            }
        }
        bias = bias == null ? "none" : bias;
        if (!bias.equals("none")) {
            throw new JTuneException("LoRA bias \"" + bias + "\" is not supported; jtune trains and reads adapters with bias \"none\" only"
                    + " (retrain with bias=\"none\" in PEFT)");
        }
        taskType = taskType == null ? CAUSAL_LM : taskType;
        if (!taskType.equals(CAUSAL_LM)) {
            throw new JTuneException("LoRA task_type \"" + taskType + "\" is not supported; jtune runs causal language models ("
                    + CAUSAL_LM + ")");
        }
    }

    /** A list-target config with PEFT's defaults: dropout 0, bias "none", no rsLoRA, CAUSAL_LM. */
    public static LoraConfig of(int r, double loraAlpha, List<String> targetModules, boolean fanInFanOut) {
        return new LoraConfig(r, loraAlpha, 0.0, targetModules, null, fanInFanOut, "none", false, null, CAUSAL_LM);
    }

    /** jtune's default targets for {@code modelType} (the HF {@code model_type}), fan_in_fan_out set for GPT-2. */
    public static LoraConfig forModel(String modelType, int r, double loraAlpha, String baseModelNameOrPath) {
        return new LoraConfig(r, loraAlpha, 0.0, defaultTargets(modelType), null, "gpt2".equals(norm(modelType)),
                "none", false, baseModelNameOrPath, CAUSAL_LM);
    }

    /**
     * jtune's default LoRA targets per family: the attention projections. These are wider than
     * PEFT's own defaults (which take only q/v on Llama) and are what the goldens use. Suffix
     * matching makes "dense" hit GPT-NeoX's attention.dense but not mlp.dense_h_to_4h, and
     * "attn.c_proj" hit GPT-2's attention output but not mlp.c_proj.
     */
    public static List<String> defaultTargets(String modelType) {
        return switch (norm(modelType)) {
            case "llama", "mistral", "qwen2" -> List.of("q_proj", "k_proj", "v_proj", "o_proj");
            case "gpt2" -> List.of("attn.c_attn", "attn.c_proj");
            case "gpt_neox" -> List.of("query_key_value", "dense");
            case "opt" -> List.of("q_proj", "k_proj", "v_proj", "out_proj");
            default -> throw new JTuneException("no default LoRA targets for model_type \"" + modelType
                    + "\"; known: llama, mistral, qwen2, gpt2, gpt_neox, opt; pass the target module names explicitly");
        };
    }

    private static String norm(String modelType) {
        return Objects.requireNonNull(modelType, "modelType").toLowerCase(Locale.ROOT).replace('-', '_');
    }

    /** alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT's {@code use_rslora}). */
    public double scaling() {
        return useRslora ? loraAlpha / Math.sqrt(r) : loraAlpha / r;
    }

    /** Whether PEFT would wrap the module at {@code modulePath} (e.g. {@code model.layers.0.self_attn.q_proj}). */
    public boolean matches(String modulePath) {
        if (targetRegex != null) {
            return Pattern.matches(targetRegex, modulePath);
        }
        for (String t : targetModules) {
            if (modulePath.equals(t) || modulePath.endsWith("." + t)) {
                return true;
            }
        }
        return false;
    }

    /** The targets as PEFT would print them: the list, or the regex string. */
    public String describeTargets() {
        return targetRegex != null ? "regex \"" + targetRegex + "\"" : targetModules.toString();
    }
}
