package org.jtune.bench;

import java.util.SplittableRandom;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.ScalarKernels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/** One query head attending over a cache of {@code len} positions (head dim 64), fast vs scalar. */
@State(Scope.Benchmark)
public class AttentionBenchmark extends KernelBenchmark {
    static final int HEAD_DIM = 64;
    static final int KV_STRIDE = 256;

    @Param({"128", "2048"})
    int len;

    @Param({"fast", "scalar"})
    String impl;

    Kernels kernels;
    float[] q, keys, values, out, scores;

    @Setup
    public void setup() {
        kernels = impl.equals("scalar") ? new ScalarKernels() : KernelProvider.get();
        SplittableRandom r = new SplittableRandom(2);
        q = new float[HEAD_DIM];
        keys = new float[len * KV_STRIDE];
        values = new float[len * KV_STRIDE];
        for (float[] a : new float[][] {q, keys, values}) {
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) (r.nextDouble() - 0.5);
            }
        }
        out = new float[HEAD_DIM];
        scores = new float[len];
    }

    @Benchmark
    public float[] attend() {
        kernels.attend(out, 0, q, 0, keys, values, 0, KV_STRIDE, len, HEAD_DIM, 0.125f, scores);
        return out;
    }
}
