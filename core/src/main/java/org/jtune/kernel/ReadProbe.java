package org.jtune.kernel;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The read bandwidth decode is judged against: the pool's threads sum memory with the Vector API and
 * nothing else, so this is as fast as a core streams memory (`jtune bench`'s probe, and the bench
 * module's StreamCeiling, which sets the decode kernels beside it).
 */
public final class ReadProbe {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int CHUNK = 1 << 20;

    private ReadProbe() {
    }

    /**
     * Read bandwidth of the given memory in bytes per nanosecond (GB/s): the segments are cut into
     * 1 MiB pieces (tails under 4 vectors are skipped and not counted), each thread sums a contiguous
     * run of them. The median of {@code repeats} passes, not the best: on a shared VM single passes read
     * up to 55 GB/s in runs whose other passes read 33-36, and one burst would set the ceiling.
     */
    public static double streamBandwidth(WorkerPool pool, List<MemorySegment> segments, int repeats) {
        int step = 4 * F.length() * 4;
        List<MemorySegment> pieces = new ArrayList<>();
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
        Arrays.sort(times);
        return bytes / (double) times[repeats / 2];
    }

    /**
     * Sums a segment (a multiple of 4 vectors long) with four vector accumulators. The loop is
     * int-counted over at most CHUNK bytes: a long-counted loop over a whole 1 GiB buffer compiled to
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
}
