package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector W8A8 matmul ({@link Kernels#matmulW8A8}): int8 weights widened to int lanes (B2I), activation
 * codes already widened to an int array by {@link W8A8#quantizeActivations}, lanewise int multiply and add.
 * Integer addition is associative, so any lane order gives the scalar result exactly (reduceLanes is safe
 * here, unlike for floats). Tiles of four rows by four tokens (prefill) or four rows by one token (decode),
 * a scalar tail for the last {@code cols % L} columns; the final scaling is {@link W8A8#output}, the same
 * float expression as the reference, so outputs are bit-identical.
 */
final class MatmulW8A8 {
    private static final int L = VectorKernels.L;
    private static final VectorSpecies<Integer> I = VectorKernels.I;
    private static final VectorSpecies<Byte> B = VectorKernels.B;
    private static final boolean NARROW = VectorKernels.I8_NARROW;
    private static final VectorMask<Byte> BM = VectorKernels.BM;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private MatmulW8A8() {
    }

    /** The reusable parallel job: one instance per VectorKernels, fields set under its monitor. */
    static final class Task implements RangeTask {
        private float[] out, wScales, actScale;
        private int[] q;
        private MemorySegment w;
        private int rows, cols, tokens;

        void set(float[] out, int[] q, MemorySegment w, float[] wScales, float[] actScale, int rows, int cols, int tokens) {
            this.out = out;
            this.q = q;
            this.w = w;
            this.wScales = wScales;
            this.actScale = actScale;
            this.rows = rows;
            this.cols = cols;
            this.tokens = tokens;
        }

        @Override
        public void run(int from, int to) {
            blocks(out, q, w, wScales, actScale, rows, cols, tokens, from, to);
        }
    }

    static void matmul(WorkerPool pool, Task task, float[] out, float[] x, Matrix w, int tokens, float[] actScale) {
        W8A8.check(out, x, w, tokens, actScale);
        int rows = w.rows(), cols = w.cols();
        if (tokens == 0 || rows == 0) {
            return;
        }
        int[] q = W8A8.quantizeActivations(x, tokens, cols, actScale);
        int blocks = (rows + VectorKernels.RB - 1) / VectorKernels.RB;
        if ((long) rows * cols * tokens < VectorKernels.PARALLEL_MIN_MACS || pool.threads() == 1) {
            blocks(out, q, w.data(), w.scales(), actScale, rows, cols, tokens, 0, blocks);
            return;
        }
        synchronized (task) {
            task.set(out, q, w.data(), w.scales(), actScale, rows, cols, tokens);
            try {
                pool.run(blocks, task);
            } finally {
                task.set(null, null, null, null, null, 0, 0, 0);
            }
        }
    }

    private static int wq(MemorySegment w, long off) {
        return w.get(ValueLayout.JAVA_BYTE, off);
    }

    static void blocks(float[] out, int[] q, MemorySegment w, float[] wScales, float[] actScale, int rows, int cols,
                       int tokens, int fromBlock, int toBlock) {
        int r0 = fromBlock * VectorKernels.RB, r1 = Math.min(rows, toBlock * VectorKernels.RB);
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            int t = 0;
            for (; t + 4 <= tokens; t += 4) {
                tile4x4(out, q, w, wScales, actScale, r, rows, cols, t);
            }
            for (; t < tokens; t++) {
                tile4x1(out, q, w, wScales, actScale, r, rows, cols, t);
            }
        }
        for (; r < r1; r++) {
            for (int t = 0; t < tokens; t++) {
                tile1x1(out, q, w, wScales, actScale, r, rows, cols, t);
            }
        }
    }

    private static void tile4x4(float[] out, int[] q, MemorySegment w, float[] wScales, float[] actScale, int r,
                                int rows, int cols, int t) {
        long w0 = (long) r * cols, w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
        int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        IntVector a00 = IntVector.zero(I), a01 = a00, a02 = a00, a03 = a00;
        IntVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        IntVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        IntVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int bound = I.loopBound(cols);
        int c = 0;
        for (; c < bound; c += L) {
            IntVector v0 = IntVector.fromArray(I, q, x0 + c), v1 = IntVector.fromArray(I, q, x1 + c);
            IntVector v2 = IntVector.fromArray(I, q, x2 + c), v3 = IntVector.fromArray(I, q, x3 + c);
            IntVector k0 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w0 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w0 + c, LE)).convertShape(VectorOperators.B2I, I, 0));
            a00 = a00.add(k0.mul(v0));
            a01 = a01.add(k0.mul(v1));
            a02 = a02.add(k0.mul(v2));
            a03 = a03.add(k0.mul(v3));
            IntVector k1 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w1 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w1 + c, LE)).convertShape(VectorOperators.B2I, I, 0));
            a10 = a10.add(k1.mul(v0));
            a11 = a11.add(k1.mul(v1));
            a12 = a12.add(k1.mul(v2));
            a13 = a13.add(k1.mul(v3));
            IntVector k2 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w2 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w2 + c, LE)).convertShape(VectorOperators.B2I, I, 0));
            a20 = a20.add(k2.mul(v0));
            a21 = a21.add(k2.mul(v1));
            a22 = a22.add(k2.mul(v2));
            a23 = a23.add(k2.mul(v3));
            IntVector k3 = ((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w3 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w3 + c, LE)).convertShape(VectorOperators.B2I, I, 0));
            a30 = a30.add(k3.mul(v0));
            a31 = a31.add(k3.mul(v1));
            a32 = a32.add(k3.mul(v2));
            a33 = a33.add(k3.mul(v3));
        }
        int s00 = a00.reduceLanes(VectorOperators.ADD);
        int s01 = a01.reduceLanes(VectorOperators.ADD);
        int s02 = a02.reduceLanes(VectorOperators.ADD);
        int s03 = a03.reduceLanes(VectorOperators.ADD);
        int s10 = a10.reduceLanes(VectorOperators.ADD);
        int s11 = a11.reduceLanes(VectorOperators.ADD);
        int s12 = a12.reduceLanes(VectorOperators.ADD);
        int s13 = a13.reduceLanes(VectorOperators.ADD);
        int s20 = a20.reduceLanes(VectorOperators.ADD);
        int s21 = a21.reduceLanes(VectorOperators.ADD);
        int s22 = a22.reduceLanes(VectorOperators.ADD);
        int s23 = a23.reduceLanes(VectorOperators.ADD);
        int s30 = a30.reduceLanes(VectorOperators.ADD);
        int s31 = a31.reduceLanes(VectorOperators.ADD);
        int s32 = a32.reduceLanes(VectorOperators.ADD);
        int s33 = a33.reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            int k0 = wq(w, w0 + c), k1 = wq(w, w1 + c), k2 = wq(w, w2 + c), k3 = wq(w, w3 + c);
            int v0 = q[x0 + c], v1 = q[x1 + c], v2 = q[x2 + c], v3 = q[x3 + c];
            s00 += k0 * v0; s01 += k0 * v1; s02 += k0 * v2; s03 += k0 * v3;
            s10 += k1 * v0; s11 += k1 * v1; s12 += k1 * v2; s13 += k1 * v3;
            s20 += k2 * v0; s21 += k2 * v1; s22 += k2 * v2; s23 += k2 * v3;
            s30 += k3 * v0; s31 += k3 * v1; s32 += k3 * v2; s33 += k3 * v3;
        }
        float as0 = actScale[actScale.length == 1 ? 0 : t + 0];
        out[(t + 0) * rows + r + 0] = W8A8.output(s00, as0, wScales[r + 0]);
        out[(t + 0) * rows + r + 1] = W8A8.output(s10, as0, wScales[r + 1]);
        out[(t + 0) * rows + r + 2] = W8A8.output(s20, as0, wScales[r + 2]);
        out[(t + 0) * rows + r + 3] = W8A8.output(s30, as0, wScales[r + 3]);
        float as1 = actScale[actScale.length == 1 ? 0 : t + 1];
        out[(t + 1) * rows + r + 0] = W8A8.output(s01, as1, wScales[r + 0]);
        out[(t + 1) * rows + r + 1] = W8A8.output(s11, as1, wScales[r + 1]);
        out[(t + 1) * rows + r + 2] = W8A8.output(s21, as1, wScales[r + 2]);
        out[(t + 1) * rows + r + 3] = W8A8.output(s31, as1, wScales[r + 3]);
        float as2 = actScale[actScale.length == 1 ? 0 : t + 2];
        out[(t + 2) * rows + r + 0] = W8A8.output(s02, as2, wScales[r + 0]);
        out[(t + 2) * rows + r + 1] = W8A8.output(s12, as2, wScales[r + 1]);
        out[(t + 2) * rows + r + 2] = W8A8.output(s22, as2, wScales[r + 2]);
        out[(t + 2) * rows + r + 3] = W8A8.output(s32, as2, wScales[r + 3]);
        float as3 = actScale[actScale.length == 1 ? 0 : t + 3];
        out[(t + 3) * rows + r + 0] = W8A8.output(s03, as3, wScales[r + 0]);
        out[(t + 3) * rows + r + 1] = W8A8.output(s13, as3, wScales[r + 1]);
        out[(t + 3) * rows + r + 2] = W8A8.output(s23, as3, wScales[r + 2]);
        out[(t + 3) * rows + r + 3] = W8A8.output(s33, as3, wScales[r + 3]);
    }

    private static void tile4x1(float[] out, int[] q, MemorySegment w, float[] wScales, float[] actScale, int r,
                                int rows, int cols, int t) {
        long w0 = (long) r * cols, w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
        int x0 = t * cols;
        IntVector a0 = IntVector.zero(I), a1 = a0, a2 = a0, a3 = a0;
        int bound = I.loopBound(cols);
        int c = 0;
        for (; c < bound; c += L) {
            IntVector v = IntVector.fromArray(I, q, x0 + c);
            a0 = a0.add(((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w0 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w0 + c, LE)).convertShape(VectorOperators.B2I, I, 0)).mul(v));
            a1 = a1.add(((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w1 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w1 + c, LE)).convertShape(VectorOperators.B2I, I, 0)).mul(v));
            a2 = a2.add(((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w2 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w2 + c, LE)).convertShape(VectorOperators.B2I, I, 0)).mul(v));
            a3 = a3.add(((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w3 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w3 + c, LE)).convertShape(VectorOperators.B2I, I, 0)).mul(v));
        }
        int s0 = a0.reduceLanes(VectorOperators.ADD), s1 = a1.reduceLanes(VectorOperators.ADD);
        int s2 = a2.reduceLanes(VectorOperators.ADD), s3 = a3.reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            int v = q[x0 + c];
            s0 += wq(w, w0 + c) * v;
            s1 += wq(w, w1 + c) * v;
            s2 += wq(w, w2 + c) * v;
            s3 += wq(w, w3 + c) * v;
        }
        float as = actScale[actScale.length == 1 ? 0 : t];
        int o = t * rows + r;
        out[o] = W8A8.output(s0, as, wScales[r]);
        out[o + 1] = W8A8.output(s1, as, wScales[r + 1]);
        out[o + 2] = W8A8.output(s2, as, wScales[r + 2]);
        out[o + 3] = W8A8.output(s3, as, wScales[r + 3]);
    }

    private static void tile1x1(float[] out, int[] q, MemorySegment w, float[] wScales, float[] actScale, int r,
                                int rows, int cols, int t) {
        long w0 = (long) r * cols;
        int x0 = t * cols;
        IntVector a = IntVector.zero(I);
        int bound = I.loopBound(cols);
        int c = 0;
        for (; c < bound; c += L) {
            a = a.add(((IntVector) (NARROW ? ByteVector.fromMemorySegment(B, w, w0 + c, LE, BM) : ByteVector.fromMemorySegment(B, w, w0 + c, LE)).convertShape(VectorOperators.B2I, I, 0)).mul(IntVector.fromArray(I, q, x0 + c)));
        }
        int s = a.reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            s += wq(w, w0 + c) * q[x0 + c];
        }
        out[t * rows + r] = W8A8.output(s, actScale[actScale.length == 1 ? 0 : t], wScales[r]);
    }
}
