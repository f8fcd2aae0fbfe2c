package org.jtune.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.HalfFloats;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.ScalarKernels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Training's two backward products of a linear layer, {@code dx += dy w} and {@code dw += dy^T x}, beside its
 * forward {@code y = x w^T} over the same weight and tokens: the same multiply-adds each, so the forward is the
 * baseline the backward kernels are read against (and the scalar reference, with {@code impl=scalar}).
 * Run: {@code ./bench/run BackwardMatmulBenchmark}.
 */
@State(Scope.Benchmark)
public class BackwardMatmulBenchmark extends KernelBenchmark {
    @Param({"BF16", "F32"})
    String dtype;

    @Param({"256"})
    int tokens;

    @Param({"2048"})
    int rows;

    @Param({"2048"})
    int cols;

    @Param({"fast", "scalar"})
    String impl;

    Kernels kernels;
    Matrix w;
    float[] x, y, dy, dx, dw;

    @Setup
    public void setup() {
        kernels = impl.equals("scalar") ? new ScalarKernels() : KernelProvider.get();
        DType dt = DType.valueOf(dtype);
        SplittableRandom r = new SplittableRandom(1);
        MemorySegment seg = Arena.ofAuto().allocate((long) rows * cols * dt.byteSize(), 64);
        for (long i = 0; i < (long) rows * cols; i++) {
            float v = (float) (r.nextDouble() - 0.5);
            if (dt == DType.F32) {
                seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
            } else {
                seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, HalfFloats.floatToBf16(v));
            }
        }
        w = new Matrix(seg, dt, rows, cols);
        x = random(r, tokens * cols);
        dy = random(r, tokens * rows);
        y = new float[tokens * rows];
        dx = new float[tokens * cols];
        dw = new float[rows * cols];
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextDouble() - 0.5);
        }
        return a;
    }

    @Benchmark
    public float[] forward() {
        kernels.matmul(y, x, w, tokens);
        return y;
    }

    @Benchmark
    public float[] inputGradient() {
        kernels.matmulBackwardInput(dx, dy, w, tokens);
        return dx;
    }

    @Benchmark
    public float[] weightGradient() {
        kernels.matmulBackwardWeight(dw, dy, x, tokens, rows, cols);
        return dw;
    }
}
