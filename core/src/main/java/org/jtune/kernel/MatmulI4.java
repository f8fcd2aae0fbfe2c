package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Matmul and row gather for int4 weights ({@link Matrix#isInt4()}): two codes per byte, low nibble = even
 * column, element {@code (n - z) * scale} per group. {@value VectorKernels#L} bytes (2L columns) are loaded at
 * a time with the byte species {@link VectorKernels#B}, widened to ints (B2I), split into low nibbles
 * ({@code & 0xF}: the even columns) and high nibbles ({@code >> 4 & 0xF}: the odd ones), converted to f32 and
 * shifted by the zero point in registers.
 *
 * <p>Because the two halves hold even and odd columns, the activations are de-interleaved once per call
 * (an O(tokens * cols) pass on the calling thread into a thread-local buffer): within each block of 2L
 * columns, the even columns first, then the odd ones; so a low-nibble vector meets the first L floats of a
 * block and a high-nibble vector the next L, with plain loads. Fast path when the group size is a multiple
 * of 2L (groups 32, 64, 128 for up to 16 float lanes): decode ({@link #tile4x1}) keeps per-group sums of
 * {@code (n - z) x} for four rows (eight FMA chains) and folds them into four vector totals times the group
 * scale; prefill ({@link #tile4x4}) dequantizes each weight vector once ({@code (n - z) * scale}) and uses it
 * for four tokens. Other group sizes take {@link #rowDotAny}, scalar and slow, but correct.
 *
 * <p>Vectors never cross a method boundary here (C2 only scalar-replaces what it can see through; see
 * {@link VectorKernels}), hence the repeated widening expressions, written out by hand from one pattern.
 */
final class MatmulI4 {
    private static final int L = VectorKernels.L;
    private static final VectorSpecies<Float> F = VectorKernels.F;
    private static final VectorSpecies<Integer> I = VectorKernels.I;
    private static final VectorSpecies<Byte> B = VectorKernels.B;
    private static final boolean NARROW = VectorKernels.I8_NARROW;
    private static final VectorMask<Byte> BM = VectorKernels.BM;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** De-interleaved activations of the calling thread, grown on demand (never per call once large enough). */
    private static final ThreadLocal<float[][]> XD = ThreadLocal.withInitial(() -> new float[1][0]);

    private MatmulI4() {
    }

    /** The reusable parallel job: one instance per VectorKernels, fields set under its monitor. */
    static final class Task implements RangeTask {
        private float[] out, x;
        private MemorySegment w;
        private float[] scales, zeros;
        private int group, rows, cols, tokens;

        void set(float[] out, float[] x, MemorySegment w, float[] scales, float[] zeros, int group, int rows,
                 int cols, int tokens) {
            this.out = out;
            this.x = x;
            this.w = w;
            this.scales = scales;
            this.zeros = zeros;
            this.group = group;
            this.rows = rows;
            this.cols = cols;
            this.tokens = tokens;
        }

        @Override
        public void run(int from, int to) {
            blocks(out, x, w, scales, zeros, group, rows, cols, tokens, from, to);
        }
    }

    /** Whether the vector path applies: every group is a whole number of 2L-column blocks. */
    static boolean fastPath(int group) {
        return group % (2 * L) == 0;
    }

    /** out (tokens, rows) = x (tokens, cols) times w^T; sizes already validated by the caller. */
    static void matmul(WorkerPool pool, Task task, float[] out, float[] x, Matrix w, int tokens) {
        int rows = w.rows(), cols = w.cols(), group = w.groupSize();
        float[] xs = x;
        if (fastPath(group)) {
            float[][] holder = XD.get();
            if (holder[0].length < tokens * cols) {
                holder[0] = new float[tokens * cols];
            }
            xs = holder[0];
            deinterleave(xs, x, tokens * cols);
        }
        int blocks = (rows + VectorKernels.RB - 1) / VectorKernels.RB;
        if ((long) rows * cols * tokens < VectorKernels.PARALLEL_MIN_MACS || pool.threads() == 1) {
            blocks(out, xs, w.data(), w.scales(), w.zeros(), group, rows, cols, tokens, 0, blocks);
            return;
        }
        synchronized (task) {
            task.set(out, xs, w.data(), w.scales(), w.zeros(), group, rows, cols, tokens);
            try {
                pool.run(blocks, task);
            } finally {
                task.set(null, null, null, null, null, 0, 0, 0, 0);
            }
        }
    }

    /** Within each block of 2L values: the even-indexed ones, then the odd ones. n is a multiple of 2L. */
    static void deinterleave(float[] dst, float[] src, int n) {
        for (int b = 0; b < n; b += 2 * L) {
            for (int i = 0; i < L; i++) {
                dst[b + i] = src[b + 2 * i];
                dst[b + L + i] = src[b + 2 * i + 1];
            }
        }
    }

    /** Row blocks {@code [fromBlock, toBlock)}; x is de-interleaved on the fast path, as given otherwise. */
    static void blocks(float[] out, float[] x, MemorySegment w, float[] scales, float[] zeros, int group, int rows,
                       int cols, int tokens, int fromBlock, int toBlock) {
        int r0 = fromBlock * VectorKernels.RB, r1 = Math.min(rows, toBlock * VectorKernels.RB);
        int ng = cols / group;
        long rowBytes = cols / 2;
        if (!fastPath(group)) {
            for (int r = r0; r < r1; r++) {
                for (int t = 0; t < tokens; t++) {
                    out[t * rows + r] = rowDotAny(x, t * cols, w, r * rowBytes, scales, zeros, r * ng, cols, group);
                }
            }
            return;
        }
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            long wOff = r * rowBytes;
            int t = 0;
            for (; t + 4 <= tokens; t += 4) {
                tile4x4(out, x, w, wOff, rowBytes, scales, zeros, r * ng, ng, group, r, rows, cols, t);
            }
            for (; t < tokens; t++) {
                tile4x1(out, x, w, wOff, rowBytes, scales, zeros, r * ng, ng, group, r, rows, cols, t);
            }
        }
        for (; r < r1; r++) {
            for (int t = 0; t < tokens; t++) {
                out[t * rows + r] = rowDot(x, t * cols, w, r * rowBytes, scales, zeros, r * ng, ng, group);
            }
        }
    }

    private static float zero(float[] zeros, int g) {
        return zeros == null ? Matrix.INT4_SYMMETRIC_ZERO : zeros[g];
    }

    /** Four rows times four tokens: each weight vector is dequantized once and feeds four FMAs. */
    private static void tile4x4(float[] out, float[] x, MemorySegment w, long wOff, long rowBytes, float[] scales,
                                float[] zeros, int sOff, int ng, int group, int r, int rows, int cols, int t) {
        float[] sc = VectorMath.scratch();   // lane sums in a fixed order: see VectorMath
        long w0 = wOff, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        int s0 = sOff, s1 = s0 + ng, s2 = s1 + ng, s3 = s2 + ng;
        int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int c = 0;
        for (int g = 0; g < ng; g++) {
            float z0 = zero(zeros, s0 + g), z1 = zero(zeros, s1 + g), z2 = zero(zeros, s2 + g), z3 = zero(zeros, s3 + g);
            float g0 = scales[s0 + g], g1 = scales[s1 + g], g2 = scales[s2 + g], g3 = scales[s3 + g];
            int end = c + group;
            for (; c < end; c += 2 * L) {
                long bo = c >> 1;
                FloatVector l0 = FloatVector.fromArray(F, x, x0 + c), h0 = FloatVector.fromArray(F, x, x0 + c + L);
                FloatVector l1 = FloatVector.fromArray(F, x, x1 + c), h1 = FloatVector.fromArray(F, x, x1 + c + L);
                FloatVector l2 = FloatVector.fromArray(F, x, x2 + c), h2 = FloatVector.fromArray(F, x, x2 + c + L);
                FloatVector l3 = FloatVector.fromArray(F, x, x3 + c), h3 = FloatVector.fromArray(F, x, x3 + c + L);
                IntVector b0 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w0 + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, w0 + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                FloatVector lo0 = ((FloatVector) b0.and(0xF).convert(VectorOperators.I2F, 0)).sub(z0).mul(g0);
                FloatVector hi0 = ((FloatVector) b0.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z0).mul(g0);
                a00 = hi0.fma(h0, lo0.fma(l0, a00));
                a01 = hi0.fma(h1, lo0.fma(l1, a01));
                a02 = hi0.fma(h2, lo0.fma(l2, a02));
                a03 = hi0.fma(h3, lo0.fma(l3, a03));
                IntVector b1 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w1 + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, w1 + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                FloatVector lo1 = ((FloatVector) b1.and(0xF).convert(VectorOperators.I2F, 0)).sub(z1).mul(g1);
                FloatVector hi1 = ((FloatVector) b1.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z1).mul(g1);
                a10 = hi1.fma(h0, lo1.fma(l0, a10));
                a11 = hi1.fma(h1, lo1.fma(l1, a11));
                a12 = hi1.fma(h2, lo1.fma(l2, a12));
                a13 = hi1.fma(h3, lo1.fma(l3, a13));
                IntVector b2 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w2 + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, w2 + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                FloatVector lo2 = ((FloatVector) b2.and(0xF).convert(VectorOperators.I2F, 0)).sub(z2).mul(g2);
                FloatVector hi2 = ((FloatVector) b2.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z2).mul(g2);
                a20 = hi2.fma(h0, lo2.fma(l0, a20));
                a21 = hi2.fma(h1, lo2.fma(l1, a21));
                a22 = hi2.fma(h2, lo2.fma(l2, a22));
                a23 = hi2.fma(h3, lo2.fma(l3, a23));
                IntVector b3 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w3 + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, w3 + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                FloatVector lo3 = ((FloatVector) b3.and(0xF).convert(VectorOperators.I2F, 0)).sub(z3).mul(g3);
                FloatVector hi3 = ((FloatVector) b3.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z3).mul(g3);
                a30 = hi3.fma(h0, lo3.fma(l0, a30));
                a31 = hi3.fma(h1, lo3.fma(l1, a31));
                a32 = hi3.fma(h2, lo3.fma(l2, a32));
                a33 = hi3.fma(h3, lo3.fma(l3, a33));
            }
        }
        int o0 = t * rows + r, o1 = o0 + rows, o2 = o1 + rows, o3 = o2 + rows;
        a00.intoArray(sc, 0 * L);
        out[o0 + 0] = VectorMath.sumLanes(sc, 0 * L);
        a10.intoArray(sc, 1 * L);
        out[o0 + 1] = VectorMath.sumLanes(sc, 1 * L);
        a20.intoArray(sc, 2 * L);
        out[o0 + 2] = VectorMath.sumLanes(sc, 2 * L);
        a30.intoArray(sc, 3 * L);
        out[o0 + 3] = VectorMath.sumLanes(sc, 3 * L);
        a01.intoArray(sc, 4 * L);
        out[o1 + 0] = VectorMath.sumLanes(sc, 4 * L);
        a11.intoArray(sc, 5 * L);
        out[o1 + 1] = VectorMath.sumLanes(sc, 5 * L);
        a21.intoArray(sc, 6 * L);
        out[o1 + 2] = VectorMath.sumLanes(sc, 6 * L);
        a31.intoArray(sc, 7 * L);
        out[o1 + 3] = VectorMath.sumLanes(sc, 7 * L);
        a02.intoArray(sc, 8 * L);
        out[o2 + 0] = VectorMath.sumLanes(sc, 8 * L);
        a12.intoArray(sc, 9 * L);
        out[o2 + 1] = VectorMath.sumLanes(sc, 9 * L);
        a22.intoArray(sc, 10 * L);
        out[o2 + 2] = VectorMath.sumLanes(sc, 10 * L);
        a32.intoArray(sc, 11 * L);
        out[o2 + 3] = VectorMath.sumLanes(sc, 11 * L);
        a03.intoArray(sc, 12 * L);
        out[o3 + 0] = VectorMath.sumLanes(sc, 12 * L);
        a13.intoArray(sc, 13 * L);
        out[o3 + 1] = VectorMath.sumLanes(sc, 13 * L);
        a23.intoArray(sc, 14 * L);
        out[o3 + 2] = VectorMath.sumLanes(sc, 14 * L);
        a33.intoArray(sc, 15 * L);
        out[o3 + 3] = VectorMath.sumLanes(sc, 15 * L);
    }

    /**
     * Four rows times one token: the decode kernel. Per group, sums of {@code (n - z) x} over the low and
     * the high nibbles of four rows (eight FMA chains), folded into four totals times the group scale.
     */
    private static void tile4x1(float[] out, float[] x, MemorySegment w, long wOff, long rowBytes, float[] scales,
                                float[] zeros, int sOff, int ng, int group, int r, int rows, int cols, int t) {
        float[] sc = VectorMath.scratch();   // lane sums in a fixed order: see VectorMath
        long w0 = wOff, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        int s0 = sOff, s1 = s0 + ng, s2 = s1 + ng, s3 = s2 + ng;
        int x0 = t * cols;
        FloatVector t0 = FloatVector.zero(F), t1 = t0, t2 = t0, t3 = t0;
        int c = 0;
        for (int g = 0; g < ng; g++) {
            float z0 = zero(zeros, s0 + g), z1 = zero(zeros, s1 + g), z2 = zero(zeros, s2 + g), z3 = zero(zeros, s3 + g);
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            int end = c + group;
            for (; c < end; c += 2 * L) {
                long bo = c >> 1;
                FloatVector lx = FloatVector.fromArray(F, x, x0 + c), hx = FloatVector.fromArray(F, x, x0 + c + L);
                IntVector q0 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w0 + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, w0 + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                a0 = ((FloatVector) q0.and(0xF).convert(VectorOperators.I2F, 0)).sub(z0).fma(lx, a0);
                b0 = ((FloatVector) q0.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z0).fma(hx, b0);
                IntVector q1 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w1 + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, w1 + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                a1 = ((FloatVector) q1.and(0xF).convert(VectorOperators.I2F, 0)).sub(z1).fma(lx, a1);
                b1 = ((FloatVector) q1.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z1).fma(hx, b1);
                IntVector q2 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w2 + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, w2 + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                a2 = ((FloatVector) q2.and(0xF).convert(VectorOperators.I2F, 0)).sub(z2).fma(lx, a2);
                b2 = ((FloatVector) q2.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z2).fma(hx, b2);
                IntVector q3 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w3 + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, w3 + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                a3 = ((FloatVector) q3.and(0xF).convert(VectorOperators.I2F, 0)).sub(z3).fma(lx, a3);
                b3 = ((FloatVector) q3.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z3).fma(hx, b3);
            }
            t0 = a0.add(b0).fma(FloatVector.broadcast(F, scales[s0 + g]), t0);
            t1 = a1.add(b1).fma(FloatVector.broadcast(F, scales[s1 + g]), t1);
            t2 = a2.add(b2).fma(FloatVector.broadcast(F, scales[s2 + g]), t2);
            t3 = a3.add(b3).fma(FloatVector.broadcast(F, scales[s3 + g]), t3);
        }
        int o = t * rows + r;
        t0.intoArray(sc, 0);
        out[o] = VectorMath.sumLanes(sc, 0);
        t1.intoArray(sc, L);
        out[o + 1] = VectorMath.sumLanes(sc, L);
        t2.intoArray(sc, 2 * L);
        out[o + 2] = VectorMath.sumLanes(sc, 2 * L);
        t3.intoArray(sc, 3 * L);
        out[o + 3] = VectorMath.sumLanes(sc, 3 * L);
    }

    /** One weight row against one (de-interleaved) x row, fast path. */
    private static float rowDot(float[] x, int xOff, MemorySegment w, long wOff, float[] scales, float[] zeros,
                                int sOff, int ng, int group) {
        float[] sc = VectorMath.scratch();   // lane sums in a fixed order: see VectorMath
        FloatVector tot = FloatVector.zero(F);
        int c = 0;
        for (int g = 0; g < ng; g++) {
            float z = zero(zeros, sOff + g);
            FloatVector a = FloatVector.zero(F), b = a;
            int end = c + group;
            for (; c < end; c += 2 * L) {
                long bo = c >> 1;
                IntVector q = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, wOff + bo, LE, BM) : ByteVector.fromMemorySegment(B, w, wOff + bo, LE)).convertShape(VectorOperators.B2I, I, 0));
                a = ((FloatVector) q.and(0xF).convert(VectorOperators.I2F, 0)).sub(z).fma(FloatVector.fromArray(F, x, xOff + c), a);
                b = ((FloatVector) q.lanewise(VectorOperators.ASHR, 4).and(0xF).convert(VectorOperators.I2F, 0)).sub(z).fma(FloatVector.fromArray(F, x, xOff + c + L), b);
            }
            tot = a.add(b).fma(FloatVector.broadcast(F, scales[sOff + g]), tot);
        }
        tot.intoArray(sc, 0);
        return VectorMath.sumLanes(sc, 0);
    }

    /** One weight row against one x row (in natural order) for any group size: scalar, the spec's terms. */
    private static float rowDotAny(float[] x, int xOff, MemorySegment w, long wOff, float[] scales, float[] zeros,
                                   int sOff, int cols, int group) {
        float s = 0f;
        for (int c = 0; c < cols; c++) {
            int g = sOff + c / group;
            int b = w.get(ValueLayout.JAVA_BYTE, wOff + (c >> 1));
            int n = (c & 1) == 0 ? b & 0xF : (b >> 4) & 0xF;
            s += x[xOff + c] * ((n - zero(zeros, g)) * scales[g]);
        }
        return s;
    }

    /** Row {@code row} dequantized into {@code out[outOff..]}, exactly as {@link Matrix#get}. */
    static void gather(float[] out, int outOff, MemorySegment w, float[] scales, float[] zeros, int group, int row,
                       int cols) {
        long base = (long) row * (cols / 2);
        int ng = cols / group;
        for (int c = 0; c < cols; c += 2) {
            int b = w.get(ValueLayout.JAVA_BYTE, base + (c >> 1));
            int g0 = row * ng + c / group, g1 = row * ng + (c + 1) / group;
            out[outOff + c] = ((b & 0xF) - zero(zeros, g0)) * scales[g0];
            out[outOff + c + 1] = (((b >> 4) & 0xF) - zero(zeros, g1)) * scales[g1];
        }
    }
}
