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

/**
 * One kv head with three query heads (SmolLM2's group) attending over {@code len} positions of a decode-layout
 * cache (head dim 64, rows contiguous), in f32 or packed bf16 ({@code org.jtune.model.KvCache}). Each call takes
 * the next of {@code heads} separate caches: 1 keeps it hot in cache; 200 (about 100 MB at 1200 positions) reads
 * it from memory, as decode does once the weights have streamed past.
 */
@State(Scope.Benchmark)
public class KvCacheAttentionBenchmark extends KernelBenchmark {
    static final int HEAD_DIM = 64;
    static final int GROUP = 3;

    @Param({"1200"})
    int len;

    @Param({"f32", "bf16"})
    String cache;

    @Param({"1", "200"})
    int heads;

    @Param({"fast", "scalar"})
    String impl;

    Kernels kernels;
    float[] q, out, scores;
    float[][] keys, values;
    int[][] packedKeys, packedValues;
    int next;

    @Setup
    public void setup() {
        kernels = impl.equals("scalar") ? new ScalarKernels() : KernelProvider.get();
        SplittableRandom r = new SplittableRandom(2);
        q = new float[GROUP * HEAD_DIM];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) (r.nextDouble() - 0.5);
        }
        int n = len * HEAD_DIM;
        boolean bf16 = cache.equals("bf16");
        keys = new float[heads][bf16 ? 0 : n];
        values = new float[heads][bf16 ? 0 : n];
        packedKeys = new int[heads][bf16 ? n / 2 : 0];
        packedValues = new int[heads][bf16 ? n / 2 : 0];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < n; i++) {
                float k = (float) (r.nextDouble() - 0.5), v = (float) (r.nextDouble() - 0.5);
                if (bf16) {   // the top halves of the floats: bf16 rounded toward zero, packed as KvCache packs them
                    int shift = i % 2 == 0 ? 16 : 0, mask = i % 2 == 0 ? 0xFFFF : 0xFFFF0000;
                    packedKeys[h][i / 2] |= (Float.floatToRawIntBits(k) >>> shift) & mask;
                    packedValues[h][i / 2] |= (Float.floatToRawIntBits(v) >>> shift) & mask;
                } else {
                    keys[h][i] = k;
                    values[h][i] = v;
                }
            }
        }
        out = new float[GROUP * HEAD_DIM];
        scores = new float[GROUP * len + Math.max(4096, 2 * HEAD_DIM)];
    }

    @Benchmark
    public float[] attendGroup() {
        int h = next;
        next = h + 1 == heads ? 0 : h + 1;
        if (cache.equals("bf16")) {
            kernels.attendGroupBf16(out, 0, q, 0, GROUP, packedKeys[h], packedValues[h], 0, HEAD_DIM, len, HEAD_DIM,
                    0.125f, scores, null, 0);
        } else {
            kernels.attendGroup(out, 0, q, 0, GROUP, keys[h], values[h], 0, HEAD_DIM, len, HEAD_DIM, 0.125f, scores);
        }
        return out;
    }
}
