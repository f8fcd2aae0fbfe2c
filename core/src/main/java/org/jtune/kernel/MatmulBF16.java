package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Matmul and row gather for BF16 weights (generated from one template together with its F32/BF16/F16
 * siblings; edit all three alike). Each dtype has its own copy because C2 cannot scalar-replace
 * vector values merged from different branches: a shared kernel with a per-dtype load allocated a
 * box per vector as soon as two dtypes had run in one JVM.
 */
final class MatmulBF16 {
    private static final int L = VectorKernels.L;
    private static final int ESZ = 2;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private MatmulBF16() {
    }

    private static float at(MemorySegment w, long off) {
        return VectorKernels.bf16At(w, off);
    }

    /**
     * Row blocks {@code [fromBlock, toBlock)}: RB x TB tiles while four tokens are left, then the
     * remaining tokens (all of them in decode) one row at a time, so that each thread reads its rows
     * as one sequential stream: interleaving four short rows (SmolLM2's are 1152 bytes) starts four
     * hardware-prefetch streams per tile and streamed at about 60 % of the bandwidth a single stream gets.
     * A matrix in column strips ({@code strip > 0}, {@link Matrix#withStrips}) is one such pass per strip,
     * each against its slice of x, adding into out from the second strip on.
     * {@code xs}: x as {@link #splitX} arranges it, for {@link #splitRowDots}, or null (the tiles and the
     * leftover tokens of tiled rows read x).
     */
    static void blocks(float[] out, float[] x, float[] xs, MemorySegment w, int rows, int cols, int strip, int tokens,
                       int fromBlock, int toBlock) {
        float[] sc = VectorMath.scratch();
        int r0 = fromBlock * VectorKernels.RB, r1 = Math.min(rows, toBlock * VectorKernels.RB);
        int width = strip == 0 ? cols : strip;
        int tiled = tokens & ~3;
        for (int c0 = 0; c0 < cols; c0 += width) {
            int sw = Math.min(width, cols - c0);
            long base = (long) rows * c0 * ESZ;   // the strips before are full width
            long rowBytes = (long) sw * ESZ;
            boolean add = c0 > 0;
            int rt = r0;
            if (tiled > 0) {
                for (; rt + 4 <= r1; rt += 4) {
                    for (int t = 0; t < tiled; t += 4) {
                        tile4x4(out, x, t * cols + c0, cols, w, base + rt * rowBytes, rowBytes, rt, rows, sw, t, add, sc);
                    }
                }
            }
            for (int t = tiled; t < tokens && rt > r0; t++) {   // leftover tokens of the tiled rows
                rowDots(out, t * rows, x, t * cols + c0, w, base, rowBytes, r0, rt, sw, add, sc);
            }
            for (int t = 0; t < tokens; t++) {   // rows not tiled: every row in decode
                if (xs != null) {
                    splitRowDots(out, t * rows, xs, t * cols + c0, w, base, rowBytes, rt, r1, sw, add);
                    continue;
                }
                rowDots(out, t * rows, x, t * cols + c0, w, base, rowBytes, rt, r1, sw, add, sc);
            }
        }
    }

    /**
     * Four rows (r..r+3) times four tokens (t..t+3) over {@code cols} columns, x rows {@code xStride} apart
     * from {@code xOff}: each widened weight vector feeds four FMAs. {@code add}: add to out instead of setting it.
     */
    private static void tile4x4(float[] out, float[] x, int xOff, int xStride, MemorySegment w, long wOff, long rowBytes,
                                int r, int rows, int cols, int t, boolean add, float[] sc) {
        long w0 = wOff, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        int x0 = xOff, x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
        FloatVector a00 = FloatVector.zero(VectorKernels.F), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int bound = VectorKernels.F.loopBound(cols);
        int c = 0;
        for (; c < bound; c += L) {
            long b = (long) c * ESZ;
            FloatVector v0 = FloatVector.fromArray(VectorKernels.F, x, x0 + c);
            FloatVector v1 = FloatVector.fromArray(VectorKernels.F, x, x1 + c);
            FloatVector v2 = FloatVector.fromArray(VectorKernels.F, x, x2 + c);
            FloatVector v3 = FloatVector.fromArray(VectorKernels.F, x, x3 + c);
            FloatVector wv1 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, w0 + b, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector q = wv1;
            a00 = q.fma(v0, a00);
            a01 = q.fma(v1, a01);
            a02 = q.fma(v2, a02);
            a03 = q.fma(v3, a03);
            FloatVector wv2 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, w1 + b, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            q = wv2;
            a10 = q.fma(v0, a10);
            a11 = q.fma(v1, a11);
            a12 = q.fma(v2, a12);
            a13 = q.fma(v3, a13);
            FloatVector wv3 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, w2 + b, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            q = wv3;
            a20 = q.fma(v0, a20);
            a21 = q.fma(v1, a21);
            a22 = q.fma(v2, a22);
            a23 = q.fma(v3, a23);
            FloatVector wv4 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, w3 + b, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            q = wv4;
            a30 = q.fma(v0, a30);
            a31 = q.fma(v1, a31);
            a32 = q.fma(v2, a32);
            a33 = q.fma(v3, a33);
        }
        a00.intoArray(sc, 0);
        a01.intoArray(sc, L);
        float s00 = VectorMath.sumLanes(sc, 0), s01 = VectorMath.sumLanes(sc, L);
        a02.intoArray(sc, 2 * L);
        a03.intoArray(sc, 3 * L);
        float s02 = VectorMath.sumLanes(sc, 2 * L), s03 = VectorMath.sumLanes(sc, 3 * L);
        a10.intoArray(sc, 4 * L);
        a11.intoArray(sc, 5 * L);
        float s10 = VectorMath.sumLanes(sc, 4 * L), s11 = VectorMath.sumLanes(sc, 5 * L);
        a12.intoArray(sc, 6 * L);
        a13.intoArray(sc, 7 * L);
        float s12 = VectorMath.sumLanes(sc, 6 * L), s13 = VectorMath.sumLanes(sc, 7 * L);
        a20.intoArray(sc, 8 * L);
        a21.intoArray(sc, 9 * L);
        float s20 = VectorMath.sumLanes(sc, 8 * L), s21 = VectorMath.sumLanes(sc, 9 * L);
        a22.intoArray(sc, 10 * L);
        a23.intoArray(sc, 11 * L);
        float s22 = VectorMath.sumLanes(sc, 10 * L), s23 = VectorMath.sumLanes(sc, 11 * L);
        a30.intoArray(sc, 12 * L);
        a31.intoArray(sc, 13 * L);
        float s30 = VectorMath.sumLanes(sc, 12 * L), s31 = VectorMath.sumLanes(sc, 13 * L);
        a32.intoArray(sc, 14 * L);
        a33.intoArray(sc, 15 * L);
        float s32 = VectorMath.sumLanes(sc, 14 * L), s33 = VectorMath.sumLanes(sc, 15 * L);
        for (; c < cols; c++) {
            long b = (long) c * ESZ;
            float q0 = at(w, w0 + b), q1 = at(w, w1 + b), q2 = at(w, w2 + b), q3 = at(w, w3 + b);
            float v0 = x[x0 + c], v1 = x[x1 + c], v2 = x[x2 + c], v3 = x[x3 + c];
            s00 += q0 * v0; s01 += q0 * v1; s02 += q0 * v2; s03 += q0 * v3;
            s10 += q1 * v0; s11 += q1 * v1; s12 += q1 * v2; s13 += q1 * v3;
            s20 += q2 * v0; s21 += q2 * v1; s22 += q2 * v2; s23 += q2 * v3;
            s30 += q3 * v0; s31 += q3 * v1; s32 += q3 * v2; s33 += q3 * v3;
        }
        int o0 = t * rows + r, o1 = o0 + rows, o2 = o1 + rows, o3 = o2 + rows;
        if (add) {
            out[o0] += s00; out[o0 + 1] += s10; out[o0 + 2] += s20; out[o0 + 3] += s30;
            out[o1] += s01; out[o1 + 1] += s11; out[o1 + 2] += s21; out[o1 + 3] += s31;
            out[o2] += s02; out[o2 + 1] += s12; out[o2 + 2] += s22; out[o2 + 3] += s32;
            out[o3] += s03; out[o3 + 1] += s13; out[o3 + 2] += s23; out[o3 + 3] += s33;
        } else {
            out[o0] = s00; out[o0 + 1] = s10; out[o0 + 2] = s20; out[o0 + 3] = s30;
            out[o1] = s01; out[o1 + 1] = s11; out[o1 + 2] = s21; out[o1 + 3] = s31;
            out[o2] = s02; out[o2 + 1] = s12; out[o2 + 2] = s22; out[o2 + 3] = s32;
            out[o3] = s03; out[o3 + 1] = s13; out[o3 + 2] = s23; out[o3 + 3] = s33;
        }
    }

    /**
     * Rows {@code [rFrom, rTo)} of {@code cols} columns, {@code rowBytes} apart from {@code base}, against one x
     * row (the decode kernel), one row after the other, four accumulators over consecutive vectors; {@code add}:
     * add to out instead of setting it. The row loop is inside: a call per row (the body is too large for C2 to
     * inline) cost about a third of the time of a 576-column row.
     */
    private static void rowDots(float[] out, int outOff, float[] x, int xOff, MemorySegment w, long base, long rowBytes,
                                int rFrom, int rTo, int cols, boolean add, float[] sc) {
        for (int r = rFrom; r < rTo; r++) {
            long wOff = base + r * rowBytes;
            FloatVector a0 = FloatVector.zero(VectorKernels.F), a1 = a0, a2 = a0, a3 = a0;
            int c = 0;
            int bound4 = cols - 4 * L + 1;
            for (; c < bound4; c += 4 * L) {
                long b = wOff + (long) c * ESZ;
                FloatVector wv5 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, b, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                a0 = wv5.fma(FloatVector.fromArray(VectorKernels.F, x, xOff + c), a0);
                FloatVector wv6 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, b + (long) L * ESZ, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                a1 = wv6.fma(FloatVector.fromArray(VectorKernels.F, x, xOff + c + L), a1);
                FloatVector wv7 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, b + 2L * L * ESZ, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                a2 = wv7.fma(FloatVector.fromArray(VectorKernels.F, x, xOff + c + 2 * L), a2);
                FloatVector wv8 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, b + 3L * L * ESZ, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                a3 = wv8.fma(FloatVector.fromArray(VectorKernels.F, x, xOff + c + 3 * L), a3);
            }
            int bound = VectorKernels.F.loopBound(cols);
            for (; c < bound; c += L) {
                FloatVector wv9 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, wOff + (long) c * ESZ, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                a0 = wv9.fma(FloatVector.fromArray(VectorKernels.F, x, xOff + c), a0);
            }
            float s = VectorMath.sum(a0.add(a1).add(a2.add(a3)));
            for (; c < cols; c++) {
                s += at(w, wOff + (long) c * ESZ) * x[xOff + c];
            }
            out[outOff + r] = add ? out[outOff + r] + s : s;
        }
    }

    /**
     * {@code xs} = x (tokens rows of cols) with every whole 2L-column block's even columns first and its odd ones
     * after: {@code xs[c + j] = x[c + 2j]}, {@code xs[c + L + j] = x[c + 2j + 1]}; the columns after the last whole
     * block are copied. Blocks start at column 0, so column strips (multiples of 64 columns) start on one.
     */
    static void splitX(float[] xs, float[] x, int cols, int tokens) {
        int whole = cols / (2 * L) * (2 * L);
        for (int t = 0; t < tokens; t++) {
            int o = t * cols;
            for (int c = o; c < o + whole; c += 2 * L) {
                for (int j = 0; j < L; j++) {
                    xs[c + j] = x[c + 2 * j];
                    xs[c + L + j] = x[c + 2 * j + 1];
                }
            }
            System.arraycopy(x, o + whole, xs, o + whole, cols - whole);
        }
    }

    /**
     * {@link #rowDots} against x split by {@link #splitX}: an int load takes 2L bf16 weights, whose even columns
     * are the low halves (shifted left 16 they are their f32 values) and odd columns the high halves (masked),
     * so a weight vector costs one integer op instead of a sign-extension and a shift: on this Zen 4 the decode
     * rows are bounded by those instructions, not by memory, once two cores share the bandwidth.
     */
    private static void splitRowDots(float[] out, int outOff, float[] xs, int xOff, MemorySegment w, long base,
                                     long rowBytes, int rFrom, int rTo, int cols, boolean add) {
        for (int r = rFrom; r < rTo; r++) {
            long wOff = base + r * rowBytes;
            FloatVector a0 = FloatVector.zero(VectorKernels.F), a1 = a0, a2 = a0, a3 = a0;
            int c = 0;
            for (; c + 4 * L <= cols; c += 4 * L) {   // two blocks of 2L columns
                long b = wOff + (long) c * ESZ;
                IntVector p = IntVector.fromMemorySegment(VectorKernels.I, w, b, LE);
                IntVector q = IntVector.fromMemorySegment(VectorKernels.I, w, b + 2L * L * ESZ, LE);
                a0 = p.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(VectorKernels.F, xs, xOff + c), a0);
                a1 = p.and(0xFFFF0000).reinterpretAsFloats().fma(FloatVector.fromArray(VectorKernels.F, xs, xOff + c + L), a1);
                a2 = q.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(VectorKernels.F, xs, xOff + c + 2 * L), a2);
                a3 = q.and(0xFFFF0000).reinterpretAsFloats().fma(FloatVector.fromArray(VectorKernels.F, xs, xOff + c + 3 * L), a3);
            }
            if (c + 2 * L <= cols) {
                IntVector p = IntVector.fromMemorySegment(VectorKernels.I, w, wOff + (long) c * ESZ, LE);
                a0 = p.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(VectorKernels.F, xs, xOff + c), a0);
                a1 = p.and(0xFFFF0000).reinterpretAsFloats().fma(FloatVector.fromArray(VectorKernels.F, xs, xOff + c + L), a1);
                c += 2 * L;
            }
            float s = VectorMath.sum(a0.add(a1).add(a2.add(a3)));
            for (; c < cols; c++) {   // past the whole blocks xs holds x as it is
                s += at(w, wOff + (long) c * ESZ) * xs[xOff + c];
            }
            out[outOff + r] = add ? out[outOff + r] + s : s;
        }
    }

    /** Row {@code row} widened to f32 into {@code out[outOff..]}, one piece per column strip ({@code strip > 0}). */
    static void gather(float[] out, int outOff, MemorySegment w, int rows, int row, int cols, int strip) {
        int width = strip == 0 ? cols : strip;
        for (int c0 = 0; c0 < cols; c0 += width) {
            int sw = Math.min(width, cols - c0);
            long base = ((long) rows * c0 + (long) row * sw) * ESZ;
            int o = outOff + c0;
            int bound = VectorKernels.F.loopBound(sw);
            int c = 0;
            for (; c < bound; c += L) {
                FloatVector wv10 = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, base + (long) c * ESZ, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                wv10.intoArray(out, o + c);
            }
            for (; c < sw; c++) {
                out[o + c] = at(w, base + (long) c * ESZ);
            }
        }
    }
}
