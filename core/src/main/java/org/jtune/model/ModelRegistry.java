package org.jtune.model;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.config.HfConfig;
import org.jtune.io.safetensors.WeightFiles;
import org.jtune.model.gpt2.Gpt2;
import org.jtune.model.llama.Llama;
import org.jtune.model.neox.GptNeoX;
import org.jtune.model.opt.Opt;

/**
 * The one static list of model families, keyed by config.json's {@code model_type}. Adding a family
 * means adding its file under {@code model/<family>/} and one line here.
 */
public final class ModelRegistry {
    /** A family: the model_type values it serves and how it loads. */
    public record Family(String name, List<String> modelTypes, Loader loader) {
    }

    /** How a family builds a model from its config and weights. */
    @FunctionalInterface
    public interface Loader {
        LanguageModel load(HfConfig config, WeightFiles files, WeightLoader.Options options);
    }

    public static final List<Family> FAMILIES = List.of(
            new Family("llama", Llama.MODEL_TYPES, Llama::load),
            new Family("gpt2", Gpt2.MODEL_TYPES, Gpt2::load),
            new Family("gpt_neox", GptNeoX.MODEL_TYPES, GptNeoX::load),
            new Family("opt", Opt.MODEL_TYPES, Opt::load));

    private ModelRegistry() {
    }

    public static List<String> supportedModelTypes() {
        return FAMILIES.stream().flatMap(f -> f.modelTypes().stream()).toList();
    }

    public static Family familyOf(HfConfig cfg) {
        String type = cfg.modelType();
        return FAMILIES.stream().filter(f -> f.modelTypes().contains(type)).findFirst()
                .orElseThrow(() -> new JTuneException("unknown model_type \"" + type + "\" in " + cfg.source()
                        + "; jtune supports " + supportedModelTypes()));
    }

    /** A W8A8 model's activation quantization, from {@code quantization_config.activations}. */
    static WeightLoader.ActivationQuant activationQuant(HfConfig cfg) {
        var qc = cfg.getObject("quantization_config");
        if (qc.isEmpty() || !qc.get().has("activations")) {
            return WeightLoader.ActivationQuant.NONE;
        }
        String a = qc.get().get("activations").asText();
        return switch (a) {
            case "static" -> WeightLoader.ActivationQuant.STATIC;
            case "dynamic" -> WeightLoader.ActivationQuant.DYNAMIC;
            default -> throw cfg.unsupported("quantization_config.activations", "\"" + a + "\"", "expected static or dynamic");
        };
    }

    /** Loads config.json and the safetensors weights of a Hugging Face model directory, for inference. */
    public static LanguageModel load(Path modelDir) {
        return load(modelDir, WeightLoader.Options.INFERENCE);
    }

    /** Loads a model; {@link WeightLoader.Options#TRAINABLE} gives it f32 master weights for full fine-tuning. */
    public static LanguageModel load(Path modelDir, WeightLoader.Options options) {
        if (!Files.isDirectory(modelDir)) {
            throw new JTuneException("model directory " + modelDir + " does not exist");
        }
        HfConfig cfg = HfConfig.load(modelDir);
        Family family = familyOf(cfg);
        options = options.withActivations(activationQuant(cfg));
        if (options.trainable() && options.activations() != WeightLoader.ActivationQuant.NONE) {
            throw new JTuneException(modelDir + " is a W8A8 quantized model; fine-tune the original model instead");
        }
        WeightFiles files = WeightFiles.open(modelDir);
        try {
            return family.loader().load(cfg, files, options);
        } catch (RuntimeException e) {
            files.close();
            throw e;
        }
    }
}
