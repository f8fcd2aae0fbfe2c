package org.jtune.model;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.TensorInfo;
import org.jtune.io.safetensors.WeightFiles;
import org.jtune.kernel.Matrix;

/**
 * Takes tensors out of a checkpoint by their HF names, checking each one's shape against what the
 * config implies, and remembers which names were used: after loading, {@link #finish} fails on any
 * tensor the family's name table does not know, so a checkpoint of another architecture can never
 * load into silently wrong weights. Names use {@code {L}} for the layer index.
 */
public final class WeightLoader {
    private final WeightFiles files;
    private final Set<String> used = new TreeSet<>();
    private final List<Loaded> loaded = new java.util.ArrayList<>();
    private final List<LoadedVector> vectors = new java.util.ArrayList<>();
    private final Map<String, Long> bytesByDtype = new LinkedHashMap<>();
    private long parameters;

    /** Whether linear layers quantize their inputs to int8 (W8A8 models): with scales from calibration, or per token. */
    public enum ActivationQuant { NONE, STATIC, DYNAMIC }

    /**
     * How to load: {@code trainable} gives every weight matrix an f32 master copy on the heap (full
     * fine-tuning); {@code activations} comes from a W8A8 model's quantization_config; {@code decodeStrip > 0}
     * copies every matrix into the layout single-token decode streams fastest (see {@code decodeLayout}: huge
     * pages, int8 row pairs, and column strips of that many columns for matrices more than twice as wide,
     * {@link Matrix#withStrips}, {@link Matrix#DECODE_STRIP}): for inference sessions ({@link #DECODE}), not for
     * code that rewrites weights (quantize, merge), which gets them as stored ({@link #INFERENCE}).
     */
    public record Options(boolean trainable, ActivationQuant activations, int decodeStrip) {
        public static final Options INFERENCE = new Options(false, ActivationQuant.NONE, 0);
        public static final Options DECODE = new Options(false, ActivationQuant.NONE, Matrix.DECODE_STRIP);
        public static final Options TRAINABLE = new Options(true, ActivationQuant.NONE, 0);

        public Options {
            if (trainable && decodeStrip != 0) {
                throw new IllegalArgumentException("trainable weights are f32 masters on the heap; they take no strips");
            }
        }

        public Options withActivations(ActivationQuant a) {
            return new Options(trainable, a, decodeStrip);
        }
    }

    public Options options() {
        return options;
    }

    private final Options options;

    public WeightLoader(WeightFiles files) {
        this(files, Options.INFERENCE);
    }

    public WeightLoader(WeightFiles files, Options options) {
        this.files = files;
        this.options = options;
    }

    public static String layer(String pattern, int layer) {
        return pattern.replace("{L}", Integer.toString(layer));
    }

    public boolean contains(String name) {
        return files.contains(name);
    }

    /** A matrix as it came out of the checkpoint: its HF name, and whether the file stores it transposed. */
    public record Loaded(String name, Matrix matrix, boolean transposedOnDisk) {
        /** The f32 master array behind a trainable matrix, or null. */
        public float[] master() {
            return matrix.data().heapBase().orElse(null) instanceof float[] f ? f : null;
        }
    }

    /** A 1-D tensor (norm weight, bias) by its HF name; always an f32 array. */
    public record LoadedVector(String name, float[] values) {
    }

    /** Every tensor a model took from its checkpoint, by HF name. */
    public record Inventory(List<Loaded> matrices, List<LoadedVector> vectors) {
    }

    /** Suffix of the f32 scale tensor {@code [rows, cols / groupSize]} next to an I8 weight. */
    public static final String SCALE_SUFFIX = "_scale";

    /**
     * A 2-D weight {@code [rows, cols]} in its stored dtype (F32, F16, BF16, I8 with its
     * {@code <name>_scale} tensor, or int4: U8 {@code [rows, cols / 2]} with scales and optional zero points),
     * not copied.
     */
    public Matrix matrix(String name, int rows, int cols) {
        if (isInt4(name)) {
            Matrix m = trainableCopy(int4(name, rows, cols));
            loaded.add(new Loaded(name, m, false));
            return m;
        }
        TensorInfo info = checked(name, new long[] {rows, cols});
        Matrix m = decodeLayout(trainableCopy(withScales(name, info, files.data(name), rows, cols, false)));
        loaded.add(new Loaded(name, m, false));
        return m;
    }

    /**
     * A weight stored transposed, {@code [cols, rows]} (GPT-2's Conv1D keeps {@code [in, out]}),
     * returned as {@code [rows, cols]} in the same dtype: a one-time copy at load, so the forward
     * pass never transposes. An I8 weight's scales are stored in the returned orientation.
     */
    public Matrix matrixTransposed(String name, int rows, int cols) {
        if (isInt4(name)) {   // int4 is stored [out, in / 2] for every family; the flag still names HF's layout
            Matrix m = trainableCopy(int4(name, rows, cols));
            loaded.add(new Loaded(name, m, true));
            return m;
        }
        TensorInfo info = checked(name, new long[] {cols, rows});
        checkMatrixDtype(name, info);
        int size = info.dtype().byteSize();
        MemorySegment src = files.data(name);
        MemorySegment dst = Arena.ofAuto().allocate((long) rows * cols * size, 8);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                MemorySegment.copy(src, ((long) c * rows + r) * size, dst, ((long) r * cols + c) * size, size);
            }
        }
        Matrix m = decodeLayout(trainableCopy(withScales(name, info, dst, rows, cols, true)));
        loaded.add(new Loaded(name, m, true));
        return m;
    }

    /**
     * With {@link Options#decodeStrip}: the matrix copied into the weights' decode memory (anonymous, on huge
     * pages: {@link WeightFiles#decodeCopies}), int8 as row pairs (a transposed copy or an older file is
     * row-major; not a W8A8 model's int8, which its kernel reads row-major), and in column strips when more
     * than twice the strip wide. The mapped source pages are dropped from this process afterwards, so the
     * weights count once in its resident set. Without the memory for a copy, the matrix stays as stored.
     */
    private Matrix decodeLayout(Matrix m) {
        int strip = options.decodeStrip();
        SegmentAllocator into = strip == 0 ? null : files.decodeCopies();
        if (into == null) {
            return m;
        }
        boolean w8a8 = m.dtype() == DType.I8 && options.activations() != ActivationQuant.NONE;
        boolean wide = m.cols() > 2 * strip && !w8a8;
        // the decode memory holds one copy per tensor: pairs on the way to strips are a temporary
        Matrix d = w8a8 ? m : m.withRowPairs(wide ? Arena.ofAuto() : into);
        if (wide) {
            d = d.withStrips(strip, into);
        }
        if (d == m || (wide && d.strip() == 0)) {
            d = d.copyTo(into);
        }
        if (m.data().isMapped()) {
            m.data().unload();
        }
        return d;
    }

    /** With {@link Options#trainable}, an f32 master copy on the heap that training updates in place. */
    private Matrix trainableCopy(Matrix m) {
        if (!options.trainable()) {
            return m;
        }
        float[] master = new float[Math.multiplyExact(m.rows(), m.cols())];
        for (int r = 0; r < m.rows(); r++) {
            for (int c = 0; c < m.cols(); c++) {
                master[r * m.cols() + c] = m.get(r, c);
            }
        }
        return new Matrix(MemorySegment.ofArray(master), DType.F32, m.rows(), m.cols());
    }

    private Matrix withScales(String name, TensorInfo info, MemorySegment data, int rows, int cols, boolean transposedCopy) {
        checkMatrixDtype(name, info);
        if (info.dtype() != DType.I8) {
            return new Matrix(data, info.dtype(), rows, cols);
        }
        String scaleName = name + SCALE_SUFFIX;
        TensorInfo s = scaleTensor(scaleName, rows, cols, "int8 tensor " + name, "`jtune quantize`");
        int group = (int) (cols / s.shape()[1]);
        // `jtune quantize` stores int8 as row pairs (Matrix.withRowPairs); a transposed copy is row-major
        boolean pairs = !transposedCopy && rows >= 2 && Matrix.rowPairsFit(cols, group)
                && I8_ROW_PAIRS.equals(files.file(name).metadata().get(I8_LAYOUT_KEY));
        return new Matrix(data, DType.I8, rows, cols, files.readFloats(scaleName), group, null, pairs, 0);
    }

    /**
     * Safetensors metadata key naming how a file's I8 matrices are laid out: {@value #I8_ROW_PAIRS} for
     * the row-pair layout of {@link Matrix#rowPairs} (group-wise matrices stored {@code [out, in]}); absent
     * for row-major files (written before the layout existed), which still load.
     */
    public static final String I8_LAYOUT_KEY = "jtune_i8_layout";
    public static final String I8_ROW_PAIRS = "row_pairs";

    /**
     * The {@code [rows, groups]} scale tensor of a quantized weight ({@code what}, written by {@code writer}),
     * checked and counted as used; a missing or misshapen one is an error that says which.
     */
    private TensorInfo scaleTensor(String scaleName, int rows, int cols, String what, String writer) {
        if (!files.contains(scaleName)) {
            throw new JTuneException(what + " has no scale tensor " + scaleName + "; was it written by " + writer + "?");
        }
        TensorInfo s = files.info(scaleName);
        if (s.rank() != 2 || s.shape()[0] != rows || s.shape()[1] < 1 || cols % s.shape()[1] != 0) {
            throw new JTuneException("scale tensor " + scaleName + " has shape " + Arrays.toString(s.shape())
                    + "; expected [" + rows + ", groups] with groups dividing " + cols);
        }
        used.add(scaleName);
        bytesByDtype.merge(s.dtype().name(), s.byteSize(), Long::sum);
        return s;
    }

    /** Suffix of the int4 zero-point tensor {@code [rows, groups]} (U8 or F32; absent when symmetric). */
    public static final String ZERO_SUFFIX = "_zero";

    private boolean isInt4(String name) {
        return files.contains(name) && files.info(name).dtype() == DType.U8;
    }

    /**
     * An int4 weight (see {@link Matrix}): U8 {@code [rows, cols / 2]} of packed nibbles in the loaded
     * {@code [out, in]} orientation, whatever the family's HF layout; {@code <name>_scale} F32
     * {@code [rows, groups]}; {@code <name>_zero} {@code [rows, groups]} when asymmetric.
     */
    private Matrix int4(String name, int rows, int cols) {
        if (cols % 2 != 0) {
            throw new JTuneException("int4 tensor " + name + " would need an even input width, config says " + cols);
        }
        boolean first = !used.contains(name);
        checked(name, new long[] {rows, cols / 2});
        if (first) {
            parameters += (long) rows * cols / 2;   // two weights per byte
        }
        String scaleName = name + SCALE_SUFFIX, zeroName = name + ZERO_SUFFIX;
        TensorInfo s = scaleTensor(scaleName, rows, cols, "int4 tensor " + name + " (U8)",
                "`jtune quantize --method int4-weight`");
        float[] zeros = null;
        if (files.contains(zeroName)) {
            TensorInfo z = files.info(zeroName);
            if (!Arrays.equals(z.shape(), s.shape())) {
                throw new JTuneException("zero-point tensor " + zeroName + " has shape " + Arrays.toString(z.shape())
                        + " but its scales have " + Arrays.toString(s.shape()));
            }
            if (z.dtype() == DType.U8) {
                MemorySegment zs = files.data(zeroName);
                zeros = new float[Math.toIntExact(z.numel())];
                for (int i = 0; i < zeros.length; i++) {
                    zeros[i] = Byte.toUnsignedInt(zs.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i));
                }
            } else {
                zeros = files.readFloats(zeroName);
            }
            used.add(zeroName);
            bytesByDtype.merge(z.dtype().name(), z.byteSize(), Long::sum);
        }
        return Matrix.int4(files.data(name), rows, cols, files.readFloats(scaleName), (int) (cols / s.shape()[1]), zeros);
    }

    private static void checkMatrixDtype(String name, TensorInfo info) {
        DType d = info.dtype();
        if (d != DType.F32 && d != DType.F16 && d != DType.BF16 && d != DType.I8) {
            throw new JTuneException("tensor " + name + " has dtype " + d
                    + "; weight matrices must be F32, F16, BF16, I8 or U8 (int4) (is this a quantized checkpoint of another tool?)");
        }
    }

    /** Every matrix and vector loaded so far, in load order. */
    public Inventory inventory() {
        return new Inventory(List.copyOf(loaded), List.copyOf(vectors));
    }

    /** A 1-D tensor (norm weight, bias) widened to f32: small, and read in every row of every step. */
    public float[] vector(String name, int n) {
        checked(name, new long[] {n});
        float[] v = files.readFloats(name);
        vectors.add(new LoadedVector(name, v));
        return v;
    }

    /** Like {@link #vector} but null when the checkpoint lacks the tensor. */
    public float[] optionalVector(String name, int n) {
        return files.contains(name) ? vector(name, n) : null;
    }

    /** Marks names as deliberately ignored (e.g. cached rotary inv_freq buffers). */
    public void ignore(String name) {
        if (files.contains(name)) {
            used.add(name);
        }
    }

    private TensorInfo checked(String name, long[] shape) {
        if (!files.contains(name)) {
            throw new JTuneException("checkpoint has no tensor " + name
                    + "; is config.json from another model, or is a shard missing?");
        }
        TensorInfo info = files.info(name);
        if (!Arrays.equals(info.shape(), shape)) {
            throw new JTuneException("tensor " + name + " has shape " + Arrays.toString(info.shape())
                    + " but config says " + Arrays.toString(shape) + "; is config.json from another model?");
        }
        if (used.add(name)) {
            parameters += info.numel();
            bytesByDtype.merge(info.dtype().name(), info.byteSize(), Long::sum);
        }
        return info;
    }

    /**
     * Fails on tensors nobody asked for, except names matching one of {@code ignoredPatterns}
     * (regular expressions, for tensors a family deliberately skips).
     */
    public void finish(List<String> ignoredPatterns) {
        List<Pattern> ignored = ignoredPatterns.stream().map(Pattern::compile).toList();
        Set<String> unknown = new TreeSet<>();
        for (String n : files.names()) {
            if (!used.contains(n) && ignored.stream().noneMatch(p -> p.matcher(n).matches())) {
                unknown.add(n);
            }
        }
        if (!unknown.isEmpty()) {
            throw new JTuneException("checkpoint has " + unknown.size() + " tensor(s) this architecture does not use, e.g. "
                    + unknown.stream().limit(5).toList() + "; is config.json's model_type right for these weights?");
        }
    }

    public long parameterCount() {
        return parameters;
    }

    public Map<String, Long> bytesByDtype() {
        return Map.copyOf(bytesByDtype);
    }
}
