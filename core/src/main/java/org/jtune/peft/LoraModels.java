package org.jtune.peft;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.jtune.JTuneException;
import org.jtune.io.ModelDirWriter;
import org.jtune.config.HfConfig;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.io.safetensors.TensorInfo;
import org.jtune.io.safetensors.WeightFiles;
import org.jtune.model.LanguageModel;
import org.jtune.model.Linear;
import org.jtune.model.ModelRegistry;
import org.jtune.model.WeightLoader;

/**
 * LoRA adapters meeting models: attach one to a loaded model (generation with {@code --adapter},
 * no merging), or fold one into the base weights and write a normal HF model directory
 * ({@code jtune merge}).
 */
public final class LoraModels {
    private LoraModels() {
    }

    /**
     * The model's layer for an adapter module path. PEFT names modules from the top of the HF model
     * (e.g. {@code transformer.h.0.attn.c_attn}); checkpoints saved without that prefix name the layer
     * {@code h.0.attn.c_attn}, so a match on either side's dotted suffix counts.
     */
    static Linear find(Map<String, Linear> linears, String path) {
        Linear l = linears.get(path);
        if (l != null) {
            return l;
        }
        for (Map.Entry<String, Linear> e : linears.entrySet()) {
            if (path.endsWith("." + e.getKey()) || e.getKey().endsWith("." + path)) {
                return e.getValue();
            }
        }
        return null;
    }

    private static Map<String, Linear> linears(LanguageModel model) {
        Map<String, Linear> m = new HashMap<>();
        for (Linear l : model.linearLayers()) {
            m.put(l.module(), l);
        }
        return m;
    }

    /** Attaches every module of the adapter to the model's layers; fails naming a module the model lacks. */
    public static void attach(LanguageModel model, LoraAdapter adapter) {
        Map<String, Linear> linears = linears(model);
        float scaling = (float) adapter.config().scaling();
        for (Map.Entry<String, LoraWeights> e : adapter.modules().entrySet()) {
            Linear l = find(linears, e.getKey());
            if (l == null) {
                throw new JTuneException("adapter module " + e.getKey() + " has no layer in this " + model.info().modelType()
                        + " model; was the adapter trained on another architecture?");
            }
            LoraWeights w = e.getValue();
            l.attach(Linear.Lora.of(w.a(), w.b(), w.r(), w.in(), w.out(), scaling));
        }
    }

    /**
     * Writes {@code base + adapter} as an HF model directory: each adapted weight becomes
     * {@code W + scaling * B A} (computed in f32, stored in the base weight's dtype); everything else
     * is copied. The output appears atomically.
     */
    public static void merge(Path modelDir, Path adapterDir, Path outDir) {
        ModelDirWriter.requireNew(outDir);
        if (HfConfig.load(modelDir).has("quantization_config")) {
            throw new JTuneException(modelDir + " is quantized; merge the adapter into the original model, then quantize");
        }
        LoraAdapter adapter = LoraAdapter.load(adapterDir);
        try (LanguageModel model = ModelRegistry.load(modelDir); WeightFiles files = WeightFiles.open(modelDir)) {
            Map<String, Linear> linears = linears(model);
            Map<String, WeightLoader.Loaded> byName = new HashMap<>();
            for (WeightLoader.Loaded m : model.weights().matrices()) {
                byName.put(m.name(), m);
            }
            Map<String, float[]> merged = new HashMap<>();
            float scaling = (float) adapter.config().scaling();
            for (Map.Entry<String, LoraWeights> e : adapter.modules().entrySet()) {
                Linear l = find(linears, e.getKey());
                if (l == null) {
                    throw new JTuneException("adapter module " + e.getKey() + " has no layer in " + modelDir);
                }
                String name = l.module() + ".weight";
                WeightLoader.Loaded loaded = byName.get(name);
                LoraWeights w = e.getValue();
                int rows = l.outFeatures(), cols = l.inFeatures(), r = w.r();
                float[] out = new float[rows * cols];
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) {
                        double delta = 0;
                        for (int k = 0; k < r; k++) {
                            delta += (double) w.b()[i * r + k] * w.a()[k * cols + j];
                        }
                        float v = l.weight().get(i, j) + (float) (scaling * delta);
                        if (loaded.transposedOnDisk()) {
                            out[j * rows + i] = v;     // back to the checkpoint's [in, out] layout
                        } else {
                            out[i * cols + j] = v;
                        }
                    }
                }
                merged.put(name, out);
            }
            SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
            for (String name : files.names().stream().sorted().toList()) {
                TensorInfo info = files.info(name);
                float[] m = merged.get(name);
                if (m != null) {
                    writer.addFloats(name, info.dtype() == DType.F32 || info.dtype() == DType.BF16 || info.dtype() == DType.F16
                            ? info.dtype() : DType.F32, info.shape(), m);
                } else {
                    writer.add(name, info.dtype(), info.shape(), files.data(name));
                }
            }
            ModelDirWriter.write(modelDir, outDir, writer, null, false);
        }
    }
}
