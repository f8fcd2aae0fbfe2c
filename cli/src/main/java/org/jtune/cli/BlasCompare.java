package org.jtune.cli;

import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.HalfFloats;
import org.jtune.kernel.BlasKernels;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.OpenBlas;
import org.jtune.kernel.WorkerPool;

/**
 * {@code jtune bench --blas-compare}: the pure-Java matmul against the OpenBLAS path on the same weights and
 * inputs, in one run, for prefill/training shapes. Each product is timed best-of-N after warm-up calls; the
 * ratio is OpenBLAS over Java GFLOP/s. Weights sit off-heap, 64-byte aligned, like memory-mapped ones.
 */
final class BlasCompare {
    private BlasCompare() {
    }

    static void run(PrintWriter out, String shapeList, String tokenList, String dtypeList, double seconds) {
        List<int[]> shapes = new ArrayList<>();
        for (String shape : shapeList.split(",")) {
            String[] rc = shape.strip().split("x");
            if (rc.length != 2 || positive(rc[0]) < 0 || positive(rc[1]) < 0) {
                throw new JTuneException("--blas-shapes takes ROWSxCOLS,... with positive sizes (e.g. 576x1536), got '" + shape + "'");
            }
            shapes.add(new int[] {positive(rc[0]), positive(rc[1])});
        }
        List<Integer> tokenCounts = new ArrayList<>();
        for (String t : tokenList.split(",")) {
            if (positive(t.strip()) < 0) {
                throw new JTuneException("--blas-tokens takes positive token counts, got '" + t + "'");
            }
            tokenCounts.add(positive(t.strip()));
        }
        List<DType> dtypes = new ArrayList<>();
        for (String dt : dtypeList.split(",")) {
            String name = dt.strip().toUpperCase(java.util.Locale.ROOT);
            if (!name.equals("F32") && !name.equals("BF16") && !name.equals("F16")) {
                throw new JTuneException("--blas-dtypes takes F32, BF16 or F16, got '" + dt + "'");
            }
            dtypes.add(DType.valueOf(name));
        }
        if (!(seconds > 0)) {
            throw new JTuneException("--blas-seconds must be positive, got " + seconds);
        }
        WorkerPool pool = WorkerPool.shared();
        Kernels java = KernelProvider.pureJava();
        OpenBlas blas = OpenBlas.shared();
        out.printf("blas      %s%n", blas.description());
        out.printf("threads   %d (jtune's pool; on the OpenBLAS side each pool thread runs a single-threaded sgemm)%n", pool.threads());
        if (!blas.available()) {
            out.printf("nothing to compare: OpenBLAS is unavailable, the pure-Java kernels (%s) run everywhere%n", java.name());
            out.flush();
            return;
        }
        Kernels native_ = new BlasKernels(java, blas, pool, true);
        out.printf("%-8s %-11s %6s %12s %12s %7s%n", "dtype", "rows x cols", "tokens", "java GF/s", "blas GF/s", "ratio");
        SplittableRandom rnd = new SplittableRandom(1);
        for (DType dtype : dtypes) {
            for (int[] shape : shapes) {
                int rows = shape[0], cols = shape[1];
                Matrix w = randomMatrix(rnd, dtype, rows, cols);
                for (int tokens : tokenCounts) {
                    float[] x = new float[tokens * cols];
                    for (int i = 0; i < x.length; i++) {
                        x[i] = (float) (rnd.nextDouble() * 2 - 1);
                    }
                    float[] o = new float[tokens * rows];
                    double flops = 2.0 * rows * cols * tokens;
                    double[] best = bestSeconds(() -> java.matmul(o, x, w, tokens), () -> native_.matmul(o, x, w, tokens),
                            seconds);
                    double j = best[0], b = best[1];
                    out.printf("%-8s %-11s %6d %12.1f %12.1f %6.2fx%n", dtype, rows + "x" + cols, tokens,
                            flops / j / 1e9, flops / b / 1e9, j / b);
                    out.flush();
                }
            }
        }
        loraBackward(out, java, native_, shapes, tokenCounts, seconds, rnd);
    }

    /** The value of a positive decimal int, or -1. */
    private static int positive(String s) {
        try {
            int v = Integer.parseInt(s);
            return v > 0 ? v : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /**
     * The backward of a rank-8 LoRA pair on each shape: {@code dU += dOut B}, {@code dB += dOut^T u},
     * {@code dA += dU^T x}, the three f32 products TrainingOps hands to the kernels directly.
     */
    private static void loraBackward(PrintWriter out, Kernels java, Kernels native_, List<int[]> shapes,
                                     List<Integer> tokenCounts, double seconds, SplittableRandom rnd) {
        int rank = 8;
        out.printf("LoRA backward, rank %d (dU = dOut B, dB = dOut^T u, dA = dU^T x):%n", rank);
        out.printf("%-8s %-11s %6s %12s %12s %7s%n", "", "rows x cols", "tokens", "java GF/s", "blas GF/s", "ratio");
        for (int[] shape : shapes) {
            int rows = shape[0], cols = shape[1];
            Matrix b = new Matrix(MemorySegment.ofArray(floats(rnd, rows * rank)), DType.F32, rows, rank);   // as Linear.f32View
            for (int n : tokenCounts) {
                float[] dOut = floats(rnd, n * rows), u = floats(rnd, n * rank), x = floats(rnd, n * cols);
                float[] dU = new float[n * rank], dB = new float[rows * rank], dA = new float[rank * cols];
                double flops = 2.0 * n * rank * (2.0 * rows + cols);
                double[] best = bestSeconds(() -> lora(java, b, dOut, u, x, dU, dB, dA, n, rank),
                        () -> lora(native_, b, dOut, u, x, dU, dB, dA, n, rank), seconds);
                out.printf("%-8s %-11s %6d %12.1f %12.1f %6.2fx%n", "F32", rows + "x" + cols, n, flops / best[0] / 1e9,
                        flops / best[1] / 1e9, best[0] / best[1]);
                out.flush();
            }
        }
    }

    private static void lora(Kernels k, Matrix b, float[] dOut, float[] u, float[] x, float[] dU, float[] dB, float[] dA,
                             int n, int rank) {
        k.matmulBackwardInput(dU, dOut, b, n);
        k.matmulBackwardWeight(dB, dOut, u, n, b.rows(), rank);
        k.matmulBackwardWeight(dA, dU, x, n, rank, x.length / n);
    }

    private static float[] floats(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1) * 0.1f;
        }
        return a;
    }

    /**
     * Best time of one call of a and of b: warm-up calls of each for about {@code seconds} (JIT), then five
     * alternating rounds of timed calls (at least 2 calls a round), so that another process slowing the machine
     * for a while hurts both sides rather than one.
     */
    static double[] bestSeconds(Runnable a, Runnable b, double seconds) {
        warm(a, seconds / 2);
        warm(b, seconds / 2);
        double[] best = {Double.MAX_VALUE, Double.MAX_VALUE};
        for (int round = 0; round < 5; round++) {
            best[0] = Math.min(best[0], timed(a, seconds / 5));
            best[1] = Math.min(best[1], timed(b, seconds / 5));
        }
        return best;
    }

    private static void warm(Runnable r, double seconds) {
        long start = System.nanoTime();
        for (int i = 0; i < 2 || System.nanoTime() - start < seconds * 1e9; i++) {
            r.run();
        }
    }

    private static double timed(Runnable r, double seconds) {
        double best = Double.MAX_VALUE;
        long start = System.nanoTime();
        for (int i = 0; i < 2 || System.nanoTime() - start < seconds * 1e9; i++) {
            long t0 = System.nanoTime();
            r.run();
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return best;
    }

    static Matrix randomMatrix(SplittableRandom rnd, DType dt, int rows, int cols) {
        long n = (long) rows * cols;
        MemorySegment seg = Arena.ofAuto().allocate(n * dt.byteSize(), 64);
        for (long i = 0; i < n; i++) {
            float v = (float) (rnd.nextDouble() - 0.5) * 0.1f;
            switch (dt) {
                case F32 -> seg.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
                case BF16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, HalfFloats.floatToBf16(v));
                case F16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, HalfFloats.floatToF16(v));
                default -> throw new IllegalArgumentException("--blas-compare takes F32, BF16 or F16 weights, not " + dt);
            }
        }
        return new Matrix(seg, dt, rows, cols);
    }
}
