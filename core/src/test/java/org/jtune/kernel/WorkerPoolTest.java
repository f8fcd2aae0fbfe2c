package org.jtune.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
    void everyIndexRunsExactlyOnceWhateverTheChunksPerThread() {
        try (WorkerPool pool = new WorkerPool(3)) {
            for (int chunks : new int[] {1, 4, 16, 1000}) {
                for (int n : new int[] {1, 2, 5, 47, 48, 49, 1000}) {
                    AtomicIntegerArray hits = new AtomicIntegerArray(n);
                    pool.run(n, chunks, (from, to) -> {
                        for (int i = from; i < to; i++) {
                            hits.incrementAndGet(i);
                        }
                    });
                    for (int i = 0; i < n; i++) {
                        assertEquals(1, hits.get(i), "chunks=" + chunks + " n=" + n + " index " + i);
                    }
                }
            }
        }
    }

    @Test
    void exceptionInAnyChunkPropagatesToTheCallerAndThePoolStaysUsable() {
        try (WorkerPool pool = new WorkerPool(3)) {
            for (int failing : new int[] {0, 4, 8}) {   // the caller's run, the middle, the last thread's run
                IllegalStateException boom = new IllegalStateException("boom");
                RuntimeException thrown = assertThrows(RuntimeException.class, () -> pool.run(9, (from, to) -> {
                    if (from <= failing && failing < to) {
                        throw boom;
                    }
                }));
                assertSame(boom, thrown);
            }
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
    void aFailedChunkDoesNotStopTheOthersAndTheCallerReturnsOnlyAfterThem() {
        try (WorkerPool pool = new WorkerPool(2)) {
            AtomicIntegerArray done = new AtomicIntegerArray(8);
            assertThrows(ArithmeticException.class, () -> pool.run(8, (from, to) -> {
                if (from == 0) {
                    throw new ArithmeticException("caller's first chunk");
                }
                for (int i = from; i < to; i++) {
                    done.incrementAndGet(i);
                }
            }));
            for (int i = 1; i < 8; i++) {
                assertEquals(1, done.get(i), "index " + i);
            }
        }
    }

    @Test
    void aSlowThreadsChunksAreTakenByTheOthers() {
        try (WorkerPool pool = new WorkerPool(2)) {
            int n = 8;
            int[] ranBy = new int[n];
            pool.run(n, (from, to) -> {
                int me = pool.threadIndex();
                if (me == 1) {   // the worker is late: the caller must take part of its run
                    try {
                        Thread.sleep(200);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                for (int i = from; i < to; i++) {
                    ranBy[i] = me + 10;
                }
            });
            long byCaller = java.util.Arrays.stream(ranBy).filter(t -> t == 10).count();
            long byWorker = java.util.Arrays.stream(ranBy).filter(t -> t == 11).count();
            assertEquals(n, byCaller + byWorker, "every chunk ran on thread index 0 or 1");
            assertTrue(byCaller > n / 2, "the caller took chunks of the sleeping worker's run: " + byCaller);
            assertEquals(0, pool.threadIndex(), "a thread outside the pool is index 0");
        }
    }

    /**
     * Jobs after idle gaps long enough for the workers (and the waiting caller) to park: each wakes them
     * through the parked-flag handshake, and every index still runs once.
     */
    @Test
    void jobsAfterIdleGapsWakeParkedWorkers() throws InterruptedException {
        try (WorkerPool pool = new WorkerPool(3)) {
            for (int round = 0; round < 6; round++) {
                Thread.sleep(round % 2 == 0 ? 30 : 0);
                java.util.concurrent.atomic.AtomicIntegerArray hits = new java.util.concurrent.atomic.AtomicIntegerArray(40);
                boolean slowTail = round % 3 == 0;
                pool.run(40, (from, to) -> {
                    for (int i = from; i < to; i++) {
                        hits.incrementAndGet(i);
                    }
                    if (slowTail && to == 40) {   // keeps the caller waiting past its spin budget
                        try {
                            Thread.sleep(20);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                });
                for (int i = 0; i < 40; i++) {
                    org.junit.jupiter.api.Assertions.assertEquals(1, hits.get(i), "round " + round + ", index " + i);
                }
            }
        }
    }

    /**
     * A worker held back before it joins a job: the caller claims every chunk, revokes the worker and
     * returns without it (it used to wait for the worker to wake up); released, the worker skips the
     * job it was revoked from and serves the next ones.
     */
    @Test
    void theCallerDoesNotWaitForAWorkerThatHasNotJoined() throws InterruptedException {
        try (WorkerPool pool = new WorkerPool(2)) {
            java.util.concurrent.CountDownLatch held = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            pool.beforeJoin = () -> {
                held.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            };
            java.util.concurrent.atomic.AtomicIntegerArray hits = new java.util.concurrent.atomic.AtomicIntegerArray(16);
            int[] ranBy = new int[16];
            // returns while the worker is held; a caller that waited for the worker would hang here
            org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(60), () ->
                    pool.run(16, (from, to) -> {
                        for (int i = from; i < to; i++) {
                            hits.incrementAndGet(i);
                            ranBy[i] = pool.threadIndex();
                        }
                    }));
            assertTrue(held.await(10, java.util.concurrent.TimeUnit.SECONDS), "the worker saw the job");
            for (int i = 0; i < 16; i++) {
                assertEquals(1, hits.get(i), "index " + i);
                assertEquals(0, ranBy[i], "index " + i + " ran on the caller's thread");
            }
            pool.beforeJoin = null;
            release.countDown();
            // the revoked worker must not run the old job when released; later jobs still run every index once
            boolean workerTookPart = false;
            for (int round = 0; round < 200 && !workerTookPart; round++) {
                java.util.concurrent.atomic.AtomicIntegerArray again = new java.util.concurrent.atomic.AtomicIntegerArray(64);
                java.util.concurrent.atomic.AtomicBoolean byWorker = new java.util.concurrent.atomic.AtomicBoolean();
                pool.run(64, (from, to) -> {
                    if (pool.threadIndex() == 1) {
                        byWorker.set(true);
                    }
                    for (int i = from; i < to; i++) {
                        again.incrementAndGet(i);
                    }
                    try {
                        Thread.sleep(1);   // long chunks: the worker joins before the caller has claimed them all
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
                for (int i = 0; i < 64; i++) {
                    assertEquals(1, again.get(i), "round " + round + ", index " + i);
                }
                workerTookPart = byWorker.get();
            }
            for (int i = 0; i < 16; i++) {
                assertEquals(1, hits.get(i), "the revoked worker ran nothing of the first job: index " + i);
            }
            assertTrue(workerTookPart, "the released worker joined later jobs");
        }
    }

    /** A caller whose chunk threw stops claiming: it must not revoke the late worker, which takes what is left. */
    @Test
    void aCallerWhoseChunkThrewDoesNotRevokeTheWorkerThatMustFinishTheRest() {
        try (WorkerPool pool = new WorkerPool(2)) {
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            pool.beforeJoin = () -> {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            };
            java.util.concurrent.atomic.AtomicIntegerArray hits = new java.util.concurrent.atomic.AtomicIntegerArray(16);
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () ->
                    org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(60), () ->
                            pool.run(16, (from, to) -> {
                                if (from == 0) {   // the caller's first chunk; the worker is still held
                                    Thread releaser = new Thread(() -> {   // after the caller has decided
                                        try {
                                            Thread.sleep(200);
                                        } catch (InterruptedException e) {
                                            Thread.currentThread().interrupt();
                                        }
                                        release.countDown();
                                    });
                                    releaser.start();
                                    throw new IllegalStateException("chunk 0");
                                }
                                for (int i = from; i < to; i++) {
                                    hits.incrementAndGet(i);
                                }
                            })));
            assertEquals("chunk 0", thrown.getMessage());
            int firstChunkEnd = 16 / (2 * 4);   // 8 chunks of 2
            for (int i = 0; i < 16; i++) {
                assertEquals(i < firstChunkEnd ? 0 : 1, hits.get(i), "index " + i);
            }
        }
    }

    @Test
    void rejectsZeroThreads() {
        assertThrows(IllegalArgumentException.class, () -> new WorkerPool(0));
    }
}
