package org.jtune.model;

import java.lang.foreign.MemorySegment;
import org.jtune.JTuneException;
import org.jtune.kernel.Matrix;

/**
 * A linear layer {@code y = x W^T + b} of a model: weight {@code (out, in)} in its stored dtype,
 * optional f32 bias, its HF module path (what LoRA targets and PEFT keys name), and optionally an
 * attached LoRA adapter: {@code y += scaling * (x A^T) B^T} with A {@code (r, in)}, B {@code (out, r)}
 * in f32. Ops decide how it is computed ({@link Ops#linear}); this class only holds the parameters.
 */
public final class Linear {
    private final String module;
    private final Matrix weight;
    private final float[] bias;
    private final float[] actScale;   // W8A8: {scale} static, {} dynamic per token; null: float activations
    private Lora lora;

    /** LoRA factors over live f32 arrays (training updates them in place); the matrices view those arrays. */
    public record Lora(float[] a, float[] b, int rank, float scaling, Matrix aMatrix, Matrix bMatrix) {
        public static Lora of(float[] a, float[] b, int rank, int in, int out, float scaling) {
            if (a.length != rank * in || b.length != out * rank) {
                throw new JTuneException("LoRA factors have " + a.length + " and " + b.length + " values; expected A ["
                        + rank + ", " + in + "] and B [" + out + ", " + rank + "]");
            }
            return new Lora(a, b, rank, scaling, f32View(a, rank, in), f32View(b, out, rank));
        }
    }

    public Linear(String module, Matrix weight, float[] bias) {
        this(module, weight, bias, null);
    }

    /** A W8A8 layer: int8 per-channel weights and int8 inputs ({@code actScale} {s} static, {} per token). */
    public Linear(String module, Matrix weight, float[] bias, float[] actScale) {
        this.module = module;
        this.weight = weight;
        this.bias = bias;
        this.actScale = actScale;
        if (bias != null && bias.length != weight.rows()) {
            throw new IllegalArgumentException(module + ": bias of " + bias.length + " for " + weight.rows() + " outputs");
        }
    }

    /** A matrix over a live float array (no copy), for trainable f32 weights. */
    public static Matrix f32View(float[] values, int rows, int cols) {
        return new Matrix(MemorySegment.ofArray(values), org.jtune.io.safetensors.DType.F32, rows, cols);
    }

    public String module() {
        return module;
    }

    public Matrix weight() {
        return weight;
    }

    public float[] bias() {
        return bias;
    }

    public Lora lora() {
        return lora;
    }

    /** Input quantization of a W8A8 layer: one static scale, empty for per-token scales, null for float inputs. */
    public float[] actScale() {
        return actScale;
    }

    /** Attaches (or with null, detaches) a LoRA adapter; its shapes must fit this layer. */
    public void attach(Lora l) {
        if (l != null && (l.aMatrix.cols() != inFeatures() || l.bMatrix.rows() != outFeatures())) {
            throw new JTuneException("LoRA for " + module + " has A " + l.aMatrix.rows() + "x" + l.aMatrix.cols() + " and B "
                    + l.bMatrix.rows() + "x" + l.bMatrix.cols() + " but the layer is " + outFeatures() + "x" + inFeatures());
        }
        this.lora = l;
    }

    public int outFeatures() {
        return weight.rows();
    }

    public int inFeatures() {
        return weight.cols();
    }

    /** HF {@code nn.Linear} at {@code prefix + "weight"} ({@code [out, in]}) and, if {@code hasBias}, {@code prefix + "bias"}. */
    public static Linear load(WeightLoader w, String prefix, int out, int in, boolean hasBias) {
        return new Linear(modulePath(prefix), w.matrix(prefix + "weight", out, in), hasBias ? w.vector(prefix + "bias", out) : null,
                actScale(w, prefix));
    }

    /** HF {@code Conv1D} (GPT-2): weight stored {@code [in, out]}, transposed once here at load time. */
    public static Linear loadConv1D(WeightLoader w, String prefix, int out, int in) {
        return new Linear(modulePath(prefix), w.matrixTransposed(prefix + "weight", out, in), w.vector(prefix + "bias", out),
                actScale(w, prefix));
    }

    /** The layer's W8A8 input scale per the model's quantization (see docs/formats.md). */
    private static float[] actScale(WeightLoader w, String prefix) {
        return switch (w.options().activations()) {
            case NONE -> null;
            case DYNAMIC -> new float[0];
            case STATIC -> w.vector(prefix + "act_scale", 1);
        };
    }

    private static String modulePath(String prefix) {
        return prefix.endsWith(".") ? prefix.substring(0, prefix.length() - 1) : prefix;
    }

    @Override
    public String toString() {
        return module + "[" + outFeatures() + "x" + inFeatures() + " " + weight.dtype() + (lora != null ? " +LoRA r=" + lora.rank : "") + "]";
    }
}
