package org.jtune.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.lang.foreign.MemorySegment;
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
import org.jtune.kernel.Matrix;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelRegistry;
import org.jtune.model.WeightLoader;

/**
 * Writes a quantized copy of a model directory that every command loads directly: the weight
 * matrices the model family loads become I8 tensors (same names, same on-disk orientation) with a
 * {@code <name>_scale} f32 tensor {@code [out_features, in_features / group_size]}; norms, biases and
 * everything else are copied unchanged, and config.json gains a {@code quantization_config}
 * section (see docs/formats.md). {@link #int4Weights} writes packed int4 the same way (U8 tensors, see
 * {@link Int4Weights}). The output appears atomically: it is built in a temporary
 * directory beside the target and renamed at the end.
 */
public final class ModelQuantizer {
    /** Input features per scale by default: llama.cpp's Q8_0 block size. */
    public static final int DEFAULT_GROUP_SIZE = 32;

    /** Weight-only int8 with the given group size; 0 means one scale per output channel. */
    public static void int8Weights(Path src, Path dst, int groupSize) {
        write(src, dst, null, "int8-weight", (w, name, info, l) -> {
            if (l == null) {
                return false;
            }
            Matrix m = l.matrix();
            Matrix q = Int8Weights.quantize(m, groupSize == 0 ? m.cols() : groupSize);
            // stored as row pairs (Matrix.withRowPairs), which the loader maps as they are
            MemorySegment bytes = l.transposedOnDisk() ? transpose(q.data(), m.rows(), m.cols()) : q.withRowPairs().data();
            w.metadata(WeightLoader.I8_LAYOUT_KEY, WeightLoader.I8_ROW_PAIRS);
            w.add(name, DType.I8, info.shape(), bytes);
            w.addFloats(name + WeightLoader.SCALE_SUFFIX, new long[] {m.rows(), q.groupsPerRow()}, q.scales());
            return true;
        }, qc -> {
            qc.put("bits", 8);
            qc.put("symmetric", true);
            qc.put("group_size", groupSize);   // 0 = per output channel
            qc.put("weight_layout", WeightLoader.I8_ROW_PAIRS);
        });
    }

    /**
     * Weight-only int4 (see {@link Int4Weights}) with group size 32, 64 or 128. Every matrix is stored U8
     * {@code [out_features, in_features / 2]} in the loaded orientation, GPT-2's Conv1D weights included
     * ({@code "layout": "out_in"} in the config), with {@code <name>_scale} F32 {@code [out, groups]} and,
     * when asymmetric, {@code <name>_zero} U8 {@code [out, groups]}.
     */
    public static void int4Weights(Path src, Path dst, int groupSize, boolean symmetric) {
        if (groupSize != 32 && groupSize != 64 && groupSize != 128) {
            throw new JTuneException("int4 group size must be 32, 64 or 128, got " + groupSize);
        }
        write(src, dst, null, "int4-weight", (w, name, info, l) -> {
            if (l == null) {
                return false;
            }
            Matrix m = l.matrix();
            if (m.cols() % groupSize != 0) {
                throw new JTuneException("int4 group size " + groupSize + " does not divide the input width "
                        + m.cols() + " of " + name + "; choose a group size that divides every layer's input size");
            }
            Matrix q = Int4Weights.quantize(m, groupSize, symmetric);
            long[] gShape = {m.rows(), q.groupsPerRow()};
            w.add(name, DType.U8, new long[] {m.rows(), m.cols() / 2}, q.data());
            w.addFloats(name + WeightLoader.SCALE_SUFFIX, gShape, q.scales());
            if (!symmetric) {
                byte[] z = new byte[q.zeros().length];
                for (int i = 0; i < z.length; i++) {
                    z[i] = (byte) q.zeros()[i];
                }
                w.add(name + WeightLoader.ZERO_SUFFIX, DType.U8, gShape, MemorySegment.ofArray(z));
            }
            return true;
        }, qc -> {
            qc.put("bits", 4);
            qc.put("symmetric", symmetric);
            qc.put("group_size", groupSize);
            qc.put("layout", "out_in");   // [out, in / 2] for every weight, low nibble = even input feature
            if (!symmetric) {
                qc.put("zero_suffix", WeightLoader.ZERO_SUFFIX);
            }
        });
    }

    /**
     * Writes one checkpoint tensor (and its side tensors) in a new form; {@code loaded} is the matrix
     * the model took from it, or null for other tensors. Returns false to copy the tensor unchanged.
     */
    interface TensorWriter {
        boolean write(SafetensorsWriter w, String name, TensorInfo info, WeightLoader.Loaded loaded);
    }

    /** Fails before any work when {@code src} is already quantized or {@code dst} exists: nothing is overwritten. */
    static HfConfig requireQuantizable(Path src, Path dst) {
        HfConfig cfg = HfConfig.load(src);
        if (cfg.has("quantization_config")) {
            throw new JTuneException(src + " is already quantized (config.json has quantization_config "
                    + cfg.json().get("quantization_config") + "); quantize the original model instead");
        }
        ModelDirWriter.requireNew(dst);
        return cfg;
    }

    /**
     * The quantizers' model-directory writer: refuses quantized sources and existing outputs, runs every
     * tensor through {@code writer}, adds {@code quantization_config} (filled by {@code settings}; none
     * when null) and writes the directory through {@link ModelDirWriter} (atomic, with the side files).
     * {@code model} is the loaded source, or null to load it here.
     */
    static void write(Path src, Path dst, LanguageModel model, String method, TensorWriter writer,
                      java.util.function.Consumer<ObjectNode> settings) {
        requireQuantizable(src, dst);
        try (LanguageModel owned = model == null ? ModelRegistry.load(src) : null; WeightFiles files = WeightFiles.open(src)) {
            LanguageModel m = model == null ? owned : model;
            Map<String, WeightLoader.Loaded> matrices = new HashMap<>();
            for (WeightLoader.Loaded l : m.weights().matrices()) {
                matrices.put(l.name(), l);
            }
            SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
            if (settings != null) {
                w.metadata("jtune_quantization", method);
            }
            for (String name : files.names().stream().sorted().toList()) {
                TensorInfo info = files.info(name);
                if (!writer.write(w, name, info, matrices.get(name))) {
                    w.add(name, info.dtype(), info.shape(), files.data(name));
                }
            }
            ModelDirWriter.write(src, dst, w, settings == null ? null : config -> {
                ObjectNode qc = config.putObject("quantization_config");
                qc.put("quant_method", "jtune");
                qc.put("method", method);
                settings.accept(qc);
                qc.put("scale_suffix", WeightLoader.SCALE_SUFFIX);
            }, false);
        }
    }

    static MemorySegment transpose(MemorySegment rowMajor, int rows, int cols) {
        byte[] t = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = rowMajor.get(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) r * cols + c);
            }
        }
        return MemorySegment.ofArray(t);
    }

    private ModelQuantizer() {
    }
}
