package org.jtune.kernel;

import org.jtune.io.safetensors.HalfFloats;

/**
 * The numeric kernels every model forward is built from. {@link ScalarKernels} is the
 * specification; faster implementations must agree with it (see the parity tests). Signatures:
 * destination first, then inputs, then sizes. Arrays are row-major; offsets are element offsets.
 * Unless stated, destination and inputs may not alias.
 */
public interface Kernels {
    /** Short name for logs and benchmarks ("scalar", "vector-256"...). */
    String name();

    /**
     * {@code out[t, r] = sum_c x[t, c] * w[r, c]} for {@code t < tokens}: a linear layer without bias.
     * out (tokens, w.rows), x (tokens, w.cols).
     */
    void matmul(float[] out, float[] x, Matrix w, int tokens);

    /**
     * W8A8 integer matmul: {@code out[t, r] = (sum_c qx[t, c] * qw[r, c]) * actScale[t or 0] * wScale[r]} where
     * w is I8 with one scale per output channel (group size == cols, cols <= {@value W8A8#MAX_COLS}),
     * {@code qx = clamp(round(x / actScale), -127, 127)} with one scale ({@code actScale.length == 1}) or one per
     * token (any other length >= tokens, the first {@code tokens} used; see {@link W8A8#dynamicActScales}), and the
     * sum is exact int32.
     * Every implementation gives bit-identical results. out (tokens, w.rows), x (tokens, w.cols).
     */
    void matmulW8A8(float[] out, float[] x, Matrix w, int tokens, float[] actScale);

    /** {@code sum_i a[aOff + i] * b[bOff + i]}, i < n. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /** {@code y[yOff + i] += alpha * x[xOff + i]}, i < n. */
    void axpy(float[] y, int yOff, float alpha, float[] x, int xOff, int n);

    /** Llama RMSNorm of one row: {@code out = weight * x / sqrt(mean(x^2) + eps)}; out may alias x. */
    void rmsNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, float eps, int n);

    /** LayerNorm of one row with biased variance (torch.nn.LayerNorm); bias may be null; out may alias x. */
    void layerNorm(float[] out, int outOff, float[] x, int xOff, float[] weight, float[] bias, float eps, int n);

    /**
     * In-place, numerically stable softmax of {@code x[off .. off+n)}. Returns the input's log-sum-exp
     * ({@code max + log sum exp(x - max)}), with which softmaxes taken over separate ranges can be combined
     * ({@link #combineAttention}).
     */
    float softmax(float[] x, int off, int n);

    /**
     * Backward of {@link #siluMul} over {@code [off, off + n)}, with {@code s = sigmoid(gate)}:
     * {@code dUp += dOut * gate * s} and {@code dGate += dOut * up * s * (1 + gate * (1 - s))}.
     */
    default void siluMulBackward(float[] dGate, float[] dUp, float[] dOut, float[] gate, float[] up, int off, int n) {
        for (int i = off; i < off + n; i++) {
            float g = gate[i];
            float sg = (float) (1 / (1 + Math.exp(-g)));
            dUp[i] += dOut[i] * g * sg;
            dGate[i] += dOut[i] * up[i] * sg * (1 + g * (1 - sg));
        }
    }

    /**
     * {@code log sum exp(x[off .. off+n))} in double, the max taken out first: a causal-LM loss row's normalizer.
     * The fast twin may take the exps in f32 and sum them in double.
     */
    default double logSumExp(float[] x, int off, int n) {
        return logSumExpExact(x, off, n);
    }

    /** {@link #logSumExp} with every exp and sum in double: the reference, and what scoring and evaluation use. */
    static double logSumExpExact(float[] x, int off, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp(x[off + i] - max);
        }
        return max + Math.log(sum);
    }

    /**
     * {@code dst[dOff + i] += scale * exp(x[xOff + i] - logZ)}, i < n: a softmax row, scaled, added into a gradient
     * (the loss's {@code softmax - onehot}, less the onehot).
     */
    default void addSoftmax(float[] dst, int dOff, float[] x, int xOff, int n, double logZ, double scale) {
        for (int i = 0; i < n; i++) {
            dst[dOff + i] += (float) (scale * Math.exp(x[xOff + i] - logZ));
        }
    }

    /** SwiGLU gate: {@code gate[i] = silu(gate[i]) * up[i]}, i < n. */
    void siluMul(float[] gate, float[] up, int n);

    /**
     * Rotary embedding, HF rotate-half pairing: feature i pairs with i + rotDim/2, for i < rotDim/2;
     * features from rotDim on pass through. cos/sin hold rotDim/2 values from {@code tableOff}.
     */
    void rope(float[] x, int off, float[] cos, float[] sin, int tableOff, int rotDim);

    /**
     * {@code outs[i] = x ws[i]^T} for {@code i < count}, each exactly {@link #matmul}: matrices of one
     * width reading the same x (a layer's q, k and v projections; gate and up). An implementation may
     * run them as one parallel pass over all their rows, so that small ones do not each pay a hand-off.
     */
    default void matmulShared(float[][] outs, float[] x, Matrix[] ws, int count, int tokens) {
        for (int i = 0; i < count; i++) {
            matmul(outs[i], x, ws[i], tokens);
        }
    }

    /**
     * Attention of one query head over {@code len} cached positions:
     * {@code out = sum_j softmax_j(scale * q.k_j) v_j}, where k_j starts at {@code kvOff + j * kvStride}
     * in keys and values. scores needs {@code len} free elements. Nothing is materialized per (seq, seq).
     */
    default void attend(float[] out, int outOff, float[] q, int qOff, float[] keys, float[] values, int kvOff,
                        int kvStride, int len, int headDim, float scale, float[] scores) {
        attendGroup(out, outOff, q, qOff, 1, keys, values, kvOff, kvStride, len, headDim, scale, scores, null, 0);
    }

    /**
     * {@link #attend} for {@code group} query heads that share one kv head (grouped-query attention): head g's
     * query starts at {@code qOff + g * headDim} and its output at {@code outOff + g * headDim}. The same
     * result, bit for bit, as attend per head; an implementation may pass over the keys and values once for
     * the whole group. scores needs {@code group * len} free elements.
     */
    default void attendGroup(float[] out, int outOff, float[] q, int qOff, int group, float[] keys, float[] values,
                             int kvOff, int kvStride, int len, int headDim, float scale, float[] scores) {
        attendGroup(out, outOff, q, qOff, group, keys, values, kvOff, kvStride, len, headDim, scale, scores, null, 0);
    }

    /**
     * {@link #attendGroup}, and, when {@code lse} is not null, head g's log-sum-exp of its scaled scores
     * into {@code lse[lseOff + g]}: what {@link #combineAttention} needs to join attention over separate
     * ranges of positions (a range starts where kvOff points).
     */
    default void attendGroup(float[] out, int outOff, float[] q, int qOff, int group, float[] keys, float[] values,
                             int kvOff, int kvStride, int len, int headDim, float scale, float[] scores, float[] lse,
                             int lseOff) {
        for (int g = 0; g < group; g++) {
            int qg = qOff + g * headDim, og = outOff + g * headDim;
            for (int j = 0; j < len; j++) {
                scores[j] = scale * dot(q, qg, keys, kvOff + j * kvStride, headDim);
            }
            float l = softmax(scores, 0, len);
            if (lse != null) {
                lse[lseOff + g] = l;
            }
            java.util.Arrays.fill(out, og, og + headDim, 0f);
            for (int j = 0; j < len; j++) {
                axpy(out, og, scores[j], values, kvOff + j * kvStride, headDim);
            }
        }
    }

    /**
     * {@link #attendGroup} over a bf16 KV cache packed two values per int ({@code org.jtune.model.KvCache}'s
     * layout: element 2m of a row in the low half of int m, element 2m + 1 in the high half): kvOff and kvStride
     * count elements and are even, headDim is even. scores needs {@code group * len + max(4096, 2 * headDim)} free
     * elements (an implementation may widen keys there). lse as in attendGroup.
     */
    default void attendGroupBf16(float[] out, int outOff, float[] q, int qOff, int group, int[] keys, int[] values,
                                 int kvOff, int kvStride, int len, int headDim, float scale, float[] scores,
                                 float[] lse, int lseOff) {
        int pairs = headDim / 2;
        for (int g = 0; g < group; g++) {
            int qg = qOff + g * headDim, og = outOff + g * headDim;
            for (int j = 0; j < len; j++) {
                int row = (kvOff + j * kvStride) / 2;
                float s = 0f;
                for (int m = 0; m < pairs; m++) {
                    int w = keys[row + m];
                    s += q[qg + 2 * m] * HalfFloats.bf16ToFloat((short) w)
                            + q[qg + 2 * m + 1] * HalfFloats.bf16ToFloat((short) (w >>> 16));
                }
                scores[j] = scale * s;
            }
            float l = softmax(scores, 0, len);
            if (lse != null) {
                lse[lseOff + g] = l;
            }
            java.util.Arrays.fill(out, og, og + headDim, 0f);
            for (int j = 0; j < len; j++) {
                int row = (kvOff + j * kvStride) / 2;
                float p = scores[j];
                for (int m = 0; m < pairs; m++) {
                    int w = values[row + m];
                    out[og + 2 * m] += p * HalfFloats.bf16ToFloat((short) w);
                    out[og + 2 * m + 1] += p * HalfFloats.bf16ToFloat((short) (w >>> 16));
                }
            }
        }
    }

    /**
     * {@code count} (even) bf16 values packed two per int from {@code packed[srcOff ..]} ({@link #attendGroupBf16}'s
     * layout) widened into {@code dst[dstOff ..]} in their order, exactly.
     */
    default void widenBf16(float[] dst, int dstOff, int[] packed, int srcOff, int count) {
        for (int m = 0; m < count / 2; m++) {
            dst[dstOff + 2 * m] = HalfFloats.bf16ToFloat((short) packed[srcOff + m]);
            dst[dstOff + 2 * m + 1] = HalfFloats.bf16ToFloat((short) (packed[srcOff + m] >>> 16));
        }
    }

    /**
     * Causal attention of {@code rows} consecutive tokens of one query head over one kv head's cache (a prompt
     * chunk): row r's query starts at {@code qOff + r * qStride} and its output at {@code outOff + r * outStride};
     * row r attends positions {@code 0 .. firstLen + r - 1}, laid out as in {@link #attend}. The same as attend
     * row by row, up to the order of the sums. scratch needs {@link #causalBlockScratch} elements.
     */
    default void attendCausalBlock(float[] out, int outOff, int outStride, float[] q, int qOff, int qStride, int rows,
                                   float[] keys, float[] values, int kvOff, int kvStride, int firstLen, int headDim,
                                   float scale, float[] scratch) {
        for (int r = 0; r < rows; r++) {
            attend(out, outOff + r * outStride, q, qOff + r * qStride, keys, values, kvOff, kvStride, firstLen + r,
                    headDim, scale, scratch);
        }
    }

    /** The rows per {@link #attendCausalBlock} call this implementation is fastest at: 1 where it has no block kernel. */
    default int causalBlockRows() {
        return 1;
    }

    /** Scratch elements {@link #attendCausalBlock} needs for blocks reading at most {@code maxLen} positions. */
    default int causalBlockScratch(int maxLen, int headDim) {
        return maxLen;
    }

    /**
     * Backward of {@link #attendCausalBlock} for the same block (q, rows, keys, values, firstLen as there), given
     * {@code dOut}, the gradient of its outputs (row r at {@code dOutOff + r * qStride}): recomputes each row's
     * probabilities p and, with {@code dP_j = dOut . v_j} and {@code dS_j = p_j (dP_j - sum_i p_i dP_i)}, adds
     * {@code scale * sum_j dS_j k_j} to dQ (laid out as q), {@code scale * dS_j q} to dKeys and {@code p_j dOut}
     * to dValues (laid out as keys and values) for every position j a row reads. scratch needs
     * {@link #causalBlockBackwardScratch} elements.
     */
    default void attendCausalBlockBackward(float[] q, int qOff, int qStride, float[] dOut, int dOutOff, float[] dQ,
                                           int rows, float[] keys, float[] values, float[] dKeys, float[] dValues,
                                           int kvOff, int kvStride, int firstLen, int headDim, float scale,
                                           float[] scratch) {
        int maxLen = firstLen + rows - 1;
        for (int r = 0; r < rows; r++) {
            int len = firstLen + r, qo = qOff + r * qStride, go = dOutOff + r * qStride;
            for (int j = 0; j < len; j++) {
                scratch[j] = scale * dot(q, qo, keys, kvOff + j * kvStride, headDim);
            }
            softmax(scratch, 0, len);
            double sum = 0;
            for (int j = 0; j < len; j++) {
                float dP = dot(dOut, go, values, kvOff + j * kvStride, headDim);
                scratch[maxLen + j] = dP;
                sum += (double) scratch[j] * dP;
            }
            for (int j = 0; j < len; j++) {
                float p = scratch[j], dS = p * (scratch[maxLen + j] - (float) sum) * scale;
                int kj = kvOff + j * kvStride;
                axpy(dQ, qo, dS, keys, kj, headDim);
                axpy(dKeys, kj, dS, q, qo, headDim);
                axpy(dValues, kj, p, dOut, go, headDim);
            }
        }
    }

    /** Scratch elements {@link #attendCausalBlockBackward} needs for blocks reading at most {@code maxLen} positions. */
    default int causalBlockBackwardScratch(int maxLen, int headDim) {
        return 2 * maxLen;
    }

    /**
     * One head's attention over the union of {@code count} ranges of positions, from its attention over each
     * ({@link #attendGroup} with lse): part p's output is {@code headDim} floats at
     * {@code partOff + p * partStride} and its log-sum-exp is {@code lse[lseOff + p * lseStride]}; out is the
     * parts weighted by {@code exp(lse_p - lse_all)}, which sum to one. Equals attention over all the
     * positions at once up to rounding (flash-decoding's reduction).
     */
    default void combineAttention(float[] out, int outOff, float[] parts, int partOff, int partStride, float[] lse,
                                  int lseOff, int lseStride, int count, int headDim) {
        float max = Float.NEGATIVE_INFINITY;
        for (int p = 0; p < count; p++) {
            max = Math.max(max, lse[lseOff + p * lseStride]);
        }
        double sum = 0;
        for (int p = 0; p < count; p++) {
            sum += Math.exp(lse[lseOff + p * lseStride] - max);
        }
        java.util.Arrays.fill(out, outOff, outOff + headDim, 0f);
        for (int p = 0; p < count; p++) {
            float w = (float) (Math.exp(lse[lseOff + p * lseStride] - max) / sum);
            axpy(out, outOff, w, parts, partOff + p * partStride, headDim);
        }
    }

    /**
     * Backward of {@link #matmul} for its input: {@code dx[t, c] += sum_r dy[t, r] * w[r, c]}.
     * dx (tokens, w.cols), dy (tokens, w.rows).
     */
    default void matmulBackwardInput(float[] dx, float[] dy, Matrix w, int tokens) {
        float[] row = new float[w.cols()];
        for (int r = 0; r < w.rows(); r++) {
            gatherRow(row, 0, w, r);
            for (int t = 0; t < tokens; t++) {
                float g = dy[t * w.rows() + r];
                if (g != 0f) {
                    axpy(dx, t * w.cols(), g, row, 0, w.cols());
                }
            }
        }
    }

    /**
     * Backward of {@link #matmul} for an f32 weight: {@code dw[r, c] += sum_t dy[t, r] * x[t, c]}.
     * dw (rows, cols), dy (tokens, rows), x (tokens, cols).
     */
    default void matmulBackwardWeight(float[] dw, float[] dy, float[] x, int tokens, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            for (int t = 0; t < tokens; t++) {
                float g = dy[t * rows + r];
                if (g != 0f) {
                    axpy(dw, r * cols, g, x, t * cols, cols);
                }
            }
        }
    }

    /** Copies row {@code row} of m, widened to f32, into out (embedding lookup). */
    default void gatherRow(float[] out, int outOff, Matrix m, int row) {
        for (int c = 0; c < m.cols(); c++) {
            out[outOff + c] = m.get(row, c);
        }
    }
}
