package org.jtune.bench;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.ScalarKernels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/** One query head attending over a cache of {@code len} positions (head dim 64), fast vs scalar. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-XX:CompileCommand=quiet", "-XX:CompileCommand=dontinline,org.jtune.kernel.VectorKernels::*",
        "-XX:CompileCommand=inline,org.jtune.kernel.VectorMath::fold*", "-XX:CompileCommand=inline,org.jtune.kernel.VectorMath::merge*",
        "-XX:CompileCommand=inline,org.jtune.kernel.VectorMath::sum", "-XX:CompileCommand=inline,org.jtune.kernel.VectorMath::exp"})
public class AttentionBenchmark {
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
