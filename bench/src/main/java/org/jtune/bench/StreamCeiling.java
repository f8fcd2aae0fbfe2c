package org.jtune.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.jtune.io.AnonymousMemory;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.HalfFloats;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Kernels;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.ReadProbe;
import org.jtune.kernel.WorkerPool;
import org.jtune.quant.Int8Weights;

/**
 * How close the decode kernels come to the read probe when nothing else runs: one-token matmuls over a
 * set of matrices many times the size of L3, laid out as the loader lays out decode weights (anonymous
 * memory on huge pages; int8 as row pairs; column strips past twice {@link Matrix#DECODE_STRIP}), alternated
 * round by round with {@link ReadProbe} over the same pages. `jtune bench` measures whole decode steps
 * against the same probe; this isolates the kernels (no attention, norms or joins between layers).
 * Run: {@code ./bench/run StreamCeiling [bf16|int8|int8ch] [ROWSxCOLS] [MiB] [rounds]}; threads: {@code -Djtune.threads}.
 */
public final class StreamCeiling {
    private StreamCeiling() {
    }

    public static void main(String[] args) {
        String dtype = args.length > 0 ? args[0] : "bf16";
        String[] shape = (args.length > 1 ? args[1] : "1536x576").split("x");
        int rows = Integer.parseInt(shape[0]), cols = Integer.parseInt(shape[1]);
        long totalBytes = (args.length > 2 ? Long.parseLong(args[2]) : 512) << 20;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 8;

        Kernels kernels = KernelProvider.get();
        WorkerPool pool = WorkerPool.shared();
        Arena arena = Arena.ofShared();
        long matrixBytes = (long) rows * cols * (dtype.equals("bf16") ? 2 : 1);
        int count = (int) Math.max(1, totalBytes / matrixBytes);
        long stride = (matrixBytes + 63) & ~63L;
        MemorySegment pages = AnonymousMemory.allocate(arena, count * stride);
        boolean strips = cols > 2 * Matrix.DECODE_STRIP;   // as the loader does: re-laid into decode memory of their own
        SegmentAllocator stripPages = strips ? SegmentAllocator.slicingAllocator(AnonymousMemory.allocate(arena, count * stride)) : null;
        SplittableRandom random = new SplittableRandom(1);
        List<Matrix> matrices = new ArrayList<>();
        List<MemorySegment> segments = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            MemorySegment seg = pages.asSlice(i * stride, matrixBytes);
            Matrix m = dtype.equals("bf16") ? bf16(seg, rows, cols, random) : int8(seg, rows, cols, dtype.equals("int8ch") ? cols : 32, random);
            if (strips) {
                m = m.withStrips(Matrix.DECODE_STRIP, stripPages);
            }
            matrices.add(m);
            segments.add(m.data());
        }
        float[] x = new float[cols], out = new float[rows];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) (random.nextDouble() - 0.5);
        }
        System.out.printf("%s %dx%d, %d matrices (%d MiB), %d threads, %s kernels%n", dtype, rows, cols, count,
                count * matrixBytes >> 20, pool.threads(), kernels.name());
        double[] ratios = new double[rounds];
        for (int r = -3; r < rounds; r++) {   // three rounds warm the JIT up
            long t0 = System.nanoTime();
            for (Matrix m : matrices) {
                kernels.matmul(out, x, m, 1);
            }
            double kernelGBps = (double) count * matrixBytes / (System.nanoTime() - t0);
            double probeGBps = ReadProbe.streamBandwidth(pool, segments, 1);
            if (r >= 0) {
                ratios[r] = kernelGBps / probeGBps;
                System.out.printf("round %d: matmul %.1f GB/s, read probe %.1f GB/s, %.0f %%%n", r + 1, kernelGBps, probeGBps, 100 * ratios[r]);
            }
        }
        Arrays.sort(ratios);
        System.out.printf("median: matmul at %.0f %% of the read probe%n", 100 * ratios[rounds / 2]);
        arena.close();
    }

    private static Matrix bf16(MemorySegment seg, int rows, int cols, SplittableRandom random) {
        for (long i = 0; i < (long) rows * cols; i++) {
            seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, HalfFloats.floatToBf16((float) (random.nextDouble() - 0.5)));
        }
        return new Matrix(seg, DType.BF16, rows, cols);
    }

    /** Random weights through the quantizer `jtune quantize` uses, re-laid as row pairs into {@code seg}. */
    private static Matrix int8(MemorySegment seg, int rows, int cols, int group, SplittableRandom random) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (random.nextDouble() - 0.5);
        }
        Matrix paired = Int8Weights.quantize(Matrix.ofFloats(w, rows, cols), group).withRowPairs(Arena.ofAuto());
        MemorySegment.copy(paired.data(), 0, seg, 0, seg.byteSize());
        return new Matrix(seg, DType.I8, rows, cols, paired.scales(), group, null, paired.rowPairs(), 0);
    }
}
