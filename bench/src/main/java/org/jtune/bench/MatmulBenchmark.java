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
 * The hot kernel: a linear layer over a weight matrix in its stored dtype, at decode (1 token) and
 * prefill (32 tokens) sizes, for the selected kernels and the scalar reference as the baseline.
 * Run: {@code ./bench/run MatmulBenchmark}.
 */
@State(Scope.Benchmark)
public class MatmulBenchmark extends KernelBenchmark {
    @Param({"F32", "BF16", "F16"})
    String dtype;

    @Param({"1", "32"})
    int tokens;

    @Param({"2048"})
    int size;

    @Param({"fast", "scalar"})
    String impl;

    Kernels kernels;
    Matrix w;
    float[] x;
    float[] out;

    @Setup
    public void setup() {
        kernels = impl.equals("scalar") ? new ScalarKernels() : KernelProvider.get();
        DType dt = DType.valueOf(dtype);
        SplittableRandom r = new SplittableRandom(1);
        MemorySegment seg = Arena.ofAuto().allocate((long) size * size * dt.byteSize(), 64);
        for (long i = 0; i < (long) size * size; i++) {
            float v = (float) (r.nextDouble() - 0.5);
            switch (dt) {
                case F32 -> seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
                case BF16 -> seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, HalfFloats.floatToBf16(v));
                default -> seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, HalfFloats.floatToF16(v));
            }
        }
        w = new Matrix(seg, dt, size, size);
        x = new float[tokens * size];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextDouble();
        }
        out = new float[tokens * size];
    }

    @Benchmark
    public float[] matmul() {
        kernels.matmul(out, x, w, tokens);
        return out;
    }
}
