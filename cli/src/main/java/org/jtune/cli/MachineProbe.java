package org.jtune.cli;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.jtune.kernel.WorkerPool;

/**
 * Measures the two ceilings the kernels are judged against, on this machine, in the same run:
 * memory read bandwidth (every thread sums its share of a buffer far larger than the caches, with
 * the Vector API) and FMA peak (every thread runs independent vector FMA chains long enough to
 * hide their latency). Bandwidth: the median of several passes; FMA peak: the best of several.
 */
final class MachineProbe {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int CHUNK = 1 << 20;

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
            return streamBandwidth(pool, java.util.List.of(buf), repeats);
        }
    }

    /**
     * Read bandwidth of the given memory (the probe buffer, or a model's weight pages): the segments are
     * cut into CHUNK-sized pieces (tails under 4 vectors are skipped and not counted), each thread sums a
     * contiguous run of them. The median of {@code repeats} passes, not the best: on this shared VM single
     * passes read up to 55 GB/s in runs whose other passes (and a standalone probe) read 33-36, and one
     * burst would set the ceiling. The 1 GiB buffer and the page cache holding the weights can also sit
     * in physical memory of different speed (33-58 GB/s between runs), so decode is judged against both.
     */
    static double streamBandwidth(WorkerPool pool, java.util.List<MemorySegment> segments, int repeats) {
        int step = 4 * F.length() * 4;
        java.util.List<MemorySegment> pieces = new java.util.ArrayList<>();
        long bytes = 0;
        for (MemorySegment seg : segments) {
            for (long off = 0; off + step <= seg.byteSize(); off += CHUNK) {
                long len = Math.min(CHUNK, (seg.byteSize() - off) / step * step);
                pieces.add(seg.asSlice(off, len));
                bytes += len;
            }
        }
        double[] sink = new double[pieces.size()];
        long[] times = new long[repeats];
        for (int r = 0; r < repeats; r++) {
            long t0 = System.nanoTime();
            pool.run(pieces.size(), (from, to) -> {
                for (int i = from; i < to; i++) {
                    sink[i] += sumBytes(pieces.get(i));
                }
            });
            times[r] = System.nanoTime() - t0;
        }
        if (sink.length > 0 && sink[0] == 42) {
            System.out.print("");   // keeps the sums alive
        }
        java.util.Arrays.sort(times);
        return bytes / (double) times[repeats / 2];
    }

    /**
     * Sums a segment (a multiple of 4 vectors long) with four vector accumulators. The loop is
     * int-counted over at most CHUNK bytes: a long-counted loop over the whole 1 GiB buffer compiled to
     * slower code and read about 15 % below what the matmul kernels themselves stream.
     */
    private static float sumBytes(MemorySegment seg) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int step = F.length() * 4;
        int n = (int) seg.byteSize();
        for (int i = 0; i < n; i += 4 * step) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, seg, i, ByteOrder.LITTLE_ENDIAN));
            a1 = a1.add(FloatVector.fromMemorySegment(F, seg, i + step, ByteOrder.LITTLE_ENDIAN));
            a2 = a2.add(FloatVector.fromMemorySegment(F, seg, i + 2L * step, ByteOrder.LITTLE_ENDIAN));
            a3 = a3.add(FloatVector.fromMemorySegment(F, seg, i + 3L * step, ByteOrder.LITTLE_ENDIAN));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
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
