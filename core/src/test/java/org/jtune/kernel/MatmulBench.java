package org.jtune.kernel;

import java.lang.management.ManagementFactory;
import java.util.Random;
import org.jtune.io.safetensors.DType;

/**
 * Rough throughput check, not a test and not a benchmark of record (that is the JMH module's job):
 * {@code java --add-modules jdk.incubator.vector -cp core/target/classes:core/target/test-classes
 * org.jtune.kernel.MatmulBench [rows cols [dtypes [group]]]} (dtypes BF16, F32, F16, I8, I4 = int4 symmetric, I4A = int4 asymmetric). Prints GB/s of weights streamed at decode and GFLOP/s
 * for prefill-sized token blocks, plus bytes allocated per call on the calling thread.
 */
public final class MatmulBench {
    public static void main(String[] args) {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
        int cols = args.length > 1 ? Integer.parseInt(args[1]) : 2048;
        String[] dts = args.length > 2 ? args[2].split(",") : new String[] {"BF16", "F32", "F16", "I8"};
        int group = args.length > 3 ? Integer.parseInt(args[3]) : 32; // I8 / I4 group size
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        WorkerPool pool = WorkerPool.shared();
        VectorKernels k = new VectorKernels(pool);
        System.out.println(k.name() + ", threads " + pool.threads() + ", " + rows + "x" + cols);
        Random rnd = new Random(1);
        for (String dn : dts) {
            Matrix w = dn.startsWith("I4") ? TestMatrices.i4Matrix(rnd, rows, cols, group, !dn.equals("I4A"), true)
                    : DType.valueOf(dn) == DType.I8 ? TestMatrices.i8Matrix(rnd, rows, cols, group, true)
                    : TestMatrices.matrix(rnd, DType.valueOf(dn), rows, cols, true);
            for (int tokens : new int[] {1, 4, 32, 128}) {
                float[] x = TestMatrices.randomFloats(rnd, tokens * cols);
                float[] out = new float[tokens * rows];
                long warmEnd = System.nanoTime() + 2_000_000_000L; // let C2 finish compiling the kernels
                int iters = 0;
                while (System.nanoTime() < warmEnd) {
                    k.matmul(out, x, w, tokens);
                    iters++;
                }
                iters = Math.max(3, iters / 2); // about one second measured
                long a0 = mx.getCurrentThreadAllocatedBytes();
                long t0 = System.nanoTime();
                for (int i = 0; i < iters; i++) {
                    k.matmul(out, x, w, tokens);
                }
                double s = (System.nanoTime() - t0) / 1e9 / iters;
                long alloc = (mx.getCurrentThreadAllocatedBytes() - a0) / iters;
                System.out.printf("%-5s tokens=%3d  %8.3f ms/call  %6.2f GB/s weights  %7.2f GFLOP/s  %6.3f ms/token  alloc %d B/call%n",
                        dn, tokens, s * 1e3, w.byteSize() / s / 1e9, 2.0 * rows * cols * tokens / s / 1e9,
                        s * 1e3 / tokens, alloc);
            }
        }
        pool.close();
    }
}
