package org.jtune.cli;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.jtune.kernel.ReadProbe;
import org.jtune.kernel.WorkerPool;

/**
 * Measures the two ceilings the kernels are judged against, on this machine, in the same run:
 * memory read bandwidth (every thread sums its share of a buffer far larger than the caches, with
 * the Vector API) and FMA peak (every thread runs independent vector FMA chains long enough to
 * hide their latency). Bandwidth: the median of several passes; FMA peak: the best of several.
 */
final class MachineProbe {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    record Result(double readGBps, double fmaGflops, int threads, int vectorBits) {
    }

    static Result measure(WorkerPool pool) {
        return new Result(readBandwidth(pool, 1L << 30, 9), fmaPeak(pool, 5), pool.threads(), F.vectorBitSize());
    }

    /** Read bandwidth of a fresh {@code bytes} off-heap buffer, every page present before timing. */
    static double readBandwidth(WorkerPool pool, long bytes, int repeats) {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buf = arena.allocate(bytes, 4096);
            buf.fill((byte) 1);
            return ReadProbe.streamBandwidth(pool, java.util.List.of(buf), repeats);
        }
    }

    static double fmaPeak(WorkerPool pool, int repeats) {
        int threads = pool.threads();
        long iters = 20_000_000L;
        int chains = 10;
        double[] sink = new double[threads];
        double best = Double.MAX_VALUE;
        for (int r = 0; r < repeats; r++) {
            long t0 = System.nanoTime();
            pool.run(threads, (from, to) -> {
                for (int t = from; t < to; t++) {
                    sink[t] += fmaChains(iters);
                }
            });
            best = Math.min(best, System.nanoTime() - t0);
        }
        if (sink[0] == 42) {
            System.out.print("");
        }
        return 2.0 * F.length() * chains * iters * threads / best;
    }

    private static double fmaChains(long iters) {
        FloatVector m = FloatVector.broadcast(F, 0.999999f), c = FloatVector.broadcast(F, 1e-7f);
        FloatVector a0 = FloatVector.broadcast(F, 1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
                a8 = a0, a9 = a0;
        for (long i = 0; i < iters; i++) {
            a0 = a0.fma(m, c);
            a1 = a1.fma(m, c);
            a2 = a2.fma(m, c);
            a3 = a3.fma(m, c);
            a4 = a4.fma(m, c);
            a5 = a5.fma(m, c);
            a6 = a6.fma(m, c);
            a7 = a7.fma(m, c);
            a8 = a8.fma(m, c);
            a9 = a9.fma(m, c);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9)
                .reduceLanes(VectorOperators.ADD);
    }
}
