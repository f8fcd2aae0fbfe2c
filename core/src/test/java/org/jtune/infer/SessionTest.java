package org.jtune.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelRegistry;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;

class SessionTest {
    @Test
    void decodeStepAllocatesNothing() {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/tiny-llama"))) {
            Session s = new Session(m, 400);
            s.feed(new int[] {1, 5, 9});
            // Warm up until C2 has compiled the vector kernels: interpreted Vector API code boxes every vector.
            for (int round = 0; round < 60; round++) {
                s.rewind(3);
                for (int i = 0; i < 200; i++) {
                    s.feed(7 + i);
                }
            }
            // Best of a few windows: a JIT recompilation inside one window may allocate a little.
            long best = Long.MAX_VALUE;
            for (int window = 0; window < 5 && best > 0; window++) {
                s.rewind(3);
                long before = threads.getCurrentThreadAllocatedBytes();
                for (int i = 0; i < 200; i++) {
                    s.feed(7 + i);
                }
                best = Math.min(best, threads.getCurrentThreadAllocatedBytes() - before);
            }
            // One allocation per step would be >= 200 * 16 bytes.
            assertTrue(best < 1024, "200 decode steps allocated " + best + " bytes");
        }
    }

    /**
     * A prompt fed in chunks long enough for the attention's block kernel (Kernels#attendCausalBlock) allocates
     * nothing either, on any thread: a vector kernel that C2 compiled with its vectors boxed would.
     */
    @Test
    void promptChunksAllocateNothing() {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/tiny-llama"))) {
            Session s = new Session(m, 256, 64);
            int[] prompt = new int[192];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = 3 + (i * 7) % 90;
            }
            for (int round = 0; round < 300; round++) {   // C2 compiles the prefill kernels after about 150
                s.reset();
                s.feed(prompt);
            }
            long best = Long.MAX_VALUE;
            for (int window = 0; window < 5 && best > 0; window++) {
                s.reset();
                long before = allocatedByAllThreads(threads);
                s.feed(prompt);
                best = Math.min(best, allocatedByAllThreads(threads) - before);
            }
            assertTrue(best < 4096, "a 192-token prompt in chunks of 64 allocated " + best + " bytes");
        }
    }

    private static long allocatedByAllThreads(com.sun.management.ThreadMXBean threads) {
        long sum = 0;
        for (long bytes : threads.getThreadAllocatedBytes(threads.getAllThreadIds())) {
            sum += Math.max(0, bytes);
        }
        return sum;
    }

    @Test
    void rewindRecomputesTheSameLogits() {
        try (LanguageModel m = ModelRegistry.load(Shared.path("models/tiny-llama"))) {
            Session s = new Session(m, 32);
            s.feed(new int[] {1, 2, 3, 4});
            float[] first = s.feed(5).clone();
            s.rewind(4);
            assertArrayEquals(new int[] {1, 2, 3, 4}, s.tokens());
            assertArrayEquals(first, s.feed(5));
            assertEquals(5, s.length());
        }
    }
}
