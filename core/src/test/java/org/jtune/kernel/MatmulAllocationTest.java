package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.jtune.io.safetensors.DType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Decode must not allocate: a tokens=1 matmul large enough to go through the worker pool is called
 * 1000 times after warm-up, and the calling thread's allocated-bytes counter must stay (almost)
 * flat. The bound is 1 KB rather than 0 because a JIT event during the measured window (a late
 * recompilation, a deoptimization running briefly in the interpreter, where Vector API boxes are
 * really allocated) can add a few hundred bytes; a real per-call allocation would show as at
 * least 1000 * 16 bytes. The measurement is retried a few times for the same reason, and the smallest
 * window is asserted.
 *
 * <p>Each weight family runs in a JVM of its own, as a model's decode does: the Vector API's internal
 * methods keep one receiver-type profile for all their callers, and once the BF16 decode rows, the F16
 * ones and the int8 pair kernels had all run in one JVM, C2 compiled the int8 pair kernel with its
 * conversions left as calls (every vector boxed, tens of kilobytes per matmul) in 2 of 6 and 3 of 8
 * runs, and in none of 6 with the F16 or the BF16 ones left out (docs/performance.md). Which kernels
 * share a process is the caller's choice; what this test pins is that each family, warmed up,
 * allocates nothing.
 */
class MatmulAllocationTest {
    /** The weight families, each checked in a fresh JVM by {@link #main}. */
    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F32", "F16", "I8", "SHARED"})
    void decodeAllocatesNothingOnTheCallingThreadAfterWarmUp(String family) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!arg.startsWith("-agentlib") && !arg.startsWith("-javaagent") && !arg.startsWith("-XX:StartFlightRecording")) {
                command.add(arg);   // the module, native-access and CompileCommand flags the kernels run under
            }
        }
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), MatmulAllocationTest.class.getName(), family));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "the " + family + " JVM did not finish");
        assertEquals(0, p.exitValue(), "the " + family + " JVM failed:\n" + out);
        int cases = 0;
        for (String line : out.split("\n")) {
            if (line.startsWith("allocated ")) {   // allocated BYTES CASE
                String[] f = line.split(" ", 3);
                assertTrue(Long.parseLong(f[1]) <= 1024, f[2] + ": 1000 decode calls allocated " + f[1] + " bytes on the caller");
                cases++;
            }
        }
        assertTrue(cases > 0, "no measurements from the " + family + " JVM:\n" + out);
    }

    /** Runs one family's measurements and prints {@code allocated BYTES CASE} per case. */
    public static void main(String[] args) {
        Random rnd = new Random(1);
        try (WorkerPool pool = new WorkerPool(2)) {
            VectorKernels k = new VectorKernels(pool);
            if (args[0].equals("SHARED")) {
                // a layer's q/k/v as one shared decode pass allocates nothing either (its job object is reused)
                Matrix[] ws = {
                    TestMatrices.i8Matrix(rnd, 576, 576, 32, true).withRowPairs(),
                    TestMatrices.i8Matrix(rnd, 192, 576, 32, true).withRowPairs(),
                    TestMatrices.matrix(rnd, DType.BF16, 192, 576, true),
                };
                float[] x = TestMatrices.randomFloats(rnd, 576);
                float[][] outs = {new float[576], new float[192], new float[192]};
                System.out.println("allocated " + allocation(() -> k.matmulShared(outs, x, ws, 3, 1)) + " shared decode pass");
                return;
            }
            // odd shapes exercise row and column tails; I8 needs a width its group size divides, and groups
            // 32, 16 and 8 take the unrolled decode, the one-vector-per-group decode and the any-group path
            Matrix[] ws = switch (args[0]) {
                case "BF16", "F32", "F16" -> new Matrix[] {
                    TestMatrices.matrix(rnd, DType.valueOf(args[0]), 131, 515, true),
                    TestMatrices.matrix(rnd, DType.valueOf(args[0]), 131, 515, true).withStrips(128),   // a short last strip
                };
                case "I8" -> new Matrix[] {
                    TestMatrices.i8Matrix(rnd, 131, 512, 32, true),
                    TestMatrices.i8Matrix(rnd, 131, 512, 32, true).withRowPairs(),
                    TestMatrices.i8Matrix(rnd, 131, 512, 512, true).withRowPairs(),   // per channel: the generic pair loop
                    TestMatrices.i8Matrix(rnd, 131, 512, 32, true).withRowPairs().withStrips(192),
                    TestMatrices.i8Matrix(rnd, 131, 512, 512, true).withRowPairs().withStrips(192),
                    TestMatrices.i8Matrix(rnd, 131, 512, 16, true),
                    TestMatrices.i8Matrix(rnd, 131, 520, 8, true),
                };
                default -> throw new IllegalArgumentException("unknown family " + args[0]);
            };
            for (Matrix w : ws) {
                String name = w.dtype() + (w.dtype() == DType.I8 ? " group " + w.groupSize() + (w.rowPairs() ? " row pairs" : "") : "")
                        + (w.strip() > 0 ? " strips " + w.strip() : "");
                System.out.println("allocated " + decodeAllocation(k, w, TestMatrices.randomFloats(rnd, w.cols())) + " " + name);
            }
        }
    }

    /**
     * Bytes the calling thread allocates for 1000 single-token matmuls, after 20,000 to let C2 compile
     * them; the least of up to five tries, stopping at the first of at most 1 KiB (a late compile or
     * a GC log line can allocate once).
     */
    static long decodeAllocation(Kernels k, Matrix w, float[] x) {
        float[] out = new float[w.rows()];
        return allocation(() -> k.matmul(out, x, w, 1));
    }

    /** The same for {@code call}: warmed up 20,000 times, then the least of up to five windows of 1000 calls. */
    static long allocation(Runnable call) {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        for (int i = 0; i < 20_000; i++) {
            call.run();
        }
        long best = Long.MAX_VALUE;
        for (int attempt = 0; attempt < 5 && best > 1024; attempt++) {
            long before = mx.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < 1000; i++) {
                call.run();
            }
            best = Math.min(best, mx.getCurrentThreadAllocatedBytes() - before);
        }
        return best;
    }
}
