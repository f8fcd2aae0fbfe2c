package org.jtune.model;

import org.jtune.JTuneException;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;

/** Row-wise building blocks shared by the model families (norms over a chunk, embedding lookup, residual add). */
public final class Blocks {
    private Blocks() {
    }

    /** RMSNorm of each of {@code n} rows of width {@code dim}. */
    public static void rmsNormRows(Kernels k, float[] out, float[] x, float[] weight, float eps, int n, int dim) {
        for (int t = 0; t < n; t++) {
            k.rmsNorm(out, t * dim, x, t * dim, weight, eps, dim);
        }
    }

    /** LayerNorm of each of {@code n} rows of width {@code dim}. */
    public static void layerNormRows(Kernels k, float[] out, float[] x, float[] weight, float[] bias, float eps,
                                     int n, int dim) {
        for (int t = 0; t < n; t++) {
            k.layerNorm(out, t * dim, x, t * dim, weight, bias, eps, dim);
        }
    }

    /** {@code y[0 .. len) += x[0 .. len)}. */
    public static void add(Kernels k, float[] y, float[] x, int len) {
        k.axpy(y, 0, 1f, x, 0, len);
    }

    /** Rows of {@code table} for {@code tokens[off .. off+n)} into {@code out}, checking ids against the vocabulary. */
    public static void embed(Kernels k, float[] out, Matrix table, int[] tokens, int off, int n) {
        int dim = table.cols();
        for (int t = 0; t < n; t++) {
            int id = tokens[off + t];
            if (id < 0 || id >= table.rows()) {
                throw new JTuneException("token id " + id + " is outside the vocabulary [0, " + table.rows() + ")");
            }
            k.gatherRow(out, t * dim, table, id);
        }
    }

    /** Adds learned position rows {@code start+offset ..} to {@code x} (GPT-2: offset 0, OPT: 2). */
    public static void addPositions(Kernels k, float[] x, float[] scratch, Matrix positions, int start, int offset, int n) {
        int dim = positions.cols();
        for (int t = 0; t < n; t++) {
            k.gatherRow(scratch, 0, positions, start + offset + t);
            k.axpy(x, t * dim, 1f, scratch, 0, dim);
        }
    }

    /** Checks a chunk against the state's limits; the Session validates first, so this is the inner guard. */
    public static void checkChunk(ModelState s, int n) {
        if (n < 1 || n > s.maxChunk() || s.length() + n > s.maxSeq()) {
            throw new IllegalArgumentException("chunk of " + n + " tokens at position " + s.length()
                    + " does not fit (maxChunk " + s.maxChunk() + ", maxSeq " + s.maxSeq() + ")");
        }
    }
}
