package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class WorkerPoolTest {
    @Test
    void everyIndexRunsExactlyOnceForAnySizeIncludingFewerItemsThanThreads() {
        for (int threads = 1; threads <= 4; threads++) {
            try (WorkerPool pool = new WorkerPool(threads)) {
                for (int n = 0; n <= 40; n++) {
                    AtomicIntegerArray hits = new AtomicIntegerArray(Math.max(1, n));
                    pool.run(n, (from, to) -> {
                        for (int i = from; i < to; i++) {
                            hits.incrementAndGet(i);
                        }
                    });
                    for (int i = 0; i < n; i++) {
                        assertEquals(1, hits.get(i), "threads=" + threads + " n=" + n + " index " + i);
                    }
                }
            }
        }
    }

    @Test
    void exceptionInAWorkerPropagatesToTheCallerAndThePoolStaysUsable() {
        try (WorkerPool pool = new WorkerPool(3)) {
            IllegalStateException boom = new IllegalStateException("boom");
            RuntimeException thrown = assertThrows(RuntimeException.class, () -> pool.run(9, (from, to) -> {
                if (from > 0 && to == 9) { // the last range: always a worker, never the caller
                    throw boom;
                }
            }));
            assertSame(boom, thrown);
            AtomicIntegerArray hits = new AtomicIntegerArray(9);
            pool.run(9, (from, to) -> {
                for (int i = from; i < to; i++) {
                    hits.incrementAndGet(i);
                }
            });
            for (int i = 0; i < 9; i++) {
                assertEquals(1, hits.get(i));
            }
        }
    }

    @Test
    void exceptionOnTheCallersRangePropagatesAfterWorkersFinish() {
        try (WorkerPool pool = new WorkerPool(2)) {
            AtomicIntegerArray done = new AtomicIntegerArray(1);
            assertThrows(ArithmeticException.class, () -> pool.run(4, (from, to) -> {
                if (from == 0) {
                    throw new ArithmeticException("caller range");
                }
                done.incrementAndGet(0);
            }));
            assertEquals(1, done.get(0));
        }
    }

    @Test
    void rejectsZeroThreads() {
        assertThrows(IllegalArgumentException.class, () -> new WorkerPool(0));
    }
}
